"""Health and hot reload of a newly published index."""

from __future__ import annotations

from fastapi import APIRouter, Request

from kb.engine import Engine
from service.deps import EngineDep
from service.schemas import Health, Reloaded

router = APIRouter(tags=["admin"])


@router.get("/healthz", response_model=Health)
def healthz(engine: EngineDep) -> Health:
    index = engine.searcher.index
    return Health(status="ok", index_version=index.version, articles=len(index.articles),
                  chunks=len(index.chunks), model=index.manifest["model"])


@router.post("/admin/reload", response_model=Reloaded)
def reload(request: Request) -> Reloaded:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        request.app.state.engine = Engine(request.app.state.settings,
                                          request.app.state.embedder)
        return Reloaded(previous=None, index_version=request.app.state.engine.searcher.version)
    previous, current = engine.reload()
    return Reloaded(previous=previous, index_version=current)
