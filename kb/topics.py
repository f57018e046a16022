"""Gap topics for the writers' report, kept up to date as gap queries arrive.

A topic is one question however it is asked: its phrasings are the distinct normalised texts
(Traditional and Simplified forms meet in normalisation), and two phrasings belong together
when the embedding model puts them closer than the knowledge base puts its own distinct
articles (``link_threshold``), when Chinese phrasings share most character bigrams (the
bundled model is English-only), or, across languages only, when the knowledge base sent them
to articles with the same tags or when as large a share of their words is the other's, as
itself or through the index's glossary and dictionary (外接显示器没信号 / external monitor
shows no signal). Topics are the connected components of that relation, so they
depend on the set of logged gap queries and not on the order they were read in: replicas that
read one shared database report the same topics.

The index is incremental: each new phrasing is compared with the ones kept (a matrix product
and inverted indexes), components merge in a union-find, and a topic's summary is rebuilt
only when its members change. Memory is bounded by ``max_phrasings``; past it the phrasings
seen longest ago are dropped and the components rebuilt from the rest.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import orjson

from kb.csvsafe import csv_text
from kb.errors import InvalidQuery, StorageBusy, UnknownTopic
from kb.expansion import Lexicon, translations
from kb.storage.base import Decision, GapEvent, LoggedQuery, Store
from kb.storage.sql import shown_url
from kb.text import is_traditional

log = logging.getLogger(__name__)

LINK_FLOOR = 0.6  # never link phrasings less alike than this, whatever the knowledge base
TAG_WEIGHT = 0.85  # tag agreement across languages is weaker evidence than the same words
MAX_POSTING = 2000  # a bigram or tag shared by more phrasings than this says nothing
MAX_PHRASINGS = 20000
MAX_ANSWERED = 20000  # distinct answered phrasings kept to vote on topics
MAX_NEAR = 200
READ_LIMIT = 20000  # events read from the log at a time
MAX_SEEN = 50000  # events remembered, to skip one read twice
EXAMPLES = 8


def report_range(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """A report's ``since`` and ``until`` as the log's UTC times (a time with an offset is
    converted); InvalidQuery names the one that is not an ISO date or ends before the other."""
    def moment(name: str, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            at = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidQuery(f"{name} must be an ISO date like 2026-11-01, not {value!r}"
                               ) from None
        if at.tzinfo is not None:  # the log's times and days are UTC
            at = at.astimezone(dt.UTC).replace(tzinfo=None)
        return at.isoformat(timespec="seconds")

    first, last = moment("since", since), moment("until", until)
    if first and last and last[:10] < first[:10]:
        raise InvalidQuery(f"until ({last[:10]}) is before since ({first[:10]})")
    return first, last


def link_threshold(title_vectors: np.ndarray) -> float:
    """How alike two queries must be to be one question: as alike as the median article is to
    its nearest other article, since the knowledge base itself treats less alike texts as
    different questions; never below ``LINK_FLOOR``."""
    n = len(title_vectors)
    if n < 3:
        return LINK_FLOOR
    sample = title_vectors[: 2000]
    sims = sample @ title_vectors.T
    sims[np.arange(len(sample)), np.arange(len(sample))] = -1.0
    return float(max(LINK_FLOOR, min(0.9, np.median(sims.max(axis=1)))))


def script(text: str, lang: str) -> str:
    """``zh-Hant``, ``zh-Hans`` or the detected language."""
    if lang != "zh":
        return lang
    return "zh-Hant" if is_traditional(text) else "zh-Hans"


def _bigrams(norm: str) -> set[str]:
    return {norm[i : i + 2] for i in range(len(norm) - 1)} or {norm}


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


def _week(day: str) -> str:
    year, week, _ = dt.date.fromisoformat(day[:10]).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class Phrasing:
    """One distinct normalised text and everything logged for it."""
    norm: str
    text: str
    lang: str  # the detected language of its queries
    vector: np.ndarray | None
    grams: set[str]
    tags: set[str]  # tags of the articles its queries were sent to (top three)
    wordings: list[str] = field(default_factory=list)  # distinct wordings, a few
    count: int = 0
    first_seen: str = ""
    last_seen: str = ""
    # ("YYYY-MM-DD", script, channel) -> queries, whence its days, scripts and channels;
    # day -> first and last seen that day (what a date range shows of it)
    daily: Counter = field(default_factory=Counter)
    spans: dict[str, tuple[str, str]] = field(default_factory=dict)
    kinds: Counter = field(default_factory=Counter)
    sent_to: Counter = field(default_factory=Counter)  # the article each query got first
    not_helpful: Counter = field(default_factory=Counter)  # article -> not-helpful marks
    not_helpful_at: dict[str, str] = field(default_factory=dict)  # article -> last mark
    # marks on an article the query did not get first: with sent_to, each query once
    marked_other: Counter = field(default_factory=Counter)
    tickets: set[str] = field(default_factory=set)
    gap_ids: list[str] = field(default_factory=list)  # unanswered query ids (for re-checks)
    answered_near: set[str] = field(default_factory=set)  # answered phrasings this alike
    terms: frozenset[str] = frozenset()  # content terms, for meeting across languages
    cross: dict[str, frozenset[str]] = field(default_factory=dict)  # term -> other language's

    def keys(self) -> set[str]:
        """Its terms and their translations: a phrasing in another language that is the same
        question shares some of them."""
        return set(self.terms).union(*self.cross.values())
    shortfall: float = 0.0  # its doubtful askings' log-odds below the doubt level, summed


@dataclass
class Topic:
    id: str
    kind: str  # "unanswered": nothing answers it; "not_helpful": agents found the answer wrong
    title: str  # suggested title for the article to write
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
    weekly: dict[str, int]
    examples: list[str]
    nearest_articles: list[dict]
    article_id: str | None = None  # the article most marked not helpful, if any
    status: str = "open"  # open | resolved | answered | dismissed
    resolved_by: str | None = None
    resolved_at: str | None = None
    ticket_ids: list[str] = field(default_factory=list)
    cohesion: float = 1.0  # mean cosine of its phrasings to their centre (1: one phrasing)
    answered_alike: int = 0  # askings alike that were answered: a gap only if fewer than count
    doubtful: int = 0  # of its count, the askings answered with little confidence

    def to_dict(self) -> dict:
        # Shallow: asdict() deep-copies every list and dict, the report's main cost.
        return dict(self.__dict__)


def _trend(recent: int, before: int) -> str:
    if before == 0:
        return "new" if recent else "quiet"
    if recent > before * 1.25:
        return "rising"
    if recent < before * 0.75:
        return "falling"
    return "steady"


def _in_range(days: Counter, first: str, last: str) -> dict[str, int]:
    """The day counts of the days ``first`` to ``last`` (ISO days, both included; "" is open)."""
    return {day: n for day, n in days.items()
            if (not first or day >= first) and (not last or day <= last)}


def _ranged(topic: Topic, s: dict, first: str, last: str, today: dt.datetime) -> Topic:
    """A copy of ``topic`` (summary ``s``) showing only the queries of the days ``first`` to
    ``last``: count, languages, channels, first and last seen, weeks, the wordings asked in the
    range, and the trend as of the range's end (the 7 days up to ``last``, else up to today,
    against the rest of the range). The cached topic stays whole."""
    kept = _in_range(s["days"], first, last)
    end = min(last, today.date().isoformat()) if last else today.date().isoformat()
    cutoff = (dt.date.fromisoformat(end) - dt.timedelta(days=7)).isoformat()
    recent = sum(n for day, n in kept.items() if cutoff < day <= end)
    count = sum(kept.values())
    weekly: Counter = Counter()
    for day, n in kept.items():
        weekly[_week(day)] += n
    languages: Counter = Counter()
    channels: Counter = Counter()
    asked: list[tuple[int, list[str]]] = []
    seen: list[tuple[str, str]] = []
    for wordings, daily, spans in s["asked"]:
        n = 0
        for (day, written, channel), k in daily.items():
            if day in kept:
                languages[written] += k
                channels[channel] += k
                n += k
        if n:
            asked.append((n, wordings))
            seen += [span for day, span in spans.items() if day in kept]
    asked.sort(key=lambda a: -a[0])  # stable: ties keep the whole topic's order
    examples = list(dict.fromkeys(w for _, ws in asked for w in ws))[:EXAMPLES]
    return dataclasses.replace(
        topic, count=count, last_7_days=recent, before=count - recent,
        trend=_trend(recent, count - recent), weekly=dict(sorted(weekly.items())),
        languages=dict(languages.most_common()), channels=dict(channels.most_common()),
        first_seen=min((f for f, _ in seen), default=topic.first_seen),
        last_seen=max((la for _, la in seen), default=topic.last_seen),
        examples=examples or topic.examples)


def suggested_title(text: str) -> str:
    """A phrasing as an article title: trimmed, first letter capital, one question mark."""
    title = " ".join(text.split()).strip(" ?？.。")
    if not title:
        return text
    title = title[0].upper() + title[1:]
    question = text.rstrip().endswith(("?", "？")) or title.split()[0].casefold() in {
        "how", "what", "why", "when", "where", "who", "which", "can", "is", "are", "do",
        "does", "should", "will"}
    return title + ("？" if not title.isascii() and question else "?" if question else "")


class TopicIndex:
    """Gap topics maintained from the query log: call ``refresh`` (cheap when nothing is new)
    then ``report``. Thread-safe; one lock, never held by searches."""

    def __init__(self, link: float = LINK_FLOOR, tags: dict[str, set[str]] | None = None,
                 max_phrasings: int = MAX_PHRASINGS,
                 untrusted: frozenset[str] = frozenset(), doubt: float = 0.0,
                 threshold: float = 0.0) -> None:
        """``untrusted``: languages whose embeddings say little (the calibration gives the
        model less weight than BM25 there); their phrasings meet by their words instead.
        ``doubt``: an answered query less confident than this is doubtful (see ``_add``);
        ``threshold``: the answered threshold below which a query is flagged."""
        self.link = link
        self.doubt = doubt
        # How far below the doubt level, in log-odds, a flagged query is at least: doubtful
        # askings of one question that fall as far short together are evidence of a gap.
        self.enough = _logit(doubt) - _logit(threshold) if threshold < doubt else float("inf")
        self.alike = link  # an answered asking counts against a topic it would have joined
        self.untrusted = untrusted
        self.tags = tags or {}
        self.lexicon: Lexicon | None = None  # the served index's glossary and dictionary
        self.max_phrasings = max_phrasings
        self.cursor: tuple[int, ...] = (0, 0, 0)
        self._lock = threading.Lock()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        # queries an agent confirmed answered before their own event was read
        self._confirmed: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._reset()
        # Answered traffic, to tell a question that is mostly answered (its few flags are the
        # threshold's noise) from a gap: distinct phrasings in arrival order, in a ring.
        self._answered_count: dict[str, int] = {}  # norm -> askings, for the phrasings kept
        # norm -> askings per article they got (the first result), to leave rejected ones out
        self._answered_to: dict[str, Counter] = {}
        self._answered_order: collections.deque[str] = collections.deque()
        self._answered_vectors = np.zeros((0, 0), dtype=np.float32)
        self._slot_norm: list[str | None] = []
        self._answered_next = 0
        self._answered_grams: dict[str, list[str]] = {}
        self._resolution_mark: tuple[int, str | None] | None = None
        self._resolutions: dict[str, tuple[str, str]] = {}

    def _reset(self) -> None:
        self.phrasings: list[Phrasing] = []
        self._by_norm: dict[str, int] = {}
        self._parent: list[int] = []
        self._members: dict[int, list[int]] = {}
        self._dim: int | None = None
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._has_vector = np.zeros(0, dtype=bool)
        self._grams: dict[str, list[int]] = {}
        self._tag_postings: dict[str, list[int]] = {}
        self._cross_postings: dict[str, list[int]] = {}
        self._summaries: dict[int, dict] = {}

    # --- union-find --------------------------------------------------------------------

    def _find(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return
        if len(self._members[ra]) < len(self._members[rb]):
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._members[ra].extend(self._members.pop(rb))
        self._summaries.pop(ra, None)
        self._summaries.pop(rb, None)

    # --- adding ------------------------------------------------------------------------

    def refresh(self, log: Store) -> int:
        """Read what the log got since the last call; returns the number of new events."""
        with self._lock:
            new = 0
            while True:
                events, cursor = log.gap_events(self.cursor, READ_LIMIT)
                new += self._add(events)
                done = cursor == self.cursor or len(events) < READ_LIMIT
                self.cursor = cursor
                if done:
                    break
            mark = log.resolution_mark()
            if mark != self._resolution_mark:
                self._resolutions = log.resolutions() if mark[0] else {}
                self._resolution_mark = mark
                self._summaries.clear()
            return new

    def add(self, events: Iterable[GapEvent]) -> None:
        with self._lock:
            self._add(list(events))

    def _add(self, events: list[GapEvent]) -> int:
        fresh: list[int] = []
        added = 0
        for event in events:
            q = event.query
            # A store may hand an event over twice (it reads back past its cursor).
            # A query is reported missing once, however often agents send the report.
            key = (q.id if event.kind in ("answered", "unanswered") else
                   f"{event.kind}:{q.id}" if event.kind in ("confirmed", "reported") else
                   f"{event.kind}:{event.seq}")
            if key in self._seen:
                continue
            self._seen[key] = None
            if len(self._seen) > MAX_SEEN:
                self._seen.popitem(last=False)
            if event.kind == "confirmed":
                added += self._confirm(event)
                continue
            if event.kind in ("answered", "unanswered") and f"counted:{q.id}" in self._seen:
                continue  # a vote or a report read first made it an asking already
            # an agent confirmed its answer before this process read the query itself
            late = event.kind in ("answered", "unanswered") and q.id in self._confirmed
            if late:
                del self._confirmed[q.id]
            reported = event.kind == "reported"
            if (event.kind == "not_helpful" and self._asked_already(q)) or (
                    reported and (f"counted:{q.id}" in self._seen
                                  or (q.id in self._seen and not q.answered))):
                # the query is an asking of its question already (a gap, or an earlier vote):
                # this vote or report only marks it
                added += 1
                self._mark_asking(event, fresh)
                continue
            if reported or event.kind == "not_helpful":
                # an answer when it arrived, if it was read; a gap since an agent said so
                self._no_longer_answered(q)
            if reported:
                event = GapEvent(event.seq, "unanswered", q, None, event.ts)
            added += 1
            if event.kind == "answered":
                if not self._doubtful(event.query):
                    self._answered(event)
                    continue
                # Answered, doubtfully: it joins a gap topic it is alike (another asking of a
                # missing question), rather than counting against it as an answer would.
                event = GapEvent(event.seq, "doubtful", q, None, event.ts)
            i = self._phrasing_of(event, fresh)
            self._record(self.phrasings[i], event)
            if reported:
                self.phrasings[i].kinds["reported"] += 1
            self._summaries.pop(self._find(i), None)
            if late:  # as if it had come in the other order
                self._answered_after_all(q, event.seq)
        self._link(fresh)
        if len(self.phrasings) > self.max_phrasings:
            self._shrink()
        return added

    def _asked_already(self, q: LoggedQuery) -> bool:
        """Whether a not-helpful vote on ``q`` finds it counted as an asking already: a query
        flagged, doubtful or reported counts by itself, an answered one by its first vote."""
        key = f"asked:{q.id}"
        counted = key in self._seen or self._counted_as(q) is not None
        self._seen[key] = None
        return counted

    def _mark_asking(self, event: GapEvent, fresh: list[int]) -> None:
        """A vote or a report on a query counted as an asking already: it marks that asking
        (a vote, its article too) without counting it again."""
        i = self._phrasing_of(event, fresh)  # made here if its own event is to come
        p = self.phrasings[i]
        p.kinds[event.kind] += 1
        if event.kind == "not_helpful":
            self._mark(p, event)
        self._summaries.pop(self._find(i), None)

    def _no_longer_answered(self, q: LoggedQuery) -> None:
        """An agent's report or vote makes ``q`` an asking of a gap: the answer (or doubtful
        asking) its own event counted is taken back, and its own event, if still to be read,
        will count for nothing."""
        if q.id in self._seen:
            if self._doubtful(q):
                self._undo(q, "doubtful")
            elif self._answered_count.get(q.norm, 0) > 0:
                self._answered_count[q.norm] -= 1
                self._answered_to[q.norm][q.top_article] -= 1
        self._seen[f"counted:{q.id}"] = None

    def _counted_as(self, q: LoggedQuery) -> str | None:
        """The gap asking ``q``'s own event counts as: "unanswered" (flagged, or reported
        missing), "doubtful", or None (an answer)."""
        if not q.answered or q.reported:
            return "unanswered"
        return "doubtful" if self._doubtful(q) else None

    def _doubtful(self, q: LoggedQuery) -> bool:
        return q.confidence is not None and q.confidence < self.doubt

    def _shortfall(self, q: LoggedQuery) -> float:
        return _logit(self.doubt) - _logit(q.confidence or 0.0)

    def _undo(self, q: LoggedQuery, kind: str) -> None:
        """Take back one asking of ``q`` counted as ``kind`` ("doubtful" or "unanswered"):
        an agent said otherwise since."""
        i = self._by_norm.get(q.norm)
        if i is None:
            return
        p = self.phrasings[i]
        key = (q.ts[:10], script(q.query, q.lang), q.channel)
        if p.kinds[kind] > 0 and p.daily[key] > 0:
            p.kinds[kind] -= 1
            if kind == "doubtful":
                p.shortfall = max(0.0, p.shortfall - self._shortfall(q))
            elif q.id in p.gap_ids:
                p.gap_ids.remove(q.id)
            p.daily[key] -= 1
            p.count -= 1
            if q.neighbours and p.sent_to[q.neighbours[0]] > 0:
                p.sent_to[q.neighbours[0]] -= 1
            self._summaries.pop(self._find(i), None)

    def _confirm(self, event: GapEvent) -> int:
        """An agent voted an answer to the query helpful, or copied its reply: answered,
        whatever the search decided. A gap asking counted for it becomes an answered one; if
        the query itself is still to be read, it will be read as answered. A report that
        the answer is missing stands. Returns 1 if anything changed."""
        q = event.query
        if q.id not in self._seen:
            self._confirmed[q.id] = None
            if len(self._confirmed) > MAX_SEEN:
                self._confirmed.popitem(last=False)
            return 1
        return self._answered_after_all(q, event.seq)

    def _answered_after_all(self, q: LoggedQuery, seq: int) -> int:
        """The gap asking counted for ``q`` becomes an answered one (1), unless it was
        answered already or reported missing (0)."""
        kind = self._counted_as(q)
        if kind is None or q.reported:
            return 0
        self._undo(q, kind)
        self._answered(GapEvent(seq, "answered", q, None, q.ts))
        return 1

    def _phrasing_of(self, event: GapEvent, fresh: list[int]) -> int:
        """The phrasing of ``event``'s query; a new one is added to ``fresh``, to be linked."""
        i = self._by_norm.get(event.query.norm)
        if i is None:
            i = self._new_phrasing(event)
            fresh.append(i)
        return i

    def _new_phrasing(self, event: GapEvent) -> int:
        q = event.query
        vector = None
        if q.vector is not None and q.vector.size:
            vector = np.asarray(q.vector, dtype=np.float32)
            vector = vector / (np.linalg.norm(vector) or 1.0)
        tags = set().union(*(self.tags.get(a, set()) for a in q.neighbours[:3]))
        grams = _bigrams(q.norm) if not q.norm.isascii() or q.lang in self.untrusted else set()
        p = Phrasing(q.norm, q.query, q.lang, vector, grams, tags, first_seen=event.ts)
        if self.lexicon is not None:
            p.terms, p.cross = translations(self.lexicon, q.query)
        i = len(self.phrasings)
        self.phrasings.append(p)
        self._by_norm[q.norm] = i
        self._parent.append(i)
        self._members[i] = [i]
        self._store_vector(i, p.vector)
        return i

    def _store_vector(self, i: int, vector: np.ndarray | None) -> None:
        if vector is not None and self._dim is None:
            self._dim = len(vector)
        dim = self._dim or 0
        if len(self._has_vector) <= i or self._vectors.shape[1] != dim:
            capacity = max(i + 1, 2 * len(self._has_vector), 64)
            vectors = np.zeros((capacity, dim), dtype=np.float32)
            if self._vectors.shape[1] == dim:
                vectors[: len(self._vectors)] = self._vectors
            has = np.zeros(capacity, dtype=bool)
            has[: len(self._has_vector)] = self._has_vector
            self._vectors, self._has_vector = vectors, has
        trusted = self.phrasings[i].lang not in self.untrusted
        if vector is not None and len(vector) == dim and trusted:  # else: the text alone
            self._vectors[i] = vector
            self._has_vector[i] = True

    def _record(self, p: Phrasing, event: GapEvent) -> None:
        q = event.query
        p.count += 1
        p.text = q.query  # the latest wording stands for the phrasing
        if q.query not in p.wordings and len(p.wordings) < 3:
            p.wordings.append(q.query)
        p.first_seen = min(p.first_seen, event.ts) if p.first_seen else event.ts
        p.last_seen = max(p.last_seen, event.ts)
        day = event.ts[:10]
        p.daily[day, script(q.query, q.lang), q.channel] += 1
        first, last = p.spans.get(day, (event.ts, event.ts))
        p.spans[day] = (min(first, event.ts), max(last, event.ts))
        p.kinds[event.kind] += 1
        if q.neighbours:
            p.sent_to[q.neighbours[0]] += 1
        if q.ticket_id and len(p.tickets) < 50:
            p.tickets.add(q.ticket_id)
        if event.kind == "not_helpful":
            self._mark(p, event)
        elif event.kind == "unanswered":
            p.gap_ids.append(q.id)
        elif event.kind == "doubtful":
            p.shortfall += self._shortfall(q)

    @staticmethod
    def _mark(p: Phrasing, event: GapEvent) -> None:
        """A not-helpful vote on the article ``event`` names."""
        if event.article_id:
            p.not_helpful[event.article_id] += 1
            p.not_helpful_at[event.article_id] = max(event.ts, p.not_helpful_at.get(
                event.article_id, ""))
            if event.article_id != event.query.top_article:
                p.marked_other[event.article_id] += 1

    def _vector_of(self, event: GapEvent) -> np.ndarray | None:
        v = event.query.vector
        if v is None or not v.size or event.query.lang in self.untrusted:
            return None
        if self._dim is not None and len(v) != self._dim:
            return None
        v = np.asarray(v, dtype=np.float32)
        return v / (np.linalg.norm(v) or 1.0)

    def _answered(self, event: GapEvent) -> None:
        """An answered query: remembered for the gap phrasings it is alike (by meaning, or
        by bigrams where the model is not trusted)."""
        norm = event.query.norm
        self._answered_to.setdefault(norm, Counter())[event.query.top_article] += 1
        if norm in self._answered_count:
            self._answered_count[norm] += 1
            return  # the gap phrasings alike hold its norm already; counts are read live
        self._answered_count[norm] = 1
        self._answered_order.append(norm)
        vector = self._vector_of(event)
        near: set[int] = set()
        n = len(self.phrasings)
        if vector is not None:
            self._store_answered(norm, vector)
            if n and self._vectors.shape[1] == len(vector):
                sims = self._vectors[:n] @ vector
                near.update(np.flatnonzero((sims >= self.alike) & self._has_vector[:n]).tolist())
        if vector is None or not norm.isascii():
            grams = _bigrams(norm)  # the bigram postings of answered phrasings
            for g in grams:
                posting = self._answered_grams.setdefault(g, [])
                if len(posting) < MAX_POSTING:
                    posting.append(norm)
            near.update(self._alike_by_grams(grams))
        for i in near:
            p = self.phrasings[i]
            if len(p.answered_near) < MAX_NEAR:
                p.answered_near.add(norm)
        while len(self._answered_count) > MAX_ANSWERED:
            dropped = self._answered_order.popleft()
            self._answered_count.pop(dropped, None)
            self._answered_to.pop(dropped, None)

    def _alike_by_grams(self, grams: set[str]) -> list[int]:
        shared: Counter = Counter()
        for g in grams:
            posting = self._grams.get(g, ())
            if len(posting) < MAX_POSTING:
                shared.update(posting)
        return [j for j, common in shared.items()
                if common / (len(grams) + len(self.phrasings[j].grams) - common) >= self.link]

    def _store_answered(self, norm: str, vector: np.ndarray) -> None:
        if self._answered_vectors.shape[1:] != (len(vector),):
            self._answered_vectors = np.zeros((MAX_ANSWERED, len(vector)), dtype=np.float32)
            self._slot_norm = [None] * MAX_ANSWERED
            self._answered_next = 0
        slot = self._answered_next % MAX_ANSWERED
        self._answered_next += 1
        self._answered_vectors[slot] = vector
        self._slot_norm[slot] = norm

    def _answered_near_new(self, i: int) -> None:
        """A new gap phrasing: the answered phrasings already kept that are alike."""
        p = self.phrasings[i]
        if not self._answered_count:
            return
        found: set[str] = set()
        used = min(self._answered_next, MAX_ANSWERED)
        if used and self._has_vector[i] and self._answered_vectors.shape[1] == self._vectors.shape[1]:
            sims = self._answered_vectors[:used] @ self._vectors[i]
            found.update(n for slot in np.flatnonzero(sims >= self.alike).tolist()
                         if (n := self._slot_norm[slot]) is not None)
        if p.grams:
            shared: Counter = Counter()
            for g in p.grams:
                posting = self._answered_grams.get(g, ())
                if len(posting) < MAX_POSTING:
                    shared.update(posting)
            found.update(norm for norm, common in shared.items()
                         if common / len(_bigrams(norm) | p.grams) >= self.link)
        for norm in sorted(found):
            if norm in self._answered_count and len(p.answered_near) < MAX_NEAR:
                p.answered_near.add(norm)

    def _link(self, fresh: list[int]) -> None:
        """Join each new phrasing to every kept phrasing alike enough (new ones included)."""
        if not fresh:
            return
        for i in fresh:
            self._answered_near_new(i)
        n = len(self.phrasings)
        with_vectors = [i for i in fresh if self._has_vector[i]]
        if with_vectors and self._vectors.size:
            sims = self._vectors[with_vectors] @ self._vectors[:n].T
            sims[:, ~self._has_vector[:n]] = -1.0
            for row, i in enumerate(with_vectors):
                sims[row, i] = -1.0
                for j in np.flatnonzero(sims[row] >= self.link).tolist():
                    self._union(i, j)
        for i in fresh:
            p = self.phrasings[i]
            for j, common in _shared(self._grams, p.grams, i).items():
                other = self.phrasings[j].grams
                if common / (len(p.grams) + len(other) - common) >= self.link:
                    self._union(i, j)
            for j, common in _shared(self._tag_postings, p.tags, i).items():
                other = self.phrasings[j]
                if other.lang == p.lang:
                    continue
                jaccard = common / (len(p.tags) + len(other.tags) - common)
                if TAG_WEIGHT * jaccard >= self.link:
                    self._union(i, j)
            for j in _shared(self._cross_postings, p.keys(), i):
                other = self.phrasings[j]
                if other.lang != p.lang and _translated(p, other) >= self.link:
                    self._union(i, j)

    def _shrink(self) -> None:
        """Keep the phrasings seen most recently (ties by text, so replicas agree), rebuilt."""
        kept = sorted(self.phrasings, key=lambda p: (p.last_seen, p.norm),
                      reverse=True)[: int(self.max_phrasings * 0.8)]
        kept.sort(key=lambda p: (p.first_seen, p.norm))
        self._reset()
        for p in kept:
            i = len(self.phrasings)
            self.phrasings.append(p)
            self._by_norm[p.norm] = i
            self._parent.append(i)
            self._members[i] = [i]
            self._store_vector(i, p.vector)
        self._link(list(range(len(self.phrasings))))

    # --- reading -----------------------------------------------------------------------

    def report(self, log: Store, titles: dict[str, str], since: str | None = None,
               min_count: int = 1, include_closed: bool = False,
               today: dt.datetime | None = None, until: str | None = None) -> list[Topic]:
        """The topics, largest first. ``since`` and ``until`` (ISO dates or times, both ends
        included, by UTC day): the count, trend and weeks are those of the queries in the
        range, and topics without one are left out (see ``_ranged``)."""
        today = today or dt.datetime.now(dt.UTC)
        first_day, last_day = (since or "")[:10], (until or "")[:10]
        decisions = log.decisions()
        stats = {s["article_id"]: s for s in log.article_stats()} if titles else {}
        edits = log.edits()
        # feedback times matter only once an article was edited (see _resolved_by_edit)
        feedback = log.feedback_times() if edits else {}
        edits_key = (sum(map(len, edits.values())), sum(map(len, feedback.values())))
        with self._lock:
            roots = list(self._members)
            summaries = []
            for root in roots:
                summary = self._summaries.get(root)
                if summary is None:
                    summary = self._summaries[root] = self._summarise(root)
                summaries.append(summary)
        cutoff = (today - dt.timedelta(days=7)).date().isoformat()
        by_norm: dict[str, list[Decision]] = {}
        by_topic: dict[str, list[Decision]] = {}
        for d in decisions:
            by_topic.setdefault(d.topic_id, []).append(d)
            for norm in d.norms:
                by_norm.setdefault(norm, []).append(d)
        topics = []
        ranged = bool(first_day or last_day)
        for s in summaries:
            if since and s["last_seen"] < since:
                continue
            if last_day and s["first_seen"][:10] > last_day:
                continue
            in_range = (sum(_in_range(s["days"], first_day, last_day).values()) if ranged
                        else s["count"])
            if in_range < max(1, min_count):
                continue
            mine = ({d.id: d for norm in s["norms"] for d in by_norm.get(norm, ())}
                    if by_norm else {})
            mine.update({d.id: d for d in by_topic.get(s["id"], ())})
            alike = self._alike_answers(s)
            # A topic is remade only when what it shows changed: most of a report is cached.
            key = (cutoff, tuple(mine.values()), self._resolution_mark,
                   tuple(stats.get(a, {}).get("not_helpful", 0) for a, _ in s["near"]),
                   alike, edits_key)
            cached = s.get("topic")
            if cached is not None and cached[0] == key:
                topic = cached[1]
            else:
                topic = self._topic(s, titles, stats, cutoff)
                topic.answered_alike = alike
                self._status(topic, s, [mine[k] for k in sorted(mine)], edits, feedback)
                if topic.status == "open" and self._mostly_answered(s, alike):
                    topic.status = "mostly_answered"
                elif topic.status == "open" and not self._evident(s):
                    topic.status = "doubtful"
                s["topic"] = (key, topic)
            if include_closed or topic.status == "open":
                topics.append(_ranged(topic, s, first_day, last_day, today)
                              if ranged else topic)
        topics.sort(key=lambda t: (-t.count, t.first_seen, t.id))
        return topics

    def _alike_answers(self, s: dict) -> int:
        """Confident answers to askings alike the topic's, but for those served an article an
        agent marked not helpful for it: the same wrong answer again is no answer."""
        rejected = s["not_helpful"]
        total = 0
        for n in s["answered_near"]:
            count = self._answered_count.get(n, 0)
            if rejected and count:
                got = self._answered_to.get(n, Counter())
                count -= sum(got[a] for a in rejected if a in got)
            total += max(count, 0)
        return total

    @staticmethod
    def _mostly_answered(s: dict, alike: int) -> bool:
        """Answered confidently, when asked alike, at least as often as not: its flags are
        near misses of the threshold. A confident answer (at or above the doubt level) is no
        weaker evidence than a flag (below the threshold, where the calibration leaves some
        answerable queries on purpose), so a tie goes to the answer; unless an agent said
        the answer was missing or not helpful, then only more answers than gaps outvote it."""
        kinds = s["kinds"]
        if kinds["reported"] or kinds["not_helpful"]:
            return alike > s["count"]
        return alike >= s["count"]

    def _evident(self, s: dict) -> bool:
        """A gap shows once one of its queries was flagged, marked or reported, or once its
        askings answered doubtfully fall as far below the doubt level together as one
        flagged query does alone; else it is listed apart (status "doubtful")."""
        kinds = s["kinds"]
        return bool(kinds["unanswered"] or kinds["not_helpful"]) or s["shortfall"] >= self.enough

    def _summarise(self, root: int) -> dict:
        members = sorted(self._members[root], key=lambda i: (self.phrasings[i].first_seen,
                                                             self.phrasings[i].norm))
        ps = [self.phrasings[i] for i in members]
        total: dict[str, Counter] = {k: Counter() for k in (
            "scripts", "channels", "days", "kinds", "sent_to", "not_helpful", "marked_other")}
        for p in ps:
            for (day, written, channel), n in p.daily.items():
                total["days"][day] += n
                total["scripts"][written] += n
                total["channels"][channel] += n
            for k in ("kinds", "sent_to", "not_helpful", "marked_other"):
                total[k].update(getattr(p, k))
        by_count = sorted(ps, key=lambda p: (-p.count, p.first_seen, p.norm))
        vectors = [p.vector for p in ps if p.vector is not None]
        cohesion = 1.0
        central = by_count[0]
        if len(vectors) > 1 and len({v.shape for v in vectors}) == 1:
            matrix = np.stack(vectors)
            centre = matrix.mean(axis=0)
            centre /= np.linalg.norm(centre) or 1.0
            closeness = matrix @ centre
            cohesion = float(closeness.mean())
            with_vector = [p for p in ps if p.vector is not None]
            # the title: the phrasing nearest the centre among the most asked half
            asked = sorted(range(len(with_vector)), key=lambda k: -with_vector[k].count)
            top_half = asked[: max(1, (len(asked) + 1) // 2)]
            central = with_vector[max(top_half, key=lambda k: (closeness[k], -k))]
        gap_ids = [g for p in ps for g in p.gap_ids]
        weekly: Counter = Counter()
        for day, n in total["days"].items():
            weekly[_week(day)] += n
        return {
            "id": hashlib.sha1(ps[0].norm.encode()).hexdigest()[:10],
            "norms": [p.norm for p in ps],
            "count": sum(p.count for p in ps),
            "phrasings": len(ps),
            "first_seen": min(p.first_seen for p in ps),
            "last_seen": max(p.last_seen for p in ps),
            "examples": list(dict.fromkeys(w for p in by_count for w in p.wordings))[:EXAMPLES],
            "representative": by_count[0].text,
            "title": suggested_title(central.text),
            "cohesion": round(cohesion, 3),
            "tickets": sorted({t for p in ps for t in p.tickets})[:20],
            "not_helpful_at": {a: max(p.not_helpful_at[a] for p in ps if a in p.not_helpful_at)
                               for a in total["not_helpful"]},
            "gap_ids": gap_ids,
            "shortfall": sum(p.shortfall for p in ps),
            "answered_near": set().union(*(p.answered_near for p in ps)),
            "weekly": dict(sorted(weekly.items())),
            # for a date range: each phrasing's wordings and days, most asked first
            "asked": [(p.wordings, p.daily, p.spans) for p in by_count],
            # the articles its queries got first or marked not helpful, each query once
            "near": sorted((Counter(total["sent_to"]) + Counter(total["marked_other"])).items(),
                           key=lambda x: (-x[1], x[0]))[:3],
            **total,
        }

    @staticmethod
    def _fixed(s: dict) -> dict:
        """What a topic says that only its members change (kept with its summary)."""
        # ties by name: replicas that read the same votes in another order agree
        marked = sorted(s["not_helpful"].items(), key=lambda x: (-x[1], x[0]))[:1]
        kinds = s["kinds"]
        return dict(
            id=s["id"],
            kind=("unanswered" if kinds["unanswered"] + kinds["doubtful"] >= kinds["not_helpful"]
                  else "not_helpful"),
            title=s["title"], representative=s["representative"], count=s["count"],
            phrasings=s["phrasings"], languages=dict(s["scripts"].most_common()),
            channels=dict(s["channels"].most_common()), first_seen=s["first_seen"],
            last_seen=s["last_seen"], weekly=s["weekly"], examples=s["examples"],
            article_id=marked[0][0] if marked else None, ticket_ids=s["tickets"],
            cohesion=s["cohesion"], doubtful=kinds["doubtful"])

    def _topic(self, s: dict, titles: dict[str, str], stats: dict[str, dict],
               cutoff: str) -> Topic:
        fixed = s.get("fixed")
        if fixed is None:
            fixed = s["fixed"] = self._fixed(s)
        recent = sum(n for day, n in s["days"].items() if day > cutoff)
        # the articles agents got for it: sent first, or marked not helpful
        nearest = [{"id": a, "title": titles.get(a, ""), "times": n,
                    "not_helpful": int(stats.get(a, {}).get("not_helpful", 0))}
                   for a, n in s["near"]]
        return Topic(**fixed, last_7_days=recent, before=s["count"] - recent,
                     trend=_trend(recent, s["count"] - recent), nearest_articles=nearest)

    def _status(self, topic: Topic, s: dict, decisions: list[Decision],
                edits: dict[str, list[str]], feedback: dict[str, list[tuple[str, bool]]]) -> None:
        """Open, or closed by a writer's decision or by the knowledge base catching up."""
        mine = decisions
        if mine and mine[-1].action in ("dismissed", "answered"):
            last = mine[-1]
            # Gap queries after a writer said an article answers it: it does not; reopen.
            if last.action == "dismissed" or s["last_seen"] <= last.ts:
                topic.status = last.action
                topic.resolved_by, topic.resolved_at = last.article_id, last.ts
                return
        resolved = ([self._resolutions[g] for g in s["gap_ids"] if g in self._resolutions]
                    if self._resolutions else [])
        by_edit = self._resolved_by_edit(s, edits, feedback)
        if s["gap_ids"] and len(resolved) == len(s["gap_ids"]) and (
                not s["not_helpful"] or by_edit):
            topic.status = "resolved"
            topic.resolved_by, topic.resolved_at = max(resolved, key=lambda r: r[1])
        elif not s["gap_ids"] and by_edit:
            topic.status = "resolved"
            topic.resolved_by, topic.resolved_at = by_edit

    @staticmethod
    def _resolved_by_edit(s: dict, edits: dict[str, list[str]],
                          feedback: dict[str, list[tuple[str, bool]]]) -> tuple[str, str] | None:
        """A "not helpful" topic resolves when every article it names was edited after its
        last mark and then found helpful: (article, when) of the last such."""
        found = None
        for article, marked_at in s["not_helpful_at"].items():
            edited = [t for t in edits.get(article, []) if t >= marked_at]
            if not edited:
                return None
            helpful = [t for t, ok in feedback.get(article, []) if ok and t >= edited[0]]
            if not helpful:
                return None
            if found is None or helpful[0] > found[1]:
                found = (article, helpful[0])
        return found

    def norms_of(self, topic_id: str) -> list[str] | None:
        with self._lock:
            for root in self._members:
                summary = self._summaries.get(root) or self._summarise(root)
                if summary["id"] == topic_id:
                    return list(summary["norms"])
        return None


CSV_FIELDS = ("id", "kind", "status", "title", "count", "phrasings", "languages", "channels",
              "last_7_days", "trend", "first_seen", "last_seen", "nearest_articles", "examples",
              "ticket_ids", "resolved_by", "resolved_at")


def topics_json(topics: list[Topic]) -> bytes:
    """The report as ``GET /gaps`` sends it: orjson writes the dataclasses directly, an order
    of magnitude sooner than the standard library for a report of thousands of topics."""
    return orjson.dumps({"topics": topics}, option=orjson.OPT_SERIALIZE_NUMPY)


def topics_csv(topics: list[Topic]) -> str:
    rows = []
    for t in topics:
        row = t.to_dict()
        row["languages"] = " ".join(f"{k}:{v}" for k, v in t.languages.items())
        row["channels"] = " ".join(f"{k}:{v}" for k, v in t.channels.items())
        row["nearest_articles"] = " ".join(f"{a['id']}({a['not_helpful']} not helpful)"
                                           for a in t.nearest_articles)
        row["examples"] = " | ".join(t.examples)
        row["ticket_ids"] = " ".join(t.ticket_ids)
        rows.append([row[f] for f in CSV_FIELDS])
    return csv_text(CSV_FIELDS, rows)


def index_link(index: object) -> float:
    """``link_threshold`` of a loaded index (``kb.store.Index``), from its title chunks."""
    chunks = getattr(index, "chunks", [])
    rows = [i for i, c in enumerate(chunks) if c.kind == "title"]
    if len(rows) < 3:
        return LINK_FLOOR
    vectors = index.vectors.reconstruct_all()  # type: ignore[attr-defined]
    return link_threshold(np.asarray(vectors[rows], dtype=np.float32))


def answer_levels(index: object | None) -> tuple[float, float]:
    """The index's answered threshold and doubt level (both 0 without an index)."""
    calibration = getattr(index, "calibration", None)
    return (float(getattr(calibration, "answer_threshold", 0.0)),
            float(getattr(calibration, "answer_doubt", 0.0)))


def untrusted_languages(index: object | None) -> frozenset[str]:
    """Languages of the index's articles and calibration where fusion weighs the embedding
    model below BM25: its cosines there do not tell questions apart."""
    calibration = getattr(index, "calibration", None)
    if calibration is None:
        return frozenset()
    langs = set(calibration.fusion) | {r.get("lang", "") for r in
                                       getattr(index, "articles", {}).values()}
    weights = {lang: calibration.weights(lang) for lang in langs if lang}
    return frozenset(lang for lang, w in weights.items()
                     if w.get("dense", 0.0) < w.get("lexical", 0.0))


class GapReporter:
    """The gap report of one process: a TopicIndex kept up to date from the query log, by a
    background thread where one runs (the service), else on each call."""

    def __init__(self, log: Store, refresh_seconds: float = 2.0) -> None:
        self.log = log
        self.refresh_seconds = refresh_seconds
        self._topics: TopicIndex | None = None
        self._version: str | None = None
        self._titles: dict[str, str] = {}
        self._setup = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def topics(self, index: object | None) -> TopicIndex:
        """The topic index for ``index`` (a loaded ``kb.store.Index``, or None)."""
        with self._setup:
            version = getattr(index, "version", None)
            articles: dict[str, dict] = getattr(index, "articles", {}) or {}
            if self._topics is None:
                threshold, doubt = answer_levels(index)
                self._topics = TopicIndex(index_link(index) if index is not None else LINK_FLOOR,
                                          {a: set(r.get("tags", [])) for a, r in articles.items()},
                                          untrusted=untrusted_languages(index),
                                          doubt=doubt, threshold=threshold)
            if version != self._version:
                # New phrasings take the new tags; the link threshold stays, so topics stay.
                self._topics.tags = {a: set(r.get("tags", [])) for a, r in articles.items()}
                self._topics.lexicon = getattr(index, "lexicon", None)
                self._titles = {a: r.get("title", "") for a, r in articles.items()}
                self._version = version
            return self._topics

    def report(self, index: object | None, since: str | None = None, min_count: int = 1,
               include_closed: bool = False, until: str | None = None) -> list[Topic]:
        topics = self.topics(index)
        topics.refresh(self.log)
        return topics.report(self.log, self._titles, since, min_count, include_closed,
                             until=until)

    def norms(self, index: object | None, topic_id: str) -> list[str]:
        """The phrasings of topic ``topic_id`` as of now, which a writer's decision records."""
        topics = self.topics(index)
        topics.refresh(self.log)
        norms = topics.norms_of(topic_id)
        if norms is None:
            shown = topic_id if len(topic_id) <= 40 else topic_id[:40] + "…"
            raise UnknownTopic(f"unknown gap topic {shown!r}: the report with its closed "
                               "topics lists them (kb gaps --all, GET /gaps?include_resolved=true)")
        return norms

    def decide(self, index: object | None, topic_id: str, action: str,
               article_id: str | None = None) -> tuple[Decision, bool]:
        """Record a writer's decision on topic ``topic_id`` with its phrasings, and say whether
        it changed anything: dismissing a dismissed topic keeps the first dismissal and its
        time, and reopening a topic that no decision closed is refused. (Marking a topic
        answered again is recorded: it may have reopened since, its questions still coming.)"""
        norms = self.norms(index, topic_id)
        mine = set(norms)
        standing = [d for d in self.log.decisions() if d.topic_id == topic_id or mine & set(d.norms)]
        last = standing[-1] if standing else None
        if action == "dismissed" and last is not None and last.action == "dismissed":
            return last, False
        if action == "reopened" and (last is None or last.action == "reopened"):
            raise InvalidQuery(f"gap topic {topic_id} is open: no dismissal or answered mark to "
                               "undo")
        return self.log.decide(topic_id, action, norms, article_id), True

    def start(self, index_of: Callable[[], object | None]) -> None:
        """Keep the topics current in the background (``index_of``: the index served now)."""
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.topics(index_of()).refresh(self.log)
                except StorageBusy as exc:  # busy or away for now: the next round retries
                    log.warning("gap topics not updated: %s", exc.message)
                except Exception:  # the report keeps what it had; the next round retries
                    log.exception("could not update the gap topics from %s", shown_url(self.log.url))
                self._stop.wait(self.refresh_seconds)

        self._thread = threading.Thread(target=run, name="kb-gap-topics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def _translated(a: Phrasing, b: Phrasing) -> float:
    """The share of two phrasings' terms that the other one has, as itself or translated."""
    def hits(x: Phrasing, y: Phrasing) -> int:
        keys = y.keys()
        return sum(1 for t in x.terms if t in keys or x.cross.get(t, frozenset()) & y.terms)

    total = len(a.terms) + len(b.terms)
    return (hits(a, b) + hits(b, a)) / total if total else 0.0


def _shared(postings: dict, keys: Iterable, i: int) -> Counter:
    """How many of ``keys`` each earlier phrasing shares with phrasing ``i``, which is added to
    their postings (a posting past MAX_POSTING is too common to count)."""
    shared: Counter = Counter()
    for key in keys:
        posting = postings.setdefault(key, [])
        if len(posting) < MAX_POSTING:
            shared.update(posting)
            posting.append(i)
    return shared
