"""What writers read and decide: the gap report, decisions on its topics, article feedback."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from kb.topics import report_range, topics_csv, topics_json
from service.bodies import JSONBodyRoute
from service.deps import EngineDep, ReadingGaps, ReadingStats
from service.schemas import ArticleStats, GapReport, TopicAnswered, TopicDecision

router = APIRouter(tags=["writers"], route_class=JSONBodyRoute)


@router.get("/gaps", response_model=GapReport,
            responses={200: {"content": {"text/csv": {}}}})
def gaps(
    engine: EngineDep,
    caller: ReadingGaps,
    since: Annotated[str | None, Query(
        description="ISO date (or time): count the queries from this day on")] = None,
    until: Annotated[str | None, Query(
        description="ISO date: count the queries up to this day, included")] = None,
    min_count: Annotated[int, Query(ge=1, description="in the range")] = 1,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    include_resolved: Annotated[bool, Query(
        description="also topics resolved, answered or dismissed")] = False,
) -> GapReport | Response:
    """Open gap topics, most asked first: one per question however it is phrased. With
    ``since`` or ``until``, counts, trend and weeks are those of the range's queries (UTC
    days), the trend as of its end; a public key's report holds public queries only."""
    since, until = report_range(since, until)
    topics = engine.gaps(since, min_count, include_resolved, audience=caller.audience,
                         until=until)
    if format == "csv":
        return Response(topics_csv(topics), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="kb-gaps.csv"'})
    # The topics are the library's, already in the shape of GapReport (a test holds them to
    # it): validating thousands of them again per request would cost more than the report.
    return Response(topics_json(topics), media_type="application/json")


@router.post("/gaps/{topic_id}/dismiss", response_model=TopicDecision)
def dismiss(topic_id: str, engine: EngineDep, caller: ReadingGaps) -> TopicDecision:
    """Hide a topic from the report: not something to write about."""
    return TopicDecision(**engine.decide_topic(topic_id, "dismissed", audience=caller.audience))


@router.post("/gaps/{topic_id}/answered", response_model=TopicDecision)
def answered(topic_id: str, body: TopicAnswered, engine: EngineDep,
             caller: ReadingGaps) -> TopicDecision:
    """Mark a topic answered by an article; it reopens if its questions keep coming."""
    return TopicDecision(**engine.decide_topic(topic_id, "answered", body.article_id,
                                             audience=caller.audience))


@router.post("/gaps/{topic_id}/reopen", response_model=TopicDecision)
def reopen(topic_id: str, engine: EngineDep, caller: ReadingGaps) -> TopicDecision:
    """Undo a dismissal or an answered mark."""
    return TopicDecision(**engine.decide_topic(topic_id, "reopened", audience=caller.audience))


@router.get("/articles/{article_id}/stats", response_model=ArticleStats)
def article_stats(article_id: str, engine: EngineDep, caller: ReadingStats) -> ArticleStats:
    return ArticleStats(**engine.article_stats(article_id, audience=caller.audience))
