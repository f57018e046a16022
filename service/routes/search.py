"""Search for agents, suggestions for the ticket system, and feedback on results."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from kb.engine import Answer, Engine, Pending
from kb.search import Filters
from service import limits
from service.bodies import JSONBodyRoute
from service.deps import EngineDep, GivingFeedback, Searching, Suggesting
from service.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    Result,
    SearchFilters,
    SearchRequest,
    SearchResponse,
    SuggestRequest,
    Text,
)

# Longer queries are analysed in the thread pool: their lexical half costs more than the
# hand-off, and the event loop must stay free for every other request.
LONG_QUERY = 256

router = APIRouter(tags=["search"], route_class=JSONBodyRoute)


def _filters(filters: SearchFilters | None) -> Filters:
    return Filters.from_dict(filters.model_dump(exclude_none=True) if filters else None)


def respond(answer: Answer) -> Response:
    """The response, serialised by pydantic in one step.

    The models are built and validated here; letting FastAPI validate them again against
    ``response_model`` and encode them with the json module cost a third of a millisecond per
    query, the hottest path of the service (``response_model`` still documents the schema).
    """
    out = answer.outcome
    body = SearchResponse(
        query_id=answer.query_id, answered=out.answered, confidence=out.confidence,
        results=[Result(**hit.__dict__) for hit in out.hits], index_version=answer.index_version,
    )
    return Response(body.model_dump_json(), media_type="application/json")


async def answer(pending: Pending) -> Response:
    """The response once the model has encoded the query.

    The search routes are coroutines: the lexical half and the ranking (a millisecond or two of
    Python, which holds the GIL in any thread) run on the event loop, and the wait for the
    model holds no worker thread. Handing each request to the thread pool and back cost about
    half a millisecond. A cross-encoder, far slower, still runs in the pool.
    """
    qvec = await asyncio.wrap_future(pending.vector)
    if pending.blocking:
        return respond(await run_in_threadpool(pending.complete, qvec))
    return respond(pending.complete(qvec))


@router.post("/search", response_model=SearchResponse)
async def search(body: SearchRequest, engine: EngineDep, request: Request,
                 caller: Searching) -> Response:
    limits.check(body, request.app.state.settings)
    return await answer(await _begin_search(engine, body.query, body.k, _filters(body.filters),
                                             caller.audience))


@router.get("/search", response_model=SearchResponse)
async def search_get(engine: EngineDep, caller: Searching,
                     q: Annotated[Text, Query(description="The query.")],
                     k: Annotated[int, Query(ge=1, le=50)] = 5) -> Response:
    return await answer(await _begin_search(engine, q, k, audience=caller.audience))


async def _begin_search(engine: Engine, query: str, k: int, filters: Filters | None = None,
                        audience: str = "internal") -> Pending:
    if len(query) > LONG_QUERY:
        return await run_in_threadpool(partial(engine.begin_search, query, k, filters,
                                               audience=audience))
    return engine.begin_search(query, k, filters, audience=audience)


@router.post("/suggest", response_model=SearchResponse)
async def suggest(body: SuggestRequest, engine: EngineDep, request: Request,
                  caller: Suggesting) -> Response:
    limits.check(body, request.app.state.settings)
    # A ticket's description runs to pages: reading it is CPU work, off the event loop.
    return await answer(await run_in_threadpool(partial(
        engine.begin_suggest, body.subject, body.description, body.k, body.ticket_id,
        _filters(body.filters), audience=caller.audience)))


@router.post("/feedback", response_model=FeedbackResponse, responses={404: {}, 503: {}})
def feedback(body: FeedbackRequest, engine: EngineDep, request: Request,
             caller: GivingFeedback) -> FeedbackResponse:
    limits.check(body, request.app.state.settings)
    engine.feedback(body.query_id, body.article_id, body.helpful, audience=caller.audience)
    return FeedbackResponse()
