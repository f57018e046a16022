"""The store on SQLAlchemy Core: SQLite (embedded, the default) or PostgreSQL (psycopg 3).

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE``: a transaction that reads and then writes cannot fail half-way because
another process wrote in between. PostgreSQL gets a lock timeout and a connect timeout of the
same length. Either way a locked or unreachable database is a ``StorageBusy`` within
``timeout`` seconds, never a request that hangs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from kb.errors import (
    InvalidQuery,
    KBError,
    KeyExists,
    NotAResult,
    StorageBusy,
    StorageUnusable,
    UnknownArticle,
    UnknownQuery,
)
from kb.keys import ApiKey
from kb.redact import redact, redact_identifier
from kb.storage import migrate
from kb.storage.base import (
    EVENT_KINDS,
    TOPIC_STATUSES,
    ArticleHealth,
    Decision,
    FeedbackLabel,
    GapEvent,
    LoggedQuery,
    TopicStatus,
    now,
)
from kb.storage.schema import api_keys, article_edits, events, feedback, gap_topics, queries
from kb.storage.writer import QueryWriter
from kb.text import normalize

log = logging.getLogger(__name__)

# Feedback may name a query another replica served a moment ago and has not stored yet: a
# query id this young that is not found yet is looked for again, for up to SETTLE seconds.
SETTLE = 3.0
# What SQLite says of a file that no retry will make usable.
UNUSABLE = {"SQLITE_NOTADB": "is not a database", "SQLITE_CORRUPT": "is a damaged database"}
QUERY_ID = re.compile(r"[0-9a-f]{8}[0-9a-f]{12}")


def new_query_id() -> str:
    """The creation second (hex) and 48 random bits: unique across replicas, and telling how
    young a query is without a lookup."""
    return f"{int(time.time()):08x}{secrets.token_hex(6)}"


def _age(query_id: str) -> float | None:
    if not QUERY_ID.fullmatch(query_id):
        return None
    return time.time() - int(query_id[:8], 16)


def normalized(text: str) -> str:
    """Grouping key: normalized, punctuation and spacing dropped."""
    return "".join(ch for ch in normalize(text) if ch.isalnum())


def engine_url(url: str) -> sa.URL:
    """``postgresql://`` means psycopg 3 here, not SQLAlchemy's default driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def sqlite_path(url: str | sa.URL) -> Path | None:
    """The file of a SQLite database URL (None: in memory, a ``file:`` URI, or a server)."""
    parsed = make_url(url) if isinstance(url, str) else url
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" \
            or name.startswith("file:"):
        return None
    return Path(name)


def _create_sqlite_file(url: sa.URL) -> None:
    """Made readable by this user only: it holds what customers asked."""
    path = sqlite_path(url)
    if path is None:
        return
    # SQLite would only say "unable to open database file", which reads like a busy database.
    if path.is_dir():
        raise StorageUnusable(f"the database {path} is a folder: KB_GAP_DB (or "
                              f"KB_DATABASE_URL) names the SQLite file itself, such as "
                              f"{path / 'gaps.sqlite3'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StorageUnusable(f"cannot create the database {path}: "
                              f"{exc.strerror or exc} ({exc.filename or path})") from None


def make_engine(url: str, timeout: float, *, immediate: bool = False) -> Engine:
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        _create_sqlite_file(parsed)
        engine = sa.create_engine(parsed, pool_timeout=timeout,
                                  connect_args={"timeout": timeout, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _connect(dbapi: Any, _: Any) -> None:
            dbapi.isolation_level = None  # transactions are begun below, not by the driver
            cur = dbapi.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA secure_delete = ON")  # purged text does not linger in free space
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise KBError(f"KB_DATABASE_URL: unsupported database {parsed.get_backend_name()!r}; "
                      "use sqlite:///PATH or postgresql://…")
    ms = int(timeout * 1000)
    return sa.create_engine(
        parsed, pool_pre_ping=True, pool_timeout=timeout,
        connect_args={"connect_timeout": max(2, math.ceil(timeout)),
                      "options": f"-c lock_timeout={ms}"})


class SqlStore:
    def __init__(self, url: str, *, timeout: float = 2.0, upgrade: bool = True) -> None:
        self.url = url
        self.timeout = timeout
        self._reads = make_engine(url, timeout)
        self._sqlite = self._reads.dialect.name == "sqlite"
        self._statements: dict[bool, dict[str, Any]] = {}
        self._writes = make_engine(url, timeout, immediate=True) if self._sqlite else self._reads
        if upgrade:
            self.upgrade()
        self._writer = QueryWriter(self._store_queries, where=shown_url(url))

    # -- plumbing -------------------------------------------------------------------------
    def upgrade(self, revision: str = "head") -> str | None:
        """Apply the migrations this database has not seen (waiting for another process
        that migrates it at the same moment)."""
        engine = make_engine(self.url, 60.0, immediate=True) if self._sqlite else self._writes
        try:
            with self._guard():
                return migrate.upgrade(engine, revision)
        finally:
            if engine is not self._writes:
                engine.dispose()

    def revision(self) -> str | None:
        with self._guard():
            return migrate.current(self._reads)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.TimeoutError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StorageBusy(f"the database is locked or unreachable ({reason}); try again "
                              "in a moment") from exc
        except sa.exc.DatabaseError as exc:
            # Only SQLite's verdict on the file itself; an integrity error is the caller's.
            problem = UNUSABLE.get(getattr(exc.orig, "sqlite_errorname", ""))
            if problem is None:
                raise
            raise StorageUnusable(f"{sqlite_path(self.url) or shown_url(self.url)} {problem} "
                                  f"(SQLite: {exc.orig}): KB_GAP_DB or KB_DATABASE_URL must "
                                  "name the query log's database") from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guard(), self._reads.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._guard(), self._writes.begin() as conn:
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        return (sqlite.insert if self._sqlite else postgresql.insert)(table)

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def flush(self, timeout: float | None = None) -> bool:
        return self._writer.flush(timeout)

    @property
    def queued(self) -> int:
        """Queries recorded and not stored yet."""
        return self._writer.pending

    def close(self) -> None:
        """Store what is queued, then let go of the connections (again: nothing to do)."""
        self._writer.close()
        self._reads.dispose()
        self._writes.dispose()

    # -- queries --------------------------------------------------------------------------
    def record(self, *, channel: str, query: str, lang: str, filters: dict, answered: bool,
               confidence: float, neighbours: list[str], top_score: float | None,
               vector: np.ndarray | None, index_version: str, ticket_id: str | None = None,
               audience: str = "internal", results: list[str] | None = None,
               outside_filters: str | None = None) -> str:
        query_id = new_query_id()
        blob = None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
        self._writer.put({
            "id": query_id, "ts": now(), "channel": channel, "audience": audience,
            "query": query, "lang": lang, "filters": filters, "ticket_id": ticket_id,
            "answered": bool(answered), "confidence": float(confidence),
            "top_score": top_score, "neighbours": list(neighbours[:3]),
            "results": list(results if results is not None else neighbours),
            "vector": blob, "index_version": index_version, "outside_filters": outside_filters,
        })
        return query_id

    def _store_queries(self, items: list[dict]) -> None:
        """The writer's transaction: the queries, redacted, and the articles each showed."""
        rows = [_row(item) for item in items]
        shown = [{"kind": "shown", "article_id": a, "query_id": r["id"], "ts": r["ts"]}
                 for r, item in zip(rows, items, strict=True) for a in item["results"][:3]]
        with self._write() as conn:
            conn.execute(queries.insert(), rows)
            if shown:
                conn.execute(events.insert(), shown)

    def count(self) -> int:
        self.flush(self.timeout)
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(queries)).scalar_one())

    def query(self, query_id: str) -> LoggedQuery | None:
        self.flush(self.timeout)
        with self._read() as conn:
            row = conn.execute(sa.select(*_COLUMNS).where(queries.c.id == query_id)).first()
        return _logged(row) if row is not None else None

    def _known_query(self, conn: Connection, query_id: str) -> sa.Row:
        """The query, waiting a moment for one another replica has just served."""
        columns = (queries.c.id, queries.c.results)
        row = conn.execute(sa.select(*columns).where(queries.c.id == query_id)).first()
        age = _age(query_id)
        deadline = time.monotonic() + SETTLE
        while row is None and age is not None and -60 < age < SETTLE + 30 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
            conn.rollback()  # a fresh snapshot
            row = conn.execute(sa.select(*columns).where(queries.c.id == query_id)).first()
        if row is None:
            raise UnknownQuery(f"unknown query_id {query_id!r}")
        return row

    def purge(self, days: int) -> int:
        cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat(
            timespec="seconds")
        with self._write() as conn:
            done = conn.execute(
                queries.update()
                .where(queries.c.ts < cutoff, queries.c.purged_at.is_(None))
                .values(query="", norm="", filters="{}", ticket_id=None, vector=None,
                        purged_at=now()))
        if done.rowcount:
            self._scrub()
        return done.rowcount

    def _scrub(self) -> None:
        """Old versions of purged rows, still in the journal (SQLite) or in dead tuples
        (PostgreSQL), are overwritten now rather than some day."""
        try:
            with self._guard():
                if self._sqlite:  # outside any transaction: the driver is in autocommit mode
                    raw = self._writes.raw_connection()
                    try:
                        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    finally:
                        raw.close()
                else:
                    with self._reads.connect() as conn:
                        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                            "VACUUM queries")
        except StorageBusy as exc:  # the next purge tries again
            log.warning("query log: could not scrub purged rows: %s", exc.message)

    # -- feedback and events ----------------------------------------------------------------
    def feedback(self, query_id: str, article_id: str, helpful: bool,
                 known_articles: set[str] | None = None) -> None:
        self.flush(self.timeout)  # this process's own queries, just served
        with self._read() as conn:
            row = self._known_query(conn, query_id)
        if article_id not in json.loads(row.results):
            # A returned article counts even if this replica's version has not got it yet.
            if known_articles is not None and article_id not in known_articles:
                raise UnknownArticle(f"unknown article_id {article_id!r}")
            raise NotAResult(f"article {article_id!r} is not among the results of query "
                             f"{query_id!r}: feedback is for what a search returned")
        vote = {"query_id": query_id, "article_id": article_id, "helpful": bool(helpful),
                "ts": now()}
        stmt = self._insert(feedback).values(vote)
        stmt = stmt.on_conflict_do_update(index_elements=["query_id", "article_id"],
                                          set_={"helpful": stmt.excluded.helpful,
                                                "ts": stmt.excluded.ts})
        with self._write() as conn:
            # A changed vote is a new row: a reader whose cursor is past the old one reads it.
            conn.execute(sa.delete(feedback).where(feedback.c.query_id == query_id,
                                                   feedback.c.article_id == article_id,
                                                   feedback.c.helpful != bool(helpful)))
            conn.execute(stmt)

    def record_event(self, kind: str, article_id: str | None,
                     query_id: str | None = None) -> None:
        if kind not in EVENT_KINDS:
            raise InvalidQuery(f"unknown event {kind!r}; one of {', '.join(EVENT_KINDS)}")
        if article_id is None and kind != "reported_missing":
            raise InvalidQuery(f"a {kind!r} event names an article")
        if kind == "reported_missing" and query_id is None:
            raise InvalidQuery("a 'reported_missing' event names the query reported")
        if query_id is not None:
            self.flush(self.timeout)
            with self._read() as conn:
                self._known_query(conn, query_id)
        with self._write() as conn:
            conn.execute(events.insert().values(kind=kind, article_id=article_id,
                                                query_id=query_id, ts=now()))
            if kind == "reported_missing":
                conn.execute(queries.update().where(queries.c.id == query_id)
                             .values(reported=True))

    def _votes(self, article_id: str | None, since: str | None = None) -> list[sa.Row]:
        helpful = sa.func.sum(sa.case((feedback.c.helpful, 1), else_=0))
        unhelpful = sa.func.sum(sa.case((feedback.c.helpful, 0), else_=1))
        stmt = sa.select(feedback.c.article_id, helpful, unhelpful, sa.func.max(feedback.c.ts))
        if article_id is not None:
            stmt = stmt.where(feedback.c.article_id == article_id)
        if since is not None:
            stmt = stmt.where(feedback.c.ts >= since)
        stmt = stmt.group_by(feedback.c.article_id).order_by(unhelpful.desc(),
                                                             feedback.c.article_id)
        with self._read() as conn:
            return list(conn.execute(stmt))

    def article_stats(self, article_id: str | None = None) -> list[dict]:
        return [{"article_id": a, "helpful": int(h), "not_helpful": int(n), "last_feedback": t}
                for a, h, n, t in self._votes(article_id)]

    def article_health(self, article_id: str | None = None,
                       since: str | None = None) -> list[ArticleHealth]:
        self.flush(self.timeout)
        # Counted from ``since`` on; the last time shown is the last ever, so that "not shown
        # for N days" does not depend on where the counting starts.
        counted = (sa.func.count() if since is None
                   else sa.func.sum(sa.case((events.c.ts >= since, 1), else_=0)))
        stmt = (sa.select(events.c.article_id, events.c.kind, counted, sa.func.max(events.c.ts))
                .where(events.c.article_id.is_not(None))
                .group_by(events.c.article_id, events.c.kind))
        if article_id is not None:
            stmt = stmt.where(events.c.article_id == article_id)
        health: dict[str, dict[str, Any]] = {}
        with self._read() as conn:
            for article, kind, n, last in conn.execute(stmt):
                entry = health.setdefault(article, {"article_id": article})
                entry[kind] = int(n)
                if kind == "shown":
                    entry["last_shown"] = last
        for article, helpful, unhelpful, last in self._votes(article_id, since):
            entry = health.setdefault(article, {"article_id": article})
            entry.update(helpful=int(helpful), not_helpful=int(unhelpful), last_feedback=last)
        return [ArticleHealth(**health[a]) for a in sorted(health)]

    def feedback_labels(self) -> list[FeedbackLabel]:
        self.flush(self.timeout)
        copied = (sa.select(events.c.query_id, events.c.article_id)
                  .where(events.c.kind == "copied", events.c.query_id.is_not(None)))
        labelled = sa.or_(queries.c.reported, queries.c.id.in_(sa.select(feedback.c.query_id)),
                          queries.c.id.in_(copied.with_only_columns(events.c.query_id)))
        stmt = (sa.select(queries.c.id, queries.c.query, queries.c.norm, queries.c.lang,
                          queries.c.reported)
                .where(labelled, queries.c.purged_at.is_(None))
                .order_by(queries.c.ts, queries.c.id))
        with self._read() as conn:
            votes: dict[str, dict[str, bool]] = {}
            for query_id, article, helpful in conn.execute(
                    sa.select(feedback.c.query_id, feedback.c.article_id, feedback.c.helpful)):
                votes.setdefault(query_id, {})[article] = bool(helpful)
            copies: dict[str, set[str]] = {}
            for query_id, article in conn.execute(copied):
                copies.setdefault(query_id, set()).add(article)
            rows = list(conn.execute(stmt))
        out = []
        for query_id, text, norm, lang, reported in rows:
            voted = votes.get(query_id, {})
            answers = {a for a, helpful in voted.items() if helpful} | {
                a for a in copies.get(query_id, ()) if voted.get(a, True)}
            if answers or reported:
                out.append(FeedbackLabel(query_id, text, norm, lang, tuple(sorted(answers))))
        return out

    # -- gaps -----------------------------------------------------------------------------
    def _queries(self, where: Sequence[Any], since: str | None) -> list[LoggedQuery]:
        self.flush(self.timeout)
        stmt = sa.select(*_COLUMNS).where(*where, queries.c.purged_at.is_(None))
        if since:
            stmt = stmt.where(queries.c.ts >= since)
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(queries.c.ts, queries.c.id))
            return [_logged(r) for r in rows]

    def unanswered(self, since: str | None = None) -> list[LoggedQuery]:
        return self._queries([sa.or_(sa.not_(queries.c.answered), queries.c.reported)], since)

    def not_helpful(self, since: str | None = None) -> list[tuple[LoggedQuery, str]]:
        self.flush(self.timeout)
        stmt = (sa.select(*_COLUMNS, feedback.c.article_id)
                .join_from(feedback, queries, queries.c.id == feedback.c.query_id)
                .where(sa.not_(feedback.c.helpful), queries.c.purged_at.is_(None)))
        if since:
            stmt = stmt.where(feedback.c.ts >= since)
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(feedback.c.ts, feedback.c.id))
            return [(_logged(r[:-1]), r[-1]) for r in rows]

    def _open(self) -> Any:
        return sa.and_(sa.not_(queries.c.answered), queries.c.resolved_at.is_(None),
                       queries.c.purged_at.is_(None))

    def open_gap_texts(self) -> list[str]:
        return sorted({text for text, _ in self.open_gaps()})

    def open_gaps(self) -> list[tuple[str, str]]:
        self.flush(self.timeout)
        stmt = (sa.select(queries.c.query, queries.c.audience).distinct()
                .where(self._open()).order_by(queries.c.query, queries.c.audience))
        with self._read() as conn:
            return [(q, a) for q, a in conn.execute(stmt)]

    def resolve(self, query: str, article_id: str, audience: str | None = None) -> int:
        stmt = queries.update().where(self._open(), queries.c.query == query)
        if audience is not None:
            stmt = stmt.where(queries.c.audience == audience)
        with self._write() as conn:
            return conn.execute(stmt.values(resolved_by=article_id, resolved_at=now())).rowcount

    def set_topic_status(self, topic_id: str, status: str,
                         article_id: str | None = None) -> TopicStatus:
        if status not in TOPIC_STATUSES:
            raise InvalidQuery(f"unknown topic status {status!r}; one of "
                               f"{', '.join(TOPIC_STATUSES)}")
        if (status == "answered") != (article_id is not None):
            raise InvalidQuery("a topic is marked answered by an article, and only then names "
                               "one")
        updated = now()
        values = {"id": topic_id, "status": status, "article_id": article_id, "updated": updated}
        stmt = self._insert(gap_topics).values(values)
        stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={
            k: getattr(stmt.excluded, k) for k in ("status", "article_id", "updated")})
        with self._write() as conn:
            conn.execute(stmt)
        return TopicStatus(topic_id, status, article_id, updated)

    def topic_statuses(self) -> dict[str, TopicStatus]:
        with self._read() as conn:
            rows = conn.execute(sa.select(gap_topics.c.id, gap_topics.c.status,
                                          gap_topics.c.article_id, gap_topics.c.updated))
            return {r[0]: TopicStatus(*r) for r in rows}

    # -- what the topic report reads incrementally (kb.topics) ------------------------------
    # PostgreSQL hands out sequence numbers before commit, so a query, a vote or an event
    # written by another replica may land behind the cursor: reads go back this far, and the
    # reader skips what it has seen (TopicIndex).
    OVERLAP = 1000

    def _arrival(self) -> Any:
        return sa.literal_column("queries.rowid" if self._sqlite else "queries.seq")

    def _gap_statements(self, audience: bool) -> dict[str, Any]:
        """gap_events' statements, built once: building them costs more than running them on
        a report's few new rows. ``audience``: only the queries logged for one."""
        built = self._statements.get(audience)
        if built is None:
            built = self._statements[audience] = self._build_gap_statements(audience)
        return built

    def _build_gap_statements(self, audience: bool) -> dict[str, Any]:
        """Per kind of event: the statement of its last row, and that of its rows after ``lo``."""
        arrival = self._arrival()
        lo, hi, limit = (sa.bindparam(name, type_=sa.Integer) for name in ("lo", "hi", "limit"))
        mine = queries.c.audience == sa.bindparam("audience") if audience else sa.true()
        return {
            "queries": (
                sa.select(sa.func.coalesce(sa.func.max(arrival), 0)).select_from(queries),
                sa.select(arrival, *_COLUMNS)
                .where(arrival > lo, arrival <= hi, queries.c.purged_at.is_(None),
                       queries.c.outside_filters.is_(None), mine)
                .order_by(arrival).limit(limit)),
            # votes: a not-helpful one marks a wrong answer, a helpful one a right answer
            "marks": (
                sa.select(sa.func.coalesce(sa.func.max(feedback.c.id), 0)),
                sa.select(feedback.c.id, feedback.c.helpful, feedback.c.article_id,
                          feedback.c.ts, *_COLUMNS)
                .join_from(feedback, queries, queries.c.id == feedback.c.query_id)
                .where(feedback.c.id > lo, feedback.c.id <= hi,
                       queries.c.purged_at.is_(None), mine)
                .order_by(feedback.c.id).limit(limit)),
            # queries an agent reported as missing since (gaps after all), or whose reply an
            # agent copied (answered after all)
            "reports": (
                sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0)),
                sa.select(events.c.id, events.c.kind, events.c.ts, *_COLUMNS)
                .join_from(events, queries, queries.c.id == events.c.query_id)
                .where(events.c.id > lo, events.c.id <= hi,
                       events.c.kind.in_(("reported_missing", "copied")),
                       queries.c.purged_at.is_(None), mine)
                .order_by(events.c.id).limit(limit)),
        }

    def gap_events(self, after: tuple[int, ...] = (0, 0, 0), limit: int = 20000,
                   audience: str | None = None) -> tuple[list[GapEvent], tuple[int, int, int]]:
        """Queries and agents' feedback logged after the cursor ``after`` (query order,
        feedback id, event id), oldest first, and the cursor to pass next. Answered queries
        come too (kind "answered"): the report weighs a question's gaps against its answers. A
        query reported as missing is a gap whatever the search decided; one voted helpful or
        whose reply was copied is answered (kind "confirmed"); one answered only outside its
        filters is not a gap of the knowledge base. Fewer than ``limit`` events: all
        there were. ``audience``: only the events of queries logged for it."""
        self.flush(self.timeout)  # this process's own queries, just served
        back = 0 if self._sqlite else self.OVERLAP
        found: dict[str, list[Any]] = {}
        ends = []
        with self._read() as conn:
            for (name, (last_row, rows_after)), done in zip(
                    self._gap_statements(audience is not None).items(), (*after, 0, 0, 0)[:3],
                    strict=True):
                # The end first: a row stored while reading is left for the next call.
                last = int(conn.execute(last_row).scalar_one())
                rows = list(conn.execute(rows_after, {
                    "lo": max(0, done - back), "hi": last, "limit": limit,
                    "audience": audience}))
                if len(rows) == limit:
                    last = int(rows[-1][0])
                found[name] = rows
                ends.append(max(last, done))
        out = []
        for r in found["queries"]:
            q = _logged(r[1:])
            kind = "unanswered" if (not q.answered or q.reported) else "answered"
            out.append(GapEvent(int(r[0]), kind, q, None, q.ts))
        out += [GapEvent(int(r[0]), "confirmed" if r[1] else "not_helpful", _logged(r[4:]),
                         None if r[1] else r[2], r[3])
                for r in found["marks"]]
        out += [GapEvent(int(r[0]), "reported" if r[1] == "reported_missing" else "confirmed",
                         _logged(r[3:]), None, r[2])
                for r in found["reports"]]
        return out, (ends[0], ends[1], ends[2])

    def resolution_mark(self) -> tuple[int, str | None]:
        with self._read() as conn:
            count, last = conn.execute(
                sa.select(sa.func.count(), sa.func.max(queries.c.resolved_at))
                .where(queries.c.resolved_at.is_not(None))).one()
        return int(count), last

    def resolutions(self) -> dict[str, tuple[str, str]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(queries.c.id, queries.c.resolved_by,
                                          queries.c.resolved_at)
                                .where(queries.c.resolved_at.is_not(None)))
            return {r[0]: (r[1], r[2]) for r in rows}

    def feedback_times(self) -> dict[str, list[tuple[str, bool]]]:
        out: dict[str, list[tuple[str, bool]]] = {}
        with self._read() as conn:
            for article, ts, helpful in conn.execute(
                    sa.select(feedback.c.article_id, feedback.c.ts, feedback.c.helpful)
                    .order_by(feedback.c.ts, feedback.c.id)):
                out.setdefault(article, []).append((ts, bool(helpful)))
        return out

    def record_edits(self, article_ids: list[str], version: str) -> None:
        """Remember that ``version`` changed these articles (several replicas may say so)."""
        if not article_ids:
            return
        stmt = self._insert(article_edits).values(
            [{"article_id": a, "version": version, "ts": now()} for a in article_ids])
        with self._write() as conn:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["article_id", "version"]))

    def edits(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        with self._read() as conn:
            for article, ts in conn.execute(sa.select(article_edits.c.article_id,
                                                      article_edits.c.ts)
                                            .order_by(article_edits.c.ts)):
                out.setdefault(article, []).append(ts)
        return out

    _ACTIONS = {"dismissed": "dismissed", "answered": "answered", "reopened": "open"}

    def decide(self, topic_id: str, action: str, norms: list[str],
               article_id: str | None = None) -> Decision:
        """A writer's decision on a topic, with its phrasings: it follows them into whatever
        topic they are in later."""
        if action not in self._ACTIONS:
            raise InvalidQuery(f"unknown decision {action!r}; one of {', '.join(self._ACTIONS)}")
        status = self.set_topic_status(topic_id, self._ACTIONS[action],
                                       article_id if action == "answered" else None)
        with self._write() as conn:
            conn.execute(gap_topics.update().where(gap_topics.c.id == topic_id)
                         .values(norms=json.dumps(sorted(norms), ensure_ascii=False)))
        return Decision(0, topic_id, action, status.article_id, tuple(sorted(norms)),
                        status.updated)

    def decisions(self) -> list[Decision]:
        """The latest decision on each topic, oldest first."""
        actions = {v: k for k, v in self._ACTIONS.items()}
        with self._read() as conn:
            rows = list(conn.execute(sa.select(gap_topics.c.id, gap_topics.c.status,
                                               gap_topics.c.article_id, gap_topics.c.norms,
                                               gap_topics.c.updated)
                                     .order_by(gap_topics.c.updated, gap_topics.c.id)))
        return [Decision(n, r[0], actions.get(r[1], r[1]), r[2], tuple(json.loads(r[3] or "[]")),
                         r[4]) for n, r in enumerate(rows, 1)]

    # -- keys -----------------------------------------------------------------------------
    _KEY = (api_keys.c.id, api_keys.c.name, api_keys.c.role, api_keys.c.audience,
            api_keys.c.created, api_keys.c.revoked)

    def add_key(self, key: ApiKey, secret_hash: str) -> None:
        try:
            with self._write() as conn:
                conn.execute(api_keys.insert().values(
                    id=key.id, name=key.name, role=key.role, audience=key.audience,
                    created=key.created, revoked=key.revoked, secret_hash=secret_hash))
        except sa.exc.IntegrityError:
            raise KeyExists(f"a key named {key.name!r} (or with id {key.id!r}) exists; revoke "
                            "it first or choose another name") from None

    def keys(self) -> list[ApiKey]:
        with self._read() as conn:
            rows = conn.execute(sa.select(*self._KEY).order_by(api_keys.c.created,
                                                               api_keys.c.name))
            return [ApiKey(*r) for r in rows]

    def revoke_key(self, name_or_id: str) -> bool:
        stmt = (api_keys.update()
                .where(sa.or_(api_keys.c.id == name_or_id, api_keys.c.name == name_or_id),
                       api_keys.c.revoked.is_(None))
                .values(revoked=now()))
        with self._write() as conn:
            return conn.execute(stmt).rowcount > 0

    def key_by_hash(self, secret_hash: str) -> ApiKey | None:
        with self._read() as conn:
            row = conn.execute(sa.select(*self._KEY)
                               .where(api_keys.c.secret_hash == secret_hash)).first()
        return ApiKey(*row) if row is not None else None


_COLUMNS = (queries.c.id, queries.c.ts, queries.c.channel, queries.c.query, queries.c.norm,
            queries.c.lang, queries.c.filters, queries.c.ticket_id, queries.c.top_article,
            queries.c.top_score, queries.c.neighbours, queries.c.vector, queries.c.resolved_by,
            queries.c.resolved_at, queries.c.audience, queries.c.results, queries.c.answered,
            queries.c.reported, queries.c.confidence)


def _logged(row: Sequence[Any]) -> LoggedQuery:
    (qid, ts, channel, query, norm, lang, filters, ticket, top, score, neigh, blob,
     resolved_by, resolved_at, audience, results, answered, reported, confidence) = row
    vector = np.frombuffer(blob, dtype=np.float32) if blob else None
    return LoggedQuery(qid, ts, channel, query, norm, lang, json.loads(filters), ticket, top,
                       score, json.loads(neigh), vector, resolved_by, resolved_at, audience,
                       json.loads(results), bool(answered), bool(reported),
                       None if confidence is None else float(confidence))


def _redacted(value: Any) -> Any:
    """Filter values are free text too (a product, a tag): redacted like the query."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def _row(item: dict) -> dict:
    """The stored row of one recorded query: redacted, and normalised for grouping."""
    clean = redact(item["query"])
    ticket = item["ticket_id"]
    return {
        "id": item["id"], "ts": item["ts"], "channel": item["channel"],
        "audience": item["audience"], "query": clean, "norm": normalized(clean),
        "lang": item["lang"],
        "filters": json.dumps(_redacted(item["filters"]), ensure_ascii=False),
        "ticket_id": redact_identifier(ticket) if ticket else None,
        "answered": item["answered"],
        "confidence": item["confidence"],
        "top_article": item["neighbours"][0] if item["neighbours"] else None,
        "top_score": item["top_score"], "neighbours": json.dumps(item["neighbours"]),
        "results": json.dumps(item["results"]), "vector": item["vector"],
        "index_version": item["index_version"], "resolved_by": None, "resolved_at": None,
        "reported": False, "purged_at": None, "outside_filters": item.get("outside_filters"),
    }
