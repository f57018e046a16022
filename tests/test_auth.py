"""Access control over HTTP: every route × every role × both audiences, the login cookie, and
when the service is open to callers without a key."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kb.cli import app as cli
from kb.config import Settings
from kb.keys import ROLES, Permission, create_key, hash_secret
from kb.storage import open_store
from service.app import create_app
from tests.checks import assert_error

OPEN = "open"  # anyone, with or without a key
LOGIN = "login"  # the login form: a key with the search permission signs in


@dataclass(frozen=True)
class Page:
    """A web page: without a key the browser is sent to /login; a key needs ``permission``."""
    permission: Permission

# What each route needs, stated independently of the code: a route added without a rule here
# fails test_every_route_has_a_rule.
RULES: dict[tuple[str, str], str | Permission] = {
    ("POST", "/search"): Permission.SEARCH,
    ("GET", "/search"): Permission.SEARCH,
    ("POST", "/suggest"): Permission.SUGGEST,
    ("POST", "/feedback"): Permission.FEEDBACK,
    ("GET", "/gaps"): Permission.GAPS,
    ("POST", "/gaps/{topic_id}/dismiss"): Permission.GAPS,
    ("POST", "/gaps/{topic_id}/answered"): Permission.GAPS,
    ("POST", "/gaps/{topic_id}/reopen"): Permission.GAPS,
    ("GET", "/articles/{article_id}/stats"): Permission.ARTICLE_STATS,
    ("GET", "/articles/{article_id}"): Permission.READ_ARTICLES,
    ("GET", "/facets"): Permission.SEARCH,
    ("POST", "/events"): Permission.FEEDBACK,
    ("GET", "/stats/articles"): Permission.ARTICLE_STATS,
    ("GET", "/index/status"): Permission.INDEX_STATUS,
    ("GET", "/metrics"): Permission.INDEX_STATUS,
    ("POST", "/admin/reload"): Permission.RELOAD,
    ("GET", "/admin/keys"): Permission.MANAGE_KEYS,
    ("POST", "/admin/keys"): Permission.MANAGE_KEYS,
    ("DELETE", "/admin/keys/{name_or_id}"): Permission.MANAGE_KEYS,
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/login"): OPEN,
    ("POST", "/login"): LOGIN,
    ("POST", "/logout"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("*", "/static"): OPEN,  # the pages' scripts and styles: no data in them
    ("*", "/static/docs"): OPEN,
    ("GET", "/"): Page(Permission.SEARCH),
    ("GET", "/a/{article_id}"): Page(Permission.READ_ARTICLES),
    ("GET", "/writers"): Page(Permission.GAPS),
}

# A request each route accepts from a caller allowed to make it (beyond the 401/403 checks,
# the matrix asserts an allowed caller gets no 401 or 403).
_made = iter(range(10**6))


def request_for(method: str, path: str, secret: str | None = None) -> dict:
    body = {
        "/search": {"query": "vpn 809"},
        "/suggest": {"ticket_id": "T-1", "subject": "VPN error 809", "description": ""},
        "/feedback": {"query_id": "0000000000000000", "article_id": "vpn-error-809",
                      "helpful": True},
        "/admin/keys": {"name": f"made-{next(_made)}", "role": "agent", "audience": "public"},
        "/events": {"kind": "opened", "article_id": "vpn-error-809"},
        "/gaps/{topic_id}/answered": {"article_id": "vpn-error-809"},
    }.get(path) if method == "POST" else None
    if method == "*":
        method, path = "GET", path + {"/static": "/kb.css", "/static/docs": "/favicon.png"}[path]
    url = (path.replace("{article_id}", "vpn-error-809")
           .replace("{name_or_id}", "nobody-of-that-name").replace("{topic_id}", "t-none"))
    if (method, path) == ("GET", "/search"):
        url += "?q=vpn"
    if (method, path) == ("POST", "/login"):
        return {"method": method, "url": url, "data": {"key": secret or ""}}
    return {"method": method, "url": url, "json": body}


@pytest.fixture
def keyed(settings):
    """Settings whose database holds a key of every role and audience; the keys by name."""
    store = open_store(settings)
    secrets = {f"{role}/{audience}": create_key(store, f"{role}-{audience}", role, audience)[1]
               for role in ROLES for audience in ("public", "internal")}
    return settings, secrets


@pytest.fixture
def client(keyed, real_embedder):
    settings, secrets = keyed
    with TestClient(create_app(settings, real_embedder)) as c:
        c.secrets = secrets
        yield c


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route, those of included routers too; a mount is ("*", path)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        methods = getattr(route, "methods", None) or {"*"}
        found |= {(m, route.path) for m in methods if m != "HEAD"}
    return found


def test_every_route_has_a_rule(client):
    routes = app_routes(client.app)
    assert routes - set(RULES) == set(), "routes without an access rule in this test"
    assert set(RULES) - routes == set(), "rules for routes the app no longer has"


CALLERS = [(role, audience) for role in ROLES for audience in ("public", "internal")]


@pytest.mark.parametrize(("role", "audience"), [*CALLERS, (None, "public")])
def test_role_route_audience_matrix(client, role, audience):
    """Every route for every role and audience, and without a key (a public caller)."""
    secret = client.secrets[f"{role}/{audience}"] if role else None
    headers = bearer(secret) if secret else {}
    for (method, path), rule in RULES.items():
        client.cookies.clear()
        r = client.request(**request_for(method, path, secret), headers=headers,
                           follow_redirects=False)
        where = f"{role}/{audience} {method} {path}: {r.status_code} {r.text[:200]}"
        assert r.status_code < 500, where
        if rule == OPEN:
            assert r.status_code not in (401, 403), where
        elif rule == LOGIN:
            signs_in = role is not None and Permission.SEARCH in ROLES[role]
            assert r.status_code == (303 if signs_in else 403 if role else 401), where
        elif isinstance(rule, Page):
            if role is None:
                assert r.status_code == 303, where
                assert r.headers["location"].startswith("/login?next=/"), where
            elif rule.permission in ROLES[role]:
                assert r.status_code == 200, where
            else:
                assert_error(r, 403, "forbidden")
        elif role is None:
            assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer", where
        elif rule in ROLES[role]:
            assert r.status_code not in (401, 403), where
        else:
            assert_error(r, 403, "forbidden")


def test_an_unknown_revoked_or_malformed_key_is_401(client, keyed):
    settings, secrets = keyed
    agent = secrets["agent/internal"]
    assert client.post("/search", json={"query": "vpn"}, headers=bearer(agent)).status_code == 200
    for headers in (bearer("kb_" + "x" * 43), bearer("not-a-key"), {"Authorization": agent},
                    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        assert_error(client.post("/search", json={"query": "vpn"}, headers=headers), 401,
                     "unauthorized")
    # Revoked through the API: refused at once. Even on /healthz, a key sent must be valid.
    admin = bearer(secrets["admin/internal"])
    assert client.delete("/admin/keys/agent-internal", headers=admin).json() == {
        "revoked": "agent-internal"}
    assert_error(client.post("/search", json={"query": "vpn"}, headers=bearer(agent)), 401,
                 "unauthorized")
    assert_error(client.get("/healthz", headers=bearer(agent)), 401, "unauthorized")
    assert_error(client.delete("/admin/keys/agent-internal", headers=admin), 404, "unknown_key")


def test_a_key_revoked_from_the_command_line_is_refused_soon(client, keyed, monkeypatch):
    import service.auth

    settings, secrets = keyed
    writer = bearer(secrets["writer/internal"])
    assert client.get("/gaps", headers=writer).status_code == 200
    open_store(settings).revoke_key("writer-internal")
    monkeypatch.setattr(service.auth, "CACHE_SECONDS", 0.0)
    client.app.state.auth.forget()  # what the cache's expiry does within CACHE_SECONDS
    assert_error(client.get("/gaps", headers=writer), 401, "unauthorized")


def test_admins_manage_keys_over_http(client):
    admin = bearer(client.secrets["admin/internal"])
    made = client.post("/admin/keys", json={"name": "crm", "role": "ticket-system",
                                            "audience": "public"}, headers=admin)
    assert made.status_code == 201
    body = made.json()
    assert body["key"]["role"] == "ticket-system" and body["secret"].startswith("kb_")
    listed = client.get("/admin/keys", headers=admin).json()["keys"]
    assert "crm" in {k["name"] for k in listed} and "secret" not in str(listed)
    assert body["secret"] not in str(listed) and hash_secret(body["secret"]) not in str(listed)
    crm = bearer(body["secret"])
    assert client.post("/suggest", json={"ticket_id": "T-9", "subject": "vpn 809"},
                       headers=crm).status_code == 200
    assert_error(client.post("/search", json={"query": "vpn"}, headers=crm), 403, "forbidden")
    assert_error(client.post("/admin/keys", json={"name": "crm", "role": "agent"},
                             headers=admin), 409, "key_exists")
    assert_error(client.post("/admin/keys", json={"name": "x", "role": "boss"}, headers=admin),
                 422, "invalid_request")
    # A public admin cannot make a key that sees more than it does.
    public_admin = bearer(client.secrets["admin/public"])
    assert_error(client.post("/admin/keys", json={"name": "wider", "role": "agent"},
                             headers=public_admin), 403, "forbidden")
    assert client.post("/admin/keys", json={"name": "same", "role": "agent",
                                            "audience": "public"},
                       headers=public_admin).status_code == 201


def test_the_login_cookie(client):
    agent = client.secrets["agent/internal"]
    page = client.get("/login?next=/")
    assert page.status_code == 200 and "API 密钥" in page.text and "API key" in page.text
    assert_error(client.post("/search", json={"query": "vpn"}), 401, "unauthorized")
    r = client.post("/login", data={"key": agent, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path"} <= flags and "samesite=strict" in cookie.lower()
    assert "secure" not in flags and "max-age" not in flags and "expires" not in flags
    # The browser now holds the key: the page and the API answer it.
    assert client.get("/", follow_redirects=False).status_code == 200
    assert client.post("/search", json={"query": "vpn"}).status_code == 200
    assert_error(client.get("/gaps"), 403, "forbidden")  # an agent's key, through the cookie
    for page in ("/", "/a/vpn-error-809"):  # every page offers to sign out
        assert '<form class="signout" method="post" action="/logout">' in client.get(page).text
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and 'kb_session=""' in out.headers["set-cookie"]
    assert client.get("/", follow_redirects=False).status_code == 303
    assert_error(client.post("/search", json={"query": "vpn"}), 401, "unauthorized")


def test_the_cookie_is_secure_over_https(keyed, real_embedder):
    settings, secrets = keyed
    with TestClient(create_app(settings, real_embedder), base_url="https://kb.example") as c:
        r = c.post("/login", data={"key": secrets["writer/internal"]}, follow_redirects=False)
        assert r.status_code == 303
        assert "secure" in {p.strip().lower() for p in r.headers["set-cookie"].split(";")}
        assert c.get("/gaps").status_code == 200


def test_the_login_page_escapes_where_it_returns_to(client):
    page = client.get("/login", params={"next": '/"><script>alert(1)</script>'}).text
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<form") == 1


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil", ""])
def test_login_sends_the_browser_only_to_this_site(client, target):
    r = client.post("/login", data={"key": client.secrets["admin/internal"], "next": target},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_login_refusals(client):
    r = client.post("/login", data={"key": "kb_nope"})
    assert r.status_code == 401 and "revoked" in r.text and "set-cookie" not in r.headers
    r = client.post("/login", data={"key": client.secrets["ticket-system/internal"]})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert client.post("/login", content=b"key=" + b"x" * 10000, headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 401
    # A page asked for without a key keeps where it was going.
    r = client.get("/?q=vpn", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/%3Fq%3Dvpn"


# When the service is open to callers without a key.

def test_without_keys_a_loopback_service_is_open_and_says_so(settings, real_embedder, caplog):
    with caplog.at_level(logging.INFO, logger="kb.service"), \
            TestClient(create_app(settings, real_embedder)) as c:
        assert c.get("/gaps").status_code == 200
        assert c.post("/admin/reload").status_code == 200
        assert c.post("/search", json={"query": "投诉升级"}).json()["results"]
        # A key made while it runs closes it (within CACHE_SECONDS; forget() is that expiry).
        _, secret = create_key(open_store(settings), "first", "writer")
        c.app.state.auth.forget()
        assert_error(c.get("/gaps"), 401, "unauthorized")
        assert c.get("/gaps", headers=bearer(secret)).status_code == 200
    assert "open to every caller" in caplog.text


def test_keyless_callers_get_the_public_only_audience(tmp_path, index_copy, real_embedder):
    settings = Settings(index=index_copy, gap_db=tmp_path / "g.sqlite3", public_only=True)
    with TestClient(create_app(settings, real_embedder)) as c:
        hits = c.post("/search", json={"query": "投诉升级 赔偿权限", "k": 50}).json()["results"]
        assert hits and {h["audience"] for h in hits} == {"public"}
        assert c.get("/healthz").json()["articles"] == 6


def test_auth_on_asks_for_keys_even_before_any_exists(tmp_path, index_copy, real_embedder):
    settings = Settings(index=index_copy, gap_db=tmp_path / "g.sqlite3", auth="on")
    with TestClient(create_app(settings, real_embedder)) as c:
        assert_error(c.post("/search", json={"query": "vpn"}), 401, "unauthorized")
        assert c.get("/healthz").json()["articles"] == 6  # counted as a public caller


def test_a_non_loopback_service_asks_for_keys_even_without_any(tmp_path, index_copy,
                                                               real_embedder):
    # Started some other way than 'kb serve' (which refuses): still not open.
    settings = Settings(index=index_copy, gap_db=tmp_path / "g.sqlite3", host="0.0.0.0")
    with TestClient(create_app(settings, real_embedder)) as c:
        assert_error(c.get("/gaps"), 401, "unauthorized")
    settings = settings.model_copy(update={"auth": "off"})
    with TestClient(create_app(settings, real_embedder)) as c:
        assert c.get("/gaps").status_code == 200


runner = CliRunner()


@pytest.fixture
def served(monkeypatch):
    import uvicorn

    calls: list[tuple] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: calls.append((host, port)))
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "kb.example.com"])
def test_serve_refuses_a_non_loopback_host_without_keys(tmp_path, served, host):
    r = runner.invoke(cli, ["serve", "--index", str(tmp_path / "index"), "--host", host])
    assert r.exit_code == 2 and served == []
    assert "refusing to serve" in r.output and "KB_AUTH=off" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_serve_starts_on_loopback_without_keys(tmp_path, served, host):
    r = runner.invoke(cli, ["serve", "--index", str(tmp_path / "index"), "--host", host])
    assert r.exit_code == 0, r.output
    assert served == [(host, 8000)]


def test_serve_starts_on_any_host_with_a_key_or_auth_off(tmp_path, served, monkeypatch):
    index = str(tmp_path / "index")
    monkeypatch.setenv("KB_AUTH", "off")
    assert runner.invoke(cli, ["serve", "--index", index, "--host", "0.0.0.0"]).exit_code == 0
    monkeypatch.delenv("KB_AUTH")
    assert runner.invoke(cli, ["keys", "create", "--name", "ops", "--role", "admin",
                               "--index", index]).exit_code == 0
    assert runner.invoke(cli, ["serve", "--index", index, "--host", "0.0.0.0"]).exit_code == 0
    assert served == [("0.0.0.0", 8000), ("0.0.0.0", 8000)]


def test_feedback_rules_over_http(client):
    """One vote per query and article, for an article the query returned; a public key's vote
    on an internal article is refused as if the article did not exist."""
    agent, admin = bearer(client.secrets["agent/internal"]), bearer(client.secrets["admin/internal"])
    found = client.post("/search", json={"query": "投诉升级 赔偿权限", "k": 2}, headers=agent).json()
    qid, returned = found["query_id"], [r["id"] for r in found["results"]]
    assert "complaint-escalation-sop" in returned
    other = next(a for a in ("vpn-error-809", "wifi-8021x", "password-reset-en")
                 if a not in returned)

    def vote(article, helpful, headers=agent, query_id=qid):
        return client.post("/feedback", json={"query_id": query_id, "article_id": article,
                                              "helpful": helpful}, headers=headers)

    assert vote(returned[0], True).status_code == 200
    assert vote(returned[0], False).status_code == 200  # a repeat replaces the vote
    stats = client.get(f"/articles/{returned[0]}/stats", headers=admin).json()
    assert (stats["helpful"], stats["not_helpful"]) == (0, 1)
    assert_error(vote(other, True), 422, "not_a_result")
    assert_error(vote("no-such-article", True), 404, "unknown_article")
    # The ticket system votes on what it was suggested.
    crm = bearer(client.secrets["ticket-system/public"])
    suggested = client.post("/suggest", json={"ticket_id": "T-7", "subject": "VPN 809"},
                            headers=crm).json()
    assert {r["audience"] for r in suggested["results"]} == {"public"}
    assert vote(suggested["results"][0]["id"], True, crm,
                suggested["query_id"]).status_code == 200
    # A public key, even with the id of an internal agent's query that returned the SOP.
    unknown = vote("no-such-article", True, crm)
    refused = vote("complaint-escalation-sop", True, crm)
    assert refused.status_code == unknown.status_code == 404
    assert refused.json()["error"]["code"] == unknown.json()["error"]["code"] == "unknown_article"
    stats = client.get("/articles/complaint-escalation-sop/stats", headers=admin).json()
    assert stats["helpful"] + stats["not_helpful"] == (returned[0] == "complaint-escalation-sop")
