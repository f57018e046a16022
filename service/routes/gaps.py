"""What writers read and decide: the gap report, decisions on its topics, article feedback."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from kb.errors import InvalidQuery
from kb.topics import topics_csv
from service.deps import EngineDep
from service.schemas import ArticleStats, GapReport, GapTopic, TopicAnswered, TopicDecision

router = APIRouter(tags=["writers"])


@router.get("/gaps", response_model=GapReport,
            responses={200: {"content": {"text/csv": {}}}})
def gaps(
    engine: EngineDep,
    since: Annotated[str | None, Query(description="ISO date or time")] = None,
    min_count: Annotated[int, Query(ge=1)] = 1,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    include_resolved: Annotated[bool, Query(
        description="also topics resolved, answered or dismissed")] = False,
) -> GapReport | Response:
    """Open gap topics, most asked first: one per question however it is phrased."""
    if since is not None:
        try:
            since = dt.datetime.fromisoformat(since).isoformat(timespec="seconds")
        except ValueError:
            raise InvalidQuery(f"since must be an ISO date like 2026-11-01, not {since!r}") from None
    topics = engine.gaps(since, min_count, include_resolved)
    if format == "csv":
        return Response(topics_csv(topics), media_type="text/csv; charset=utf-8")
    return GapReport(topics=[GapTopic(**t.to_dict()) for t in topics])


@router.post("/gaps/{topic_id}/dismiss", response_model=TopicDecision)
def dismiss(topic_id: str, engine: EngineDep) -> TopicDecision:
    """Hide a topic from the report: not something to write about."""
    return TopicDecision(**engine.decide_topic(topic_id, "dismissed"))


@router.post("/gaps/{topic_id}/answered", response_model=TopicDecision)
def answered(topic_id: str, body: TopicAnswered, engine: EngineDep) -> TopicDecision:
    """Mark a topic answered by an article; it reopens if its questions keep coming."""
    return TopicDecision(**engine.decide_topic(topic_id, "answered", body.article_id))


@router.post("/gaps/{topic_id}/reopen", response_model=TopicDecision)
def reopen(topic_id: str, engine: EngineDep) -> TopicDecision:
    """Undo a dismissal or an answered mark."""
    return TopicDecision(**engine.decide_topic(topic_id, "reopened"))


@router.get("/articles/{article_id}/stats", response_model=ArticleStats)
def article_stats(article_id: str, engine: EngineDep) -> ArticleStats:
    return ArticleStats(**engine.article_stats(article_id))
