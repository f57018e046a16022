"""The answered model's fit: its near-miss replays leave out the answers and their twins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kb.build import build_index
from kb.calibrate import answer_examples, prepare, twins_of
from kb.evaluation import LabelledQuery
from kb.ranking import FEATURES, Calibration
from kb.search import Searcher
from kb.store import load_index


@dataclass
class _Chunk:
    kind: str
    article_id: str


class _Vectors:
    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def reconstruct_all(self) -> np.ndarray:
        return self.rows


@dataclass
class _Index:
    chunks: list[_Chunk]
    vectors: _Vectors
    chunk_article: np.ndarray
    lang: str = "en"

    @property
    def article_ids(self) -> list[str]:
        return sorted({str(a) for a in self.chunk_article})

    @property
    def articles(self) -> dict[str, dict]:
        return {a: {"lang": self.lang} for a in self.article_ids}


def _unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def _index() -> _Index:
    """Four articles, each a section chunk and a title chunk; articles 0 and 1 ask the same
    question in other words (their titles nearly coincide), 2 and 3 are distinct."""
    titles = [_unit(1, 0.05, 0, 0), _unit(1, 0, 0.05, 0), _unit(0, 1, 0, 0), _unit(0, 0, 0, 1)]
    rows, kinds, owner = [], [], []  # article ids are the ordinals' digits
    for a, title in enumerate(titles):
        rows += [_unit(0.3, 0.3, 0.3, 0.3), title]  # a section alike to every other: not a title
        kinds += ["section", "title"]
        owner += [a, a]
    return _Index([_Chunk(k, str(a)) for k, a in zip(kinds, owner, strict=True)],
                  _Vectors(np.array(rows)), np.array(owner))


def test_a_replay_leaves_out_the_answers_twins_and_nothing_else():
    twins = twins_of(_index(), Calibration())  # type: ignore[arg-type]
    assert twins({0}) == {0, 1}
    assert twins({1}) == {0, 1}
    assert twins({2}) == {2}
    assert twins({2, 3}) == {2, 3}


def test_a_knowledge_base_too_small_to_tell_twins_keeps_the_answers_alone():
    index = _index()
    small = _Index(index.chunks[:4], _Vectors(index.vectors.rows[:4]), index.chunk_article[:4])
    assert twins_of(small, Calibration())({0}) == {0}  # type: ignore[arg-type]


def test_no_twins_where_fusion_does_not_trust_the_embedding_model():
    index = _index()
    index.lang = "zh"  # the bundled English model: fusion weighs BM25 above it by default
    assert twins_of(index, Calibration())({0}) == {0}  # type: ignore[arg-type]
    trusting = Calibration(fusion={"zh": {"dense": 0.7, "lexical": 0.3}})
    assert twins_of(index, trusting)({0}) == {0, 1}  # type: ignore[arg-type]


def _write(folder, name, title, body):
    (folder / f"{name}.md").write_text(
        f"---\nid: {name}\ntitle: {title}\ntype: faq\nlang: en\n---\n# {title}\n\n{body}\n",
        encoding="utf-8")


def test_a_replayed_query_finds_neither_its_answer_nor_the_answers_twin(tmp_path, fake_embedder):
    kb = tmp_path / "articles"
    kb.mkdir()
    _write(kb, "vpn-809", "VPN fails with error 809", "Open UDP 500 and 4500 on the router.")
    _write(kb, "vpn-809-copy", "VPN fails with error 809", "Ask the hotel to allow IPsec.")
    _write(kb, "printer", "Printer shows offline", "Restart the print spooler.")
    _write(kb, "refund", "Refund takes five days", "Refunds reach the card in five days.")
    _write(kb, "password", "Reset a forgotten password", "Use the self-service portal.")
    build_index(kb, tmp_path / "index", lambda: fake_embedder, fake_embedder.name)
    searcher = Searcher(load_index(tmp_path / "index"), fake_embedder)
    query = LabelledQuery("q1", "vpn error 809", "en", {"vpn-809": 1})
    x, labels, kinds = answer_examples(searcher, prepare(searcher, [query]),
                                       searcher.index.calibration)
    dense = list(FEATURES).index("dense")
    assert list(kinds) == [0, 2] and list(labels) == [1, 0]
    # with the twin left in, the replay would find the same title, as close as the answer
    assert x[1, dense] < x[0, dense] - 0.2
