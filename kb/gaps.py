"""The query log in SQLite: every query (redacted), feedback, and which gaps a rebuild resolved.

Safe with several server processes writing at once: WAL journal, a busy timeout, and short
transactions. The schema moves forward by numbered migrations recorded in ``user_version``.

Queries are stored by a writer thread, not on the request's path: redaction, normalisation and
the insert took about 0.3 ms of each search, and more whenever SQLite checkpoints its journal.
Every read through the same ``GapLog`` waits for the queries it was given first, so feedback on
a result just served finds its query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.errors import UnknownArticle, UnknownQuery
from kb.keys import ApiKey
from kb.redact import redact
from kb.text import normalize

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
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
    # 3: API keys (only a hash of each), and the audience each query was asked for
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        audience TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        revoked TEXT
    );
    ALTER TABLE queries ADD COLUMN audience TEXT NOT NULL DEFAULT 'internal';
    """,
]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class LoggedQuery:
    id: str
    ts: str
    channel: str
    query: str
    norm: str
    lang: str
    filters: dict
    ticket_id: str | None
    top_article: str | None
    top_score: float | None
    neighbours: list[str]
    vector: np.ndarray | None
    resolved_by: str | None = None
    resolved_at: str | None = None
    audience: str = "internal"


class GapLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._queue: queue.Queue[tuple | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        migrate(self._db())

    def _db(self) -> sqlite3.Connection:
        """This thread's connection, kept open: connecting per request costs more than the
        insert. Autocommit mode, so every statement is its own short transaction."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """The connection, once the queries recorded before are stored."""
        self.flush()
        yield self._db()

    def record(
        self, *, channel: str, query: str, lang: str, filters: dict, answered: bool,
        confidence: float, neighbours: list[str], top_score: float | None,
        vector: np.ndarray | None, index_version: str, ticket_id: str | None = None,
        audience: str = "internal",
    ) -> str:
        """Queue one query for the writer, which redacts and stores it; returns its query id."""
        query_id = secrets.token_hex(8)
        blob = None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
        self._start_writer()
        self._queue.put((query_id, now(), channel, query, lang, filters, ticket_id, answered,
                         confidence, neighbours, top_score, blob, index_version, audience))
        return query_id

    def flush(self) -> None:
        """Wait until every query recorded so far is stored (or its failure logged)."""
        self._queue.join()

    def close(self) -> None:
        """Store what is queued and stop the writer."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join()

    def _start_writer(self) -> None:
        if self._writer is None:
            with self._writer_lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write, name="kb-gap-log",
                                                    daemon=True)
                    self._writer.start()

    def _write(self) -> None:
        """Store queued queries, all that queued up together in one transaction."""
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            items = [item for item in batch if item is not None]
            try:
                if items:
                    db = self._db()
                    with db:  # one transaction
                        db.execute("BEGIN")
                        db.executemany(_INSERT, [_row(item) for item in items])
            except Exception as exc:  # the service keeps answering; the log says what was lost
                log.error("could not store %d queries in the query log %s: %s: %s", len(items),
                          self.path, type(exc).__name__, exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def feedback(self, query_id: str, article_id: str, helpful: bool,
                 known_articles: set[str] | None = None) -> None:
        with self._connect() as db:
            if db.execute("SELECT 1 FROM queries WHERE id = ?", (query_id,)).fetchone() is None:
                raise UnknownQuery(f"unknown query_id {query_id!r}")
            if known_articles is not None and article_id not in known_articles:
                raise UnknownArticle(f"unknown article_id {article_id!r}")
            db.execute("INSERT INTO feedback (query_id, article_id, helpful, ts) "
                       "VALUES (?, ?, ?, ?)", (query_id, article_id, int(helpful), now()))

    def article_stats(self, article_id: str | None = None) -> list[dict]:
        sql = ("SELECT article_id, SUM(helpful), SUM(1 - helpful), MAX(ts) FROM feedback "
               + ("WHERE article_id = ? " if article_id else "")
               + "GROUP BY article_id ORDER BY SUM(1 - helpful) DESC, article_id")
        with self._connect() as db:
            rows = db.execute(sql, (article_id,) if article_id else ()).fetchall()
        return [{"article_id": a, "helpful": int(h), "not_helpful": int(n), "last_feedback": t}
                for a, h, n, t in rows]

    def unanswered(self, since: str | None = None,
                   audience: str | None = None) -> list[LoggedQuery]:
        """Unanswered queries; ``audience``: only those asked on that audience's channels."""
        return self._select("answered = 0", since, audience)

    def not_helpful(self, since: str | None = None,
                    audience: str | None = None) -> list[tuple[LoggedQuery, str]]:
        """Queries whose suggested article an agent marked not helpful, with that article."""
        cols = ", ".join(f"q.{c}" for c in _COLUMNS)
        sql = (f"SELECT {cols}, f.article_id FROM feedback f JOIN queries q ON q.id = f.query_id "
               "WHERE f.helpful = 0" + (" AND f.ts >= ?" if since else "")
               + (" AND q.audience = ?" if audience else "") + " ORDER BY f.ts")
        args = tuple(a for a in (since, audience) if a)
        with self._connect() as db:
            rows = db.execute(sql, args).fetchall()
        return [(_logged(r[:-1]), r[-1]) for r in rows]

    def open_gap_texts(self) -> list[str]:
        return list(dict.fromkeys(text for text, _ in self.open_gaps()))

    def open_gaps(self) -> list[tuple[str, str]]:
        """(query text, audience) of every open gap: a re-check searches each for the audience
        it was asked for."""
        with self._connect() as db:
            rows = db.execute("SELECT DISTINCT query, audience FROM queries WHERE answered = 0 "
                              "AND resolved_at IS NULL").fetchall()
        return [(r[0], r[1]) for r in rows]

    def resolve(self, query: str, article_id: str, audience: str | None = None) -> int:
        """Mark the open gaps of ``query`` (asked for ``audience``, or any) answered by
        ``article_id``."""
        with self._connect() as db:
            cur = db.execute("UPDATE queries SET resolved_by = ?, resolved_at = ? WHERE query = ? "
                             "AND answered = 0 AND resolved_at IS NULL"
                             + (" AND audience = ?" if audience else ""),
                             (article_id, now(), query, *((audience,) if audience else ())))
            return cur.rowcount

    def _select(self, where: str, since: str | None,
                audience: str | None = None) -> list[LoggedQuery]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM queries WHERE {where}"
        args: tuple = ()
        if since:
            sql += " AND ts >= ?"
            args = (since,)
        if audience:
            sql += " AND audience = ?"
            args += (audience,)
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY ts", args).fetchall()
        return [_logged(r) for r in rows]

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM queries").fetchone()[0])

    # API keys: written at once (not through the query writer), read on every request.

    def add_key(self, key: ApiKey, secret_hash: str) -> None:
        self._db().execute(
            "INSERT INTO api_keys (id, name, role, audience, secret_hash, created, revoked) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key.id, key.name, key.role, key.audience, secret_hash, key.created, key.revoked))

    def keys(self) -> list[ApiKey]:
        rows = self._db().execute(f"SELECT {_KEY_COLUMNS} FROM api_keys "
                                  "ORDER BY created, name").fetchall()
        return [ApiKey(*r) for r in rows]

    def revoke_key(self, name_or_id: str) -> bool:
        cur = self._db().execute("UPDATE api_keys SET revoked = ? WHERE (name = ? OR id = ?) "
                                 "AND revoked IS NULL", (now(), name_or_id, name_or_id))
        return cur.rowcount > 0

    def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        row = self._db().execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?",
                                 (secret_hash,)).fetchone()
        return ApiKey(*row) if row else None


_KEY_COLUMNS = "id, name, role, audience, created, revoked"


_COLUMNS = ("id", "ts", "channel", "query", "norm", "lang", "filters", "ticket_id",
            "top_article", "top_score", "neighbours", "vector", "resolved_by", "resolved_at",
            "audience")


def _logged(row: tuple) -> LoggedQuery:
    (qid, ts, channel, query, norm, lang, filters, ticket, top, score, neigh, blob,
     resolved_by, resolved_at, audience) = row
    vector = np.frombuffer(blob, dtype=np.float32) if blob else None
    return LoggedQuery(qid, ts, channel, query, norm, lang, json.loads(filters), ticket, top,
                       score, json.loads(neigh), vector, resolved_by, resolved_at, audience)


_INSERT = ("INSERT INTO queries (id, ts, channel, query, norm, lang, filters, ticket_id, answered, "
           "confidence, top_article, top_score, neighbours, vector, index_version, audience) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _row(item: tuple) -> tuple:
    """The stored row of one recorded query: redacted, and normalised for grouping."""
    (query_id, ts, channel, query, lang, filters, ticket_id, answered, confidence, neighbours,
     top_score, blob, index_version, audience) = item
    clean = redact(query)
    return (query_id, ts, channel, clean, _norm(clean), lang,
            json.dumps(filters, ensure_ascii=False), redact(ticket_id) if ticket_id else None,
            int(answered), confidence, neighbours[0] if neighbours else None, top_score,
            json.dumps(neighbours), blob, index_version, audience)


def _norm(text: str) -> str:
    """Grouping key: normalized, punctuation and spacing dropped."""
    return "".join(ch for ch in normalize(text) if ch.isalnum())


def migrate(db: sqlite3.Connection) -> int:
    """Apply the migrations this database has not seen; returns the resulting version."""
    db.execute("PRAGMA busy_timeout = 30000")
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait and then see it done
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
