"""The storage interface: what the engine, the service and the CLI need from a database.

One interface for the query log (queries, feedback, events), the gap topics writers curate and
the API keys. ``kb.storage.sql`` implements it for SQLite (embedded default) and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from kb.keys import ApiKey

Audience = Literal["public", "internal"]
EVENT_KINDS = ("shown", "opened", "copied", "reported_missing")
TOPIC_STATUSES = ("open", "dismissed", "answered")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class LoggedQuery:
    id: str
    ts: str
    channel: str
    query: str
    norm: str
    lang: str
    filters: dict
    ticket_id: str | None
    top_article: str | None
    top_score: float | None
    neighbours: list[str]
    vector: np.ndarray | None
    resolved_by: str | None = None
    resolved_at: str | None = None
    audience: str = "internal"
    results: list[str] = field(default_factory=list)
    answered: bool = False
    reported: bool = False  # an agent reported it as missing, whatever the search decided
    confidence: float | None = None  # the answered model's probability when it was searched


@dataclass(frozen=True)
class ArticleHealth:
    """How one article fares with agents: ``shown`` counts the times it was in a top 3."""

    article_id: str
    shown: int = 0
    opened: int = 0
    copied: int = 0
    reported_missing: int = 0
    helpful: int = 0
    not_helpful: int = 0
    last_shown: str | None = None
    last_feedback: str | None = None


@dataclass(frozen=True)
class FeedbackLabel:
    """What agents said of one logged query: the articles that answered it (voted helpful, or
    a reply copied from it and not voted unhelpful since), or that nothing did (reported as
    missing, no answer named)."""

    query_id: str
    query: str  # as the log keeps it: redacted
    norm: str
    lang: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class TopicStatus:
    """A writer's decision on a gap topic: dismissed, or answered by an article."""

    topic_id: str
    status: str
    article_id: str | None
    updated: str


@dataclass(frozen=True)
class GapEvent:
    """One query for the topic report: a gap query, an answered one, or an agent's word on
    one (not helpful, reported missing, or confirmed by a helpful vote or a copied reply)."""

    seq: int  # order of arrival in the log (of the query, or of the feedback)
    kind: str  # "unanswered" | "answered" | "not_helpful" | "reported" (an answered query an
    # agent reported as missing afterwards) | "confirmed" (a query an agent voted helpful or
    # copied the reply of: answered, whatever the search decided)
    query: LoggedQuery
    article_id: str | None  # the not-helpful article
    ts: str  # when it happened: the query's time, or the feedback's


@dataclass(frozen=True)
class Decision:
    """A writer's latest decision on a topic, with the phrasings it had then."""

    id: int
    topic_id: str
    action: str  # "dismissed" | "answered" | "reopened"
    article_id: str | None
    norms: tuple[str, ...]
    ts: str


class Store(Protocol):
    """Every write that a request waits for fails fast with ``StorageBusy`` when the database
    is locked or unreachable; queries are stored by a writer thread, off the search's path,
    and kept in memory until the database takes them again."""

    url: str

    # -- queries ------------------------------------------------------------------------
    def record(self, *, channel: str, query: str, lang: str, filters: dict, answered: bool,
               confidence: float, neighbours: list[str], top_score: float | None,
               vector: np.ndarray | None, index_version: str, ticket_id: str | None = None,
               audience: str = "internal", results: list[str] | None = None,
               outside_filters: str | None = None) -> str:
        """Queue one query (redacted by the writer); returns its id at once."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every query recorded so far is stored or given up; False on timeout."""
        ...

    def close(self) -> None:
        """Store what is queued and stop the writer."""
        ...

    def ping(self) -> None:
        """Raise StorageBusy unless the database answers."""
        ...

    def count(self) -> int: ...

    def query(self, query_id: str) -> LoggedQuery | None: ...

    def purge(self, days: int) -> int:
        """Remove the text, vector, filters and ticket id of queries older than ``days``; the
        rows (their counts, feedback and events) stay. Returns how many were purged."""
        ...

    # -- feedback and events ----------------------------------------------------------------
    def feedback(self, query_id: str, article_id: str, helpful: bool,
                 known_articles: set[str] | None = None) -> None:
        """One vote per query and article, for an article the query returned; a repeat
        replaces the vote."""
        ...

    def record_event(self, kind: str, article_id: str | None, query_id: str | None = None) -> None:
        ...

    def article_stats(self, article_id: str | None = None) -> list[dict]: ...

    def article_health(self, article_id: str | None = None,
                       since: str | None = None) -> list[ArticleHealth]:
        """Per article, the events and votes from ``since`` (a UTC ISO time) on; the last
        time it was shown whenever that was."""
        ...

    def feedback_labels(self) -> list[FeedbackLabel]:
        """Every logged query (not purged) that agents labelled, oldest first."""
        ...

    # -- gaps -----------------------------------------------------------------------------
    def unanswered(self, since: str | None = None) -> list[LoggedQuery]: ...

    def not_helpful(self, since: str | None = None) -> list[tuple[LoggedQuery, str]]: ...

    def open_gap_texts(self) -> list[str]: ...

    def open_gaps(self) -> list[tuple[str, str]]:
        """Distinct open gap texts with the audience of the channel that logged them."""
        ...

    def resolve(self, query: str, article_id: str, audience: str | None = None) -> int: ...

    def set_topic_status(self, topic_id: str, status: str,
                         article_id: str | None = None) -> TopicStatus: ...

    def topic_statuses(self) -> dict[str, TopicStatus]: ...

    # -- what the topic report reads incrementally (kb.topics) ------------------------------
    def gap_events(self, after: tuple[int, ...] = (0, 0, 0), limit: int = 20000,
                   audience: str | None = None) -> tuple[list[GapEvent], tuple[int, int, int]]:
        """Queries and agents' feedback logged after the cursor (of queries logged for
        ``audience``, if given), and the next cursor; fewer than ``limit`` events means all
        there were."""
        ...

    def resolution_mark(self) -> tuple[int, str | None]:
        """Changes whenever a re-check resolves gap queries."""
        ...

    def resolutions(self) -> dict[str, tuple[str, str]]:
        """Gap query id -> (article, time) for those a later version answered."""
        ...

    def feedback_times(self) -> dict[str, list[tuple[str, bool]]]: ...

    def record_edits(self, article_ids: list[str], version: str) -> None: ...

    def edits(self) -> dict[str, list[str]]: ...

    def decide(self, topic_id: str, action: str, norms: list[str],
               article_id: str | None = None) -> Decision: ...

    def decisions(self) -> list[Decision]: ...

    # -- keys -----------------------------------------------------------------------------
    def add_key(self, key: ApiKey, secret_hash: str) -> None: ...

    def keys(self) -> list[ApiKey]: ...

    def revoke_key(self, name_or_id: str) -> bool: ...

    def key_by_hash(self, secret_hash: str) -> ApiKey | None: ...
