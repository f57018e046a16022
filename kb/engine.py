"""The knowledge base as the CLI and the HTTP API see it: search, suggest, log, feedback, gaps.

Holds the loaded index (swapped atomically on reload), the embedder and the query log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from kb import store
from kb.audience import INTERNAL, PUBLIC, visible_id, visible_ids
from kb.config import Settings
from kb.embedding import BatchingEmbedder, Embedder, encode_one, load_embedder
from kb.errors import InvalidQuery, UnknownArticle
from kb.gapview import AudienceGaps
from kb.redact import redact
from kb.rerank import Reranker
from kb.search import Filters, Outcome, Searcher, Started
from kb.storage import Store, exists, open_store
from kb.store import Index, load_index
from kb.tickets import begin_ticket
from kb.topics import GapReporter, Topic

log = logging.getLogger(__name__)


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


class Observer(Protocol):
    """Told what the engine answered (the service's metrics)."""

    def answered(self, channel: str, answer: Answer) -> None: ...

    def feedback_given(self, helpful: bool) -> None: ...


@dataclass
class IndexStatus:
    """What an operator or a writer wants to know about the index being served."""

    version: str
    built: str  # when the served version was published (ISO 8601, UTC)
    model: str
    articles: int
    chunks: int
    last_build: dict | None  # the last build's outcome, see kb.build: ok, time, problems, ...
    problems: list[str] = field(default_factory=list)  # of the last build, if it failed

    def to_dict(self) -> dict:
        return dict(vars(self))


class Engine:
    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 store: Store | None = None, observer: Observer | None = None) -> None:
        self.settings = settings
        self.observer = observer
        self.embedder = BatchingEmbedder(embedder or load_embedder(settings))
        self.log: Store = store or open_store(settings)
        self.gap_reporter = GapReporter(self.log)
        # Public writers' report: public queries only, in a topic index of its own.
        self.public_gaps = AudienceGaps(self.log, PUBLIC, lambda: self.searcher.index.articles,
                                        lambda: self.searcher.scrubber)
        self.reranker = (Reranker(settings.reranker, settings.rerank_top)
                         if settings.reranker else None)
        self._lock = threading.Lock()
        self.searcher = self._load()
        # Loads the segmentation dictionary and runs the model once, in the batching thread as
        # the service does: otherwise the first agent to search after a start waits for them.
        started = self.searcher.begin_search("warm-up 预热", k=1)
        self.searcher.finish(started, started.vector.result())

    def _load(self, index: Index | None = None, previous: Searcher | None = None,
              version: str | None = None) -> Searcher:
        index = index or load_index(self.settings.index, model=self.embedder.name, version=version)
        return Searcher(index, self.embedder, max_query_chars=self.settings.max_query_chars,
                        reranker=self.reranker, previous=previous)

    def reload(self, index: Index | None = None, version: str | None = None) -> tuple[str, str]:
        """Serve ``index``, or else ``version`` (default: the published one) read from disk;
        requests already running finish on the old one."""
        with self._lock:
            previous = self.searcher
            self.searcher = self._load(index, self.searcher, version)
            self._record_edits(previous.index, self.searcher.index)
            return previous.version, self.searcher.version

    def _record_edits(self, old: Index, new: Index) -> None:
        """Articles the new version changed, for the gap report's "not helpful" resolution."""
        if old.version == new.version:
            return
        before = old.manifest.get("article_hashes", {})
        changed = [a for a, h in new.manifest.get("article_hashes", {}).items()
                   if a in before and before[a] != h]
        try:
            self.log.record_edits(changed, new.version)
        except Exception as exc:  # the new version is served all the same
            log.warning("could not record article edits of %s: %s", new.version, exc)

    def index_status(self) -> IndexStatus:
        """The served version, and the outcome of the last build of this index folder."""
        index = self.searcher.index
        last = store.read_status(self.settings.index)
        return IndexStatus(
            version=index.version, built=index.manifest.get("created", ""),
            model=index.manifest["model"], articles=len(index.articles),
            chunks=len(index.chunks), last_build=last,
            problems=list(last.get("problems", [])) if last and not last.get("ok") else [])

    @property
    def audience(self) -> str:
        """The audience this service's searches are for, unless a channel says otherwise."""
        return "public" if self.settings.public_only else "internal"

    def searcher_for(self, audience: str) -> Searcher:
        """The searcher on the served version; each search names its audience (see
        kb.audience), so one serves both."""
        return self.searcher

    def search(self, query: str, k: int = 5, filters: Filters | None = None,
               channel: str = "search", audience: str = INTERNAL) -> Answer:
        return self.begin_search(query, k, filters, channel, wait=True, audience=audience).wait()

    def suggest(self, subject: str, description: str, k: int = 5, ticket_id: str | None = None,
                filters: Filters | None = None, audience: str = INTERNAL) -> Answer:
        return self.begin_suggest(subject, description, k, ticket_id, filters, wait=True,
                                  audience=audience).wait()

    def begin_search(self, query: str, k: int = 5, filters: Filters | None = None,
                     channel: str = "search", wait: bool = False,
                     audience: str = INTERNAL) -> Pending:
        """A search under way; ``wait``: the caller will block on it, so the query may be
        encoded on its thread (see BatchingEmbedder). ``audience``: the caller's, which
        decides which articles it may see (see kb.audience)."""
        searcher = self.searcher
        return self._pending(searcher, searcher.begin_search(query, k, filters, wait, audience),
                             channel)

    def begin_suggest(self, subject: str, description: str, k: int = 5,
                      ticket_id: str | None = None, filters: Filters | None = None,
                      wait: bool = False, audience: str = INTERNAL) -> Pending:
        searcher = self.searcher
        if not subject.strip() and not description.strip():
            raise InvalidQuery("ticket has neither subject nor description")
        if len(description) > self.settings.max_ticket_chars:
            raise InvalidQuery(f"description is {len(description)} characters long; the limit "
                               f"is {self.settings.max_ticket_chars}")
        if any(ch.isalnum() for ch in subject):
            searcher.validate(subject, "subject")
        else:
            searcher.validate(description[: self.settings.max_query_chars], "ticket")
        started = begin_ticket(searcher, subject, description, filters or Filters(), k, wait,
                               audience)
        return self._pending(searcher, started, "suggest", ticket_id)

    def _pending(self, searcher: Searcher, started: Started, channel: str,
                 ticket_id: str | None = None) -> Pending:
        # The log keeps the vector of the redacted text, never of the personal data: when
        # redaction changes the text, the model encodes that too, in the same batch.
        clean = redact(started.dense_text)
        logged = None if clean == started.dense_text else encode_one(self.embedder, clean)
        vector = started.vector if logged is None else _both(started.vector, logged)

        def complete(qvec: np.ndarray) -> Answer:
            outcome = searcher.finish(started, qvec)
            # Unanswered only because the filters narrowed the list: not a knowledge gap.
            outside = None if outcome.answered else searcher.outside_filters(started, qvec)
            query_id = self.log.record(
                channel=channel, query=outcome.query, lang=outcome.lang,
                filters=started.filters.to_dict(), answered=outcome.answered,
                confidence=outcome.confidence, neighbours=[h.id for h in outcome.hits[:3]],
                results=[h.id for h in outcome.hits],
                top_score=outcome.hits[0].score if outcome.hits else None,
                vector=outcome.vector if logged is None else logged.result(),
                index_version=searcher.version, ticket_id=ticket_id, audience=started.audience,
                outside_filters=outside,
            )
            answer = Answer(query_id, outcome, searcher.version)
            if self.observer is not None:
                self.observer.answered(channel, answer)
            return answer

        return Pending(vector, complete, blocking=searcher.reranker is not None)

    def close(self) -> None:
        """Store what the query log still holds in memory."""
        self.gap_reporter.close()
        self.public_gaps.close()
        self.log.close()

    def feedback(self, query_id: str, article_id: str, helpful: bool,
                 audience: str = INTERNAL) -> None:
        """An article the caller's audience may not see is as unknown to it as a missing one
        (the store accepts any article the query returned: a public caller holding the id of
        an internal query must still not reach an internal article)."""
        if audience == PUBLIC and not visible_id(self.searcher.index.articles, article_id, PUBLIC):
            raise UnknownArticle(f"unknown article_id {article_id!r}")
        self.log.feedback(query_id, article_id, helpful,
                          visible_ids(self.searcher.index.articles, audience))
        if self.observer is not None:
            self.observer.feedback_given(helpful)

    def article_stats(self, article_id: str, audience: str = INTERNAL) -> dict:
        if not visible_id(self.searcher.index.articles, article_id, audience):
            raise UnknownArticle(f"unknown article {article_id!r}")
        stats = self.log.article_stats(article_id)
        return stats[0] if stats else {"article_id": article_id, "helpful": 0, "not_helpful": 0,
                                       "last_feedback": None}

    def gaps(self, since: str | None = None, min_count: int = 1,
             include_resolved: bool = False, audience: str = INTERNAL,
             until: str | None = None) -> list[Topic]:
        """The gap report of ``audience``: an internal caller's groups every channel's queries;
        a public caller's, those logged for public callers only (see kb.gapview)."""
        reporter = self.public_gaps if audience == PUBLIC else self.gap_reporter
        return reporter.report(self.searcher.index, since, min_count, include_resolved,
                               until=until)

    def decide_topic(self, topic_id: str, action: str, article_id: str | None = None,
                     audience: str = INTERNAL) -> dict:
        """A writer's decision on a gap topic: "dismissed", "answered" (by ``article_id``) or
        "reopened"; recorded with the topic's phrasings so it follows them if topics merge.
        A public writer decides on the topics of its report, by articles it may see."""
        if action == "answered" and not visible_id(self.searcher.index.articles, article_id,
                                                   audience):
            raise UnknownArticle(f"unknown article {article_id!r}")
        reporter = self.public_gaps.reporter if audience == PUBLIC else self.gap_reporter
        decision, _ = reporter.decide(self.searcher.index, topic_id, action, article_id)
        return {"topic_id": topic_id, "action": decision.action,
                "article_id": decision.article_id, "at": decision.ts}

    def start_gap_topics(self) -> None:
        """Keep the gap topics current in the background, so a report only reads them."""
        self.gap_reporter.start(lambda: self.searcher.index)
        self.public_gaps.start(lambda: self.searcher.index)


def _both(first: Future[np.ndarray], second: Future[np.ndarray]) -> Future[np.ndarray]:
    """A future of ``first``'s result, done once ``second`` is done too."""
    out: Future[np.ndarray] = Future()

    def settle(_: Future[np.ndarray]) -> None:
        exc = first.exception() or second.exception()
        if exc is not None:
            out.set_exception(exc)
        else:
            out.set_result(first.result())

    second.add_done_callback(lambda _: first.add_done_callback(settle))
    return out


def open_gaps(cfg: Settings) -> Store | None:
    """The gap log, if it has open gap queries a new version could answer."""
    if not exists(cfg):
        return None
    log = open_store(cfg)
    return log if log.open_gap_texts() else None


def open_gap_queries(log: Store, audience: str) -> list[tuple[str, str]]:
    """The open gap queries, each with the audience of the channel that logged it (queries
    logged without one count as ``audience``: the service's own)."""
    return [(text, query_audience or audience) for text, query_audience in log.open_gaps()]


def recheck_gaps(log: Store, searcher_for: Callable[[str], Searcher], audience: str,
                 stop: Callable[[], bool] = lambda: False) -> list[tuple[str, str]]:
    """Search every open gap query again, as its channel's audience would (until ``stop``
    says so); mark those the knowledge base now answers."""
    resolved = []
    searchers: dict[str, Searcher] = {}
    for text, query_audience in open_gap_queries(log, audience):
        if stop():
            break
        if query_audience not in searchers:
            searchers[query_audience] = searcher_for(query_audience)
        try:
            outcome = searchers[query_audience].search(text, k=1,
                                                        audience=query_audience)
        except InvalidQuery:
            continue
        if outcome.answered and outcome.hits:
            log.resolve(text, outcome.hits[0].id, query_audience)
            resolved.append((text, outcome.hits[0].id))
    return resolved
