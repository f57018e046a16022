"""A query log made by kb before Alembic (``PRAGMA user_version`` migrations in kb/gaps.py) is
taken over in place, by the service's start or by ``kb db upgrade``, without losing a row."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from kb.cli import app as cli
from kb.errors import NotAResult
from kb.storage import SqlStore, migrate

# The schema steps of kb/gaps.py as they were, verbatim.
LEGACY: list[str] = [
    # 1: queries and feedback
    """
    CREATE TABLE queries (
        id TEXT PRIMARY KEY,
        ts TEXT NOT NULL,
        channel TEXT NOT NULL,
        query TEXT NOT NULL,
        norm TEXT NOT NULL,
        lang TEXT NOT NULL,
        filters TEXT NOT NULL,
        ticket_id TEXT,
        answered INTEGER NOT NULL,
        confidence REAL NOT NULL,
        top_article TEXT,
        top_score REAL,
        neighbours TEXT NOT NULL,
        vector BLOB,
        index_version TEXT
    );
    CREATE INDEX queries_gap ON queries (answered, ts);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        query_id TEXT NOT NULL REFERENCES queries (id),
        article_id TEXT NOT NULL,
        helpful INTEGER NOT NULL,
        ts TEXT NOT NULL
    );
    CREATE INDEX feedback_article ON feedback (article_id);
    CREATE INDEX feedback_query ON feedback (query_id);
    """,
    # 2: a rebuild that answers a gap query records by what and when
    """
    ALTER TABLE queries ADD COLUMN resolved_by TEXT;
    ALTER TABLE queries ADD COLUMN resolved_at TEXT;
    """,
]


def legacy_log(path, version):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    for number, script in enumerate(LEGACY[:version], start=1):
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    rows = [("q1", "2026-11-01T09:00:00+00:00", "search", "vpn 809", "vpn809", 0, '["vpn"]'),
            ("q2", "2026-11-02T09:00:00+00:00", "suggest", "book a room", "bookaroom", 1,
             '["rooms", "desk"]')]
    for qid, ts, channel, query, norm, answered, neighbours in rows:
        db.execute("INSERT INTO queries (id, ts, channel, query, norm, lang, filters, ticket_id,"
                   " answered, confidence, top_article, top_score, neighbours, vector, "
                   "index_version) VALUES (?, ?, ?, ?, ?, 'en', '{}', NULL, ?, 0.5, NULL, NULL, "
                   "?, NULL, 'v1')", (qid, ts, channel, query, norm, answered, neighbours))
    votes = [("q2", "rooms", 1), ("q2", "rooms", 0), ("q2", "desk", 1), ("q1", "vpn", 0)]
    for n, (qid, article, helpful) in enumerate(votes):
        db.execute("INSERT INTO feedback (query_id, article_id, helpful, ts) VALUES (?, ?, ?, ?)",
                   (qid, article, helpful, f"2026-11-03T09:00:0{n}+00:00"))
    db.close()


@pytest.mark.parametrize("version", [1, 2])
def test_a_legacy_log_is_upgraded_in_place(tmp_path, version):
    path = tmp_path / "gaps.sqlite3"
    legacy_log(path, version)
    store = SqlStore(f"sqlite:///{path}")
    assert store.revision() == migrate.head()
    assert store.count() == 2
    [gap] = store.unanswered()
    assert (gap.id, gap.query, gap.audience, gap.results) == ("q1", "vpn 809", "internal",
                                                              ["vpn"])
    # Repeated votes from before became one: the last.
    stats = {s["article_id"]: (s["helpful"], s["not_helpful"]) for s in store.article_stats()}
    assert stats == {"rooms": (0, 1), "desk": (1, 0), "vpn": (0, 1)}
    store.feedback("q2", "rooms", True)  # a vote on an old query still updates
    assert store.article_stats("rooms")[0]["helpful"] == 1
    with pytest.raises(NotAResult):
        store.feedback("q2", "vpn", True)
    assert store.resolve("vpn 809", "vpn-error-809") == 1
    store.close()


def test_kb_db_upgrade_and_status(tmp_path, monkeypatch):
    path = tmp_path / "gaps.sqlite3"
    legacy_log(path, 2)
    monkeypatch.setenv("KB_GAP_DB", str(path))
    runner = CliRunner()
    status = runner.invoke(cli, ["db", "status"])
    assert status.exit_code == 0, status.output
    assert "revision: none" in status.output and "kb db upgrade" in status.output
    done = runner.invoke(cli, ["db", "upgrade"])
    assert done.exit_code == 0, done.output
    assert f"sqlite:///{path}: upgraded from no revision to {migrate.head()}" in done.output
    again = runner.invoke(cli, ["db", "upgrade"])
    assert "nothing to do" in again.output
    status = runner.invoke(cli, ["db", "status"])
    assert "queries: 2, keys: 0" in status.output


def test_kb_db_reports_an_unreachable_database(monkeypatch):
    monkeypatch.setenv("KB_DATABASE_URL", "postgresql://kb:secret@127.0.0.1:9/kb")
    monkeypatch.setenv("KB_DB_TIMEOUT", "1")
    done = CliRunner().invoke(cli, ["db", "upgrade"])
    assert done.exit_code == 2
    assert "locked or unreachable" in done.output and "secret" not in done.output


def test_kb_db_on_either_backend(database_url, monkeypatch):
    monkeypatch.setenv("KB_DATABASE_URL", database_url)
    runner = CliRunner()
    done = runner.invoke(cli, ["db", "upgrade"])
    assert done.exit_code == 0, done.output
    status = runner.invoke(cli, ["db", "status"])
    assert status.exit_code == 0, status.output
    assert f"revision: {migrate.head()}; latest {migrate.head()}" in status.output
    assert "queries: 0, keys: 0" in status.output
