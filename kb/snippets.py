"""Snippets: the part of a section that best matches the query, matched terms in <mark>."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from kb.text import normalize, word_starts

WIDTH = 180
_OPEN, _CLOSE = "\x02", "\x03"  # where <mark> and </mark> go, until the text is escaped


# The rest of a word after an English stem: "instal" marks all of "installation".
_WORD_REST = re.compile(r"[a-z0-9]*")


def match_order(terms: set[str]) -> list[tuple[str, bool]]:
    """(term, is an English stem) per term, longest first, equal lengths in their order: the
    same snippet for the same query in every process (a set's order is not)."""
    return [(t, t.isascii() and t[-1:].isalnum()) for t in sorted(terms, key=lambda t: (-len(t), t))
            if t]


def _find(folded: str, term: str, stem: bool) -> Iterator[tuple[int, int]]:
    """Spans of ``term`` in ``folded``; a stem only from a word start, to its word's end.

    str.find, not a regex per term: every query brings new terms, and compiling their patterns
    cost more than the search (a tenth of a query's time at ten results).
    """
    if stem:
        end = 0
        for at in word_starts(folded, term):
            if at >= end:  # spans do not overlap (a stem such as "a-a" in "a-a-a")
                end = _WORD_REST.match(folded, at + len(term)).end()  # type: ignore[union-attr]
                yield at, end
        return
    at = folded.find(term)
    while at >= 0:
        yield at, at + len(term)
        at = folded.find(term, at + len(term))


def _matches(folded: str, ordered: list[tuple[str, bool]]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    taken: bytearray | None = None  # longer terms win: a shorter one inside them is not marked
    for term, stem in ordered:
        if term not in folded:  # most terms are in few results: skip them before any loop
            continue
        found = list(_find(folded, term, stem))
        if not spans:  # the first term found: nothing to overlap yet
            spans = found
            continue
        if taken is None:
            taken = bytearray(len(folded))
            for s, e in spans:
                taken[s:e] = b"\x01" * (e - s)
        for s, e in found:
            if taken.find(1, s, e) < 0:
                taken[s:e] = b"\x01" * (e - s)
                spans.append((s, e))
    return sorted(spans)


def _densest(starts: list[int], width: int) -> int:
    """The first of the spans that open the window holding the most span starts."""
    best, most, j = 0, 0, 0
    for i, start in enumerate(starts):
        while j < len(starts) and starts[j] < start + width:
            j += 1
        if j - i > most:
            best, most = i, j - i
    return best


def flatten(text: str) -> str:
    """The text on one line, as a snippet shows it."""
    return " ".join(text.split()).replace(_OPEN, "").replace(_CLOSE, "")


def snippet(text: str, terms: set[str], width: int = WIDTH) -> str:
    """HTML-escaped window of ``text`` around the densest cluster of ``terms``."""
    flat = flatten(text)
    return window(flat, normalize(flat), match_order(terms), width)


def window(flat: str, folded: str, ordered: list[tuple[str, bool]], width: int = WIDTH) -> str:
    """snippet() of a text already flattened and folded, for terms in match_order(): a search
    folds its chunks once per index version and orders a query's terms once for all its
    results."""
    if len(folded) != len(flat):  # a conversion changed lengths: positions would not line up
        folded = flat.casefold()
    if not flat:
        return ""
    spans = _matches(folded, ordered)
    start = 0
    if spans:
        best = _densest([s for s, _ in spans], width)
        start = max(0, spans[best][0] - width // 6)
        if start > 0:  # begin at a word or sentence boundary near the match
            cut = max(flat.rfind(ch, 0, spans[best][0]) for ch in " 。，,.;；")
            start = cut + 1 if cut >= start - width // 3 and cut >= 0 else start
    end = min(len(flat), start + width)
    out: list[str] = []
    pos = start
    for s, e in spans:
        if s < start or e > end:
            continue
        out += (flat[pos:s], _OPEN, flat[s:e], _CLOSE)
        pos = e
    out.append(flat[pos:end])
    # One escape for the whole window: the markers are control characters that escaping keeps
    # and that _flatten removed from the text.
    marked = html.escape("".join(out).strip()).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(flat) else ""
    return prefix + marked + suffix
