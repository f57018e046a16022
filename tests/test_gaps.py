import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from kb.errors import UnknownArticle, UnknownQuery
from kb.gaps import MIGRATIONS, GapLog


def record(log, query, answered=False, channel="search", **kw):
    return log.record(channel=channel, query=query, lang="zh", filters={}, answered=answered,
                      confidence=0.1, neighbours=kw.pop("neighbours", ["a1"]), top_score=0.2,
                      vector=kw.pop("vector", None), index_version="v1", **kw)


def test_schema_is_migrated_once_and_uses_wal(tmp_path):
    path = tmp_path / "g.sqlite3"
    GapLog(path)
    GapLog(path)  # a second open applies nothing twice
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_personal_data_is_redacted_before_storage(tmp_path):
    path = tmp_path / "g.sqlite3"
    log = GapLog(path)
    record(log, "张先生 13800138000 邮箱 zhang@example.com 退款", ticket_id="T-1 zhang@example.com")
    log.flush()
    raw = path.read_bytes() + (tmp_path / "g.sqlite3-wal").read_bytes()
    for secret in (b"13800138000", b"zhang@example.com"):
        assert secret not in raw
    [row] = log.unanswered()
    assert "[PHONE]" in row.query and "[EMAIL]" in row.query and row.ticket_id == "T-1 [EMAIL]"


def test_queries_are_stored_by_the_writer_and_kept_on_close(tmp_path):
    path = tmp_path / "g.sqlite3"
    log = GapLog(path)
    ids = [record(log, f"query {i}") for i in range(50)]
    assert len(set(ids)) == 50  # ids are handed out before the rows are stored
    assert log.count() == 50  # a read through the same log waits for them
    ids += [record(log, f"more {i}") for i in range(50)]
    log.close()
    assert GapLog(path).count() == 100


def test_a_failed_write_is_logged_and_the_writer_goes_on(tmp_path, caplog):
    path = tmp_path / "g.sqlite3"
    log = GapLog(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON queries WHEN NEW.channel = 'bad' "
               "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    db.commit()
    record(log, "lost", channel="bad")
    log.flush()
    assert "could not store 1 queries" in caplog.text and "refused" in caplog.text
    record(log, "kept")
    assert [q.query for q in log.unanswered()] == ["kept"]


def test_only_unanswered_queries_are_gaps(tmp_path):
    log = GapLog(tmp_path / "g.sqlite3")
    record(log, "answered one", answered=True)
    record(log, "gap one", vector=np.ones(4, dtype=np.float32))
    [gap] = log.unanswered()
    assert gap.query == "gap one" and gap.vector.tolist() == [1, 1, 1, 1]
    assert log.count() == 2


def test_feedback_validates_ids_and_counts(tmp_path):
    log = GapLog(tmp_path / "g.sqlite3")
    qid = record(log, "vpn", answered=True)
    with pytest.raises(UnknownQuery):
        log.feedback("missing", "a1", True)
    with pytest.raises(UnknownArticle):
        log.feedback(qid, "nope", True, known_articles={"a1"})
    log.feedback(qid, "a1", True)
    log.feedback(qid, "a1", False)
    log.feedback(qid, "a2", False)
    stats = {s["article_id"]: s for s in log.article_stats()}
    assert (stats["a1"]["helpful"], stats["a1"]["not_helpful"]) == (1, 1)
    assert [q.query for q, article in log.not_helpful()] == ["vpn", "vpn"]


def test_resolving_marks_open_gaps(tmp_path):
    log = GapLog(tmp_path / "g.sqlite3")
    record(log, "book a room")
    record(log, "book a room")
    assert log.open_gap_texts() == ["book a room"]
    assert log.resolve("book a room", "rooms-faq") == 2
    assert log.open_gap_texts() == []
    assert {q.resolved_by for q in log.unanswered()} == {"rooms-faq"}


def _writer(path: str, worker: int, n: int) -> None:
    log = GapLog(__import__("pathlib").Path(path))
    for i in range(n):
        qid = record(log, f"worker {worker} query {i}")
        log.feedback(qid, "a1", i % 2 == 0)


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "g.sqlite3"
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(str(path), w, 40)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    log = GapLog(path)
    assert log.count() == 160
    assert len({q.query for q in log.unanswered()}) == 160
    assert sum(s["helpful"] + s["not_helpful"] for s in log.article_stats()) == 160
