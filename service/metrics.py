"""Prometheus metrics: requests, searches, feedback, the model, the queues, the index, builds.

Labels are route templates, methods, statuses and a few fixed words, never a query, a path as
sent, an article or a key: what a label holds is kept by Prometheus for weeks, and personal
data must not be.

``kb serve --workers N`` runs N processes; each writes its metrics to files in the folder named
by ``PROMETHEUS_MULTIPROC_DIR`` (``multiprocess_dir`` makes and removes one), and a scrape,
answered by any of them, adds up all of their files. prometheus-client picks its storage when
it is first imported, so the variable must be set before that, as ``multiprocess_dir`` does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kb import store
from kb.embedding import embed_queries

if TYPE_CHECKING:
    from kb.embedding import Embedder
    from kb.engine import Answer, Engine

log = logging.getLogger("kb.service")
ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"  # the route label of a request no route answered: never its path
SAMPLE_SECONDS = 1.0  # how often each process refreshes its gauges (queues, index age)
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0,
                   10.0)
ENCODE_BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.012, 0.02, 0.05, 0.1, 0.5, 2.0, 10.0, 60.0)


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """A folder for the metrics of several serving processes: ``PROMETHEUS_MULTIPROC_DIR`` if
    the operator set it (emptied of an earlier run's files first, as prometheus-client
    requires), else a new temporary folder, removed afterwards."""
    given = os.environ.get(ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.unlink(os.path.join(given, name))
        yield given
        return
    folder = tempfile.mkdtemp(prefix="kb-metrics-")
    os.environ[ENV] = folder
    try:
        yield folder
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def _size_class(n: int) -> str:
    # One query; a batch of queries encoded together (at most 32, see BatchingEmbedder); the
    # texts of a build.
    return "1" if n == 1 else "2-32" if n <= 32 else "33+"


class Metrics:
    """One service's metrics, in a registry of its own (several apps in one test process do
    not share counts); in multiprocess mode the shared folder is what a scrape reads."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        self.multiprocess = bool(os.environ.get(ENV))
        if self.multiprocess and values.ValueClass is values.MutexValue:
            log.warning("%s was set after prometheus-client was imported: this process's "
                        "metrics are its own, not added up with other processes'", ENV)
            self.multiprocess = False
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("kb_http_requests", "HTTP requests answered, by route template "
                                "and status.", ["method", "route", "status"], registry=r)
        self.latency = Histogram("kb_http_request_duration_seconds", "Time from a request's "
                                 "arrival to its response's last byte, by route template.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.searches = Counter("kb_searches", "Searches and ticket suggestions answered, by "
                                "channel and whether the knowledge base answered them.",
                                ["channel", "answered"], registry=r)
        self.gaps = Counter("kb_gaps_logged", "Unanswered queries recorded in the gap log, by "
                            "channel.", ["channel"], registry=r)
        self.feedback = Counter("kb_feedback", "Agents' feedback on results.", ["helpful"],
                                registry=r)
        self.confidence = Histogram("kb_search_confidence", "The answered confidence of each "
                                    "search.", buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
                                                        0.9, 1.0), registry=r)
        self.encode = Histogram("kb_model_encode_seconds", "Time of one call of the embedding "
                                "model, by how many texts it encoded (1, 2-32: queries batched "
                                "together, 33+: a build).", ["texts"], buckets=ENCODE_BUCKETS,
                                registry=r)
        self.encoded = Counter("kb_model_encoded_texts", "Texts encoded by the embedding model.",
                               registry=r)
        # Gauges: each live process's own value; a scrape shows the largest (the index) or
        # the sum (the queues) over the live processes.
        self.index_info = Gauge("kb_index_info", "1 for the index version a serving process "
                                "serves.", ["version"], multiprocess_mode="livemax", registry=r)
        self.index_age = Gauge("kb_index_age_seconds", "Age of the oldest index version served "
                               "(from its build time).", multiprocess_mode="livemax", registry=r)
        self.index_chunks = Gauge("kb_index_chunks", "Chunks in the index version served.",
                                  multiprocess_mode="livemax", registry=r)
        self.index_articles = Gauge("kb_index_articles", "Articles in the index version served.",
                                    multiprocess_mode="livemax", registry=r)
        self.embed_queue = Gauge("kb_embed_queue_depth", "Queries waiting for the batching "
                                 "embedder.", multiprocess_mode="livesum", registry=r)
        self.log_queue = Gauge("kb_query_log_queue_depth", "Queries waiting for the query-log "
                               "writer.", multiprocess_mode="livesum", registry=r)
        # The last build of the index folder, from the outcome it recorded (kb.store): the
        # same file for every worker, whichever process built.
        self.build_ok = Gauge("kb_index_last_build_success", "1 if the last build of the index "
                              "folder succeeded, 0 if it failed.", multiprocess_mode="livemax",
                              registry=r)
        self.build_seconds = Gauge("kb_index_last_build_duration_seconds", "Duration of the "
                                   "last build.", multiprocess_mode="livemax", registry=r)
        self.build_time = Gauge("kb_index_last_build_timestamp_seconds", "When the last build "
                                "ended (Unix time).", multiprocess_mode="livemax", registry=r)
        self.build_embedded = Gauge("kb_index_last_build_embedded_chunks", "Chunks the last "
                                    "build embedded (the rest were reused).",
                                    multiprocess_mode="livemax", registry=r)
        self._served: str | None = None
        self._lock = threading.Lock()

    # What the engine and the service report (see kb.engine.Observer).
    def answered(self, channel: str, answer: Answer) -> None:
        out = answer.outcome
        self.searches.labels(channel, "true" if out.answered else "false").inc()
        self.confidence.observe(out.confidence)
        if not out.answered:
            self.gaps.labels(channel).inc()

    def feedback_given(self, helpful: bool) -> None:
        self.feedback.labels("true" if helpful else "false").inc()

    def last_build(self, status: dict | None) -> None:
        """The gauges of the last build, from the outcome it recorded."""
        if not status:
            return
        self.build_ok.set(1 if status.get("ok") else 0)
        self.build_seconds.set(float(status.get("seconds") or 0.0))
        self.build_embedded.set(int(status.get("embedded") or 0))
        if status.get("time"):
            self.build_time.set(dt.datetime.fromisoformat(status["time"]).timestamp())

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def sample(self, engine: Engine | None, index_root: Path | None = None) -> None:
        """Refresh this process's gauges from what it serves and the index folder's last
        build outcome."""
        with self._lock:
            if index_root is not None:
                self.last_build(store.read_status(index_root))
            if engine is None:
                return
            index = engine.searcher.index
            if index.version != self._served:
                if self._served is not None:
                    self.index_info.labels(self._served).set(0)
                self.index_info.labels(index.version).set(1)
                self._served = index.version
            created = index.manifest.get("created")
            if created:
                age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(created)
                self.index_age.set(max(age.total_seconds(), 0.0))
            self.index_chunks.set(len(index.chunks))
            self.index_articles.set(len(index.articles))
            self.embed_queue.set(getattr(engine.embedder, "queue_depth", 0))
            self.log_queue.set(getattr(engine.log, "queued", 0))

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """This process stops serving: its live gauges leave the sums."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


class TimedEmbedder:
    """The model, each call timed into ``kb_model_encode_seconds``."""

    def __init__(self, inner: Embedder, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name
        self.dim = inner.dim
        self.batch_size = getattr(inner, "batch_size", 64)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._timed(self.inner.embed, texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._timed(lambda t: embed_queries(self.inner, t), texts)

    def _timed(self, encode: Callable[[Sequence[str]], np.ndarray],
               texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = encode(texts)
        self.metrics.encode.labels(_size_class(len(texts))).observe(time.perf_counter() - started)
        self.metrics.encoded.inc(len(texts))
        return vectors

    def __getattr__(self, name: str) -> Any:  # anything else the backend offers
        return getattr(self.inner, name)


class RequestMetrics:
    """ASGI middleware: every request counted and timed by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it starts a response

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.request(scope["method"], route, status, time.perf_counter() - started)


def metrics_access(request: Request) -> None:
    """Who may read /metrics: everyone who can reach the service, unless this dependency is
    overridden (``app.dependency_overrides[metrics_access] = <an admin check>``) or KB_METRICS
    is off. Meant for a scraper on the internal network."""


router = APIRouter(tags=["admin"])


# 401/403: the service puts the route behind its index-status permission (service.app).
@router.get("/metrics", include_in_schema=True, dependencies=[Depends(metrics_access)],
            response_class=Response, summary="Prometheus metrics",
            responses={401: {}, 403: {}})
def metrics(request: Request) -> Response:
    state = request.app.state
    state.metrics.sample(state.engine, state.settings.index)
    body, content_type = state.metrics.exposition()
    return Response(body, media_type=content_type)


def install(app: FastAPI, metrics: Metrics, enabled: bool = True) -> None:
    """Count every request (outermost, so a failure's 500 is counted too) and serve /metrics."""
    app.state.metrics = metrics
    if enabled:
        app.include_router(router)


class Sampler:
    """Refreshes a process's gauges every SAMPLE_SECONDS, so a scrape answered by another
    worker still sees this one's queues and index."""

    def __init__(self, metrics: Metrics, engine: Callable[[], Engine | None],
                 index_root: Path | None = None) -> None:
        self._metrics, self._engine, self._root = metrics, engine, index_root
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kb-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                self._metrics.sample(self._engine(), self._root)
            except Exception as exc:  # a gauge is never worth a service's thread
                log.warning("could not sample metrics: %s: %s", type(exc).__name__, exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
