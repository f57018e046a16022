"""The redaction table run over every place text is stored or logged: the query log's rows,
the service's logs (its own and the access log), the gap report as JSON and CSV, and `kb gaps`."""

import json
import logging
import sqlite3
import unicodedata
from urllib.parse import urlencode

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kb.cli import app as cli
from kb.redact import find_pii, redact
from service.access_log import clean_target
from service.app import create_app
from tests.test_redact import CASES

# Every case of the table with personal data in it, and the pieces that must never be seen.
PII = [(text, [text[s.start:s.end] for s in find_pii(text)]) for text, expected in CASES
       if text != expected]


def forms(secret: str) -> set[str]:
    """A secret as it may turn up after normalisation: as typed, NFKC, invisibles dropped."""
    visible = "".join(ch for ch in secret if unicodedata.category(ch) != "Cf")
    return {secret, unicodedata.normalize("NFKC", secret), visible,
            unicodedata.normalize("NFKC", visible)}


def leaks(output: str) -> list[str]:
    return sorted({f for _, secrets in PII for s in secrets for f in forms(s) if f in output})


def test_the_table_has_personal_data_to_look_for():
    assert len(PII) >= 60 and all(secrets for _, secrets in PII)


@pytest.fixture(scope="module")
def logged(tmp_path_factory, fixture_index, real_embedder):
    """Every PII case sent through every route that stores text; what the service logged."""
    import shutil

    from kb.config import Settings

    root = tmp_path_factory.mktemp("pii")
    shutil.copytree(fixture_index, root / "index")
    settings = Settings(index=root / "index", gap_db=root / "gaps.sqlite3")
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    previous = {name: logging.getLogger(name).level for name in ("", "kb", "service")}
    logging.getLogger().setLevel(logging.INFO)  # libraries' own debug chatter left out
    logging.getLogger("kb").setLevel(logging.DEBUG)
    logging.getLogger("service").setLevel(logging.DEBUG)
    try:
        with TestClient(create_app(settings, real_embedder)) as c:
            for text, _ in PII:
                body = c.post("/search", json={"query": text, "filters": {
                    "product": text[:200], "tags": [text[:200]]}}).json()
                c.get("/search", params={"q": text})
                r = c.post("/suggest", json={"ticket_id": text[:200], "subject": text,
                                             "description": f"客户说：{text}。请尽快处理"})
                assert r.status_code == 200, r.text
                hits = r.json()["results"]
                c.post("/events", json={"kind": "reported_missing", "query_id": text[:64]})
                if hits:  # a not-helpful vote puts the query in the report's second half
                    c.post("/feedback", json={"query_id": r.json()["query_id"],
                                              "article_id": hits[0]["id"], "helpful": False})
                assert body["query_id"]
            c.app.state.engine.log.flush()
            report_json = c.get("/gaps", params={"include_resolved": "true"}).text
            report_csv = c.get("/gaps", params={"format": "csv", "include_resolved": "true"}).text
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)
    return settings, handler.lines, report_json, report_csv


class _Collect(logging.Handler):
    """Every log line of the service's side (the test's HTTP client logs its own requests)."""

    CLIENT = ("httpx", "httpcore")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(self.CLIENT):
            self.lines.append(self.format(record))


def test_no_personal_data_in_any_stored_row(logged):
    settings, *_ = logged
    db = sqlite3.connect(settings.gap_path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    dump = []
    for table in tables:
        for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 (names from the schema)
            dump += [str(v) for v in row if isinstance(v, str)]
    assert db.execute("SELECT COUNT(*) FROM queries").fetchone()[0] == 3 * len(PII)
    assert db.execute("SELECT COUNT(*) FROM queries WHERE ticket_id LIKE '%[%'").fetchone()[0]
    assert db.execute("SELECT COUNT(*) FROM queries WHERE filters LIKE '%[PHONE]%'").fetchone()[0]
    assert leaks("\n".join(dump)) == []


def test_no_personal_data_in_the_gap_report(logged):
    _, _, report_json, report_csv = logged
    assert json.loads(report_json)["topics"]
    assert "[PHONE]" in report_json and "[EMAIL]" in report_csv
    assert leaks(report_json) == [] and leaks(report_csv) == []


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_no_personal_data_in_kb_gaps(logged, fmt):
    settings, *_ = logged
    result = CliRunner().invoke(cli, ["gaps", "--format", fmt, "--all", "--index",
                                      str(settings.index)],
                                env={"KB_GAP_DB": str(settings.gap_path)})
    assert result.exit_code == 0, result.output
    if fmt != "table":  # the table shortens long texts
        assert "[PHONE]" in result.output and "[EMAIL]" in result.output
    assert leaks(result.output) == []


def test_no_personal_data_in_the_service_log(logged):
    _, lines, *_ = logged
    assert leaks("\n".join(lines)) == []


@pytest.mark.parametrize(("text", "secrets"), PII)
def test_no_personal_data_in_the_access_log(text, secrets):
    line = clean_target("/search?" + urlencode({"q": text, "k": 5}))
    assert not [f for s in secrets for f in forms(s) if f in line]
    assert line == "/search?q=" + redact(text).replace("\n", "%0A") + "&k=5"


def test_an_internal_error_logs_its_traceback_without_personal_data(settings, real_embedder,
                                                                    caplog, monkeypatch):
    with TestClient(create_app(settings, real_embedder), raise_server_exceptions=False) as c:
        def broken(article_id, audience="internal"):
            raise ValueError(f"cannot read stats of {article_id} for 13812345678 / a.b@c.com")

        monkeypatch.setattr(c.app.state.engine, "article_stats", broken)
        with caplog.at_level(logging.ERROR, logger="kb.service"):
            r = c.get("/articles/vpn-error-809/stats")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    text = caplog.text
    assert "Traceback" in text and "ValueError" in text and "in broken" in text
    assert "cannot read stats of vpn-error-809 for [PHONE] / [EMAIL]" in text
    assert "13812345678" not in text and "a.b@c.com" not in text


def test_a_ticket_id_holding_a_phone_number_is_stored_and_shown_redacted(settings,
                                                                          real_embedder):
    tickets = {"T-13800138000": "T-[PHONE]", "T-20261204-0012": "T-20261204-0012"}
    with TestClient(create_app(settings, real_embedder)) as c:
        for ticket in tickets:
            r = c.post("/suggest", json={"ticket_id": ticket, "subject": "会议室怎么预订",
                                         "description": "how do I book a meeting room"})
            assert r.status_code == 200 and r.json()["answered"] is False
        c.app.state.engine.log.flush()
        report = c.get("/gaps").json()
        report_csv = c.get("/gaps", params={"format": "csv"}).text
    shown = {t for topic in report["topics"] for t in topic["ticket_ids"]}
    assert shown == set(tickets.values())
    assert "13800138000" not in report_csv and "T-[PHONE]" in report_csv
    stored = sqlite3.connect(settings.gap_path).execute("SELECT ticket_id FROM queries")
    assert {row[0] for row in stored} == set(tickets.values())


def test_the_stored_vector_is_the_redacted_texts(settings, real_embedder):
    query = "会议室怎么预订 我的手机 13800138000 邮箱 zs@qq.com"
    with TestClient(create_app(settings, real_embedder)) as c:
        assert c.post("/search", json={"query": query}).json()["answered"] is False
        log = c.app.state.engine.log
        [stored] = log.unanswered()
    assert stored.query == "会议室怎么预订 我的手机 [PHONE] 邮箱 [EMAIL]"
    clean, raw = real_embedder.embed([stored.query, query])
    assert np.allclose(stored.vector, clean, atol=1e-4)
    assert not np.allclose(stored.vector, raw, atol=1e-3)
