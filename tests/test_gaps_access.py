"""The gap report per audience over HTTP: a public writer reads the public queries' topics,
with nothing of an internal article in them, and decides on them by public articles only;
the report's date range."""

from __future__ import annotations

import datetime as dt

from tests.test_auth import assert_error, bearer, client, keyed  # noqa: F401  (fixtures)

INTERNAL_TITLE = "客户投诉升级处理流程"  # complaint-escalation-sop, an internal article
INTERNAL_ID = "complaint-escalation-sop"


def _ask(client, key, query):  # noqa: F811
    r = client.post("/search", json={"query": query}, headers=bearer(client.secrets[key]))
    assert r.status_code == 200
    return r.json()


def test_a_public_writer_reads_only_public_gaps_without_internal_names(client):  # noqa: F811
    inside, outside = bearer(client.secrets["writer/internal"]), bearer(
        client.secrets["writer/public"])
    for _ in range(2):
        assert not _ask(client, "agent/internal", "how do I book a meeting room")["answered"]
        # a customer typing an internal article's title and id
        _ask(client, "agent/public", f"where is {INTERNAL_ID} {INTERNAL_TITLE} for parking")
    assert not _ask(client, "agent/public", "how do I claim a parking permit")["answered"]
    whole = client.get("/gaps", headers=inside).json()["topics"]
    assert any("meeting room" in t["representative"] for t in whole)
    for params in ({}, {"include_resolved": True}, {"format": "csv"},
                   {"format": "csv", "include_resolved": True}):
        r = client.get("/gaps", params=params, headers=outside)
        assert r.status_code == 200, r.text
        assert INTERNAL_ID not in r.text and INTERNAL_TITLE not in r.text, r.text
        assert "meeting room" not in r.text  # an internal agent's query
        assert "parking permit" in r.text
    topics = client.get("/gaps", headers=outside).json()["topics"]
    assert sum(t["count"] for t in topics) == 3  # the public queries only
    # Article stats: internal ones as if missing.
    unknown = client.get("/articles/no-such-article/stats", headers=outside)
    refused = client.get(f"/articles/{INTERNAL_ID}/stats", headers=outside)
    assert refused.status_code == unknown.status_code == 404
    assert INTERNAL_TITLE not in refused.text
    assert INTERNAL_ID not in client.get("/stats/articles", headers=outside).text
    # Decisions: by public articles only; an internal one is as unknown as a missing one.
    permit = next(t for t in topics if "permit" in t["representative"])
    answered = f"/gaps/{permit['id']}/answered"
    assert_error(client.post(answered, json={"article_id": INTERNAL_ID}, headers=outside),
                 404, "unknown_article")
    assert_error(client.post(answered, json={"article_id": "no-such-article"}, headers=outside),
                 404, "unknown_article")
    room = next(t for t in whole if "meeting room" in t["representative"])
    assert_error(client.post(f"/gaps/{room['id']}/dismiss", headers=outside), 404,
                 "unknown_topic")  # not a topic of its report
    r = client.post(answered, json={"article_id": "vpn-error-809"}, headers=outside)
    assert r.status_code == 200 and r.json()["action"] == "answered"
    assert permit["id"] not in {t["id"] for t in client.get("/gaps", headers=outside).json()[
        "topics"]}
    assert client.post(f"/gaps/{permit['id']}/reopen", headers=outside).status_code == 200
    # An internal writer's answer by an internal article does not close it for the public.
    mine = next(t for t in client.get("/gaps", headers=inside).json()["topics"]
                if "permit" in t["representative"])
    assert client.post(f"/gaps/{mine['id']}/answered", json={"article_id": INTERNAL_ID},
                       headers=inside).status_code == 200
    public = client.get("/gaps", params={"include_resolved": True}, headers=outside).json()
    again = next(t for t in public["topics"] if t["id"] == permit["id"])
    assert again["status"] == "open" and again["resolved_by"] is None


def test_the_date_range_of_the_gap_report(client):  # noqa: F811
    writer = bearer(client.secrets["writer/internal"])
    for _ in range(3):
        _ask(client, "agent/internal", "how do I book a meeting room")
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)

    def counts(**params):
        r = client.get("/gaps", params=params, headers=writer)
        assert r.status_code == 200, r.text
        return [t["count"] for t in r.json()["topics"]]

    assert counts(since=str(today), until=str(today)) == counts() == [3]
    assert counts(until=str(today - day)) == []
    assert counts(since=str(today + day)) == []
    assert counts(since=str(today), min_count=4) == []
    csv = client.get("/gaps", params={"until": str(today - day), "format": "csv"},
                     headers=writer)
    assert csv.text.splitlines()[1:] == []
    assert_error(client.get("/gaps", params={"since": str(today), "until": str(today - day)},
                            headers=writer), 422, "invalid_query")
    assert_error(client.get("/gaps", params={"until": "next friday"}, headers=writer), 422,
                 "invalid_query")
