"""The thread that stores queries off the search's path.

Searches hand it their query and go on; it stores whatever queued up together in one
transaction. A row the database refuses is retried alone, so it never takes the rows queued
with it along. While the database is locked or unreachable the rows wait in memory (up to
``max_backlog``) and are stored once it answers again; on close the writer keeps trying for
``close_timeout`` seconds before it gives up and says how many it lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from kb.errors import StorageBusy

log = logging.getLogger(__name__)

_STOP = object()


class _Later(Exception):
    """The database went busy part-way: ``rows`` are still to be stored."""

    def __init__(self, message: str, rows: list[Any]) -> None:
        super().__init__(message)
        self.message = message
        self.rows = rows


class QueryWriter:
    def __init__(self, write: Callable[[list[Any]], None], *, where: str,
                 max_backlog: int = 100_000, close_timeout: float = 30.0) -> None:
        self._write = write  # stores rows in one transaction; StorageBusy: try again later
        self._where = where
        self.max_backlog = max_backlog
        self.close_timeout = close_timeout
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._settled = threading.Condition()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, item: Any) -> None:
        with self._settled:
            self._pending += 1
        self._start()
        self._queue.put(item)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything put so far is stored (or given up); False on timeout."""
        with self._settled:
            return self._settled.wait_for(lambda: self._pending == 0, timeout)

    @property
    def pending(self) -> int:
        return self._pending

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="kb-query-writer",
                                                    daemon=True)
                    self._thread.start()

    def _done(self, n: int) -> None:
        if n:
            with self._settled:
                self._pending -= n
                self._settled.notify_all()

    def _run(self) -> None:
        backlog: list[Any] = []
        stop_at: float | None = None
        delay = 0.0
        while True:
            try:
                item = self._queue.get(timeout=delay) if backlog else self._queue.get()
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stop_at = time.monotonic() + self.close_timeout
                else:
                    backlog.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if len(backlog) > self.max_backlog:
                dropped = len(backlog) - self.max_backlog
                log.error("query log %s unavailable: dropped the %d oldest queued queries",
                          self._where, dropped)
                backlog = backlog[dropped:]
                self._done(dropped)
            if backlog:
                before = len(backlog)
                try:
                    backlog = self._store(backlog)
                    if delay:
                        log.warning("query log %s answers again: stored the %d queries that "
                                    "waited", self._where, before)
                    delay = 0.0
                except (StorageBusy, _Later) as exc:
                    backlog = exc.rows if isinstance(exc, _Later) else backlog
                    if delay == 0:
                        log.warning("query log %s: %s; %d queries wait in memory",
                                    self._where, exc.message, len(backlog))
                    delay = min(max(delay * 2, 0.1), 2.0)
                    if stop_at is not None and time.monotonic() > stop_at:
                        log.error("query log %s unavailable: %d queries were not stored",
                                  self._where, len(backlog))
                        backlog = []
                self._done(before - len(backlog))
            if stop_at is not None and not backlog:
                return

    def _store(self, rows: list[Any]) -> list[Any]:
        """Store ``rows``; returns those left for later (none, unless the database is busy)."""
        try:
            self._write(rows)
            return []
        except StorageBusy:
            raise
        except Exception as exc:
            if len(rows) == 1:
                log.error("could not store 1 queries in the query log %s: %s: %s",
                          self._where, type(exc).__name__, exc)
                return []
        for n, row in enumerate(rows):  # one at a time: only the faulty row is lost
            try:
                self._write([row])
            except StorageBusy as exc:
                raise _Later(exc.message, rows[n:]) from exc
            except Exception as exc:
                log.error("could not store 1 queries in the query log %s: %s: %s",
                          self._where, type(exc).__name__, exc)
        return []
