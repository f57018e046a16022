"""Health for the load balancer, and hot reload of a newly published index."""

from __future__ import annotations

from fastapi import APIRouter, Request

from kb.audience import visible
from kb.engine import Engine
from kb.errors import NotReady, StorageBusy
from kb.storage import Store
from service.deps import AnyCaller, Reloading
from service.schemas import ErrorResponse, Health, Ready, Reloaded

router = APIRouter(tags=["admin"])


def _visible(engine: Engine, audience: str) -> tuple[list[dict], int]:
    """The articles a caller of ``audience`` may see, and how many chunks they have."""
    index = engine.searcher.index
    records = [r for r in index.articles.values() if visible(r, audience)]
    if len(records) == len(index.articles):
        return records, len(index.chunks)
    ids = {r["id"] for r in records}
    return records, sum(1 for c in index.chunks if c.article_id in ids)


@router.get("/healthz", response_model=Health)
@router.head("/healthz", include_in_schema=False)  # uptime checkers ask with HEAD
def healthz(request: Request, caller: AnyCaller) -> Health:
    """Alive: the process answers (whether it can serve yet is /readyz). Open to every caller,
    probes need no key; the counts are those of the caller's audience, a caller without a key
    counted as public."""
    engine = request.app.state.engine
    if engine is None:
        return Health(status="ok", index_version=None, articles=0, chunks=0,
                      model=request.app.state.settings.model)
    index = engine.searcher.index
    articles, chunks = _visible(engine, caller.audience)
    return Health(status="ok", index_version=index.version, articles=len(articles),
                  chunks=chunks, model=index.manifest["model"])


@router.get("/readyz", response_model=Ready, responses={503: {"model": ErrorResponse}})
@router.head("/readyz", include_in_schema=False)  # uptime checkers ask with HEAD
def readyz(request: Request, caller: AnyCaller) -> Ready:
    """Ready for traffic: an index is loaded and the database answers. Open to every caller."""
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
def reload(request: Request, caller: Reloading) -> Reloaded:
    previous, current = request.app.state.indexing.reload()
    return Reloaded(previous=previous, index_version=current)
