"""The query writer: batches, a faulty row alone, a busy database waited out, nothing lost."""

from __future__ import annotations

import threading

from kb.errors import StorageBusy
from kb.storage.writer import QueryWriter


class Database:
    def __init__(self) -> None:
        self.rows: list[int] = []
        self.calls: list[list[int]] = []
        self.busy = threading.Event()
        self.release = threading.Event()

    def write(self, rows: list[int]) -> None:
        self.calls.append(list(rows))
        if self.busy.is_set():
            raise StorageBusy("locked")
        if 13 in rows:
            raise ValueError("row 13 is refused")
        self.rows.extend(rows)


def test_a_refused_row_is_retried_alone_and_only_it_is_lost(caplog):
    db = Database()
    gate = threading.Event()
    writer = QueryWriter(lambda rows: gate.wait() and None or db.write(rows), where="test")
    for i in range(20):
        writer.put(i)
    gate.set()
    assert writer.flush(10)
    assert sorted(db.rows) == [i for i in range(20) if i != 13]
    assert "could not store 1 queries" in caplog.text and "row 13" in caplog.text
    writer.close()


def test_a_busy_database_keeps_the_rows_until_it_answers():
    db = Database()
    db.busy.set()
    writer = QueryWriter(db.write, where="test")
    for i in range(5):
        writer.put(i)
    assert not writer.flush(0.5) and writer.pending == 5
    db.busy.clear()
    assert writer.flush(10) and sorted(db.rows) == list(range(5))
    writer.close()


def test_close_stores_what_is_queued():
    db = Database()
    writer = QueryWriter(db.write, where="test")
    for i in range(100):
        writer.put(i)
    writer.close()
    assert sorted(db.rows) == [i for i in range(100) if i != 13]


def test_close_gives_up_on_a_database_that_never_answers(caplog):
    db = Database()
    db.busy.set()
    writer = QueryWriter(db.write, where="test", close_timeout=0.3)
    writer.put(1)
    writer.close()
    assert "1 queries were not stored" in caplog.text and writer.pending == 0


def test_the_backlog_is_bounded(caplog):
    db = Database()
    db.busy.set()
    writer = QueryWriter(db.write, where="test", max_backlog=10)
    gate = threading.Event()
    for i in range(30):
        writer.put(i)
    gate.wait(0.5)
    db.busy.clear()
    assert writer.flush(10)
    assert len(db.rows) >= 10 and db.rows[-1] == 29  # the newest are kept
    writer.close()
