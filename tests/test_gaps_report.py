"""The gap report over HTTP and the CLI: topics, writers' decisions, filters' effect."""

import json

from typer.testing import CliRunner

from kb.calibrate import calibration_summary
from kb.cli import app as cli
from kb.search import Filters
from kb.storage.sql import SqlStore
from service.schemas import GapReport, GapTopic

ROOM = ("how do I book a meeting room", "how can I book the meeting room?")


def engine_filters(data):
    return Filters.from_dict(data)


def _ask(client, *queries, **body):
    for q in queries:
        assert client.post("/search", json={"query": q, **body}).json()["answered"] is False


def test_topics_say_what_to_write_and_writers_can_decide(client):
    _ask(client, *ROOM, "员工食堂几点开饭")
    report = client.get("/gaps").json()
    GapReport.model_validate(report)  # the documented shape, field for field
    assert set(report["topics"][0]) == set(GapTopic.model_fields)
    topics = report["topics"]
    room = next(t for t in topics if "meeting room" in t["representative"])
    assert room["count"] == 2 and room["phrasings"] == 2 and room["languages"] == {"en": 2}
    assert room["title"].endswith("?") and room["title"][0].isupper()
    assert room["nearest_articles"] and {"id", "title", "times", "not_helpful"} <= set(
        room["nearest_articles"][0])
    assert sum(room["weekly"].values()) == 2 and room["status"] == "open"

    decided = client.post(f"/gaps/{room['id']}/answered",
                          json={"article_id": "wifi-8021x"}).json()
    assert decided["action"] == "answered" and decided["article_id"] == "wifi-8021x"
    assert room["id"] not in {t["id"] for t in client.get("/gaps").json()["topics"]}
    closed = {t["id"]: t for t in client.get("/gaps", params={"include_resolved": True}).json()[
        "topics"]}
    assert closed[room["id"]]["status"] == "answered"
    assert client.post(f"/gaps/{room['id']}/reopen").json()["action"] == "reopened"
    assert room["id"] in {t["id"] for t in client.get("/gaps").json()["topics"]}
    assert client.post(f"/gaps/{room['id']}/dismiss").json()["action"] == "dismissed"
    assert room["id"] not in {t["id"] for t in client.get("/gaps").json()["topics"]}

    missing = client.post("/gaps/nope/dismiss")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_topic"
    bad = client.post(f"/gaps/{room['id']}/answered", json={"article_id": "no-such"})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "unknown_article"


def test_a_flag_an_agent_found_answered_leaves_the_report(client):
    asked = [client.post("/search", json={"query": q}).json() for q in ROOM]
    assert not any(a["answered"] for a in asked)
    [room] = [t for t in client.get("/gaps").json()["topics"] if "meeting room" in t["title"]]
    assert room["count"] == 2
    # the agent found the answer after all: one voted helpful, the other's reply copied
    first, second = asked
    assert client.post("/feedback", json={"query_id": first["query_id"], "article_id":
                                          first["results"][0]["id"], "helpful": True}
                       ).status_code == 200
    assert client.post("/events", json={"kind": "copied", "query_id": second["query_id"],
                                        "article_id": second["results"][0]["id"]}
                       ).status_code in (200, 204)
    assert not any("meeting room" in t["title"] for t in client.get("/gaps").json()["topics"])


def test_reports_sent_twice_count_their_query_once(client):
    asked = [client.post("/search", json={"query": q}).json() for q in ROOM]
    for a in asked:
        for _ in range(2):  # an agent clicks "report as missing" twice
            assert client.post("/events", json={"kind": "reported_missing",
                                                "query_id": a["query_id"]}
                               ).status_code in (200, 204)
    [room] = [t for t in client.get("/gaps").json()["topics"] if "meeting room" in t["title"]]
    assert room["count"] == 2


def test_a_query_answered_outside_its_filters_is_not_a_gap(client, settings):
    # the refund article is a FAQ: under a filter to SOPs only, the best is a weaker match;
    # the threshold is set between the two, so only the filters make it unanswered
    engine = client.app.state.engine
    query, sop = "退款多久能到账", {"type": ["sop"]}
    plain = engine.search(query).outcome
    narrowed = engine.search(query, filters=engine_filters(sop)).outcome
    assert plain.hits[0].id == "refund-timeline-zh" and plain.confidence > narrowed.confidence
    engine.searcher.index.calibration.answer_threshold = (plain.confidence
                                                          + narrowed.confidence) / 2
    body = client.post("/search", json={"query": query, "filters": sop})
    assert body.json()["answered"] is False
    topics = client.get("/gaps").json()["topics"]
    assert not any("退款" in e for t in topics for e in t["examples"])
    store = SqlStore(f"sqlite:///{settings.gap_path}")
    try:
        logged = store.query(body.json()["query_id"])
        assert logged is not None and logged.answered is False
        assert logged.filters == sop
        events, _ = store.gap_events()
        assert not any(e.query.id == logged.id for e in events)
    finally:
        store.close()


def test_kb_gaps_reads_at_80_columns_and_writers_decide_from_the_cli(client, settings,
                                                                    monkeypatch):
    _ask(client, *ROOM)
    monkeypatch.setenv("KB_INDEX", str(settings.index))
    monkeypatch.setenv("KB_GAP_DB", str(settings.gap_path))
    runner = CliRunner()
    table = runner.invoke(cli, ["gaps"])
    assert table.exit_code == 0, table.output
    assert "Write first:" in table.output
    assert all(len(line) <= 80 for line in table.output.splitlines())
    narrow = runner.invoke(cli, ["gaps", "--width", "50"])
    assert all(len(line) <= 50 for line in narrow.output.splitlines())
    too_narrow = runner.invoke(cli, ["gaps", "--width", "10"])
    assert too_narrow.exit_code == 2 and "--width" in too_narrow.output
    # the shape of GET /gaps?format=json
    report = json.loads(runner.invoke(cli, ["gaps", "--format", "json"]).stdout)
    GapReport.model_validate(report)
    [room] = [t for t in report["topics"] if "meeting room" in t["representative"]]
    done = runner.invoke(cli, ["gaps", "dismiss", room["id"]])
    assert done.exit_code == 0 and "dismissed" in done.output
    assert room["id"] not in runner.invoke(cli, ["gaps", "--format", "csv"]).stdout
    unknown = runner.invoke(cli, ["gaps", "answered", "nope", "wifi-8021x"])
    assert unknown.exit_code != 0 and "unknown gap topic" in unknown.output
    # the service reads the writer's decision from the shared database
    assert room["id"] not in {t["id"] for t in client.get("/gaps").json()["topics"]}


def test_calibration_summary_prints_held_out_figures():
    text = calibration_summary({"folds": 5, "queries": 40, "ndcg10": {"en": 0.8},
                                "flagged_answerable": 0.075, "answerable": 30,
                                "max_false_gap": 0.08, "flagged_unanswerable": 0.6,
                                "unanswerable": 10, "flagged_without_answer": 0.7,
                                "replayed_without_answer": 30})
    assert "held-out" in text and "5-fold" in text
    assert "7.5% of 30" in text and "60.0% of 10" in text and "en 0.800" in text


def test_text_without_letters_or_digits_is_refused_and_stays_out_of_the_report(client):
    for junk in ("???", "!!!…", "\u200b\u200b"):
        r = client.post("/search", json={"query": junk})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query"
        assert "no letters or digits" in r.json()["error"]["message"]
    long = client.post("/suggest", json={"ticket_id": "T-1", "subject": "x" * 1001,
                                        "description": "vpn"})
    assert long.status_code == 422 and "subject is 1001 characters" in long.json()["error"][
        "message"]
    # a ticket's punctuation-only subject leaves its description to search
    assert client.post("/suggest", json={"ticket_id": "T-2", "subject": "???",
                                         "description": "vpn error 809"}
                       ).status_code == 200
    assert all(t["title"].strip("?!… ") for t in client.get("/gaps").json()["topics"])


def test_an_unknown_topic_is_named_briefly_for_both_the_cli_and_the_api(client):
    r = client.post("/gaps/" + "f" * 500 + "/dismiss")
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert len(message) < 200 and "GET /gaps?include_resolved=true" in message


def test_a_decision_that_changes_nothing_records_nothing(client, settings, monkeypatch):
    _ask(client, *ROOM)
    [room] = [t for t in client.get("/gaps").json()["topics"] if "meeting room" in t["title"]]
    not_closed = client.post(f"/gaps/{room['id']}/reopen")
    assert not_closed.status_code == 422 and "is open" in not_closed.json()["error"]["message"]
    first = client.post(f"/gaps/{room['id']}/dismiss").json()
    assert client.post(f"/gaps/{room['id']}/dismiss").json()["at"] == first["at"]
    monkeypatch.setenv("KB_INDEX", str(settings.index))
    monkeypatch.setenv("KB_GAP_DB", str(settings.gap_db))
    again = CliRunner().invoke(cli, ["gaps", "dismiss", room["id"]])
    assert again.exit_code == 0 and "already dismissed" in again.output
    assert client.post(f"/gaps/{room['id']}/reopen").json()["action"] == "reopened"
