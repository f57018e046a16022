"""HTTP request and response models (the API contract), separate from the library's types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchFilters(Strict):
    type: list[Literal["faq", "sop", "case"]] | None = None
    tags: list[str] | None = None
    product: str | None = None
    lang: Literal["zh", "en"] | None = None


class SearchRequest(Strict):
    query: str = Field(..., description="What the agent typed.")
    k: int = Field(5, ge=1, le=50, description="Number of articles to return.")
    filters: SearchFilters | None = None


class SuggestRequest(Strict):
    ticket_id: str = Field(..., min_length=1, max_length=200)
    subject: str = ""
    description: str = ""
    k: int = Field(5, ge=1, le=50)
    filters: SearchFilters | None = None


class FeedbackRequest(Strict):
    query_id: str = Field(..., min_length=1, max_length=64)
    article_id: str = Field(..., min_length=1, max_length=200)
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
        "public", description="internal: for agents only, never to be sent to the customer.")


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


class GapTopic(BaseModel):
    id: str
    kind: Literal["unanswered", "not_helpful"]
    article_id: str | None
    representative: str
    count: int
    first_seen: str
    last_seen: str
    last_7_days: int
    before: int
    trend: str
    channels: dict[str, int]
    examples: list[str]
    status: Literal["open", "resolved"]
    resolved_by: str | None
    resolved_at: str | None
    ticket_ids: list[str]


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
