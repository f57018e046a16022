"""Snippets: the part of a section that best matches the query, matched terms in <mark>."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator

from kb.text import WORD_CHARS, normalize

WIDTH = 180
_OPEN, _CLOSE = "\x02", "\x03"  # where <mark> and </mark> go, until the text is escaped


# Cached: a result page renders up to 50 snippets for one query's terms, and popular queries
# recur.
@functools.lru_cache(maxsize=1024)
def _patterns(terms: frozenset[str]) -> tuple[tuple[str, re.Pattern[str], bool], ...]:
    """(term, pattern, must start a word) per term, longest first."""
    pats = []
    for term in sorted(terms, key=len, reverse=True):
        if not term:
            continue
        if term.isascii() and term[-1:].isalnum():
            # English terms are stems: "instal" must mark "installation", from a word start. The
            # start is checked outside the pattern: a look-behind makes re test every position,
            # seven times slower than its search for the literal prefix.
            pats.append((term, re.compile(rf"{re.escape(term)}[a-z0-9]*"), True))
        else:
            pats.append((term, re.compile(re.escape(term)), False))
    return tuple(pats)


def _find(folded: str, pat: re.Pattern[str], word_start: bool) -> Iterator[re.Match[str]]:
    pos = 0
    while (m := pat.search(folded, pos)) is not None:
        if word_start and m.start() > 0 and folded[m.start() - 1] in WORD_CHARS:
            pos = m.start() + 1  # inside a word: a match may still begin further on
            continue
        yield m
        pos = max(m.end(), m.start() + 1)


def _matches(folded: str, terms: set[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    taken: bytearray | None = None  # longer terms win: a shorter one inside them is not marked
    for term, pat, word_start in _patterns(frozenset(terms)):
        if term not in folded:  # a substring test is far cheaper than a regex scan
            continue
        found = [m.span() for m in _find(folded, pat, word_start)]
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


def snippet(text: str, terms: set[str], width: int = WIDTH, folded: str | None = None) -> str:
    """HTML-escaped window of ``text`` around the densest cluster of ``terms``. ``folded``:
    ``normalize(flatten(text))``, when it is at hand."""
    flat = flatten(text)
    folded = normalize(flat) if folded is None else folded
    if len(folded) != len(flat):  # a conversion changed lengths: positions would not line up
        folded = flat.casefold()
    if not flat:
        return ""
    spans = _matches(folded, terms)
    start = 0
    if spans:
        best = _densest([s for s, _ in spans], width)
        start = max(0, spans[best][0] - width // 6)
        if start > 0:  # begin at a word or sentence boundary near the match
            cut = max(flat.rfind(ch, 0, spans[best][0]) for ch in " 。，,.;；")
            start = cut + 1 if cut >= start - width // 3 and cut >= 0 else start
    end = min(len(flat), start + width)
    out = []
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
