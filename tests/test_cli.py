import json

import pytest
from typer.testing import CliRunner

from kb.cli import app as cli

from .conftest import GOLDEN

runner = CliRunner()


@pytest.fixture
def env(monkeypatch, index_copy, tmp_path):
    monkeypatch.setenv("KB_INDEX", str(index_copy))
    monkeypatch.setenv("KB_GAP_DB", str(tmp_path / "gaps.sqlite3"))
    return index_copy


def write_eval(tmp_path):
    queries = tmp_path / "q.jsonl"
    qrels = tmp_path / "qrels.tsv"
    queries.write_text(
        '{"qid": "a", "query": "vpn 809", "lang": "en"}\n'
        '{"qid": "b", "query": "退款多久到账", "lang": "zh"}\n'
        '{"qid": "c", "query": "员工食堂几点开饭", "lang": "zh"}\n'
    )
    qrels.write_text("a\tvpn-error-809\t2\nb\trefund-timeline-zh\t2\n")
    return queries, qrels


def test_eval_json(env, tmp_path):
    queries, qrels = write_eval(tmp_path)
    result = runner.invoke(cli, ["eval", "--queries", str(queries), "--qrels", str(qrels),
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["queries"] == 3 and report["answerable"] == 2 and report["unanswerable"] == 1
    assert report["ndcg10"] == pytest.approx(1.0)
    assert report["recall1"] == pytest.approx(1.0) and report["mrr10"] == pytest.approx(1.0)
    assert report["flagged_when_unanswerable"] == pytest.approx(1.0)


def test_eval_table(env, tmp_path):
    queries, qrels = write_eval(tmp_path)
    result = runner.invoke(cli, ["eval", "--queries", str(queries), "--qrels", str(qrels)])
    assert result.exit_code == 0 and "nDCG@10" in result.output and "MRR@10" in result.output


def test_eval_bad_file_names_path_and_line(env, tmp_path):
    queries, qrels = write_eval(tmp_path)
    queries.write_text(queries.read_text() + "not json\n")
    result = runner.invoke(cli, ["eval", "--queries", str(queries), "--qrels", str(qrels)])
    assert result.exit_code == 2
    assert f"{queries}:4:" in result.output


# Queries labelled for the fixture knowledge base: enough answerable ones to cross-validate.
FIXTURE_LABELS = [
    ("a1", "vpn error 809", "vpn-error-809"),
    ("a2", "VPN 连接 809 错误", "vpn-error-809"),
    ("b1", "退款多久到账", "refund-timeline-zh"),
    ("c1", "forgot my password", "password-reset-en"),
    ("d1", "outlook error 0x800ccc0e", "outlook-0x800ccc0e"),
    ("e1", "印表機離線", "printer-offline-hant"),
    ("f1", "wifi 802.1x certificate", "wifi-8021x"),
    ("g1", "delete my personal data", "data-deletion-request"),
    ("n1", "员工食堂几点开饭", None),
    ("n2", "book a meeting room", None),
]


def write_labels(tmp_path, labels=FIXTURE_LABELS):
    queries, qrels = tmp_path / "fq.jsonl", tmp_path / "fqrels.tsv"
    queries.write_text("".join(json.dumps({"qid": q, "query": text}, ensure_ascii=False) + "\n"
                               for q, text, _ in labels), encoding="utf-8")
    qrels.write_text("".join(f"{q}\t{a}\t2\n" for q, _, a in labels if a), encoding="utf-8")
    return queries, qrels


def test_calibrate_publishes_a_fit(env, tmp_path):
    before = (env / "CURRENT").read_text()
    queries, qrels = write_labels(tmp_path)
    result = runner.invoke(cli, ["calibrate", "--queries", str(queries), "--qrels", str(qrels),
                                 "--output", str(tmp_path / "cal.json")])
    assert result.exit_code == 0, result.output
    assert (env / "CURRENT").read_text() != before
    assert json.loads((tmp_path / "cal.json").read_text())["fitted"]["queries"] == 10


def test_calibrate_refuses_labels_the_index_cannot_return(env, tmp_path):
    before = (env / "CURRENT").read_text()
    queries, qrels = write_labels(tmp_path)
    qrels.write_text(qrels.read_text() + "n1\tno-such-article\t2\n")
    result = runner.invoke(cli, ["calibrate", "--queries", str(queries), "--qrels", str(qrels),
                                 "--output", str(tmp_path / "cal.json")])
    assert result.exit_code == 2
    assert f"{qrels}:9: unknown article 'no-such-article'" in result.stderr
    # the golden set labels the sample knowledge base, not the fixture: refused the same way
    golden = runner.invoke(cli, ["calibrate", "--queries", str(GOLDEN / "queries.jsonl"),
                                 "--qrels", str(GOLDEN / "qrels.tsv")])
    assert golden.exit_code == 2 and "unknown article" in golden.stderr
    assert (env / "CURRENT").read_text() == before and not (tmp_path / "cal.json").exists()


def test_calibrate_refuses_too_few_queries_to_cross_validate(env, tmp_path):
    before = (env / "CURRENT").read_text()
    queries, qrels = write_labels(tmp_path, [("cr-q01", "vpn error 809", "vpn-error-809"),
                                             *FIXTURE_LABELS[2:5], FIXTURE_LABELS[-1]])
    result = runner.invoke(cli, ["calibrate", "--queries", str(queries), "--qrels", str(qrels),
                                 "--output", str(tmp_path / "cal.json")])
    assert result.exit_code == 2
    assert "too few labelled queries to calibrate: 4 answerable" in result.stderr
    assert "needs at least 5" in result.stderr
    assert (env / "CURRENT").read_text() == before and not (tmp_path / "cal.json").exists()


def test_eval_names_labels_of_articles_not_in_the_index(env, tmp_path):
    queries, qrels = write_eval(tmp_path)
    qrels.write_text(qrels.read_text() + "c\tno-such-article\t2\n")
    result = runner.invoke(cli, ["eval", "--queries", str(queries), "--qrels", str(qrels)])
    assert result.exit_code == 0
    assert f"warning: {qrels}:3: unknown article 'no-such-article'" in result.stderr


def test_search_and_gaps_and_stats(env):
    assert runner.invoke(cli, ["search", "vpn 809"]).stdout.splitlines()[1].startswith("1.")
    runner.invoke(cli, ["search", "how do I book a meeting room"])
    table = runner.invoke(cli, ["gaps"])
    assert table.exit_code == 0 and "meeting room" in table.output
    as_json = json.loads(runner.invoke(cli, ["gaps", "--format", "json"]).stdout)["topics"]
    assert as_json[0]["channels"] == {"cli": 1}
    assert runner.invoke(cli, ["gaps", "--format", "csv"]).stdout.startswith("id,kind")
    bad = runner.invoke(cli, ["gaps", "--format", "xml"])
    assert bad.exit_code == 2 and "table, csv or json" in bad.output
    # a date range, as the dashboard asks for one: the query is in its own day, not in 2020
    today = as_json[0]["first_seen"][:10]
    ranged = runner.invoke(cli, ["gaps", "--since", today, "--until", today, "--format", "json"])
    assert [t["count"] for t in json.loads(ranged.stdout)["topics"]] == [1]
    past = runner.invoke(cli, ["gaps", "--since", "2020-01-01", "--until", "2020-01-31"])
    assert past.exit_code == 0 and "No open knowledge gaps." in past.output
    backwards = runner.invoke(cli, ["gaps", "--since", today, "--until", "2020-01-31"])
    assert backwards.exit_code == 2 and "until (2020-01-31) is before since" in backwards.output
    assert "until must be an ISO date" in runner.invoke(cli, ["gaps", "--until", "soon"]).output
    assert runner.invoke(cli, ["stats", "--json"]).stdout.strip() == "[]"


def test_reading_commands_do_not_create_the_gap_database(monkeypatch, env, tmp_path):
    db = tmp_path / "not-yet" / "gaps.sqlite3"
    monkeypatch.setenv("KB_GAP_DB", str(db))
    none_yet = f"no query log at {db} yet: nothing has been searched"
    report = runner.invoke(cli, ["gaps", "--format", "json"])
    assert report.exit_code == 0 and json.loads(report.stdout) == {"topics": []}
    assert none_yet in report.stderr
    table = runner.invoke(cli, ["gaps"])
    assert table.exit_code == 0 and none_yet in table.stderr
    assert json.loads(runner.invoke(cli, ["stats", "--json"]).stdout) == []
    assert json.loads(runner.invoke(cli, ["keys", "list", "--json"]).stdout) == []
    status = runner.invoke(cli, ["db", "status"])
    assert status.exit_code == 0 and "not created yet" in status.stdout
    decided = runner.invoke(cli, ["gaps", "dismiss", "t1"])
    assert decided.exit_code == 2 and "unknown gap topic 't1'" in decided.output
    learnt = runner.invoke(cli, ["calibrate", "--from-log"])
    assert learnt.exit_code == 2 and none_yet in learnt.stderr
    assert not db.parent.exists()
    # once there is one, an empty report names the log it read
    assert runner.invoke(cli, ["search", "vpn 809"]).exit_code == 0
    assert f"query log: {db}" in runner.invoke(cli, ["gaps"]).stderr
    assert f"query log: {db}" in runner.invoke(cli, ["stats"]).stderr


def test_missing_index_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "none"))
    result = runner.invoke(cli, ["search", "vpn"])
    assert result.exit_code == 2 and "run 'kb index' first" in result.output


@pytest.mark.parametrize("command", [["gaps"], ["stats"], ["db", "status"], ["keys", "list"],
                                     ["serve"]])
def test_a_gap_database_that_cannot_be_used_is_a_clear_error(command, monkeypatch, tmp_path):
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "index"))
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    for db, problem in ((text, f"{text} is not a database"),
                        (tmp_path, f"the database {tmp_path} is a folder")):
        monkeypatch.setenv("KB_GAP_DB", str(db))
        result = runner.invoke(cli, command)
        assert result.exit_code == 2, result.output
        assert problem in result.output and "try again" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_invalid_setting_is_a_clear_error(monkeypatch, env):
    monkeypatch.setenv("KB_BATCH_SIZE", "abc")
    result = runner.invoke(cli, ["search", "vpn"])
    assert result.exit_code == 2
    assert "KB_BATCH_SIZE='abc': Input should be a valid integer" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_kb_command_starts():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "kb", "index", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--articles" in done.stdout


@pytest.fixture
def fake_cli(monkeypatch, tmp_path, kb_copy, fake_embedder):
    """``kb index`` on the fixture articles with the fake embedder, and an open gap query."""
    import kb.cli
    from kb.config import load_settings
    from kb.storage import open_store

    monkeypatch.setattr(kb.cli, "_embedder_factory", lambda cfg: lambda: fake_embedder)
    monkeypatch.setenv("KB_ARTICLES", str(kb_copy))
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("KB_GAP_DB", str(tmp_path / "gaps.sqlite3"))
    assert runner.invoke(cli, ["index"]).exit_code == 0
    log = open_store(load_settings())
    log.record(channel="search", query="zebracorn stripes", lang="en", filters={},
               answered=False, confidence=0.0, neighbours=[], top_score=None, vector=None,
               index_version="v")
    log.close()
    (kb_copy / "zebracorn.md").write_text("---\nid: zebracorn\ntitle: Zebracorn stripes\n"
                                          "type: faq\n---\nZebracorn stripes.\n")
    return tmp_path


def test_kb_index_rechecks_the_gap_log_when_no_service_serves_the_index(fake_cli, monkeypatch):
    import kb.engine

    asked = []
    monkeypatch.setattr(kb.engine, "recheck_gaps",
                        lambda log, searcher_for, audience: asked.append(
                            (searcher_for(audience).index.version, audience)) or [])
    result = runner.invoke(cli, ["index"])
    assert result.exit_code == 0, result.output
    from kb.store import current_version

    assert asked == [(current_version(fake_cli / "index"), "internal")]
    assert "gap log: 0 open gap queries now answered" in result.output


def test_kb_index_leaves_the_recheck_to_the_service_serving_the_index(fake_cli, monkeypatch):
    import kb.engine
    from kb.store import ServingLock

    monkeypatch.setattr(kb.engine, "recheck_gaps", lambda *a: pytest.fail("re-checked"))
    lock = ServingLock(fake_cli / "index")
    lock.acquire()
    try:
        result = runner.invoke(cli, ["index"])
    finally:
        lock.release()
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "the service serving this index re-checks" in result.output


def test_the_embedding_progress_bar_follows_the_build(monkeypatch):
    import io

    from rich.console import Console

    import kb.cli

    out = io.StringIO()
    monkeypatch.setattr(kb.cli, "err", Console(file=out, force_terminal=True, width=80))
    update = kb.cli._progress_bar()
    for done in (0, 5, 10):
        update(done, 10)
    assert "embedding" in out.getvalue() and "100%" in out.getvalue()


@pytest.mark.parametrize(("edit", "problem"), [
    (("type: faq\n", "type: faq\nupdated: 2026-13-45\n"),
     ":5: updated: 2026-13-45 is not a date (YYYY-MM-DD)"),
    (("type: faq\n", "type: faq\nreview_by: 2026-02-30\n"),
     ":5: review_by: 2026-02-30 is not a date (YYYY-MM-DD)"),
    (("Zebracorn stripes.", "x" * 100_001),
     ":1: article is 0.2 MB, over the limit of 0.1 MB (KB_MAX_ARTICLE_BYTES)"),
])
def test_kb_index_names_a_bad_article_and_keeps_serving_the_last_version(fake_cli, monkeypatch,
                                                                        edit, problem):
    from kb.store import current_version, read_status

    root = fake_cli / "index"
    served = current_version(root)
    article = fake_cli / "articles" / "zebracorn.md"
    article.write_text(article.read_text().replace(*edit))
    monkeypatch.setenv("KB_MAX_ARTICLE_BYTES", "100000")
    result = runner.invoke(cli, ["index"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert result.output.splitlines() == [
        f"{article}{problem}", f"error: 1 problem(s) in {article}; nothing was published"]
    assert current_version(root) == served
    assert read_status(root)["problems"] == [f"{article}{problem}"]


def test_kb_index_still_accepts_the_old_local_flag(fake_cli):
    result = runner.invoke(cli, ["index", "--local"])  # old scripts: every build is local now
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output


def test_calibrate_learns_from_the_feedback_in_the_query_log(env, tmp_path):
    from kb.config import load_settings
    from kb.storage import open_store

    asked = {"vpn 809": "vpn-error-809", "退款多久到账": "refund-timeline-zh",
             "I forgot my password": "password-reset-en", "0x800CCC0E": "outlook-0x800ccc0e",
             "打印机离线": "printer-offline-hant", "wifi keeps disconnecting": "wifi-8021x"}
    logged = {}
    for query in [*asked, "员工食堂几点开饭", "vpn 809"]:  # one asked twice: one phrasing
        out = json.loads(runner.invoke(cli, ["search", query, "--json"]).stdout)
        logged.setdefault(query, []).append(out)
    store = open_store(load_settings())
    for query, article in asked.items():
        for out in logged[query]:
            store.feedback(out["query_id"], article, True)
    store.record_event("reported_missing", None, logged["员工食堂几点开饭"][0]["query_id"])
    store.close()
    result = runner.invoke(cli, ["calibrate", "--from-log", "--output", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    assert "query log: 7 labelled phrasings (6 answered, 1 reported missing)" in result.output
    assert json.loads((tmp_path / "c.json").read_text())["fitted"]["queries"] == 7


def test_calibrate_needs_labels_from_somewhere(env, tmp_path):
    nothing = runner.invoke(cli, ["calibrate"])
    assert nothing.exit_code == 2 and "--from-log" in nothing.output
    queries, _ = write_eval(tmp_path)
    half = runner.invoke(cli, ["calibrate", "--queries", str(queries)])
    assert half.exit_code == 2 and "go together" in half.output
    empty = runner.invoke(cli, ["calibrate", "--from-log"])  # an empty log
    assert empty.exit_code == 2 and "no labelled queries" in empty.output


@pytest.mark.parametrize("command", [["serve"], ["index"], ["calibrate"], ["gaps", "answered"]])
def test_help_text_is_reflowed_to_the_terminal(command, monkeypatch):
    """A docstring's line breaks are the source's, not the reader's: at 80 columns a
    paragraph breaks only where its next word would not fit."""
    monkeypatch.setenv("COLUMNS", "80")
    out = runner.invoke(cli, [*command, "--help"], terminal_width=80).output
    lines = out.split("╭")[0].splitlines()
    text = [line.strip() for line in lines if line.strip() and not line.strip().startswith(
        "Usage:")]
    assert text
    for this, following in zip(lines, lines[1:], strict=False):
        if this.strip() and following.strip() and not this.strip().startswith("Usage:"):
            # the help sits one column in from each side
            assert len(this.rstrip()) + 1 + len(following.split()[0]) > 78, (this, following)
