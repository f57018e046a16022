"""Ranking signals and answered features by name; calibration files old and new, good and bad."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from kb import ranking, signals
from kb.build import build_index
from kb.cli import app
from kb.errors import CalibrationError
from kb.evaluation import read_queries
from kb.ranking import Calibration, Candidates, answer_features, rank
from kb.search import Filters, Searcher, real_dense
from kb.store import load_index
from kb.text import analyze
from tests.conftest import GOLDEN, ROOT

# The sample knowledge base's calibration as shipped before signals had names (format 1).
SAMPLE_CALIBRATION = ROOT / "tests" / "fixtures" / "calibration-format1.json"


def test_the_kept_sample_calibration_is_the_old_format():
    # The point of the compatibility tests below: this file predates names.
    data = json.loads(SAMPLE_CALIBRATION.read_text())
    assert isinstance(data["answer_coef"], list) and "dense_weight" in data


# --- the formulas as they were before signals had names, kept to compare against -----------

def _old_minmax(x):
    lo, hi = (x.min(), x.max()) if len(x) else (0.0, 0.0)
    if hi > lo:
        return (x - lo) / (hi - lo)
    return (x > 0).astype(np.float64)


def _old_fuse(dense, lexical, alpha):
    d = _old_minmax(np.maximum(dense, 0.0))
    if not len(lexical) or lexical.max() <= 0:
        return d
    return alpha * d + (1.0 - alpha) * _old_minmax(lexical)


def _old_rank(rows, dense, lexical, articles, alpha, k):
    fused = _old_fuse(dense, lexical, alpha)
    order = np.lexsort((-fused, articles))
    grouped = articles[order]
    starts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1])))
    present = grouped[starts]
    art_dense = np.maximum.reduceat(dense[order], starts).astype(np.float64)
    art_lex = np.maximum.reduceat(lexical[order], starts).astype(np.float64)
    score = _old_fuse(art_dense, art_lex, alpha)
    top = np.argsort(-score, kind="stable")[:k]
    return [(int(present[t]), int(rows[order[starts[t]]]), float(score[t]), float(art_dense[t]),
             float(art_lex[t])) for t in top]


def _old_probability(data, ranked, coverage):
    top = ranked[0]
    best_lex = max(r[4] for r in ranked)
    feats = [top[2], max(top[3], 0.0), coverage, top[2] - (ranked[1][2] if len(ranked) > 1
                                                            else 0.0),
             top[4] / best_lex if best_lex > 0 else 0.0]
    z = data["answer_bias"] + sum(c * f for c, f in zip(data["answer_coef"], feats, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@pytest.fixture(scope="module")
def sample_searcher(tmp_path_factory):
    """The sample knowledge base with its old-format calibration, on the fake embedder."""
    from tests.conftest import FakeEmbedder

    embedder = FakeEmbedder()
    root = tmp_path_factory.mktemp("sample-index")
    build_index(ROOT / "articles", root, lambda: embedder, embedder.name,
                calibration=Calibration.load(SAMPLE_CALIBRATION))
    return Searcher(load_index(root), embedder)


def test_an_old_calibration_file_ranks_and_decides_as_before_on_the_golden_set(sample_searcher):
    old = json.loads(SAMPLE_CALIBRATION.read_text())
    cal = sample_searcher.index.calibration
    ids = sample_searcher.index.article_ids
    queries = read_queries(GOLDEN / "queries.jsonl", GOLDEN / "qrels.tsv")
    answered_seen = set()
    for q in queries:
        outcome = sample_searcher.search(q.query, k=5)
        tokens, terms = analyze(q.query)
        vector = sample_searcher.embedder.embed([q.query])[0]
        expansions = sample_searcher.expansions(q.query, tokens)
        cands = sample_searcher.candidates(tokens, vector, Filters(), expansions=expansions,
                                           lang=outcome.lang)
        alpha = old["dense_weight"].get(outcome.lang, {"en": 0.6, "zh": 0.2}.get(outcome.lang, .5))
        before = _old_rank(cands.rows, cands.signals["dense"], cands.signals["lexical"],
                           cands.articles, alpha, 5)
        after = rank(cands, cal.weights(outcome.lang), 5)
        assert [(r.article, r.row, r.score, r.dense, r.lexical) for r in after] == before, q.qid
        assert [h.id for h in outcome.hits] == [ids[b[0]] for b in before], q.qid
        coverage = sample_searcher.coverage(terms, before[0][0], expansions)
        # The answered model sees the model's cosine where ranking saw an imputed one, and the
        # top two articles, as the old calibration was fit on them.
        real = [(r.article, r.row, r.score, r.dense, r.lexical) for r in real_dense(after)][:2]
        probability = _old_probability(old, real, coverage)
        assert outcome.confidence == round(probability, 4), q.qid
        assert outcome.answered == (probability >= old["answer_threshold"]), q.qid
        answered_seen.add(outcome.answered)
    assert answered_seen == {True, False}  # both decisions were exercised


def test_old_format_reads_into_names_and_round_trips():
    cal = Calibration.load(SAMPLE_CALIBRATION)
    data = json.loads(SAMPLE_CALIBRATION.read_text())
    assert cal.weights("en") == {"dense": 0.9, "lexical": 1.0 - 0.9}
    assert list(cal.answer_coef) == list(ranking.LEGACY_FEATURES)
    assert cal.answer_coef["coverage"] == data["answer_coef"][2]
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again == cal and again.to_dict()["format"] == ranking.CALIBRATION_FORMAT


def test_names_a_file_lacks_take_their_defaults():
    cal = Calibration.from_dict({"format": 2, "fusion": {"en": {"dense": 0.8}},
                                 "answer_coef": {"coverage": 3.0}})
    assert cal.weights("en") == {"dense": 0.8, "lexical": 0.4}
    assert cal.weights("fr") == {"dense": 0.5, "lexical": 0.5}
    assert cal.coef("coverage") == 3.0 and cal.coef("dense") == ranking.FEATURES["dense"].default
    assert cal.answer_threshold == ranking.DEFAULT_THRESHOLD
    # names this version does not know are kept in the file but have no effect
    future = Calibration.from_dict({"format": 2, "fusion": {"en": {"dense": 1, "newsig": 2}}})
    assert set(future.weights("en")) == set(signals.SIGNALS)


@pytest.fixture
def extra_signal(monkeypatch):
    """A third signal, registered as a new one would be: one function, one name."""
    monkeypatch.setattr(signals, "SIGNALS", dict(signals.SIGNALS))
    monkeypatch.setattr(ranking, "SIGNALS", signals.SIGNALS)

    @signals.signal("popularity", default={"*": 0.0})
    def popularity(evidence, rows):
        return evidence.scores["popularity"][rows]

    return popularity


def _three(dense, lexical, popularity):
    n = len(dense)
    return Candidates(np.arange(n), np.arange(n), {
        "dense": np.array(dense, dtype=np.float32), "lexical": np.array(lexical, np.float32),
        "popularity": np.array(popularity, dtype=np.float32)})


def test_a_new_signal_changes_nothing_until_it_has_a_weight(extra_signal):
    cands = _three([0.6, 0.5], [2.0, 1.0], [0.0, 9.0])
    assert set(signals.default_weights("en")) == {"dense", "lexical", "popularity"}
    plain = Calibration()
    assert [r.article for r in rank(cands, plain.weights("en"), 2)] == [0, 1]
    weighted = Calibration(fusion={"en": {"popularity": 3.0}})
    ranked = rank(cands, weighted.weights("en"), 2)
    assert [r.article for r in ranked] == [1, 0]
    assert ranked[0].signals["popularity"] == 9.0 and 0.0 <= ranked[0].score <= 1.0
    evidence = signals.Evidence({"dense": np.zeros(3), "lexical": np.zeros(3),
                                 "popularity": np.array([1.0, 2.0, 3.0])})
    assert signals.row_signals(evidence, np.array([2]))["popularity"].tolist() == [3.0]


def test_a_new_feature_is_one_function_and_one_name(monkeypatch):
    monkeypatch.setattr(ranking, "FEATURES", dict(ranking.FEATURES))

    @ranking.feature("depth", default=0.0)
    def depth(judged):
        return float(len(judged.ranked))

    ranked = rank(_three([0.6], [2.0], [0.0]), {"dense": 0.5, "lexical": 0.5}, 2)
    features = answer_features(ranked, 0.5)
    assert features["depth"] == 1.0
    base = Calibration()
    assert Calibration(answer_coef={"depth": 4.0}).answer_probability(features) > \
        base.answer_probability(features)


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be an object"),
    ('{"dense_weight": {"en": 1.5}}', "dense_weight.en must be between 0 and 1"),
    ('{"dense_weight": {"en": "high"}}', "dense_weight.en must be a finite number"),
    ('{"answer_coef": [1, 2, 3]}', "answer_coef has 3 coefficients"),
    ('{"answer_coef": {"fused": null}}', "answer_coef.fused must be a finite number"),
    ('{"answer_threshold": 2}', "answer_threshold must be between 0 and 1"),
    ('{"answer_doubt": -0.1}', "answer_doubt must be between 0 and 1"),
    ('{"format": 2, "fusion": {"en": {"dense": -1}}}', "fusion.en.dense must be between 0"),
    ('{"format": 9}', "unknown format 9"),
])
def test_a_malformed_calibration_is_refused_naming_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "calibration.json"
    path.write_text(content)
    with pytest.raises(CalibrationError) as caught:
        Calibration.load(path)
    assert str(path) in caught.value.message and problem in caught.value.message


def test_kb_index_refuses_a_malformed_calibration_with_a_clear_line(kb_copy, tmp_path):
    (kb_copy / "calibration.json").write_text('{"answer_threshold": "half"}')
    result = CliRunner().invoke(app, ["index", "--articles", str(kb_copy),
                                      "--index", str(tmp_path / "index"), "--model", "fake"])
    assert result.exit_code != 0
    assert f"{kb_copy / 'calibration.json'}:1: invalid calibration: answer_threshold" \
        in result.output
    assert "Traceback" not in result.output


def test_a_version_with_a_malformed_calibration_is_refused_at_load(tmp_path, kb_copy,
                                                                    fake_embedder):
    root = tmp_path / "index"
    build_index(kb_copy, root, lambda: fake_embedder, fake_embedder.name)
    version = next((root / "versions").iterdir())
    (version / "calibration.json").write_text('{"fusion": []}')
    with pytest.raises(CalibrationError, match="fusion must be an object") as caught:
        load_index(root)
    assert str(version / "calibration.json") in caught.value.message
