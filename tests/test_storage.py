"""One suite, run on SQLite and on PostgreSQL (``database_url`` is parametrised in
tests/postgres.py): queries, feedback, events, gaps, topics, keys, retention, busy databases."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sqlite3
import threading

import numpy as np
import pytest
import sqlalchemy as sa

import kb.storage.sql as sql
from kb.errors import (
    InvalidQuery,
    KeyExists,
    NotAResult,
    StorageBusy,
    StorageUnusable,
    UnknownArticle,
    UnknownQuery,
)
from kb.keys import ApiKey
from kb.storage import SqlStore, migrate
from tests import storage_worker


@pytest.fixture
def store(database_url):
    s = SqlStore(database_url)
    yield s
    s.close()


def record(store, query, answered=False, channel="search", **kw):
    results = kw.pop("results", ["a1", "a2", "a3", "a4"])
    return store.record(channel=channel, query=query, lang="zh", filters=kw.pop("filters", {}),
                        answered=answered, confidence=0.1, neighbours=results[:3],
                        top_score=0.2, vector=kw.pop("vector", None), index_version="v1",
                        results=results, **kw)


def raw(database_url, statement, **params):
    engine = sa.create_engine(sql.engine_url(database_url))
    try:
        with engine.begin() as conn:
            return list(conn.execute(sa.text(statement), params))
    finally:
        engine.dispose()


def test_schema_is_migrated_once(database_url):
    SqlStore(database_url).close()
    again = SqlStore(database_url)  # a second open applies nothing twice
    assert again.revision() == migrate.head()
    again.close()
    assert raw(database_url, "SELECT version_num FROM alembic_version") == [(migrate.head(),)]


def test_the_migrations_make_the_tables_the_code_uses(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from kb.storage.schema import metadata

    SqlStore(database_url).close()
    engine = sa.create_engine(sql.engine_url(database_url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    # Indexes are the migrations' business alone; tables, columns and types must agree.
    assert [d for d in diff if d[0] not in ("add_index", "remove_index")] == []


def test_migrations_go_down_and_up_again(database_url):
    store = SqlStore(database_url)
    record(store, "kept across")
    store.flush()
    engine = sql.make_engine(database_url, 10, immediate=True)
    assert migrate.downgrade(engine, "0001") == "0001"
    assert migrate.upgrade(engine) == migrate.head()
    engine.dispose()
    assert [q.query for q in store.unanswered()] == ["kept across"]
    store.close()


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path):
    path = tmp_path / "new" / "g.sqlite3"
    SqlStore(f"sqlite:///{path}").close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_personal_data_is_redacted_before_storage(store, database_url):
    record(store, "张先生 13800138000 邮箱 zhang@example.com 退款",
           ticket_id="T-1 zhang@example.com", filters={"product": "call 13912345678"})
    store.flush()
    [row] = store.unanswered()
    assert "[PHONE]" in row.query and "[EMAIL]" in row.query and row.ticket_id == "T-1 [EMAIL]"
    assert row.filters == {"product": "call [PHONE]"}
    stored = str(raw(database_url, "SELECT * FROM queries"))
    for secret in ("13800138000", "zhang@example.com", "13912345678"):
        assert secret not in stored


def test_queries_are_stored_by_the_writer_and_kept_on_close(database_url):
    store = SqlStore(database_url)
    ids = [record(store, f"query {i}") for i in range(50)]
    assert len(set(ids)) == 50  # ids are handed out before the rows are stored
    assert store.count() == 50  # a read through the same store waits for them
    ids += [record(store, f"more {i}") for i in range(50)]
    store.close()
    again = SqlStore(database_url)
    assert again.count() == 100 and again.query(ids[-1]).query == "more 49"
    again.close()


def test_a_row_that_cannot_be_stored_takes_no_other_row_with_it(store, caplog):
    for i in range(20):  # a burst: the writer stores them in batches
        record(store, "lone surrogate \ud800" if i == 7 else f"fine {i}")
    store.flush()
    assert "could not store 1 queries" in caplog.text
    assert sorted(q.query for q in store.unanswered()) == sorted(
        f"fine {i}" for i in range(20) if i != 7)


def test_only_unanswered_queries_are_gaps(store):
    record(store, "answered one", answered=True)
    record(store, "gap one", vector=np.ones(4, dtype=np.float32))
    [gap] = store.unanswered()
    assert gap.query == "gap one" and gap.vector.tolist() == [1, 1, 1, 1]
    assert gap.audience == "internal" and gap.results == ["a1", "a2", "a3", "a4"]
    assert store.count() == 2


def test_feedback_is_one_vote_per_query_and_returned_article(store):
    qid = record(store, "vpn", answered=True)
    with pytest.raises(UnknownQuery):
        store.feedback("missing", "a1", True)
    with pytest.raises(UnknownArticle):
        store.feedback(qid, "nope", True, known_articles={"a1", "a4", "zz"})
    with pytest.raises(NotAResult, match="not among the results"):
        store.feedback(qid, "zz", True, known_articles={"a1", "a4", "zz"})
    store.feedback(qid, "a1", True)
    store.feedback(qid, "a1", False)  # a repeat replaces the vote
    store.feedback(qid, "a4", False)  # beyond the top 3, still returned
    stats = {s["article_id"]: s for s in store.article_stats()}
    assert (stats["a1"]["helpful"], stats["a1"]["not_helpful"]) == (0, 1)
    assert [(q.query, a) for q, a in store.not_helpful()] == [("vpn", "a1"), ("vpn", "a4")]
    assert store.article_stats("a4") == [{"article_id": "a4", "helpful": 0, "not_helpful": 1,
                                          "last_feedback": stats["a4"]["last_feedback"]}]


def test_feedback_waits_for_a_query_another_replica_just_served(database_url):
    serving, other = SqlStore(database_url), SqlStore(database_url)
    gate = threading.Event()
    slow = serving._store_queries
    serving._writer._write = lambda rows: gate.wait() and slow(rows)  # type: ignore[func-returns-value]
    qid = record(serving, "printer offline")
    threading.Timer(0.3, gate.set).start()
    other.feedback(qid, "a2", True)  # not stored yet when asked: found a moment later
    assert other.article_stats("a2")[0]["helpful"] == 1
    serving.close()
    other.close()


def test_events_make_each_articles_health(store):
    qid = record(store, "copy the refund reply", answered=True, results=["r1", "r2", "r3", "r4"])
    record(store, "refund again", answered=True, results=["r2", "r1"])
    store.record_event("opened", "r1", qid)
    store.record_event("copied", "r1", qid)
    store.record_event("opened", "r9")  # from an article page, with no query
    store.feedback(qid, "r1", True)
    health = {h.article_id: h for h in store.article_health()}
    assert (health["r1"].shown, health["r1"].opened, health["r1"].copied,
            health["r1"].helpful) == (2, 1, 1, 1)
    assert health["r3"].shown == 1 and "r4" not in health  # shown: in a top 3
    assert health["r9"].opened == 1 and health["r9"].shown == 0 and health["r9"].last_shown is None
    assert health["r2"].last_shown is not None
    assert [h.article_id for h in store.article_health("r1")] == ["r1"]
    with pytest.raises(InvalidQuery):
        store.record_event("liked", "r1")
    with pytest.raises(UnknownQuery):
        store.record_event("opened", "r1", "0000000000000000ffff")


def test_article_health_counts_from_since_and_keeps_the_last_time_shown(store, monkeypatch):
    monkeypatch.setattr(sql, "now", lambda: "2026-01-05T10:00:00+00:00")
    old = record(store, "refund", answered=True, results=["r1", "r2"])
    store.feedback(old, "r1", False)
    store.record_event("opened", "r2", old)
    monkeypatch.undo()
    new = record(store, "refund again", answered=True, results=["r1"])
    store.feedback(new, "r1", True)
    ever = {h.article_id: h for h in store.article_health()}
    recent = {h.article_id: h for h in store.article_health(since="2026-02-01T00:00:00")}
    assert (ever["r1"].shown, ever["r1"].helpful, ever["r1"].not_helpful) == (2, 1, 1)
    assert (recent["r1"].shown, recent["r1"].helpful, recent["r1"].not_helpful) == (1, 1, 0)
    assert (recent["r2"].shown, recent["r2"].opened) == (0, 0)
    assert recent["r2"].last_shown == ever["r2"].last_shown == "2026-01-05T10:00:00+00:00"
    assert [h.article_id for h in store.article_health("r1", since="2026-02-01")] == ["r1"]


def test_a_query_reported_missing_is_a_gap(store):
    qid = record(store, "where is the holiday calendar", answered=True)
    assert store.unanswered() == []
    store.record_event("reported_missing", None, qid)
    [gap] = store.unanswered()
    assert gap.id == qid and gap.reported and gap.answered
    assert store.article_health() and store.open_gap_texts() == []  # no re-check resolves it


def test_resolving_marks_open_gaps_of_an_audience(store):
    record(store, "book a room")
    record(store, "book a room")
    record(store, "book a room", audience="public")
    assert store.open_gap_texts() == ["book a room"]
    assert store.open_gaps() == [("book a room", "internal"), ("book a room", "public")]
    assert store.resolve("book a room", "rooms-sop", audience="internal") == 2
    assert store.open_gaps() == [("book a room", "public")]
    assert store.resolve("book a room", "rooms-faq") == 1
    assert store.open_gap_texts() == []
    assert {q.resolved_by for q in store.unanswered()} == {"rooms-faq", "rooms-sop"}


def test_writers_decide_on_gap_topics(store):
    store.set_topic_status("t1", "dismissed")
    store.set_topic_status("t2", "answered", "rooms-faq")
    store.set_topic_status("t1", "open")
    statuses = store.topic_statuses()
    assert (statuses["t1"].status, statuses["t2"].status, statuses["t2"].article_id) == (
        "open", "answered", "rooms-faq")
    with pytest.raises(InvalidQuery):
        store.set_topic_status("t3", "answered")
    with pytest.raises(InvalidQuery):
        store.set_topic_status("t3", "closed")


def key(name, id_, created="2026-12-01T00:00:00+00:00", audience="internal"):
    return ApiKey(id=id_, name=name, role="agent", audience=audience, created=created,
                  revoked=None)


def test_keys_are_added_listed_found_by_hash_and_revoked(store):
    store.add_key(key("desk", "k1"), "hash-1")
    store.add_key(key("portal", "k2", "2026-12-02T00:00:00+00:00", "public"), "hash-2")
    assert [k.name for k in store.keys()] == ["desk", "portal"]
    assert store.key_by_hash("hash-2") == key("portal", "k2", "2026-12-02T00:00:00+00:00",
                                               "public")
    assert store.key_by_hash("nope") is None
    with pytest.raises(KeyExists):
        store.add_key(key("desk", "k3"), "hash-3")  # a live key has that name
    with pytest.raises(KeyExists):
        store.add_key(key("other", "k4"), "hash-1")
    assert store.revoke_key("desk") and not store.revoke_key("desk")
    assert store.key_by_hash("hash-1").revoked is not None
    store.add_key(key("desk", "k5"), "hash-5")  # a revoked key's name is free again
    assert store.revoke_key("k2") and not store.revoke_key("nobody")
    live = [k.id for k in store.keys() if k.revoked is None]
    assert live == ["k5"]


def test_retention_removes_old_text_and_keeps_the_counts(store, database_url, monkeypatch):
    monkeypatch.setattr(sql, "now", lambda: "2026-01-05T10:00:00+00:00")
    old = record(store, "old secret question")
    store.feedback(old, "a1", False)
    monkeypatch.undo()
    record(store, "new question")
    assert store.purge(90) == 1
    assert store.purge(90) == 0
    assert [q.query for q in store.unanswered()] == ["new question"]
    assert store.not_helpful() == []  # its text is gone: it cannot be grouped any more
    assert store.count() == 2
    assert store.article_stats("a1")[0]["not_helpful"] == 1
    assert {h.article_id: h.shown for h in store.article_health()}["a1"] == 2
    kept = raw(database_url, "SELECT query, norm, vector, purged_at FROM queries WHERE id = :i",
               i=old)
    assert kept[0][:3] == ("", "", None) and kept[0][3] is not None
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        data = b"".join(open(p, "rb").read() for p in (path, path + "-wal")
                        if os.path.exists(p))
        assert b"old secret question" not in data


def hold_write_lock(database_url):
    """Another process's long write transaction, until the returned function is called."""
    if database_url.startswith("sqlite"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        return lambda: (db.execute("ROLLBACK"), db.close())
    import psycopg

    conn = psycopg.connect(database_url)
    conn.execute("LOCK TABLE queries, feedback, events IN EXCLUSIVE MODE")
    return lambda: (conn.rollback(), conn.close())


def test_a_locked_database_fails_fast_and_loses_no_query(database_url, caplog):
    store = SqlStore(database_url, timeout=0.3)
    qid = record(store, "before the lock", answered=True)
    store.flush()
    release = hold_write_lock(database_url)
    try:
        with pytest.raises(StorageBusy) as busy:
            store.feedback(qid, "a1", True)
        assert busy.value.status == 503 and busy.value.retry_after > 0
        with caplog.at_level(logging.WARNING):
            waiting = [record(store, f"during the lock {i}") for i in range(5)]
            assert not store.flush(timeout=0.5)  # kept in memory, not lost
    finally:
        release()
    assert store.flush(timeout=30)
    assert all(store.query(q) is not None for q in waiting)
    store.feedback(qid, "a1", True)
    store.close()


def test_an_unreachable_server_is_busy_not_a_hang():
    with socket_port() as port:
        with pytest.raises(StorageBusy, match="unreachable"):
            SqlStore(f"postgresql://kb@127.0.0.1:{port}/kb", timeout=1)


def test_a_file_that_is_not_a_database_is_unusable_not_busy(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    for upgrade in (True, False):  # kb serve and kb gaps migrate first; kb db status does not
        with pytest.raises(StorageUnusable, match=f"{path} is not a database") as caught:
            SqlStore(f"sqlite:///{path}", upgrade=upgrade).revision()
        assert "try again" not in caught.value.message
    assert path.read_text().startswith("not a database")  # left as it was


def test_a_folder_named_as_the_database_is_unusable_not_busy(tmp_path):
    with pytest.raises(StorageUnusable, match=f"the database {tmp_path} is a folder"):
        SqlStore(f"sqlite:///{tmp_path}")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageUnusable, match="cannot create the database .*Not a directory"):
        SqlStore(f"sqlite:///{blocker}/sub/g.sqlite3")


class socket_port:
    """A port nothing listens on, for as long as it is held."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self.sock.close()


def test_concurrent_processes_lose_nothing(database_url):
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=storage_worker.write, args=(database_url, w, 40)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    store = SqlStore(database_url)
    assert store.count() == 120
    assert len({q.query for q in store.unanswered()}) == 120
    assert sum(s["helpful"] + s["not_helpful"] for s in store.article_stats()) == 120
    store.close()


def test_gap_events_of_one_audience(store):
    record(store, "internal one")
    public = record(store, "public one", audience="public")
    qid = record(store, "public answered", answered=True, audience="public")
    store.feedback(qid, "a1", False)
    record(store, "internal two")
    events, cursor = store.gap_events(audience="public")
    assert {(e.kind, e.query.id) for e in events} == {
        ("unanswered", public), ("answered", qid), ("not_helpful", qid)}
    assert cursor == store.gap_events()[1]  # past the other audience's rows too
    assert store.gap_events(cursor, audience="public")[0] in ([], events)  # PostgreSQL re-reads


def test_gap_events_carry_what_agents_said_of_an_answer(store):
    voted = record(store, "会议室怎么订")
    copied = record(store, "meeting room booking")
    missing = record(store, "canteen hours", answered=True)
    store.feedback(voted, "a1", True)
    store.record_event("copied", "a1", copied)
    store.record_event("copied", "a1", None)  # a copy outside any query says nothing
    store.record_event("reported_missing", None, missing)
    store.feedback(voted, "a2", False)
    events, _ = store.gap_events()
    said = [(e.kind, e.query.id, e.article_id) for e in events
            if e.kind not in ("answered", "unanswered")]
    assert sorted(said, key=str) == sorted([
        ("confirmed", voted, None), ("not_helpful", voted, "a2"), ("confirmed", copied, None),
        ("reported", missing, None)], key=str)


def test_feedback_labels_name_what_agents_said_answered(store):
    helpful = record(store, "退款多久到账 13812345678")
    copied = record(store, "怎么退款")
    changed = record(store, "退钱")
    missing = record(store, "员工食堂几点开饭")
    unlabelled = record(store, "vpn 809")
    only_unhelpful = record(store, "打印机离线")
    store.feedback(helpful, "a1", True)
    store.feedback(helpful, "a2", False)
    store.record_event("copied", "a2", copied)
    store.record_event("copied", "a1", changed)
    store.feedback(changed, "a1", False)  # copied, then voted not helpful: no answer
    store.record_event("reported_missing", None, missing)
    store.feedback(only_unhelpful, "a3", False)
    store.record_event("copied", "a3")  # a copy from the article view, no query named
    labels = {label.query_id: label for label in store.feedback_labels()}
    assert set(labels) == {helpful, copied, missing}
    assert labels[helpful].answers == ("a1",) and labels[copied].answers == ("a2",)
    assert labels[missing].answers == ()
    assert "13812345678" not in labels[helpful].query  # the log's redacted text
    assert labels[copied].lang == "zh" and labels[copied].norm
    assert unlabelled not in labels and changed not in labels
