"""An article as a reader sees it: each section's HTML and plain text, related documents linked.

The sections are cut exactly where ``kb.articles.parse_sections`` cuts them, so every anchor a
search result points at is an anchor of the rendered article. Markdown is rendered by
markdown-it-py with raw HTML off: an article can never inject markup or script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from kb.articles import _MD as _INDEXED
from kb.articles import (
    Article,
    _inline_text,
    _link_item,
    parse_article,
    related_items,
    slugify,
    split_blocks,
)
from kb.text import normalize

_MD = MarkdownIt("commonmark", {"html": False}).enable("table")

# Headings (normalised: case folded, Traditional→Simplified) of the sections agents paste to a
# customer, and of the "related documents" lists.
REPLY_HEADINGS = ("话术", "reply template", "reply script", "回复模板", "答复模板", "canned reply")
ANSWER_HEADINGS = ("答复", "答复内容", "answer", "回答", "解答")
INTERNAL_MENTION = "内部文档 · internal document"
_ID_SUFFIX = re.compile(r"\s*[(（]\s*([A-Za-z0-9][A-Za-z0-9._\-]*)\s*[)）]\s*$")
_MENTION = re.compile(r"《([^《》\n]{1,200})》")
_QUOTES = {"“": "”", '"': '"', "「": "」", "『": "』", "‘": "’"}


@dataclass
class RenderedSection:
    heading_path: list[str]
    anchor: str
    level: int  # heading level, 1 for the text under the title
    html: str
    text: str  # plain text, what the copy button puts on the clipboard
    copy: str | None  # "reply" (a reply template), "answer" (an FAQ answer) or None


@dataclass
class Rendered:
    article: Article
    sections: list[RenderedSection]
    related: list[dict] = field(default_factory=list)  # articles the text links to: id, title


class Titles:
    """Finds the article a related-documents line or a 《title》 mention names."""

    def __init__(self, records: Mapping[str, Mapping]) -> None:
        self.records = records
        self._by_title: dict[str, str] = {}
        for article_id, record in records.items():
            self._by_title.setdefault(_key(str(record["title"])), article_id)

    def find(self, text: str) -> str | None:
        named = _ID_SUFFIX.search(text)
        if named and named.group(1) in self.records:
            return named.group(1)
        return self._by_title.get(_key(text)) or self._by_title.get(_key(_ID_SUFFIX.sub("", text)))


def _key(title: str) -> str:
    return "".join(ch for ch in normalize(title) if ch.isalnum())


def _heading_kind(heading: str) -> str:
    return normalize(heading).strip().rstrip(":：")


def copy_kind(article_type: str, heading_path: tuple[str, ...], first_answer: bool) -> str | None:
    """``first_answer``: the section where an FAQ without an answer heading starts answering."""
    heading = _heading_kind(heading_path[-1]) if heading_path else ""
    if any(h in heading for h in REPLY_HEADINGS):
        return "reply"
    if article_type == "faq" and (heading in ANSWER_HEADINGS or first_answer):
        return "answer"
    return None


def _indexed_headings(body: str) -> dict[int, str]:
    """Heading text by source line, as the index read it: its parser lets raw HTML through
    (and drops it from headings), this one does not, and the anchors must be the same."""
    tokens = _INDEXED.parse(body)
    return {tok.map[0]: _inline_text(tokens[i + 1]).strip() for i, tok in enumerate(tokens)
            if tok.type == "heading_open" and tok.map}


def _link(children: list[Token], href: str, internal: bool = False) -> list[Token]:
    attrs: dict[str, str | int | float] = {"href": href}
    if internal:
        attrs["class"] = "internal"
    opening = Token("link_open", "a", 1, attrs=attrs)
    return [opening, *children, Token("link_close", "a", -1)]


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


class _Linker:
    def __init__(self, titles: Titles, public: bool, own_id: str) -> None:
        self.titles, self.public, self.own_id = titles, public, own_id
        self.related: dict[str, dict] = {}

    def internal(self, article_id: str) -> bool:
        return self.titles.records[article_id].get("audience") == "internal"

    def hidden(self, article_id: str) -> bool:
        return self.public and self.internal(article_id)

    def target(self, article_id: str) -> str:
        if article_id != self.own_id:
            record = self.titles.records[article_id]
            self.related.setdefault(article_id, {"id": article_id, "title": record["title"],
                                                 "audience": record.get("audience", "public")})
        return f"/a/{article_id}"

    def mentions(self, inline: Token) -> None:
        """《title》 of another article becomes a link (or, for a public reader, an internal
        article's title is withheld)."""
        children: list[Token] = []
        for child in inline.children or []:
            if child.type != "text" or "《" not in child.content:
                children.append(child)
                continue
            pos = 0
            for m in _MENTION.finditer(child.content):
                found = self.titles.find(m.group(1))
                if found is None:
                    continue
                children.append(_text(child.content[pos : m.start()]))
                if self.hidden(found):
                    children.append(_text(f"《{INTERNAL_MENTION}》"))
                else:
                    children.extend(_link([_text(m.group(0))], self.target(found),
                                          self.internal(found)))
                pos = m.end()
            children.append(_text(child.content[pos:]))
        inline.children = children

    def related_list(self, tokens: list[Token]) -> list[Token]:
        """Each line of a related-documents list that names an article links to it; a public
        reader does not see the lines naming internal ones."""
        out: list[Token] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.type != "list_item_open":
                out.append(tok)
                i += 1
                continue
            end = _close(tokens, i)
            item = tokens[i : end + 1]
            inline = next((t for t in item if t.type == "inline"), None)
            named = inline is not None and (_link_item(inline) or inline.content)
            found = self.titles.find(named) if named else None
            if found is not None and self.hidden(found):
                i = end + 1
                continue
            if found is not None and inline is not None:
                children = list(inline.children or [])
                opening = next((c for c in children if c.type == "link_open"), None)
                if opening is None:
                    inline.children = _link(children, self.target(found), self.internal(found))
                else:  # a link to the article's file: point it at the article view instead
                    opening.attrs["href"] = self.target(found)
                    if self.internal(found):
                        opening.attrs["class"] = "internal"
            out.extend(item)
            i = end + 1
        return out


def _close(tokens: list[Token], start: int) -> int:
    depth = 0
    for j in range(start, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def plain_text(tokens: list[Token]) -> str:
    """What a reader would type out: paragraphs, list items with their bullets or numbers,
    table rows with tab-separated cells, code as is."""
    lines: list[str] = []
    lists: list[list[int]] = []  # per open list: [ordered, next number]
    row: list[str] | None = None
    prefix = ""
    for tok in tokens:
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            numbered = tok.type == "ordered_list_open"
            lists.append([int(numbered), int(tok.attrGet("start") or 1) if numbered else 0])
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                lines.append("")
        elif tok.type == "list_item_open" and lists:
            ordered, number = lists[-1]
            indent = "  " * (len(lists) - 1)
            prefix = f"{indent}{number}. " if ordered else f"{indent}- "
            if ordered:
                lists[-1][1] += 1
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close" and row is not None:
            lines.append("\t".join(row))
            row = None
        elif tok.type == "table_close":
            lines.append("")
        elif tok.type == "inline":
            text = "".join(_inline_plain(c) for c in tok.children or [])
            if row is not None:
                row.append(text)
            else:
                lines.append(prefix + text)
                prefix = ""
        elif tok.type == "paragraph_close" and not lists and not tok.hidden:
            lines.append("")
        elif tok.type in ("fence", "code_block"):
            lines.extend([tok.content.rstrip("\n"), ""])
        elif tok.type == "hr":
            lines.append("")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return _unquote(text)


def _inline_plain(token: Token) -> str:
    if token.type in ("text", "code_inline"):
        return token.content
    if token.type in ("softbreak", "hardbreak"):
        return "\n"
    if token.type == "image":
        return "".join(_inline_plain(c) for c in token.children or [])
    return ""


def _unquote(text: str) -> str:
    """A reply template quoted as a whole is pasted without its quotation marks."""
    if len(text) > 2 and _QUOTES.get(text[0]) == text[-1]:
        inner = text[1:-1]
        if text[0] not in inner and text[-1] not in inner:
            return inner.strip()
    return text


class _Renderer:
    def __init__(self) -> None:
        self.md = _MD
        rules = self.md.renderer.rules  # type: ignore[attr-defined]  # RendererHTML's

        def table_open(tokens: list, idx: int, options: dict, env: dict) -> str:
            return '<div class="table-wrap"><table>\n'

        def table_close(tokens: list, idx: int, options: dict, env: dict) -> str:
            return "</table></div>\n"

        rules["table_open"] = table_open
        rules["table_close"] = table_close

    def html(self, tokens: list[Token]) -> str:
        return self.md.renderer.render(tokens, self.md.options, {})


_RENDERER = _Renderer()


def render_article(path: Path, titles: Titles, public: bool = False) -> Rendered:
    """Parse and render one article file. ``public``: the reader may not see internal articles,
    so lines and mentions naming them are left out."""
    article, problems = parse_article(path)
    if article is None:
        raise ValueError("; ".join(p.message for p in problems))
    text = path.read_text(encoding="utf-8")
    body = _body(text)
    tokens = _MD.parse(body)
    linker = _Linker(titles, public, article.id)
    for tok in tokens:
        if tok.type == "inline":
            linker.mentions(tok)
    sections = []
    blocks = split_blocks(tokens, article.title, headings=_indexed_headings(body))
    headed = any(_heading_kind(b.heading_path[-1]) in ANSWER_HEADINGS for b in blocks)
    for n, block in enumerate(blocks):
        body_tokens = block.tokens
        if related_items(block) is not None:
            body_tokens = linker.related_list(body_tokens)
        sections.append(RenderedSection(
            heading_path=list(block.heading_path), anchor=block.anchor, level=block.level,
            html=_RENDERER.html(body_tokens), text=plain_text(body_tokens),
            copy=copy_kind(article.type, block.heading_path, n == 0 and not headed),
        ))
    if not sections:  # a title-only FAQ: its one section is the title
        sections.append(RenderedSection([article.title], slugify(article.title), 1, "", "", None))
    return Rendered(article, sections, list(linker.related.values()))


def _body(text: str) -> str:
    """The markdown below the front matter (parse_article has checked that there is one)."""
    lines = text.splitlines(keepends=True)
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "".join(lines[i + 1 :])
    return ""
