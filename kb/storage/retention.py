"""Retention: the service removes stored query text and vectors older than
``KB_QUERY_RETENTION_DAYS`` when it starts and once a day after that."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kb.errors import StorageBusy
from kb.storage.base import Store

log = logging.getLogger(__name__)

DAY = 24 * 3600.0
RETRY = 3600.0  # after a failed purge (the database was busy or down)


class Retention:
    def __init__(self, store: Callable[[], Store], days: int, interval: float = DAY) -> None:
        self._store = store
        self.days = days
        self.interval = interval
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.days <= 0:
            log.info("query retention off (KB_QUERY_RETENTION_DAYS=0): query text is kept")
            return
        self._thread = threading.Thread(target=self._run, name="kb-retention", daemon=True)
        self._thread.start()

    def purge(self) -> int:
        purged = self._store().purge(self.days)
        if purged:
            log.info("query retention: removed the text of %d queries older than %d days",
                     purged, self.days)
        return purged

    def _run(self) -> None:
        wait = self.interval
        while not self._closing.is_set():
            try:
                self.purge()
                wait = self.interval
            except StorageBusy as exc:
                log.warning("query retention: %s; trying again in an hour", exc.message)
                wait = min(RETRY, self.interval)
            except Exception:  # the service keeps serving; the next run tries again
                log.exception("query retention failed")
                wait = min(RETRY, self.interval)
            self._closing.wait(wait)

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join()
