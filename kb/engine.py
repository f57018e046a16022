"""The knowledge base as the CLI and the HTTP API see it: search, suggest, log, feedback, gaps.

Holds the loaded index (swapped atomically on reload), the embedder and the query log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from kb.config import Settings
from kb.embedding import BatchingEmbedder, Embedder, load_embedder
from kb.errors import InvalidQuery, UnknownArticle
from kb.gaps import GapLog
from kb.index import Builder, Built, Index, Progress, current_version, load_index
from kb.ranking import Calibration
from kb.rerank import Reranker
from kb.search import Filters, Outcome, Searcher, Started
from kb.tickets import ticket_query
from kb.topics import Topic, build_topics


@dataclass
class Answer:
    query_id: str
    outcome: Outcome
    index_version: str


@dataclass
class Pending:
    """A search under way: its lexical half done, its query vector coming from the model.
    ``complete`` ranks, logs and answers once the vector is there; an event loop can await the
    vector instead of blocking a thread on it."""
    vector: Future[np.ndarray]
    complete: Callable[[np.ndarray], Answer]
    blocking: bool  # complete() runs a cross-encoder: too slow to run on an event loop

    def wait(self) -> Answer:
        return self.complete(self.vector.result())


class Engine:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = BatchingEmbedder(embedder or load_embedder(settings))
        self.log = GapLog(settings.gap_path)
        self.reranker = (Reranker(settings.reranker, settings.rerank_top)
                         if settings.reranker else None)
        self._lock = threading.Lock()
        self.searcher = self._load()
        # Loads the segmentation dictionary and runs the model once, in the batching thread as
        # the service does: otherwise the first agent to search after a start waits for them.
        started = self.searcher.begin_search("warm-up 预热", k=1)
        self.searcher.finish(started, started.vector.result())

    def _load(self, index: Index | None = None, previous: Searcher | None = None) -> Searcher:
        index = index or load_index(self.settings.index, model=self.embedder.name)
        return Searcher(index, self.embedder, public_only=self.settings.public_only,
                        max_query_chars=self.settings.max_query_chars, reranker=self.reranker,
                        previous=previous)

    def reload(self, index: Index | None = None) -> tuple[str, str]:
        """Serve ``index``, or else the published one, read from disk; requests already
        running finish on the old one."""
        with self._lock:
            old = self.searcher.version
            self.searcher = self._load(index, self.searcher)
            return old, self.searcher.version

    def search(self, query: str, k: int = 5, filters: Filters | None = None,
               channel: str = "search") -> Answer:
        return self.begin_search(query, k, filters, channel, wait=True).wait()

    def suggest(self, subject: str, description: str, k: int = 5, ticket_id: str | None = None,
                filters: Filters | None = None) -> Answer:
        return self.begin_suggest(subject, description, k, ticket_id, filters, wait=True).wait()

    def begin_search(self, query: str, k: int = 5, filters: Filters | None = None,
                     channel: str = "search", wait: bool = False) -> Pending:
        """A search under way; ``wait``: the caller will block on it, so the query may be
        encoded on its thread (see BatchingEmbedder)."""
        searcher = self.searcher
        return self._pending(searcher, searcher.begin_search(query, k, filters, wait), channel)

    def begin_suggest(self, subject: str, description: str, k: int = 5,
                      ticket_id: str | None = None, filters: Filters | None = None,
                      wait: bool = False) -> Pending:
        searcher = self.searcher
        if not subject.strip() and not description.strip():
            raise InvalidQuery("ticket has neither subject nor description")
        if len(description) > self.settings.max_ticket_chars:
            raise InvalidQuery(f"description is {len(description)} characters long; the limit "
                               f"is {self.settings.max_ticket_chars}")
        searcher.validate(subject or description[: self.settings.max_query_chars])
        tq = ticket_query(subject, description)
        started = searcher.begin(tq.display, tq.lexical, tq.dense, filters or Filters(), k, wait)
        return self._pending(searcher, started, "suggest", ticket_id)

    def _pending(self, searcher: Searcher, started: Started, channel: str,
                 ticket_id: str | None = None) -> Pending:
        def complete(qvec: np.ndarray) -> Answer:
            outcome = searcher.finish(started, qvec)
            query_id = self.log.record(
                channel=channel, query=outcome.query, lang=outcome.lang,
                filters=started.filters.to_dict(), answered=outcome.answered,
                confidence=outcome.confidence, neighbours=[h.id for h in outcome.hits[:3]],
                top_score=outcome.hits[0].score if outcome.hits else None,
                vector=None if outcome.answered else outcome.vector,
                index_version=searcher.version, ticket_id=ticket_id,
            )
            return Answer(query_id, outcome, searcher.version)

        return Pending(started.vector, complete, blocking=searcher.reranker is not None)

    def close(self) -> None:
        """Store what the query log still holds in memory."""
        self.log.close()

    def feedback(self, query_id: str, article_id: str, helpful: bool) -> None:
        self.log.feedback(query_id, article_id, helpful, set(self.searcher.index.articles))

    def article_stats(self, article_id: str) -> dict:
        if article_id not in self.searcher.index.articles:
            raise UnknownArticle(f"unknown article {article_id!r}")
        stats = self.log.article_stats(article_id)
        return stats[0] if stats else {"article_id": article_id, "helpful": 0, "not_helpful": 0,
                                       "last_feedback": None}

    def gaps(self, since: str | None = None, min_count: int = 1,
             include_resolved: bool = False) -> list[Topic]:
        return gap_report(self.log, article_tags(self.searcher.index.articles), since, min_count,
                          include_resolved)


def article_tags(articles: dict[str, dict]) -> dict[str, set[str]]:
    return {a: set(r["tags"]) for a, r in articles.items()}


def gap_report(log: GapLog, tags: dict[str, set[str]], since: str | None = None,
               min_count: int = 1, include_resolved: bool = False) -> list[Topic]:
    topics = build_topics([(q, None) for q in log.unanswered(since)], "unanswered", tags)
    topics += build_topics([(q, a) for q, a in log.not_helpful(since)], "not_helpful", tags)
    return [t for t in topics if t.count >= min_count
            and (include_resolved or t.status == "open")]


def index_articles(cfg: Settings, builder: Builder, embedder_factory: Callable[[], Embedder],
                   progress: Progress | None = None, shown_as: str | None = None) -> Built:
    """What ``kb index`` does, in whichever process runs it (see kb.resident)."""
    return builder.build(cfg.articles, embedder_factory, max_chunk_chars=cfg.max_chunk_chars,
                         calibration=first_calibration(cfg), progress=progress,
                         shown_as=shown_as)


def first_calibration(cfg: Settings) -> Calibration | None:
    """A knowledge base may carry its own fit (articles/calibration.json); a first build uses
    it. Later builds carry the published version's forward."""
    source = cfg.calibration or cfg.articles / "calibration.json"
    if current_version(cfg.index) is not None or (cfg.calibration is None and not source.exists()):
        return None
    return Calibration.load(source)


def open_gaps(cfg: Settings) -> GapLog | None:
    """The gap log, if it has open gap queries a new version could answer."""
    if not cfg.gap_path.exists():
        return None
    log = GapLog(cfg.gap_path)
    return log if log.open_gap_texts() else None


def recheck_gaps(log: GapLog, searcher: Searcher,
                 stop: Callable[[], bool] = lambda: False) -> list[tuple[str, str]]:
    """Search every open gap query again (until ``stop`` says so); mark those the knowledge
    base now answers."""
    resolved = []
    for text in log.open_gap_texts():
        if stop():
            break
        try:
            outcome = searcher.search(text, k=1)
        except InvalidQuery:
            continue
        if outcome.answered and outcome.hits:
            log.resolve(text, outcome.hits[0].id)
            resolved.append((text, outcome.hits[0].id))
    return resolved
