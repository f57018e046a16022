"""Health and hot reload of a newly published index."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.deps import EngineDep
from service.schemas import Health, Reloaded

router = APIRouter(tags=["admin"])


@router.get("/healthz", response_model=Health)
def healthz(engine: EngineDep) -> Health:
    index = engine.searcher.index
    return Health(status="ok", index_version=index.version, articles=len(index.articles),
                  chunks=len(index.chunks), model=index.manifest["model"])


@router.post("/admin/reload", response_model=Reloaded, responses={503: {}})
def reload(request: Request) -> Reloaded:
    previous, current = request.app.state.indexing.reload()
    return Reloaded(previous=previous, index_version=current)
