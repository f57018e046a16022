"""How the service keeps serving the current index version.

``kb index`` hands its build to the service (kb.resident). The service builds with its own
model and with what its Builder kept from the last build, serves the new version the moment it
is published, and answers the command. Open gap queries are re-checked against the new version
afterwards, in the background: their number grows with the query log, and the writer who ran
``kb index`` need not wait for them.

A version published by anyone else (``kb index --local``, ``kb calibrate``, another service on
the same folder) is noticed through CURRENT and served within ``reload_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from kb.config import Settings, load_settings
from kb.embedding import Embedder
from kb.engine import Engine, index_articles, open_gaps, recheck_gaps
from kb.errors import KBError, error_lines
from kb.index import Builder, Index, current_version
from kb.resident import FLAGS, Listener
from kb.search import Searcher
from kb.storage import Store

if TYPE_CHECKING:
    from kb.resident import Send

log = logging.getLogger("kb.service")


class Indexing:
    def __init__(self, app: FastAPI, settings: Settings, embedder: Embedder) -> None:
        self.app = app
        self.settings = settings
        self.embedder = embedder
        self.builder = Builder(settings.index, embedder.name)
        self.listener = Listener(settings.index, self.handle)
        self._recheck: threading.Thread | None = None
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._building = threading.Lock()  # one build or reload at a time

    def start(self) -> None:
        if self.settings.reload_interval > 0:
            threading.Thread(target=self._follow, name="kb-index-follow", daemon=True).start()
        if not self.settings.accept_builds:
            return
        reason = self.listener.start()
        if reason is not None:
            log.warning("%s; 'kb index' will build in its own process", reason)
            return
        threading.Thread(target=self._warm, name="kb-index-warm", daemon=True).start()

    def _follow(self) -> None:
        """Serve what CURRENT names, looked at every ``reload_interval`` seconds."""
        refused = None
        while not self._closing.wait(self.settings.reload_interval):
            name = current_version(self.settings.index)
            if name is None or name == refused or name == self._served():
                continue
            with self._building:  # a build serves its own version; then there is nothing to do
                if name == self._served():
                    continue
                try:
                    self._serve()
                except KBError as exc:  # once per version: the log is not flooded every second
                    log.warning("not serving %s: %s", name, exc.message)
                    refused = name
                    continue
            log.info("serving %s, published by another process", name)

    def reload(self) -> tuple[str | None, str]:
        """Serve the published version, read from disk: the one served before, and it."""
        with self._building:
            previous = self._served()
            self._serve()
            return previous, self.app.state.engine.searcher.version

    def _served(self) -> str | None:
        engine: Engine | None = self.app.state.engine
        return engine.searcher.version if engine is not None else None

    def _warm(self) -> None:
        """So that the first 'kb index' after a start is as quick as the next ones."""
        with self._building:
            try:
                self.builder.warm(self.settings.articles, self.settings.max_chunk_chars)
            except (KBError, OSError) as exc:  # the command will say what is wrong, if it is
                log.info("not warmed up for 'kb index': %s", exc)

    def close(self) -> None:
        self._closing.set()
        self.listener.close()
        self._stop_recheck()

    def handle(self, request: dict[str, Any], send: Send) -> None:
        try:
            flags = request["flags"]
            asked = load_settings(request["env"], **{k: flags.get(k) for k in FLAGS})
            cfg = asked.relative_to(Path(request["cwd"]))
        except KBError as exc:
            return self._fail(send, error_lines(exc))
        except (KeyError, TypeError, AttributeError):
            return self._fail(send, ["error: malformed request from 'kb index'"])
        if os.path.realpath(cfg.index) != os.path.realpath(self.settings.index):
            return send({"declined": f"the service serves {self.settings.index}, not {cfg.index}"})
        if cfg.model != self.builder.model:
            return send({"declined": f"the service runs model {self.builder.model!r}, "
                                     f"not {cfg.model!r}"})
        self._stop_recheck()
        with self._building:
            self._build(cfg, asked, send)

    def _build(self, cfg: Settings, asked: Settings, send: Send) -> None:
        try:
            built = index_articles(cfg, self.builder, lambda: self.embedder,
                                   lambda done, total: send({"progress": [done, total]}),
                                   shown_as=str(asked.articles))
            if built.index is not None:
                self._serve(built.index)
        except KBError as exc:
            return self._fail(send, error_lines(exc))
        except Exception as exc:  # reported to the command, and the service keeps serving
            log.exception("'kb index' failed in the service")
            return self._fail(send, [f"error: the service could not build the index: {exc}"], 1)
        summary = built.report.summary()
        log.info("kb index: %s", summary)
        send({"out": summary})
        if self.app.state.engine is not None:
            self.app.state.engine.log.flush()  # the gap queries of the last moments are open too
        gaps = open_gaps(cfg) if built.index is not None else None
        if gaps is not None:
            send({"out": "gap log: the service re-checks open gap queries against the new "
                         "version; 'kb gaps --all' shows those it resolves"})
        send({"exit": 0})
        try:
            self.builder.tidy(cfg.keep_versions)
        except OSError as exc:  # a cache and old versions: the next build tries again
            log.warning("could not tidy %s after 'kb index': %s", self.settings.index, exc)
        if gaps is not None and built.index is not None:
            self._recheck_later(gaps, built.index, cfg)

    @staticmethod
    def _fail(send: Send, lines: list[str], status: int = 2) -> None:
        for line in lines:
            send({"err": line})
        send({"exit": status})

    def _serve(self, index: Index | None = None) -> None:
        """Serve ``index``, or else the published version, read from disk."""
        engine: Engine | None = self.app.state.engine
        if engine is None:  # started before anything was published
            self.app.state.engine = Engine(self.settings, self.embedder,
                                           store=getattr(self.app.state, "store", None))
        else:
            engine.reload(index)

    def _recheck_later(self, gaps: Store, index: Index, cfg: Settings) -> None:
        serving = self.app.state.engine.searcher  # on the same version: it lends its folded text

        def run() -> None:
            searcher = Searcher(index, self.embedder, max_query_chars=cfg.max_query_chars,
                                previous=serving)
            resolved = recheck_gaps(gaps, searcher, stop=self._stop.is_set)
            log.info("gap log: %d open gap queries now answered by %s", len(resolved),
                     index.version)
            for text, article in resolved:
                log.info("  resolved by %s: %s", article, text)

        self._stop.clear()
        self._recheck = threading.Thread(target=run, name="kb-gap-recheck", daemon=True)
        self._recheck.start()

    def _stop_recheck(self) -> None:
        """A new build supersedes the re-check under way: the next re-check covers its gaps."""
        if self._recheck is not None:
            self._stop.set()
            self._recheck.join()
            self._recheck = None
