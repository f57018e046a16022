"""How the service keeps serving the current index version.

``kb index`` (or ``kb calibrate``, or another machine sharing the folder) publishes a version by
replacing ``index/CURRENT``. A follower thread looks at that file every ``reload_interval``
seconds and serves each new version. Whatever goes wrong while a version loads is logged and
the service keeps serving the version it has; the next version published is tried afresh.

After it serves a new version, the service re-checks the open gap queries of its own query log
against it, in the background, through the engine's batching embedder (the model lock live
queries take turns on), each query as the audience of the channel that logged it. A newer
version stops that re-check and starts its own. Of several worker processes sharing one
database, one re-checks each version. While the service runs it holds the index folder's
serving lock, so ``kb index`` leaves the re-check to it.
"""

from __future__ import annotations

import logging
import threading

from fastapi import FastAPI

from kb.config import Settings
from kb.embedding import Embedder
from kb.engine import Engine, recheck_gaps
from kb.store import RecheckTurn, ServingLock, current_version

log = logging.getLogger("kb.service")


def open_engine(app: FastAPI, settings: Settings, embedder: Embedder) -> Engine:
    """An engine over the published index with the process's query log and metrics, its gap
    topics kept up to date in the background; IndexNotFound before anything is published."""
    engine = Engine(settings, embedder, store=getattr(app.state, "store", None),
                    observer=getattr(app.state, "metrics", None))
    engine.start_gap_topics()
    return engine


class Indexing:
    def __init__(self, app: FastAPI, settings: Settings, embedder: Embedder) -> None:
        self.app = app
        self.settings = settings
        self.embedder = embedder
        self.serving = ServingLock(settings.index)
        self._recheck: threading.Thread | None = None
        self._stop_recheck_flag = threading.Event()
        self._closing = threading.Event()
        self._loading = threading.Lock()  # one load at a time: the follower's or a reload's
        self._follower: threading.Thread | None = None
        self.refused: str | None = None  # the last version that could not be loaded

    def start(self) -> None:
        try:
            self.serving.acquire()
        except OSError as exc:  # a read-only folder: kb index then re-checks gaps itself
            log.warning("cannot hold the serving lock of %s: %s", self.settings.index, exc)
        if self.settings.reload_interval > 0:
            self._follower = threading.Thread(target=self._follow, name="kb-index-follow",
                                              daemon=True)
            self._follower.start()

    def close(self) -> None:
        self._closing.set()
        if self._follower is not None:
            self._follower.join(5)
        self._stop_recheck()
        self.serving.release()

    def _follow(self) -> None:
        """Serve what CURRENT names, looked at every ``reload_interval`` seconds. Survives any
        error: this thread is how the service learns of every later version."""
        while not self._closing.wait(self.settings.reload_interval):
            try:
                name = current_version(self.settings.index)
                if name is None or name in (self.refused, self.served()):
                    continue
                self.load(name)
            except Exception:  # noqa: BLE001 - logged; the next look tries again
                log.exception("the index follower hit an error; it goes on")

    def load(self, name: str) -> bool:
        """Serve version ``name`` from disk; on any failure, log it, keep what is served, and
        do not try ``name`` again (a later version is tried)."""
        with self._loading:
            served = self.served()
            if name == served:
                return True
            try:
                self._serve(name)
            except Exception as exc:  # noqa: BLE001 - a bad version must not stop the service
                self.refused = name
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                log.error("not serving index version %s (%s); still serving %s", name, message,
                          served or "nothing", exc_info=not hasattr(exc, "message"))
                return False
            self.refused = None
            log.info("serving index version %s", name)
            self._recheck_later()
        return True

    def reload(self) -> tuple[str | None, str]:
        """Serve the published version now (POST /admin/reload): the version served before,
        and the one served now. Errors reach the caller."""
        with self._loading:
            previous = self.served()
            self._serve(None)
            current = self.app.state.engine.searcher.version
            self.refused = None
            if current != previous:
                self._recheck_later()
        return previous, current

    def served(self) -> str | None:
        engine: Engine | None = self.app.state.engine
        return engine.searcher.version if engine is not None else None

    def _serve(self, name: str | None) -> None:
        engine: Engine | None = self.app.state.engine
        if engine is None:  # started before anything was published
            self.app.state.engine = open_engine(self.app, self.settings, self.embedder)
        else:
            engine.reload(version=name)

    def _recheck_later(self) -> None:
        """Re-check the open gap queries against the version now served, in the background.
        Called with the loading lock held."""
        self._stop_recheck()
        engine: Engine | None = self.app.state.engine
        if engine is None or self._closing.is_set():
            return
        stop = self._stop_recheck_flag

        def run() -> None:
            version = engine.searcher.version
            turn = RecheckTurn(self.settings.index, engine.log.url)
            try:
                if not turn.take(version, stop.is_set):
                    return  # another worker of this service re-checks it, or a newer version
                engine.log.flush()  # the gap queries of the last moments are open too
                resolved = recheck_gaps(engine.log, engine.searcher_for, engine.audience,
                                        stop=stop.is_set)
                if not stop.is_set():
                    turn.done(version)
            except Exception:  # noqa: BLE001 - a re-check is retried with the next version
                log.exception("gap re-check failed")
                return
            finally:
                turn.release()
            log.info("gap log: %d open gap queries now answered by %s", len(resolved), version)
            for text, article in resolved:
                log.info("  resolved by %s: %s", article, text)

        stop.clear()
        self._recheck = threading.Thread(target=run, name="kb-gap-recheck", daemon=True)
        self._recheck.start()

    def _stop_recheck(self) -> None:
        """A newer version supersedes the re-check under way: the next re-check covers its
        gaps."""
        if self._recheck is not None:
            self._stop_recheck_flag.set()
            self._recheck.join()
            self._recheck = None

    def wait_for_recheck(self, timeout: float | None = None) -> None:
        """For tests and shutdown: wait until the re-check under way, if any, is done."""
        if self._recheck is not None:
            self._recheck.join(timeout)
