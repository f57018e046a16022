"""The FastAPI application factory: the index and the model are loaded once, in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kb import __version__
from kb.config import Settings, load_settings
from kb.embedding import Embedder, load_embedder
from kb.errors import IndexNotFound
from kb.keys import Permission
from kb.storage import open_store, shown_url
from kb.storage.retention import Retention
from service import access_log, auth, errors, login, logs
from service import metrics as metrics_module
from service.deps import requirement
from service.indexing import Indexing, open_engine
from service.limits import RequestLimits
from service.metrics import Metrics, RequestMetrics, Sampler, TimedEmbedder
from service.routes import admin, articles, gaps, keys, pages, search

log = logging.getLogger("kb.service")


def create_app(settings: Settings | None = None, embedder: Embedder | None = None) -> FastAPI:
    settings = settings or load_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Loaded here, once: without an index yet, the engine made on the first publish uses it.
        model = TimedEmbedder(embedder or load_embedder(settings), metrics)
        app.state.settings = settings
        # One store per process, migrated here, shared by every engine the process makes.
        app.state.store = store = open_store(settings)
        log.info("query log: %s", shown_url(store.url))
        app.state.auth = access = auth.Auth(settings, store)
        log.info("%s", access.describe())
        try:
            app.state.engine = open_engine(app, settings, model)
        except IndexNotFound as exc:
            # Serve anyway: /readyz says 503 until an index is published.
            log.warning("%s", exc.message)
            app.state.engine = None
        app.state.indexing = indexing = Indexing(app, settings, model)
        indexing.start()
        retention = Retention(lambda: store, settings.query_retention_days)
        retention.start()
        sampler = Sampler(metrics, lambda: app.state.engine, settings.index)
        sampler.start()
        try:
            yield
        finally:
            # Requests in flight have been answered (uvicorn drains them first); what they
            # queued for the query log is stored before the process exits.
            sampler.close()
            metrics.close()
            indexing.close()
            retention.close()
            if app.state.engine is not None:
                app.state.engine.close()
            store.close()

    app = FastAPI(title="kb", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Knowledge-base search for customer-service and IT-support teams.")
    app.state.engine = None
    app.state.store = None
    app.state.settings = settings
    errors.install(app)
    auth.install(app)
    app.add_middleware(RequestLimits, settings=settings)
    access_log.install()
    metrics_module.install(app, metrics, settings.metrics)
    # Metrics count what the service holds: callers with the index-status permission.
    app.dependency_overrides[metrics_module.metrics_access] = requirement(Permission.INDEX_STATUS)
    # Outermost, around Starlette's own error middleware: a 500 is counted and carries its
    # request id too.
    stack = app.build_middleware_stack
    app.build_middleware_stack = (  # type: ignore[method-assign]
        lambda: logs.RequestIds(RequestMetrics(stack(), metrics)))
    app.include_router(search.router)
    app.include_router(gaps.router)
    app.include_router(admin.router)
    app.include_router(articles.router)
    app.include_router(keys.router)
    app.include_router(login.router)
    pages.install(app)  # /, /a/{id}, /writers, /docs, /redoc and their static files

    return app
