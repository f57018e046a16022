"""Audiences: a public key never receives anything of an internal article, from any route.

The leak test runs the whole golden set against the sample knowledge base (articles/), as
public and internal callers side by side, then reads every route as a public one."""

from __future__ import annotations

import html
import json
import re

import pytest
from fastapi.testclient import TestClient

from kb.audience import Scrubber, visible
from kb.build import build_index
from kb.engine import recheck_gaps
from kb.keys import ROLES, create_key
from kb.ranking import Calibration
from kb.storage import SqlStore, open_store
from kb.store import load_index
from kb.text import normalize
from service.app import create_app
from tests.conftest import GOLDEN, ROOT, FakeEmbedder
from tests.test_auth import RULES, request_for

SAMPLE = ROOT / "articles"


# The scrubber on its own.

ARTICLES = {
    "sop-verify-identity": {"audience": "internal", "title": "客服核实客户身份标准流程"},
    "cmp-escalation-authority": {"audience": "internal", "title": "投诉升级权限与主管介入标准"},
    "rfd-chargeback-handling": {"audience": "internal",
                                "title": "Handling a card chargeback (dispute) notification"},
    "acc-password-reset": {"audience": "public", "title": "忘记密码如何重置"},
}


@pytest.mark.parametrize(("text", "expected"), [
    ("- 客服核实客户身份标准流程\n- 忘记密码如何重置", "- 忘记密码如何重置"),
    ("- 投诉升级权限与主管介入标准（cmp-escalation-authority）\n- 忘记密码如何重置",
     "- 忘记密码如何重置"),
    ("- Handling a card chargeback (dispute) notification (rfd-chargeback-handling)", ""),
    ("* [SOP](../complaints/cmp-escalation-authority.md)", ""),
    ("6. 不能解决的按《投诉升级权限与主管介入标准》流转给组长或投诉专员。",
     "6. 不能解决的按[内部文档]流转给组长或投诉专员。"),
    ("See handling a card CHARGEBACK (dispute) notification first.",
     "See [internal document] first."),
    ("參見 客服核實客戶身份標準流程 (sop-verify-identity) 後再處理", "參見 [内部文档] 後再處理"),
    ("ask for sop-verify-identity-v2 or my-sop-verify-identity", None),  # other words: kept
    ("忘记密码如何重置 needs nothing scrubbed", None),
])
def test_scrubber(text, expected):
    assert Scrubber(ARTICLES).scrub(text) == (text if expected is None else expected)


def test_a_knowledge_base_without_internal_articles_scrubs_nothing():
    scrubber = Scrubber({"a": {"audience": "public", "title": "Reset a password"}})
    assert not scrubber and scrubber.scrub("Reset a password") == "Reset a password"


# The golden set over HTTP.

@pytest.fixture(scope="module")
def embedder():
    """Audiences do not depend on the model: the fake one builds the sample knowledge base in
    a moment, and search still ranks (BM25 does its part as with the real one)."""
    return FakeEmbedder()


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("sample-index")
    calibration = Calibration.from_dict(json.loads((SAMPLE / "calibration.json").read_text()))
    build_index(SAMPLE, root, lambda: embedder, embedder.name, calibration=calibration)
    return root


@pytest.fixture(scope="module")
def internal_names(sample_index) -> set[str]:
    articles = load_index(sample_index).articles
    names = {n for a, r in articles.items() if not visible(r, "public") for n in (a, r["title"])}
    assert len(names) >= 20  # 13 internal articles in the sample knowledge base
    return names


def leaked(response, names: set[str]) -> set[str]:
    """Internal ids and titles anywhere in a response, however written: JSON escapes, HTML
    escapes, <mark> inside a title, Traditional or fullwidth forms."""
    text = response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        text = json.dumps(response.json(), ensure_ascii=False)
    text = html.unescape(re.sub(r"</?mark>", "", text))
    folded = normalize(text)
    return {n for n in names if n in text or normalize(n) in folded}


@pytest.mark.slow
def test_a_public_key_sees_no_internal_id_or_title_anywhere(tmp_path, sample_index,
                                                             internal_names, embedder):
    import shutil

    from kb.config import Settings

    index = tmp_path / "index"
    shutil.copytree(sample_index, index)
    settings = Settings(index=index, gap_db=tmp_path / "gaps.sqlite3")
    store = open_store(settings)
    keys = {f"{role}/{audience}": {"Authorization": f"Bearer {secret}"}
            for role in ROLES for audience in ("public", "internal")
            for secret in [create_key(store, f"{role}-{audience}", role, audience)[1]]}
    queries = [json.loads(line)["query"] for line in
               (GOLDEN / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    articles = load_index(index).articles
    internal = sorted(a for a, r in articles.items() if not visible(r, "public"))
    public = sorted(set(articles) - set(internal))

    with TestClient(create_app(settings, embedder)) as c:
        seen_internal = scrubbed = 0
        for n, query in enumerate(queries):
            # Internal traffic beside it, feedback on internal articles included: none of it
            # may reach a public caller through the gap report or the stats.
            inside = c.post("/search", json={"query": query, "k": 10},
                            headers=keys["agent/internal"])
            seen_internal += bool(leaked(inside, internal_names))
            hits = inside.json()["results"]
            if hits:
                c.post("/feedback", headers=keys["agent/internal"], json={
                    "query_id": inside.json()["query_id"], "article_id": hits[0]["id"],
                    "helpful": False})
            for response in (
                c.post("/search", json={"query": query, "k": 50}, headers=keys["agent/public"]),
                c.get("/search", params={"q": query, "k": 50}, headers=keys["writer/public"]),
                c.post("/suggest", json={"ticket_id": f"T-{n}", "subject": query,
                                         "description": query},
                       headers=keys["ticket-system/public"]),
            ):
                assert response.status_code == 200
                assert not leaked(response, internal_names), (query, response.text)
                scrubbed += "[内部文档]" in response.text or "[internal document]" in response.text
                assert {h["audience"] for h in response.json()["results"]} <= {"public"}
            # Feedback on an internal article is refused as if it did not exist.
            qid = response.json()["query_id"]
            for article in (internal[n % len(internal)], "no-such-article"):
                r = c.post("/feedback", json={"query_id": qid, "article_id": article,
                                              "helpful": False},
                           headers=keys["ticket-system/public"])
                assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_article"
            if response.json()["results"]:
                assert c.post("/feedback", headers=keys["agent/public"], json={
                    "query_id": qid, "article_id": response.json()["results"][0]["id"],
                    "helpful": False}).status_code == 200
        assert seen_internal >= 20  # the check finds internal names where they may be shown
        assert scrubbed >= 1, "no public result quoted an internal article: nothing scrubbed"

        # A re-check of every open gap, as a new version would run it.
        engine = c.app.state.engine
        recheck_gaps(engine.log, engine.searcher_for, engine.audience)

        inside = c.get("/gaps", params={"include_resolved": True}, headers=keys["writer/internal"])
        assert leaked(inside, internal_names)  # internal writers do see them
        for role in ROLES:
            headers = keys[f"{role}/public"]
            for method, path in RULES:
                r = c.request(**request_for(method, path), headers=headers,
                              follow_redirects=False)
                assert not leaked(r, internal_names), (role, method, path, r.text[:300])
            for params in ({"include_resolved": True}, {"include_resolved": True, "format": "csv"}):
                r = c.get("/gaps", params=params, headers=headers)
                assert not leaked(r, internal_names), (role, params, r.text[:300])
            if role not in ("writer", "admin"):
                continue  # the others may not read stats at all (the matrix test)
            for article in internal + public:
                r = c.get(f"/articles/{article}/stats", headers=headers)
                if article in public:
                    assert r.status_code == 200
                else:  # as if it did not exist
                    assert r.status_code == 404 and r.json() == {"error": {
                        "code": "unknown_article", "message": f"unknown article {article!r}"}}
        # A public writer's report: the public queries' topics, without an internal name.
        r = c.get("/gaps", params={"include_resolved": True}, headers=keys["writer/public"])
        assert r.status_code == 200 and r.json()["topics"], r.text[:300]
        # The same questions, but only the public channels' share of their traffic (as many
        # topics or more: an internal wording may be what joins two public ones).
        assert (sum(t["count"] for t in r.json()["topics"])
                < sum(t["count"] for t in inside.json()["topics"]))
        # Public queries' gaps were re-checked as public: never resolved by an internal article.
        logged = [q for q in engine.log.unanswered() if q.audience == "public"]
        assert len(logged) >= 10
        assert all(q.resolved_by in (None, *public) for q in logged)
        health = c.get("/healthz", headers=keys["agent/public"]).json()
        assert health["articles"] == len(public) == c.get("/healthz").json()["articles"]
        assert c.get("/healthz", headers=keys["agent/internal"]).json()["articles"] == len(
            articles)
        status = c.get("/index/status", headers=keys["writer/public"]).json()
        assert status["articles"] == len(public) and status["last_build_ok"] is None
        assert c.get("/index/status", headers=keys["writer/internal"]).json()[
            "articles"] == len(articles)
        assert c.get("/facets", headers=keys["agent/public"]).json()["articles"] == len(public)
        # Every article's page as a public reader: public ones without a word of an internal
        # one (their related documents name internal SOPs), internal ones as if missing.
        quoting = 0
        for article in public:
            r = c.get(f"/articles/{article}", headers=keys["agent/public"])
            assert r.status_code == 200 and not leaked(r, internal_names), r.text[:300]
            inside = c.get(f"/articles/{article}", headers=keys["agent/internal"])
            quoting += bool(leaked(inside, internal_names))
        assert quoting >= 5  # the sample's public articles that quote internal ones
        for article in internal:
            r = c.get(f"/articles/{article}", headers=keys["agent/public"])
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_article"
            assert c.post("/events", json={"kind": "opened", "article_id": article},
                          headers=keys["agent/public"]).status_code == 404
            assert c.get(f"/articles/{article}", headers=keys["agent/internal"]).status_code == 200


def test_a_public_gap_is_never_resolved_by_an_internal_article(tmp_path):
    """The re-check searches each open gap for the audience it was asked for."""
    from kb.search import Hit, Outcome

    log = SqlStore(f"sqlite:///{tmp_path}/gaps.sqlite3")
    for audience in ("public", "internal"):
        log.record(channel="search", query="投诉升级 主管介入", lang="zh", filters={},
                   answered=False, confidence=0.1, neighbours=[], top_score=None, vector=None,
                   index_version="v1", audience=audience)

    class Searcher:
        def search(self, text, k, audience):
            article = ("cmp-escalation-authority", "internal") if audience == "internal" else (
                "cmp-complaint-intake", "public")
            hit = Hit(article[0], "t", "sop", "s", "a", "", 0.9, "p", [], article[1])
            return Outcome(text, [hit], True, 0.9)

    searcher = Searcher()
    resolved = recheck_gaps(log, lambda audience: searcher, "internal")  # type: ignore[arg-type]
    assert sorted(resolved) == [("投诉升级 主管介入", "cmp-complaint-intake"),
                                ("投诉升级 主管介入", "cmp-escalation-authority")]
    by_audience = {q.audience: q.resolved_by for q in log.unanswered()}
    assert by_audience == {"public": "cmp-complaint-intake",
                           "internal": "cmp-escalation-authority"}


def test_kb_search_for_an_audience(index_copy, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kb.cli import app as cli

    monkeypatch.setenv("KB_GAP_DB", str(tmp_path / "g.sqlite3"))
    runner = CliRunner()
    args = ["search", "投诉升级 赔偿权限", "--k", "8", "--index", str(index_copy)]
    inside = runner.invoke(cli, args)
    assert inside.exit_code == 0, inside.output
    assert "complaint-escalation-sop" in inside.stdout and "(internal: not for the customer)" \
        in inside.stdout
    outside = runner.invoke(cli, [*args, "--audience", "public", "--json"])
    results = json.loads(outside.stdout)["results"]
    assert results and {r["audience"] for r in results} == {"public"}
    bad = runner.invoke(cli, [*args, "--audience", "everyone"])
    assert bad.exit_code == 2 and "--audience must be public or internal" in bad.stderr
