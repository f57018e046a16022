"""Views of the gap report: one audience's (what a public writer may read), and the report as
plain text for a terminal or a pipe.

A public writer's report is made of the queries logged for public callers only, in a topic
index of its own: a topic grouping internal agents' questions with customers' would show their
counts, channels and wordings. Whatever names an internal article is taken out of it as well:
nearest articles, an "answered by" the public may not read (a decision an internal writer made
counts as not made), and examples that quote one (a customer may type an SOP's title).

The text view: blocks wrapped to a width, no table columns to squeeze, so it reads the same at
80 columns as at 200.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, cast

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from kb.audience import Scrubber, visible_id
from kb.storage.base import Decision, GapEvent, Store
from kb.topics import GapReporter, Topic

MAX_SCRUBBED = 50000  # texts whose scrubbed form is remembered (the report repeats them)


class AudienceLog:
    """The query log as one audience's gap report reads it: the gap events of queries logged
    for that audience, and the decisions that name no article it may not see. Everything else
    is the log's."""

    def __init__(self, log: Store, audience: str,
                 articles: Callable[[], Mapping[str, Mapping]]) -> None:
        self._log = log
        self.audience = audience
        self._articles = articles

    def gap_events(self, after: tuple[int, ...] = (0, 0, 0), limit: int = 20000
                   ) -> tuple[list[GapEvent], tuple[int, ...]]:
        return self._log.gap_events(after, limit, audience=self.audience)

    def decisions(self) -> list[Decision]:
        articles = self._articles()
        return [d for d in self._log.decisions() if d.article_id is None
                or visible_id(articles, d.article_id, self.audience)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


class AudienceGaps:
    """The gap report of one audience's queries, scrubbed of every internal article."""

    def __init__(self, log: Store, audience: str,
                 articles: Callable[[], Mapping[str, Mapping]],
                 scrubber: Callable[[], Scrubber]) -> None:
        self.audience = audience
        self._articles = articles
        self._scrubber = scrubber
        self.reporter = GapReporter(cast(Store, AudienceLog(log, audience, articles)))
        self._texts: dict[str, str] = {}
        self._texts_of: Scrubber | None = None  # the scrubber _texts were scrubbed with
        self._index_of: Callable[[], object | None] | None = None

    def report(self, index: object | None, since: str | None = None, min_count: int = 1,
               include_closed: bool = False, until: str | None = None) -> list[Topic]:
        topics = self.reporter.report(index, since, min_count, include_closed, until=until)
        if self._index_of is not None:  # read once: kept current from now on
            self.reporter.start(self._index_of)
            self._index_of = None
        return [self.scrub(t) for t in topics]

    def scrub(self, topic: Topic) -> Topic:
        """A copy of ``topic`` without a word of an article its audience may not see."""
        articles = self._articles()

        def shown(article_id: str | None) -> bool:
            return visible_id(articles, article_id, self.audience)

        scrubber = self._scrubber()
        examples = [e for e in topic.examples if self._text(scrubber, e, drop=True) is not None]
        return dataclasses.replace(
            topic,
            title=self._text(scrubber, topic.title) or "",
            representative=self._text(scrubber, topic.representative) or "",
            examples=examples,
            nearest_articles=[a for a in topic.nearest_articles if shown(a["id"])],
            article_id=topic.article_id if shown(topic.article_id) else None,
            resolved_by=topic.resolved_by if shown(topic.resolved_by) else None)

    def _text(self, scrubber: Scrubber, text: str, drop: bool = False) -> str | None:
        """``text`` scrubbed; None, with ``drop``, for one that names an internal article."""
        if not scrubber:
            return text
        if scrubber is not self._texts_of or len(self._texts) >= MAX_SCRUBBED:
            self._texts, self._texts_of = {}, scrubber  # a new index: other internal names
        kept = self._texts.get(text)
        if kept is None:
            kept = self._texts[text] = scrubber.scrub(text) if scrubber.mentions(text) else text
        return None if drop and kept != text else kept

    def start(self, index_of: Callable[[], object | None]) -> None:
        """Keep the topics current in the background once a report was asked for (a service
        without public writers spends nothing on it)."""
        self._index_of = index_of

    def close(self) -> None:
        self.reporter.close()

STATUS = {"resolved": "resolved by", "answered": "answered by", "dismissed": "dismissed",
          "mostly_answered": "mostly answered when asked",
          "doubtful": "answered, with little confidence"}


# Only measures and folds text: a Chinese character takes two columns of a terminal, and a
# Chinese sentence has no spaces to wrap at.
_CELLS = Console(width=10_000, color_system=None, legacy_windows=False)


def _wrap(text: str, width: int, indent: str, first: str | None = None) -> list[str]:
    """``text`` in lines of at most ``width`` terminal columns, each after ``indent`` (the
    first after ``first``, of the same width)."""
    lines = [line.plain.rstrip() for line in
             Text(text).wrap(_CELLS, max(1, width - cell_len(indent)), overflow="fold")]
    if not lines:
        return [(first or indent).rstrip()]
    return [(indent if i else first if first is not None else indent) + line
            for i, line in enumerate(lines)]


def _many(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _days(first: str, last: str) -> str:
    return first[:10] if first[:10] == last[:10] else f"{first[:10]} to {last[:10]}"


def render(topics: list[Topic], width: int = 80) -> str:
    if not topics:
        return "No open knowledge gaps.\n"
    lines = [*_wrap(f"Knowledge gaps: {_many(len(topics), 'topic', 'topics')}, "
                    f"{_many(sum(t.count for t in topics), 'query', 'queries')}, most asked "
                    "first.", width, ""), ""]
    first = [t for t in topics if t.status == "open"][:3]
    if first:
        lines.append("Write first:")
        for n, t in enumerate(first, 1):
            lines += _wrap(f"{n}. {t.title} ({_many(t.count, 'query', 'queries')})", width, "  ")
        lines.append("")
    pad = len(str(len(topics))) + 2
    indent = " " * pad
    for n, t in enumerate(topics, 1):
        lines += _wrap(t.title, width, indent, f"{n}.".ljust(pad))
        doubtful = f" ({t.doubtful} answered doubtfully)" if t.doubtful else ""
        facts = (f"{_many(t.count, 'query', 'queries')}{doubtful}, "
                 f"{_many(t.phrasings, 'phrasing', 'phrasings')}, {t.trend} "
                 f"({t.last_7_days} in the last 7 days); seen {_days(t.first_seen, t.last_seen)}; "
                 f"id {t.id}")
        if t.status != "open":
            facts += f"; {STATUS.get(t.status, t.status)} {t.resolved_by or ''}".rstrip()
            facts += f" {t.resolved_at[:10]}" if t.resolved_at else ""
        lines += _wrap(facts, width, indent)
        lines += _wrap(f"languages: {_counts(t.languages)}; channels: {_counts(t.channels)}",
                       width, indent)
        if len(t.weekly) > 1:
            weeks = ", ".join(f"{w[5:]} {c}" for w, c in list(t.weekly.items())[-6:])
            lines += _wrap(f"per week: {weeks}", width, indent)
        for example in t.examples[:3]:
            lines += _wrap(f"\u00b7 {example}", width, indent)
        if t.nearest_articles:
            near = "; ".join(f"{a['id']} ({a['times']}x, {a['not_helpful']} not helpful)"
                             for a in t.nearest_articles)
            lines += _wrap(f"nearest articles: {near}", width, indent)
        if t.ticket_ids:
            lines += _wrap(f"tickets: {', '.join(t.ticket_ids[:8])}", width, indent)
        lines.append("")
    return "\n".join(lines)
