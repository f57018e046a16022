"""HTTP request and response models (the API contract), separate from the library's types."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_SURROGATE = re.compile("[\ud800-\udfff]")


def no_surrogates(value: str) -> str:
    """A lone surrogate (JSON's "\\ud800") is no character: it cannot be encoded, stored or
    logged, so such text is refused at the door."""
    if _SURROGATE.search(value):
        raise ValueError("text holds a lone surrogate (U+D800-U+DFFF), which is not a character")
    return value


# Every string a client sends. The lengths the settings cap (KB_MAX_*) are checked by
# service.limits, after parsing, so that a deployment can change them.
Text = Annotated[str, AfterValidator(no_surrogates)]


class Strict(BaseModel):
    """Request bodies: unknown fields refused, and no coercion ("5", true and "yes" are not
    numbers or booleans)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SearchFilters(Strict):
    type: list[Literal["faq", "sop", "case"]] | None = None
    tags: list[Text] | None = None
    product: Text | None = None
    lang: Literal["zh", "en"] | None = None


class SearchRequest(Strict):
    query: Text = Field(..., description="What the agent typed.")
    k: int = Field(5, ge=1, le=50, description="Number of articles to return.")
    filters: SearchFilters | None = None


class SuggestRequest(Strict):
    ticket_id: Text = Field(..., min_length=1)
    subject: Text = ""
    description: Text = ""
    k: int = Field(5, ge=1, le=50)
    filters: SearchFilters | None = None


class FeedbackRequest(Strict):
    query_id: Text = Field(..., min_length=1, max_length=64)
    article_id: Text = Field(..., min_length=1)
    helpful: bool


class Result(BaseModel):
    id: str
    title: str
    type: str
    section: str
    anchor: str
    snippet: str = Field(..., description="HTML-escaped; matched terms wrapped in <mark>.")
    score: float
    path: str
    tags: list[str]
    audience: Literal["public", "internal"] = Field(
        ..., description="internal: for agents only, never to be sent to the customer.")


class SearchResponse(BaseModel):
    query_id: str
    answered: bool
    confidence: float
    results: list[Result]
    index_version: str


class FeedbackResponse(BaseModel):
    status: Literal["recorded"] = "recorded"


class ArticleStats(BaseModel):
    article_id: str
    helpful: int
    not_helpful: int
    last_feedback: str | None


class NearArticle(BaseModel):
    id: str
    title: str
    times: int = Field(description="queries of the topic that got this article first or "
                                   "marked it not helpful")
    not_helpful: int = Field(description="not-helpful marks on the article, all queries")


class GapTopic(BaseModel):
    id: str
    kind: Literal["unanswered", "not_helpful"]
    title: str = Field(description="suggested title for the article to write")
    article_id: str | None = Field(description="the article most marked not helpful, if any")
    representative: str
    count: int
    phrasings: int
    languages: dict[str, int]
    channels: dict[str, int]
    first_seen: str
    last_seen: str
    last_7_days: int
    before: int
    trend: str
    weekly: dict[str, int] = Field(description="queries per ISO week")
    examples: list[str]
    nearest_articles: list[NearArticle]
    status: Literal["open", "resolved", "answered", "dismissed", "mostly_answered", "doubtful"]
    resolved_by: str | None
    resolved_at: str | None
    ticket_ids: list[str]
    cohesion: float
    answered_alike: int = Field(description="askings alike that were answered; a topic asked "
                                            "at least as often answered as not is mostly_answered")
    doubtful: int = Field(default=0, description="of its count, the askings answered with less "
                          "confidence than the calibration's doubt level; a topic of such "
                          "askings only is doubtful")


class TopicAnswered(Strict):
    article_id: str = Field(min_length=1, max_length=200)


class TopicDecision(BaseModel):
    topic_id: str
    action: Literal["dismissed", "answered", "reopened"]
    article_id: str | None
    at: str


class GapReport(BaseModel):
    topics: list[GapTopic]


class Health(BaseModel):
    status: str
    index_version: str | None = Field(..., description="None until an index is published.")
    articles: int
    chunks: int
    model: str


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    index_version: str
    database: str = Field(..., description="sqlite or postgresql")


class Reloaded(BaseModel):
    previous: str | None
    index_version: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
