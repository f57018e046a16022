"""Health for the load balancer, and hot reload of a newly published index."""

from __future__ import annotations

from fastapi import APIRouter, Request

from kb.errors import NotReady, StorageBusy
from kb.storage import Store
from service.schemas import ErrorResponse, Health, Ready, Reloaded

router = APIRouter(tags=["admin"])


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> Health:
    """Alive: the process answers (whether it can serve yet is /readyz)."""
    engine = request.app.state.engine
    if engine is None:
        return Health(status="ok", index_version=None, articles=0, chunks=0,
                      model=request.app.state.settings.model)
    index = engine.searcher.index
    return Health(status="ok", index_version=index.version, articles=len(index.articles),
                  chunks=len(index.chunks), model=index.manifest["model"])


@router.get("/readyz", response_model=Ready, responses={503: {"model": ErrorResponse}})
def readyz(request: Request) -> Ready:
    """Ready for traffic: an index is loaded and the database answers."""
    engine = request.app.state.engine
    if engine is None:
        raise NotReady("no index is loaded yet: run 'kb index'")
    store: Store = engine.log
    try:
        store.ping()
    except StorageBusy as exc:
        raise NotReady(f"the database does not answer: {exc.message}") from None
    return Ready(index_version=engine.searcher.version,
                 database=store.url.split(":", 1)[0].split("+", 1)[0])


@router.post("/admin/reload", response_model=Reloaded, responses={503: {}})
def reload(request: Request) -> Reloaded:
    previous, current = request.app.state.indexing.reload()
    return Reloaded(previous=previous, index_version=current)
