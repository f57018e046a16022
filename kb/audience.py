"""Audiences: what a public caller may see, and the scrubbing of text sent to one.

An internal article (procedures, risk cases) is never shown to a public caller, and neither
is its id or title quoted inside a public article, such as a "related documents" list naming
an internal SOP. The scrubber finds those names the way search matches text (width, case,
Traditional and Simplified folded alike) and drops a list item that names one, or puts a
placeholder where it is quoted in running text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping

from kb.text import normalize_lines

PUBLIC, INTERNAL = "public", "internal"
AUDIENCES = (PUBLIC, INTERNAL)
MIN_NAME = 3  # shorter titles are ordinary words; ids are always longer

_LIST_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s")
_LINK = re.compile(r"\[[^\]\n]*\]\([^)\n]*\)")
_GLUE = re.compile(r"[\s(（\[【)）\]】:：,，/|·-]*")  # between a title and its id
_CJK = re.compile(r"[\u3400-\u9fff]")
_SLUG = re.compile(r"[a-z0-9]+(?:[-_.][a-z0-9]+)+")


def visible(record: Mapping, audience: str) -> bool:
    """May a caller of ``audience`` see this article (an index record)?"""
    return audience == INTERNAL or record.get("audience") == PUBLIC


def visible_id(articles: Mapping[str, Mapping], article_id: str | None, audience: str) -> bool:
    """Is ``article_id`` an article of the index that a caller of ``audience`` may see?"""
    record = articles.get(article_id) if article_id is not None else None
    return record is not None and visible(record, audience)


def visible_ids(articles: Mapping[str, Mapping], audience: str) -> set[str]:
    return {a for a, r in articles.items() if visible(r, audience)}


def _fold(text: str) -> tuple[str, list[int]]:
    """``text`` folded one character at a time, with where each character starts in it: a
    match in the folded text maps back to the characters it came from."""
    parts = normalize_lines(list(text)) if text else []
    starts, at = [], 0
    for part in parts:
        starts.append(at)
        at += len(part)
    return "".join(parts), starts


class Scrubber:
    """Removes the ids and titles of internal articles from text for public callers."""

    def __init__(self, articles: Mapping[str, Mapping]) -> None:
        names: set[str] = set()
        for article_id, record in articles.items():
            if record.get("audience") != PUBLIC:
                names.update(n for n in (article_id, str(record.get("title", "")))
                             if len(n.strip()) >= MIN_NAME)
        folded = sorted({_fold(" ".join(n.split()))[0] for n in names}, key=len, reverse=True)
        alternatives = []
        for name in folded:
            if _SLUG.fullmatch(name):  # an id: not inside a longer id (it-vpn-809-v2)
                left, right = r"(?<![a-z0-9_-])", r"(?![a-z0-9_]|-[a-z0-9])"
            else:
                left = r"(?<![a-z0-9])" if name[:1].isascii() and name[:1].isalnum() else ""
                right = r"(?![a-z0-9])" if name[-1:].isascii() and name[-1:].isalnum() else ""
            alternatives.append(left + re.escape(name) + right)
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def spans(self, line: str) -> list[tuple[int, int]]:
        """Where internal names are quoted in one line, as character spans of ``line``."""
        if self._pattern is None or not line:
            return []
        folded, starts = _fold(line)
        found = []
        for m in self._pattern.finditer(folded):
            s = bisect.bisect_right(starts, m.start()) - 1
            e = bisect.bisect_left(starts, m.end())
            found.append((s, e))
        return found

    def mentions(self, text: str) -> bool:
        return any(self.spans(line) for line in text.splitlines())

    def scrub(self, text: str) -> str:
        """``text`` with every internal name gone: list items naming one are dropped, other
        mentions become a placeholder."""
        if self._pattern is None:
            return text
        out = []
        for line in text.split("\n"):
            spans = self.spans(line)
            kept = _replace(line, spans) if spans else line
            if kept is not None:
                out.append(kept)
        return "\n".join(out)

    def scrub_all(self, texts: Iterable[str]) -> list[str]:
        return [self.scrub(t) for t in texts]


_OPEN, _CLOSE = "(（《「“【[", ")）》」”】]"
_OPENED = re.compile(rf"[{re.escape(_OPEN)}]\s*$")
_CLOSED = re.compile(rf"\s*[{re.escape(_CLOSE)}]")
_WORDS = re.compile(r"[\w\u3400-\u9fff]")


def _replace(line: str, spans: list[tuple[int, int]]) -> str | None:
    """The line with the spans gone; None for a list item that was little more than them."""
    placeholder = "[内部文档]" if _CJK.search(line) else "[internal document]"
    merged: list[list[int]] = []
    links = [m.span() for m in _LINK.finditer(line)]
    for s, e in spans:
        for ls, le in links:  # a markdown link naming the article goes whole
            if ls <= s < le or ls < e <= le:
                s, e = min(s, ls), max(e, le)
        if merged and _GLUE.fullmatch(line[merged[-1][1]:s]):
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out: list[str] = []
    pos = 0
    for s, e in merged:
        inner = line[s:e]
        # "title (id)": the id's closing bracket goes along; "《title》": both brackets do.
        if sum(map(inner.count, _OPEN)) > sum(map(inner.count, _CLOSE)):
            m = _CLOSED.match(line, e)
            e = m.end() if m else e
        opened, closed = _OPENED.search(line[pos:s]), _CLOSED.match(line, e)
        if opened and closed:
            s, e = pos + opened.start(), closed.end()
        out += (line[pos:s], "\x00")
        pos = e
    out.append(line[pos:])
    kept = "".join(out)
    if _LIST_ITEM.match(line) and len(_WORDS.findall(kept.replace("\x00", ""))) < 8:
        return None
    return kept.replace("\x00", placeholder)
