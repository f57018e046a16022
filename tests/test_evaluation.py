import pytest

from kb.errors import EvalDataError
from kb.evaluation import LabelledQuery, read_queries, report_from_runs


def test_metrics_on_a_known_run():
    labelled = [LabelledQuery("a", "x", "en", {"d1": 2}), LabelledQuery("b", "y", "en", {"d2": 1}),
                LabelledQuery("u", "z", "en", {})]
    runs = {"a": [("d1", 1.0), ("d3", 0.5)], "b": [("d3", 1.0), ("d2", 0.9)], "u": [("d1", 0.1)]}
    report = report_from_runs(labelled, runs, {"a": True, "b": False, "u": False})
    assert report.recall1 == pytest.approx(0.5)
    assert report.mrr10 == pytest.approx(0.75)
    assert report.ndcg10 == pytest.approx((1 + 1 / 1.5849625) / 2, rel=1e-4)
    assert report.answered_when_answerable == 0.5 and report.flagged_when_unanswerable == 1.0


def test_read_queries_and_qrels(tmp_path):
    (tmp_path / "q.jsonl").write_text('{"qid": "1", "query": "a"}\n\n{"qid": "2", "query": "b"}\n')
    (tmp_path / "r.tsv").write_text("1\tdoc\t1\n")
    labelled = read_queries(tmp_path / "q.jsonl", tmp_path / "r.tsv")
    assert [q.relevant for q in labelled] == [{"doc": 1}, {}]


@pytest.mark.parametrize(
    ("queries", "qrels", "where"),
    [
        ('{"qid": "1"}\n', "", "q.jsonl:1"),
        ('{"qid": "1", "query": "a"}\n{"qid": "1", "query": "b"}\n', "", "q.jsonl:2"),
        ('{"qid": "1", "query": "a"}\n', "1\tdoc\n", "r.tsv:1"),
        ('{"qid": "1", "query": "a"}\n', "1\tdoc\thigh\n", "r.tsv:1"),
    ],
)
def test_bad_eval_files_name_path_and_line(tmp_path, queries, qrels, where):
    (tmp_path / "q.jsonl").write_text(queries)
    (tmp_path / "r.tsv").write_text(qrels)
    with pytest.raises(EvalDataError, match=where):
        read_queries(tmp_path / "q.jsonl", tmp_path / "r.tsv")


def test_labels_from_feedback_are_one_per_phrasing_and_drop_unknown_articles():
    from kb.evaluation import labelled_from_feedback
    from kb.storage.base import FeedbackLabel

    labels = [FeedbackLabel("q1", "How do I reset?", "how do i reset", "en", ("pw",)),
              FeedbackLabel("q2", "how do I reset", "how do i reset", "en", ("sso",)),
              FeedbackLabel("q3", "canteen hours", "canteen hours", "en", ()),
              FeedbackLabel("q4", "old thing", "old thing", "en", ("deleted",)),
              FeedbackLabel("q5", "canteen hours", "canteen hours", "en", ())]
    out = labelled_from_feedback(labels, {"pw", "sso"})
    assert [(q.qid, q.query, q.relevant) for q in out] == [
        ("q1", "How do I reset?", {"pw": 1, "sso": 1}), ("q3", "canteen hours", {})]
