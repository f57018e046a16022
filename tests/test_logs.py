"""Request ids and the service's JSON log lines."""

import io
import json
import logging
import logging.config

import pytest
from fastapi.testclient import TestClient

from service import logs
from service.access_log import RedactingFilter
from service.app import create_app


@pytest.fixture
def log_stream(monkeypatch):
    """kb's and uvicorn's loggers configured as `kb serve` does, writing JSON to a buffer; put
    back as they were afterwards."""
    saved = {name: (lg.handlers[:], lg.level, lg.propagate, lg.filters[:])
             for name in logs.LOGGERS for lg in [logging.getLogger(name)]}
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logging.config.dictConfig(logs.config("json", "info"))
    yield stream
    for name, (handlers, level, propagate, filters) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers, lg.level, lg.propagate, lg.filters = handlers, level, propagate, filters


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def app(settings, real_embedder):
    app = create_app(settings, real_embedder)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("something broke")

    return app


@pytest.mark.parametrize("given", ["abc-123", "0f8c1e2a-9b7d-4c3e-8f00-5a6b7c8d9e0f",
                                   "lb.example:7f3a/2", "x" * 128, "T-20261204-0012"])
def test_a_safe_request_id_is_echoed(app, given):
    with TestClient(app) as client:
        r = client.get("/healthz", headers={"X-Request-ID": given})
    assert r.headers["X-Request-ID"] == given


@pytest.mark.parametrize("given", ["", "x" * 129, "has space", "new\\nline", "<script>",
                                   "-starts-with-dash", "名字".encode(), "a;b"])
def test_an_unsafe_request_id_is_replaced(app, given):
    with TestClient(app) as client:
        r = client.get("/healthz", headers={"X-Request-ID": given})
        other = client.get("/healthz", headers={"X-Request-ID": given})
    made = r.headers["X-Request-ID"]
    assert made != given and logs.accepted_id(made) == made and len(made) == 24
    assert other.headers["X-Request-ID"] != made  # one per request


@pytest.mark.parametrize("given", ["13800138000", "req-13800138000", "zs@qq.com",
                                   "id.110105194912310021"])
def test_a_request_id_holding_personal_data_is_never_logged(app, log_stream, given):
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom", headers={"X-Request-ID": given})
    made = r.headers["X-Request-ID"]
    assert made != given and logs.accepted_id(made) == made
    logged = [line for line in lines(log_stream) if line["message"].startswith("unexpected")]
    assert len(logged) == 1 and logged[0]["request_id"] == made
    for secret in ("13800138000", "zs@qq.com", "110105194912310021"):
        assert secret not in log_stream.getvalue()


def test_every_response_carries_an_id_errors_too(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        for response in (client.get("/no/such/page"),
                         client.post("/search", json={"query": ""}),
                         client.get("/boom")):
            assert logs.accepted_id(response.headers.get("X-Request-ID"))
        assert client.get("/boom").status_code == 500


def test_log_lines_of_a_request_carry_its_id(app, log_stream):
    with TestClient(app, raise_server_exceptions=False) as client:
        log_stream.truncate(0)
        log_stream.seek(0)
        client.get("/boom", headers={"X-Request-ID": "req-42"})
        client.get("/boom")
    found = [line for line in lines(log_stream) if line["logger"] == "kb.service"]
    assert len(found) == 2
    assert all(line["message"].startswith("unexpected RuntimeError while handling")
               for line in found)
    assert found[0]["request_id"] == "req-42" and found[0]["level"] == "ERROR"
    assert logs.accepted_id(found[1]["request_id"]) and found[1]["request_id"] != "req-42"
    assert {"time", "level", "logger", "message", "request_id"} <= set(found[0])


def test_the_access_line_is_json_and_redacted(log_stream):
    access = logging.getLogger("uvicorn.access")
    access.addFilter(RedactingFilter())
    token = logs.request_id.set("req-7")
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    "/search?q=%E6%89%8B%E6%9C%BA+13812345678+a%40b.com&k=5", "1.1", 200)
    finally:
        logs.request_id.reset(token)
    (line,) = [x for x in lines(log_stream) if x["logger"] == "uvicorn.access"]
    assert line["request_id"] == "req-7" and line["event"] == "access"
    assert (line["method"], line["status"], line["client"]) == ("GET", 200, "127.0.0.1:5000")
    assert line["path"] == "/search?q=手机 [PHONE] [EMAIL]&k=5"
    assert "13812345678" not in json.dumps(line, ensure_ascii=False)


def test_text_logs_for_people(monkeypatch):
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    assert logs.use_json("auto", stream) is False and logs.use_json("auto", io.StringIO())
    formatter = logging.Formatter(logs.config("text")["formatters"]["kb"]["format"])
    record = logging.LogRecord("kb.service", logging.INFO, __file__, 1, "serving %s", ("v1",),
                               None)
    logs.RequestIdFilter().filter(record)
    assert formatter.format(record).endswith("INFO    kb.service [-] serving v1")
