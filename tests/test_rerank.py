import numpy as np
import pytest

from kb.errors import ModelError
from kb.rerank import Reranker
from kb.search import Searcher
from kb.store import load_index


class Reverse:
    """Prefers whatever fusion ranked last: shows the reranker decides the order."""

    name = "reverse"
    top = 3

    def __init__(self):
        self.calls = 0

    def scores(self, query, passages):
        self.calls += 1
        return np.arange(len(passages), dtype=np.float32)


def test_reranker_reorders_the_top_only(fixture_index, real_embedder):
    index = load_index(fixture_index)
    plain = Searcher(index, real_embedder).search("vpn wifi password", k=5).hits
    reverse = Reverse()
    reranked = Searcher(index, real_embedder, reranker=reverse).search("vpn wifi password",
                                                                        k=5).hits
    assert reverse.calls == 1
    assert [h.id for h in reranked[:3]] == [h.id for h in plain[:3]][::-1]
    assert [h.id for h in reranked[3:]] == [h.id for h in plain[3:]]
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)


def test_a_real_cross_encoder_loads_from_a_local_directory(tmp_path, fixture_index,
                                                           real_embedder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kb.embedding import resolve_model

    # A cross-encoder with an untrained head, built from the bundled weights: no hub needed.
    source = resolve_model("all-MiniLM-L6-v2")
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    model.save_pretrained(tmp_path / "ce")
    AutoTokenizer.from_pretrained(source).save_pretrained(tmp_path / "ce")
    reranker = Reranker(str(tmp_path / "ce"), top=4)
    scores = reranker.scores("vpn 809", ["VPN error 809", "printer offline"])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    hits = Searcher(load_index(fixture_index), real_embedder, reranker=reranker).search("vpn").hits
    assert len({h.id for h in hits}) == len(hits)


def test_missing_reranker_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load reranker"):
        Reranker(str(tmp_path / "nothing-here"))
