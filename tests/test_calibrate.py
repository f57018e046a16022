"""The answered model's fit: near-miss examples from the knowledge base itself, figures held out."""

from __future__ import annotations

import numpy as np

from kb.build import build_index
from kb.calibrate import (
    _features,
    answer_examples,
    best_weight,
    calibration_summary,
    fit,
    prepare,
)
from kb.evaluation import LabelledQuery
from kb.ranking import FEATURES, Calibration
from kb.search import Searcher
from kb.store import load_index

ARTICLES = [
    ("vpn-809", "VPN fails with error 809", "Open UDP 500 and 4500 on the router."),
    ("printer", "Printer shows offline", "Restart the print spooler."),
    ("refund", "Refund takes five days", "Refunds reach the card in five days."),
    ("password", "Reset a forgotten password", "Use the self-service portal."),
    ("wifi", "Office wifi asks for a certificate", "Install the company certificate."),
]


def _searcher(tmp_path, fake_embedder) -> Searcher:
    kb = tmp_path / "articles"
    kb.mkdir()
    for name, title, body in ARTICLES:
        (kb / f"{name}.md").write_text(
            f"---\nid: {name}\ntitle: {title}\ntype: faq\nlang: en\n---\n# {title}\n\n"
            f"{body}\n", encoding="utf-8")
    build_index(kb, tmp_path / "index", lambda: fake_embedder, fake_embedder.name)
    return Searcher(load_index(tmp_path / "index"), fake_embedder)


def test_each_answerable_query_is_replayed_as_a_near_miss_without_its_article(
        tmp_path, fake_embedder):
    searcher = _searcher(tmp_path, fake_embedder)
    queries = [LabelledQuery("q1", "vpn error 809", "en", {"vpn-809": 1}),
               LabelledQuery("q2", "book a meeting room", "en", {})]
    x, labels, kinds = answer_examples(searcher, prepare(searcher, queries),
                                       searcher.index.calibration)
    assert list(kinds) == [0, 2, 1] and list(labels) == [1, 0, 0]
    dense = list(FEATURES).index("dense")
    assert x[1, dense] < x[0, dense] - 0.2  # the replay finds only other articles


def test_the_fit_reports_held_out_figures_and_a_threshold_from_them(tmp_path, fake_embedder):
    searcher = _searcher(tmp_path, fake_embedder)
    words = {"vpn-809": "vpn error 809", "printer": "printer offline",
             "refund": "refund five days", "password": "forgotten password",
             "wifi": "wifi certificate"}
    queries = [LabelledQuery(f"{a}-{n}", f"{text} {extra}", "en", {a: 1})
               for a, text in words.items() for n, extra in enumerate(["", "help", "again"])]
    queries += [LabelledQuery(f"none-{n}", text, "en", {}) for n, text in enumerate(
        ["book a meeting room", "parking permit", "canteen menu", "travel insurance",
         "company car"])]
    calibration = fit(searcher, prepare(searcher, queries))
    fitted = calibration.fitted
    assert fitted["held_out"] and fitted["answerable"] == 15 and fitted["unanswerable"] == 5
    assert fitted["replayed_without_answer"] == 15
    assert set(calibration.answer_coef) == set(FEATURES)  # fit, not the defaults kept
    assert calibration.answer_coef != {f: FEATURES[f].default for f in FEATURES}
    assert 0.0 < calibration.answer_threshold < 1.0
    assert calibration.answer_threshold <= calibration.answer_doubt < 1.0  # the gap report's
    assert "of 15" in calibration_summary(fitted)
    # a file written by this fit reads back the same
    assert Calibration.from_dict(calibration.to_dict()).answer_coef == calibration.answer_coef
    assert np.isclose(Calibration.from_dict(calibration.to_dict()).answer_threshold,
                      calibration.answer_threshold)
    assert np.isclose(Calibration.from_dict(calibration.to_dict()).answer_doubt,
                      calibration.answer_doubt)


def test_the_doubt_level_sits_where_gaps_most_outnumber_answers_and_never_below_the_threshold():
    from kb.calibrate import doubt_level
    answerable = np.array([0.3, 0.7, 0.8, 0.85, 0.9, 0.95])
    unanswered = np.array([0.05, 0.1, 0.2, 0.4, 0.5, 0.6])
    level = doubt_level(answerable, unanswered, threshold=0.25)
    assert 0.6 < level <= 0.7  # below it: every unanswered one, one answerable in six
    assert doubt_level(answerable, unanswered, threshold=0.75) == 0.75
    assert doubt_level(answerable, np.array([]), threshold=0.25) == 0.25


def test_the_fusion_weight_is_the_best_scoring_one_and_a_tie_goes_to_the_even_mix():
    # 0.8 scores a little better than 0.5: a band of near-ties would hand it to 0.5.
    assert best_weight({0.2: 0.70, 0.5: 0.7985, 0.8: 0.80}) == 0.8
    assert best_weight({0.3: 0.80, 0.45: 0.80, 0.9: 0.80}) == 0.45


def test_search_judges_a_query_as_the_calibration_did_whatever_the_number_of_results(
        tmp_path, real_embedder):
    """The third result holds the query's rarest word ("tray") and so the most BM25 of all;
    the answered model, fit on the top two, must see the top two in search too."""
    kb = tmp_path / "articles"
    kb.mkdir()
    for name, title, body in [
            ("pw-reset", "Reset a forgotten password", "Use the self-service portal."),
            ("pw-expired", "Password expired", "An expired password is changed at sign-in."),
            ("pw-policy", "Password rules", "A password has twelve characters."),
            ("scanner", "Scanner jams", "Open the tray of the scanner and take out the paper; "
                                        "a scanner that still jams goes to facilities.")]:
        (kb / f"{name}.md").write_text(
            f"---\nid: {name}\ntitle: {title}\ntype: faq\nlang: en\n---\n# {title}\n\n"
            f"{body}\n", encoding="utf-8")
    build_index(kb, tmp_path / "index", lambda: real_embedder, real_embedder.name)
    index = load_index(tmp_path / "index")
    index.calibration = Calibration(answer_coef={"lexical": 4.0})
    searcher = Searcher(index, real_embedder)
    query = "forgot password tray"
    outcomes = [searcher.search(query, k=k) for k in (1, 2, 3, 4)]
    assert [h.id for h in outcomes[-1].hits][2] == "scanner"
    assert {o.confidence for o in outcomes} == {outcomes[0].confidence}
    prepared = prepare(searcher, [LabelledQuery("q", query, "en", {})])[0]
    assert _features(searcher, prepared, index.calibration, prepared.candidates) == \
        outcomes[-1].features


def test_a_fit_needs_an_answerable_query_for_every_fold():
    import pytest

    from kb.calibrate import FOLDS, check_enough
    from kb.errors import EvalDataError

    articles = {"vpn-809", "printer"}
    enough = [LabelledQuery(f"q{n}", "vpn", "en", {"vpn-809": 1}) for n in range(FOLDS)]
    check_enough(enough, articles)
    # a label the index does not hold does not make a query answerable
    short = [*enough[:-1], LabelledQuery("x", "vpn", "en", {"gone": 1})]
    with pytest.raises(EvalDataError, match=f"{FOLDS - 1} answerable .* at least {FOLDS}"):
        check_enough(short, articles)
