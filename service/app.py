"""The FastAPI application factory: the index and the model are loaded once, in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kb.config import Settings, load_settings
from kb.embedding import Embedder, load_embedder
from kb.engine import Engine
from kb.errors import IndexNotFound
from kb.storage import open_store, shown_url
from kb.storage.retention import Retention
from service import access_log, errors
from service.indexing import Indexing
from service.limits import RequestLimits
from service.routes import admin, articles, gaps, pages, search

log = logging.getLogger("kb.service")


def create_app(settings: Settings | None = None, embedder: Embedder | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Loaded here, once: without an index yet, the engine made on the first publish uses it.
        model = embedder or load_embedder(settings)
        app.state.settings = settings
        # One store per process, migrated here, shared by every engine the process makes.
        app.state.store = store = open_store(settings)
        log.info("query log: %s", shown_url(store.url))
        try:
            app.state.engine = Engine(settings, model, store=store)
            app.state.engine.start_gap_topics()
        except IndexNotFound as exc:
            # Serve anyway: /readyz says 503 until an index is published.
            log.warning("%s", exc.message)
            app.state.engine = None
        app.state.indexing = indexing = Indexing(app, settings, model)
        indexing.start()
        retention = Retention(lambda: store, settings.query_retention_days)
        retention.start()
        try:
            yield
        finally:
            # Requests in flight have been answered (uvicorn drains them first); what they
            # queued for the query log is stored before the process exits.
            indexing.close()
            retention.close()
            if app.state.engine is not None:
                app.state.engine.close()
            store.close()

    app = FastAPI(title="kb", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Knowledge-base search for customer-service and IT-support teams.")
    app.state.engine = None
    app.state.store = None
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(RequestLimits, settings=settings)
    access_log.install()
    app.include_router(search.router)
    app.include_router(gaps.router)
    app.include_router(admin.router)
    app.include_router(articles.router)
    pages.install(app)  # /, /a/{id}, /writers, /docs, /redoc and their static files

    return app
