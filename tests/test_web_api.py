"""The routes the pages read: an article as JSON, facets, events, article health, index status,
the pages themselves and the offline API docs."""

import datetime as dt
import re
import shutil

import pytest
from fastapi.testclient import TestClient

from kb.build import build_index
from kb.config import Settings
from service.app import create_app
from tests.conftest import FIXTURE_KB
from tests.test_render import WEB


@pytest.fixture(scope="session")
def web_kb(tmp_path_factory, real_embedder):
    """The fixture articles plus the web fixtures (hostile markup, a table, related documents)."""
    root = tmp_path_factory.mktemp("web-kb")
    articles = root / "articles"
    shutil.copytree(FIXTURE_KB, articles)
    for path in WEB.glob("*.md"):
        shutil.copy(path, articles / path.name)
    build_index(articles, root / "index", lambda: real_embedder, real_embedder.name)
    return root


def make_client(web_kb, tmp_path, real_embedder, **extra):
    index = tmp_path / "index"
    shutil.copytree(web_kb / "index", index)
    settings = Settings(index=index, articles=web_kb / "articles", gap_db=tmp_path / "g.sqlite3",
                        reload_interval=0, **extra)
    return TestClient(create_app(settings, real_embedder))


@pytest.fixture
def client(web_kb, tmp_path, real_embedder):
    with make_client(web_kb, tmp_path, real_embedder) as c:
        yield c


def test_article_json(client):
    body = client.get("/articles/web-printer-toner").json()
    assert body["title"] == 'Printer shows "toner low" but the cartridge is new'
    assert [s["anchor"] for s in body["sections"]] == [
        "symptom", "cause", "resolution-steps", "reply-template", "related-documents"]
    assert body["sections"][0]["heading_path"] == [body["title"], "Symptom"]
    assert body["sections"][3]["copy_kind"] == "reply"
    assert {r["id"] for r in body["related"]} == {"password-reset-en", "vpn-error-809",
                                                  "complaint-escalation-sop"}
    assert body["review_by"] == "2025-01-31" and body["product"] == "HP LaserJet M404"
    internal = client.get("/articles/complaint-escalation-sop").json()
    assert internal["audience"] == "internal"


def test_unknown_article_is_404_in_the_error_shape(client):
    response = client.get("/articles/no-such-article")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_article"


def test_public_channel_sees_no_internal_article(web_kb, tmp_path, real_embedder):
    with make_client(web_kb, tmp_path, real_embedder, public_only=True) as c:
        assert c.get("/articles/complaint-escalation-sop").status_code == 404
        toner = c.get("/articles/web-printer-toner").text
        assert "complaint-escalation-sop" not in toner and "客户投诉升级处理流程" not in toner
        facets = c.get("/facets").json()
        assert facets["articles"] == 8 and "complaint" not in {t["value"] for t in facets["tags"]}
        health = c.get("/stats/articles").json()
        assert "complaint-escalation-sop" not in {r["id"] for r in health["articles"]}
        assert c.post("/events", json={"kind": "opened", "article_id": "data-deletion-request"}
                      ).status_code == 404


def test_facets_count_what_the_index_holds(client):
    facets = client.get("/facets").json()
    assert facets["articles"] == 10
    assert {v["value"]: v["count"] for v in facets["type"]} == {"faq": 4, "sop": 3, "case": 3}
    assert {"value": "printer", "count": 2} in facets["tags"]
    assert {"value": "HP LaserJet M404", "count": 2} in facets["product"]
    assert {v["value"] for v in facets["lang"]} == {"zh", "en"}


def test_events_and_health(client):
    search = client.post("/search", json={"query": "printer toner low new cartridge"}).json()
    qid = search["query_id"]
    top = search["results"][0]["id"]
    assert top == "web-printer-toner"
    for kind in ("opened", "copied", "copied"):
        ok = client.post("/events", json={"kind": kind, "article_id": top, "query_id": qid})
        assert ok.json() == {"status": "recorded"}
    assert client.post("/feedback", json={"query_id": qid, "article_id": top, "helpful": True}
                       ).status_code == 200
    missing = client.post("/search", json={
        "query": "how do I book a meeting room for the quarterly planning"}).json()
    assert client.post("/events", json={"kind": "reported_missing",
                                        "query_id": missing["query_id"]}).status_code == 200

    bad = [({"kind": "copied"}, 422), ({"kind": "reported_missing"}, 422),
           ({"kind": "shown", "article_id": top}, 422), ({"kind": "opened", "article_id": "nope"}, 404),
           ({"kind": "opened", "article_id": top, "query_id": "nope"}, 404),
           ({"kind": "opened", "article_id": top, "extra": 1}, 422),
           ({"kind": "reported_missing", "query_id": missing["query_id"],
             "article_id": "13800138000"}, 404)]
    for body, status in bad:
        response = client.post("/events", json=body)
        assert response.status_code == status, body
        assert set(response.json()["error"]) >= {"code", "message"}
    assert response.json()["error"]["code"] == "unknown_article"  # the last: a report's article
    assert client.post("/events", json={"kind": "reported_missing",
                                        "query_id": missing["query_id"],
                                        "article_id": top}).status_code == 200

    report = client.get("/stats/articles").json()
    row = next(r for r in report["articles"] if r["id"] == top)
    assert (row["shown"], row["opened"], row["copied"], row["helpful"], row["not_helpful"]) == (
        1, 1, 2, 1, 0)
    assert [r["id"] for r in report["past_review"]] == ["web-printer-toner"]
    shown = {r["id"] for r in report["articles"] if r["shown"]}
    assert {r["id"] for r in report["never_shown"]} == {r["id"] for r in report["articles"]} - shown
    csv = client.get("/stats/articles", params={"format": "csv"}).text.splitlines()
    assert csv[0] == "id,title,type,audience,review_by,shown,opened,copied,helpful,not_helpful"
    assert any(line.startswith("web-printer-toner,") and line.endswith(",1,1,2,1,0") for line in csv)
    review = client.get("/stats/articles", params={"format": "csv", "table": "past_review"}).text
    assert review.count("\n") == 2
    assert client.get("/stats/articles", params={"days": 0}).status_code == 422
    # since: the counts from then on, the report saying so; not a date: 422
    later = client.get("/stats/articles", params={"since": "2999-01-01"}).json()
    assert later["since"] == "2999-01-01T00:00:00" and report["since"] is None
    assert not [r for r in later["articles"] if r["shown"] or r["opened"] or r["helpful"]]
    assert {r["id"] for r in later["never_shown"]} == {r["id"] for r in report["never_shown"]}
    today = client.get("/stats/articles", params={"since": dt.datetime.now(dt.UTC).date().isoformat()}).json()
    assert today["articles"] == report["articles"]
    garbage = client.get("/stats/articles", params={"since": "garbage"})
    assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "invalid_query"
    assert "since must be an ISO date" in garbage.json()["error"]["message"]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    from service.routes.articles import rows_csv

    out = rows_csv(("a", "b"), [{"a": "=HYPERLINK(\"x\")", "b": "+1"}, {"a": "@x", "b": "-2"}])
    assert out.splitlines()[1:] == ['"\'=HYPERLINK(""x"")",\'+1', "'@x,'-2"]


def test_index_status(client):
    status = client.get("/index/status").json()
    assert status["articles"] == 10 and status["chunks"] > 10
    assert status["index_version"] == client.get("/healthz").json()["index_version"]
    assert status["created"] and status["last_build_ok"] is True and status["problems"] == []


def test_pages_are_served_with_a_strict_policy(client):
    for path in ("/", "/a/web-hostile", "/writers"):
        response = client.get(path)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "<script>" not in response.text  # no inline script: only the app's own files
    assert client.get("/static/search.js").status_code == 200


def test_api_docs_need_no_internet(client):
    for path in ("/docs", "/redoc"):
        page = client.get(path).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert assets and all(a.startswith("/static/docs/") for a in assets), assets
        assert "https://" not in page and "http://" not in page
        for asset in assets:
            assert client.get(asset).status_code == 200
    assert client.get("/openapi.json").json()["paths"]["/articles/{article_id}"]


def test_a_reported_answer_becomes_a_gap(client):
    """An agent who reports an answered search as missing makes it a gap all the same."""
    search = client.post("/search", json={"query": "VPN error 809"}).json()
    assert search["answered"]
    client.post("/events", json={"kind": "reported_missing", "query_id": search["query_id"]})
    topics = client.get("/gaps").json()["topics"]
    assert [t["representative"] for t in topics] == ["VPN error 809"]


def test_a_reported_answer_becomes_a_gap_after_a_report_was_read(client):
    """The gap topics see a report as missing that comes after they read the query."""
    search = client.post("/search", json={"query": "VPN error 809"}).json()
    assert client.get("/gaps").json()["topics"] == []
    r = client.post("/events", json={"kind": "reported_missing", "query_id": search["query_id"]})
    assert r.status_code == 200, r.text
    topics = client.get("/gaps").json()["topics"]
    assert [t["representative"] for t in topics] == ["VPN error 809"]
