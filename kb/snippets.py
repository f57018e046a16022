"""Snippets: the part of a section that best matches the query, matched terms in <mark>."""

from __future__ import annotations

import html
import re

from kb.text import normalize

WIDTH = 180


def _patterns(terms: set[str]) -> list[re.Pattern[str]]:
    pats = []
    for term in sorted(terms, key=len, reverse=True):
        if not term:
            continue
        if term.isascii() and term[-1:].isalnum():
            # English terms are stems: "instal" must mark "installation".
            pats.append(re.compile(rf"(?<![a-z0-9]){re.escape(term)}[a-z0-9]*"))
        else:
            pats.append(re.compile(re.escape(term)))
    return pats


def _matches(folded: str, terms: set[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for pat in _patterns(terms):
        for m in pat.finditer(folded):
            if not any(s < m.end() and m.start() < e for s, e in spans):
                spans.append((m.start(), m.end()))
    return sorted(spans)


def snippet(text: str, terms: set[str], width: int = WIDTH) -> str:
    """HTML-escaped window of ``text`` around the densest cluster of ``terms``."""
    flat = " ".join(text.split())
    if not flat:
        return ""
    folded = normalize(flat)
    if len(folded) != len(flat):  # a conversion changed lengths: positions would not line up
        folded = flat.casefold()
    spans = _matches(folded, terms)
    start = 0
    if spans:
        best = max(
            range(len(spans)),
            key=lambda i: (sum(1 for s, _ in spans if spans[i][0] <= s < spans[i][0] + width), -i),
        )
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
        out.append(html.escape(flat[pos:s]))
        out.append(f"<mark>{html.escape(flat[s:e])}</mark>")
        pos = e
    out.append(html.escape(flat[pos:end]))
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(flat) else ""
    return prefix + "".join(out).strip() + suffix
