"""What the pages read: an article rendered, the filter values the index holds, agents' events,
per-article health and the index status."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kb.csvsafe import csv_text
from kb.engine import Engine
from kb.errors import InvalidQuery, UnknownArticle
from kb.render import Titles, render_article
from kb.topics import report_range
from service.bodies import JSONBodyRoute
from service.deps import (
    EngineDep,
    GivingFeedback,
    ReadingArticles,
    ReadingIndexStatus,
    ReadingStats,
    Searching,
)
from service.schemas import Strict, Text

router = APIRouter(tags=["articles"], route_class=JSONBodyRoute)


def reader_is_public(request: Request) -> bool:
    """Whether this request may see public articles only."""
    audience = getattr(request.state, "audience", None)
    if audience is not None:
        return audience == "public"
    return bool(request.app.state.settings.public_only)


class SectionView(BaseModel):
    heading_path: list[str] = Field(..., description="Headings from the title down to this one.")
    anchor: str = Field(..., description="What /a/{id}#anchor and search results point at.")
    level: int
    html: str = Field(..., description="Rendered markdown; raw HTML in the article is escaped.")
    text: str = Field(..., description="Plain text, as the copy button copies it.")
    copy_kind: Literal["reply", "answer"] | None = Field(
        None, description="reply: a reply template; answer: an FAQ answer; both can be copied.")


class RelatedArticle(BaseModel):
    id: str
    title: str
    audience: str


class ArticleView(BaseModel):
    id: str
    title: str
    type: str
    lang: str
    audience: Literal["public", "internal"]
    tags: list[str]
    product: str | None
    updated: str | None
    review_by: str | None
    questions: list[str]
    path: str
    index_version: str
    sections: list[SectionView]
    related: list[RelatedArticle]


class FacetValue(BaseModel):
    value: str
    count: int


class Facets(BaseModel):
    type: list[FacetValue]
    tags: list[FacetValue]
    product: list[FacetValue]
    lang: list[FacetValue]
    articles: int
    index_version: str


class Event(Strict):
    kind: Literal["opened", "copied", "reported_missing"]
    article_id: Text | None = Field(None, min_length=1, max_length=200)
    query_id: Text | None = Field(None, min_length=1, max_length=64)


class EventRecorded(BaseModel):
    status: Literal["recorded"] = "recorded"


class ArticleHealth(BaseModel):
    id: str
    title: str
    type: str
    audience: str
    review_by: str | None
    shown: int = Field(..., description="Times in a search's top 3.")
    opened: int
    copied: int
    helpful: int
    not_helpful: int


class HealthReport(BaseModel):
    days: int
    since: str | None = Field(None, description="The counts are from this time on (UTC); "
                              "null: since the log began.")
    articles: list[ArticleHealth]
    past_review: list[ArticleHealth] = Field(..., description="review_by is before today.")
    never_shown: list[ArticleHealth] = Field(..., description="Not in a top 3 for `days` days.")


class IndexStatus(BaseModel):
    index_version: str
    created: str | None = Field(None, description="When the served version was built.")
    model: str
    articles: int
    chunks: int
    last_build_ok: bool | None = Field(None, description="None: no build recorded.")
    last_build_time: str | None = None
    problems: list[str] = Field(default_factory=list, description=(
        "The last build's problems when it failed, `path:line: message` each."))


def _source(engine: Engine, request: Request, record: dict) -> Path:
    """The article's file: its path as indexed, else the same path below the articles folder."""
    shown = Path(record["path"])
    candidates = [shown] + [request.app.state.settings.articles.joinpath(*shown.parts[i:])
                            for i in range(1, len(shown.parts))]
    for path in candidates:
        if path.is_file():
            return path
    raise UnknownArticle(f"article {record['id']!r} is indexed but its file {record['path']} is gone")


@router.get("/articles/{article_id}", response_model=ArticleView, responses={404: {}})
def article(article_id: str, request: Request, engine: EngineDep,
            caller: ReadingArticles) -> ArticleView:
    index = engine.searcher.index
    record = index.articles.get(article_id)
    public = reader_is_public(request)
    if record is None or (public and record.get("audience") == "internal"):
        raise UnknownArticle(f"unknown article {article_id!r}")
    try:
        rendered = render_article(_source(engine, request, record), Titles(index.articles), public)
    except ValueError as exc:
        raise UnknownArticle(f"article {article_id!r} cannot be read now: {exc}") from None
    art = rendered.article
    if art.id != article_id:
        raise UnknownArticle(f"article {article_id!r} has moved: its file now holds {art.id!r}")
    return ArticleView(
        id=art.id, title=art.title, type=art.type, lang=art.lang, audience=art.audience,
        tags=art.tags, product=art.product, updated=art.updated, review_by=art.review_by,
        questions=art.questions, path=record["path"], index_version=index.version,
        sections=[SectionView(heading_path=s.heading_path, anchor=s.anchor, level=s.level,
                              html=s.html, text=s.text, copy_kind=s.copy)
                  for s in rendered.sections],
        related=[RelatedArticle(**r) for r in rendered.related],
    )


def _visible(engine: Engine, request: Request) -> list[dict]:
    public = reader_is_public(request)
    return [r for r in engine.searcher.index.articles.values()
            if not (public and r.get("audience") == "internal")]


def _counted(counter: Counter) -> list[FacetValue]:
    return [FacetValue(value=v, count=n)
            for v, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0].casefold()))]


@router.get("/facets", response_model=Facets)
def facets(request: Request, engine: EngineDep, caller: Searching) -> Facets:
    """The filter values the index holds, with how many articles carry each."""
    records = _visible(engine, request)
    return Facets(
        type=_counted(Counter(r["type"] for r in records)),
        tags=_counted(Counter(t for r in records for t in dict.fromkeys(r["tags"]))),
        product=_counted(Counter(r["product"] for r in records if r.get("product"))),
        lang=_counted(Counter(r["lang"] for r in records)),
        articles=len(records), index_version=engine.searcher.index.version,
    )


@router.post("/events", response_model=EventRecorded, responses={404: {}, 503: {}})
def event(body: Event, request: Request, engine: EngineDep,
          caller: GivingFeedback) -> EventRecorded:
    """An agent opened an article, copied a reply from it, or reported a query as missing from
    the knowledge base."""
    if body.kind == "reported_missing":
        if body.query_id is None:
            raise InvalidQuery("reported_missing needs the query_id of the search")
    elif body.article_id is None:
        raise InvalidQuery(f"{body.kind} needs an article_id")
    if body.article_id is not None:  # optional on a report, and then checked all the same
        record = engine.searcher.index.articles.get(body.article_id)
        if record is None or (reader_is_public(request) and record.get("audience") == "internal"):
            raise UnknownArticle(f"unknown article_id {body.article_id!r}")
    engine.log.record_event(body.kind, body.article_id, body.query_id)
    return EventRecorded()


HEALTH_COUNTS = ("shown", "opened", "copied", "helpful", "not_helpful")
HEALTH_CSV = ("id", "title", "type", "audience", "review_by", "shown", "opened", "copied",
              "helpful", "not_helpful")


def rows_csv(fields: tuple[str, ...], rows: list[dict]) -> str:
    return csv_text(fields, ([row.get(f) for f in fields] for row in rows))


@router.get("/stats/articles", response_model=HealthReport,
            responses={200: {"content": {"text/csv": {}}}})
def article_health(
    request: Request, engine: EngineDep, caller: ReadingStats,
    since: Annotated[str | None, Query(
        description="ISO date (or time): count events and votes from then on")] = None,
    days: Annotated[int, Query(ge=1, le=3650, description="never_shown: in this many days")] = 30,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    table: Annotated[Literal["articles", "past_review", "never_shown"], Query(
        description="which table the CSV holds")] = "articles",
) -> HealthReport | Response:
    """How each article does: shown in a top 3, opened, copied, helpful and not helpful
    (from ``since`` on, if given)."""
    since, _ = report_range(since, None)  # the gap report's reading of a date: 422 if not one
    counts = {h.article_id: h for h in engine.log.article_health(since=since)}
    window = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat(timespec="seconds")
    today = dt.date.today().isoformat()
    rows, unseen = [], set()
    for record in _visible(engine, request):
        h = counts.get(record["id"])
        rows.append(ArticleHealth(
            id=record["id"], title=record["title"], type=record["type"],
            audience=record.get("audience", "public"), review_by=record.get("review_by"),
            **{k: int(getattr(h, k, 0) or 0) for k in HEALTH_COUNTS}))
        if h is None or not h.last_shown or h.last_shown < window:
            unseen.add(record["id"])
    rows.sort(key=lambda r: (-r.shown, -r.not_helpful, r.id))
    report = HealthReport(
        days=days, since=since, articles=rows,
        past_review=sorted((r for r in rows if r.review_by and r.review_by < today),
                           key=lambda r: (r.review_by or "", r.id)),
        never_shown=sorted((r for r in rows if r.id in unseen), key=lambda r: r.id),
    )
    if format == "csv":
        chosen = getattr(report, table)
        return Response(rows_csv(HEALTH_CSV, [r.model_dump() for r in chosen]),
                        media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="kb-{table}.csv"'})
    return report


@router.get("/index/status", response_model=IndexStatus)
def index_status(request: Request, engine: EngineDep, caller: ReadingIndexStatus) -> IndexStatus:
    """The served version, when it was built, its counts, and the last build's problems when
    it failed (the served version then stays the one before)."""
    status = engine.index_status()
    last = status.last_build
    if reader_is_public(request):
        # A build's outcome names article files, internal ones too; the counts are the
        # public articles'.
        records = _visible(engine, request)
        ids = {r["id"] for r in records}
        status.articles = len(records)
        status.chunks = sum(1 for c in engine.searcher.index.chunks if c.article_id in ids)
        status.problems, last = [], None
    return IndexStatus(index_version=status.version, created=status.built or None,
                       model=status.model, articles=status.articles, chunks=status.chunks,
                       last_build_ok=None if last is None else bool(last.get("ok")),
                       last_build_time=None if last is None else last.get("time"),
                       problems=status.problems)
