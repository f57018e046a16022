"""The HTTP contract, with the real model on the fixture knowledge base."""

import asyncio
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kb.storage import open_store
from service.app import create_app
from tests.checks import assert_error

RESULT_FIELDS = {"id", "title", "type", "section", "anchor", "snippet", "score", "path", "tags",
                 "audience"}


def test_post_search(client):
    r = client.post("/search", json={"query": "VPN 809 错误", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert {"query_id", "answered", "results", "index_version"} <= set(body)
    assert body["results"][0]["id"] == "vpn-error-809"
    assert set(body["results"][0]) == RESULT_FIELDS
    assert len(body["results"]) <= 3


def test_get_search_and_filters(client):
    r = client.get("/search", params={"q": "印表機離線", "k": 2})
    assert r.status_code == 200 and r.json()["results"][0]["id"] == "printer-offline-hant"
    r = client.post("/search", json={"query": "password", "filters": {"type": ["sop"],
                                                                      "lang": "en"}})
    assert all(x["type"] == "sop" for x in r.json()["results"])


def test_suggest_keeps_the_subject_in_charge(client):
    description = ("Hello support, " + "I have tried many things and nothing works. " * 60
                   + "Thanks, Bob")
    r = client.post("/suggest", json={"ticket_id": "T-1001", "subject": "Outlook 0x800CCC0E",
                                      "description": description, "k": 3})
    assert r.status_code == 200
    assert r.json()["results"][0]["id"] == "outlook-0x800ccc0e"


def test_a_cross_encoder_runs_off_the_event_loop(client):
    class Reranker:
        top = 3
        ran_on: list[str] = []

        def scores(self, query, passages):
            try:
                asyncio.get_running_loop()
                self.ran_on.append("event loop")
            except RuntimeError:
                self.ran_on.append("worker thread")
            return np.arange(len(passages), dtype=np.float32)

    client.app.state.engine.searcher.reranker = reranker = Reranker()
    r = client.post("/search", json={"query": "vpn wifi password", "k": 5})
    assert r.status_code == 200 and reranker.ran_on == ["worker thread"]


def test_a_stopping_service_stores_the_queries_it_still_holds(settings, real_embedder,
                                                              monkeypatch):
    import kb.storage.sql

    slow = kb.storage.sql._row
    monkeypatch.setattr(kb.storage.sql, "_row", lambda item: time.sleep(0.05) or slow(item))
    with TestClient(create_app(settings, real_embedder)) as c:
        for query in ("vpn", "打印机", "password", "outlook", "wifi"):
            assert c.post("/search", json={"query": query}).status_code == 200
    assert open_store(settings).count() == 5


def test_feedback_and_article_stats(client):
    qid = client.post("/search", json={"query": "forgot password"}).json()["query_id"]
    assert client.post("/feedback", json={"query_id": qid, "article_id": "password-reset-en",
                                          "helpful": True}).status_code == 200
    # One vote per query and article: a second one replaces the first.
    assert client.post("/feedback", json={"query_id": qid, "article_id": "password-reset-en",
                                          "helpful": False}).status_code == 200
    stats = client.get("/articles/password-reset-en/stats").json()
    assert stats == {"article_id": "password-reset-en", "helpful": 0, "not_helpful": 1,
                     "last_feedback": stats["last_feedback"]}
    assert_error(client.get("/articles/nope/stats"), 404, "unknown_article")


def test_unanswered_queries_reach_the_gap_report_redacted(client):
    for q in ("how do I book a meeting room", "how can I book the meeting room?",
              "会议室怎么预订 我的手机 13800138000"):
        body = client.post("/search", json={"query": q}).json()
        assert body["answered"] is False
    topics = client.get("/gaps").json()["topics"]
    assert topics and all(t["kind"] == "unanswered" for t in topics)
    text = str(topics)
    assert "13800138000" not in text and "[PHONE]" in text
    room = [t for t in topics if "meeting room" in t["representative"]]
    assert room and room[0]["count"] >= 2 and room[0]["channels"] == {"search": room[0]["count"]}
    csv = client.get("/gaps", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("id,kind,status")
    assert client.get("/gaps", params={"min_count": 50}).json() == {"topics": []}
    assert_error(client.get("/gaps", params={"since": "last week"}), 422, "invalid_query")


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "code"),
    [
        ("post", "/search", {"query": ""}, 422, "invalid_query"),
        ("post", "/search", {"query": "   "}, 422, "invalid_query"),
        ("post", "/search", {"query": "x" * 1001}, 422, "invalid_query"),
        ("post", "/search", {"query": "vpn", "k": 0}, 422, "invalid_request"),
        ("post", "/search", {"query": "vpn", "k": 51}, 422, "invalid_request"),
        ("post", "/search", {"query": "vpn", "filters": {"colour": "red"}}, 422, "invalid_request"),
        ("post", "/search", {"query": "vpn", "filters": {"type": ["blog"]}}, 422,
         "invalid_request"),
        ("post", "/search", {"k": 3}, 422, "invalid_request"),
        ("post", "/search", {"query": 5}, 422, "invalid_request"),
        ("post", "/suggest", {"ticket_id": "T1", "subject": " ", "description": ""}, 422,
         "invalid_query"),
        ("post", "/suggest", {"subject": "vpn"}, 422, "invalid_request"),
        ("post", "/feedback", {"query_id": "nope", "article_id": "vpn-error-809",
                               "helpful": True}, 404, "unknown_query_id"),
        ("get", "/search?q=vpn&k=100", None, 422, "invalid_request"),
        ("get", "/search", None, 422, "invalid_request"),
        ("get", "/no/such/route", None, 404, "not_found"),
    ],
)
def test_bad_input_gets_one_error_shape(client, method, path, payload, status, code):
    response = getattr(client, method)(path, json=payload) if payload is not None else getattr(
        client, method)(path)
    assert_error(response, status, code)
    assert client.get("/healthz").status_code == 200  # and the service keeps serving


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"query": "vpn",', "Expecting property name enclosed in double quotes at line 1, "
                          "column 17"),
    (b'{"query": "vpn \xff\xfe"}', "invalid UTF-8 at byte 15"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_malformed_json(client, body, problem):
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert_error(r, 400, "malformed_json")
    assert r.json()["error"]["message"] == f"request body is not valid JSON: {problem}"


JSON_ROUTES = ["/search", "/suggest", "/feedback", "/events", "/gaps/t1/answered", "/admin/keys"]


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_a_body_that_is_not_json_is_415(client, path):
    for sent, headers, named in [
            ({"content": b'{"query": "vpn"}'}, {"content-type": "text/plain"}, "as text/plain"),
            ({"content": b'{"query": "vpn"}'}, {}, "without a Content-Type"),
            ({"data": {"query": "vpn"}}, {}, "as application/x-www-form-urlencoded"),
            ({"files": {"query": ("q", b"vpn")}}, {}, "as multipart/form-data")]:
        r = client.post(path, headers=headers, **sent)
        assert_error(r, 415, "unsupported_media_type")
        assert "application/json" in r.json()["error"]["message"]
        assert named in r.json()["error"]["message"]
    # JSON under its other names is JSON
    r = client.post("/search", content=b'{"query": "vpn"}',
                    headers={"content-type": "application/vnd.kb+json; charset=utf-8"})
    assert r.status_code == 200


def test_every_route_with_a_body_checks_it_is_json(client):
    from fastapi.routing import APIRoute, iter_route_contexts

    from service.bodies import JSONBodyRoute

    with_body = [c for c in iter_route_contexts(client.app.routes)
                 if isinstance(c.original_route, APIRoute)
                 and c.original_route.body_field is not None]
    assert {c.path_format for c in with_body} == {*JSON_ROUTES[:-2], "/gaps/{topic_id}/answered",
                                                  "/admin/keys"}
    assert all(isinstance(c.original_route, JSONBodyRoute) for c in with_body)
    paths = client.get("/openapi.json").json()["paths"]
    assert "415" in paths["/search"]["post"]["responses"]


def test_feedback_for_unknown_article(client):
    qid = client.post("/search", json={"query": "vpn"}).json()["query_id"]
    r = client.post("/feedback", json={"query_id": qid, "article_id": "nope", "helpful": True})
    assert_error(r, 404, "unknown_article")


def test_health_openapi_and_page(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["articles"] == 8
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/search", "/suggest", "/feedback", "/gaps", "/admin/reload", "/healthz", "/readyz",
                 "/articles/{article_id}/stats"):
        assert path in paths
    assert client.get("/docs").status_code == 200
    assert "<form" in client.get("/").text


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/login", "/writers",
                                  "/a/vpn-error-809"])
def test_head_is_answered_as_get_for_uptime_checkers(client, path):
    got, head = client.get(path), client.head(path)
    assert got.status_code == 200 and head.status_code == 200, head.text
    assert head.headers["content-type"] == got.headers["content-type"]
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p, operations in paths.items() if "head" in operations]  # GET documents it


def test_without_an_index_it_is_alive_not_ready_until_reload(tmp_path, real_embedder,
                                                              fixture_index):
    import shutil

    from kb.config import Settings

    settings = Settings(index=tmp_path / "index", gap_db=tmp_path / "g.sqlite3")
    with TestClient(create_app(settings, real_embedder)) as c:
        assert c.get("/healthz").json()["index_version"] is None  # alive
        assert_error(c.get("/readyz"), 503, "not_ready")
        assert_error(c.post("/search", json={"query": "vpn"}), 503, "index_not_found")
        # The service made the folder to hold its serving lock in; an index built elsewhere
        # lands beside it.
        shutil.copytree(fixture_index, tmp_path / "index", dirs_exist_ok=True)
        assert c.post("/admin/reload").status_code == 200
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and ready["database"] == "sqlite"
