"""The gap report as plain text for a terminal or a pipe: blocks wrapped to a width, no table
columns to squeeze, so it reads the same at 80 columns as at 200."""

from __future__ import annotations

import textwrap

from kb.topics import Topic

STATUS = {"resolved": "resolved by", "answered": "answered by", "dismissed": "dismissed",
          "mostly_answered": "mostly answered when asked"}


def _wrap(text: str, width: int, indent: str) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def render(topics: list[Topic], width: int = 80) -> str:
    if not topics:
        return "No open knowledge gaps.\n"
    lines = [f"Knowledge gaps: {len(topics)} topics, {sum(t.count for t in topics)} queries, "
             "most asked first.", ""]
    first = [t for t in topics if t.status == "open"][:3]
    if first:
        lines.append("Write first:")
        for n, t in enumerate(first, 1):
            lines += _wrap(f"{n}. {t.title} ({t.count} queries)", width, "  ")
        lines.append("")
    pad = len(str(len(topics))) + 2
    indent = " " * pad
    for n, t in enumerate(topics, 1):
        head = f"{n}.".ljust(pad) + t.title
        lines += textwrap.wrap(head, width=width, subsequent_indent=indent) or [head]
        facts = (f"{t.count} queries, {t.phrasings} phrasings, {t.trend} "
                 f"({t.last_7_days} in the last 7 days); seen {t.first_seen[:10]} to "
                 f"{t.last_seen[:10]}; id {t.id}")
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
