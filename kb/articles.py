"""Parse markdown articles with YAML front matter into sections (heading path + anchor + text)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from kb.errors import ArticleError, Problem
from kb.text import detect_lang, normalize
from kb.yamlfile import Loader, TextError, decode, error_at

TYPES = ("faq", "sop", "case")
LANGS = ("zh", "en")
AUDIENCES = ("public", "internal")
# Bump when a change to parsing changes what is parsed from the same file: builds then parse
# every file again and reuse nothing of an index built by the old parser.
PARSER_VERSION = 2
# Bump when parsing refuses a file it used to accept (and parses the rest as before): builds then
# check every file again, but still reuse an index built before.
CHECKS_VERSION = 1
KEYS = {"id", "title", "type", "tags", "product", "lang", "audience", "updated", "review_by",
        "questions"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_MD = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True)
class Section:
    heading_path: tuple[str, ...]
    anchor: str
    text: str
    line: int
    links: tuple[str, ...] | None = None  # a "related documents" section: its items, raw


# Headings of sections that list other articles rather than say anything (compared folded).
RELATED_HEADINGS = frozenset({
    "相关文档", "相关文件", "相关文章", "相关链接", "相关资料", "参考文档", "延伸阅读", "参见",
    "related documents", "related articles", "related", "related links", "see also",
    "further reading",
})
_ID_IN_PARENS = re.compile(r"[（(]\s*([A-Za-z0-9][A-Za-z0-9._\-]*)\s*[)）]\s*$")


@dataclass
class Article:
    id: str
    title: str
    type: str
    path: str
    lang: str
    audience: str = "public"
    tags: list[str] = field(default_factory=list)
    product: str | None = None
    updated: str | None = None
    review_by: str | None = None
    questions: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    # Links to other articles, from its "related documents" sections: {"title", "id"}, the id
    # None when no article of the knowledge base matches the item.
    related: list[dict[str, str | None]] = field(default_factory=list)


def slugify(heading: str) -> str:
    """GitHub-style anchor; CJK characters are kept so Chinese headings get readable anchors."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r"\s", "-", slug)


def _split_front_matter(text: str) -> tuple[str, str, int] | str:
    """Return (yaml, body, line where the body starts), or what is wrong with the file's top."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return "missing YAML front matter (a '---' block at the top)"
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 2
    return "front matter not closed: no '---' line after line 1"


def _inline_text(token: Token) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


def _link_item(token: Token) -> str | None:
    """A list item that is one link: its text, with the target's article id in parentheses
    when the target names one (``[标题](../it/it-vpn-slow.md)``); None for anything else."""
    children = [c for c in token.children or [] if not (c.type == "text" and not c.content.strip())]
    if len(children) < 3 or children[0].type != "link_open" or children[-1].type != "link_close":
        return None
    if any(c.type == "link_open" for c in children[1:]):
        return None
    target = str(children[0].attrs.get("href", ""))
    name = target.split("#")[0].rstrip("/").rsplit("/", 1)[-1].removesuffix(".md")
    text = "".join(c.content for c in children[1:-1] if c.type in ("text", "code_inline"))
    return f"{text.strip()} ({name})" if _ID.match(name or "-") else text.strip()


def is_related_heading(heading: str) -> bool:
    return normalize(heading).strip().strip(":：") in RELATED_HEADINGS


@dataclass(frozen=True)
class Block:
    """One section's share of a parsed markdown body: the tokens under its heading."""

    heading_path: tuple[str, ...]
    anchor: str
    level: int  # heading level, 1 for the text under the title
    tokens: list[Token]
    text: str
    line: int


def split_blocks(tokens: list[Token], title: str, first_line: int = 0,
                 headings: dict[int, str] | None = None) -> list[Block]:
    """Cut a token stream at its headings. The index and the article view both cut here, so
    every anchor a result points at exists on the page; ``headings`` overrides heading text by
    source line (the view's parser reads raw HTML in headings differently)."""
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    used: dict[str, int] = {}
    body: list[Token] = []
    texts: list[str] = []
    start = first_line

    def flush() -> None:
        text = "\n".join(t for t in texts if t.strip()).strip()
        path = tuple(h for _, h in stack) or (title,)
        if text or (stack and stack[-1][0] > 1):
            base = slugify(path[-1])
            n = used.get(base, 0)
            used[base] = n + 1
            blocks.append(Block(path, base if n == 0 else f"{base}-{n}",
                                stack[-1][0] if stack else 1, body, text, start))

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            heading = _inline_text(tokens[i + 1]).strip()
            if headings is not None and tok.map:
                heading = headings.get(tok.map[0], heading)
            level = int(tok.tag[1])
            if texts or stack:
                flush()
            body, texts = [], []
            stack = [(lv, h) for lv, h in stack if lv < level] + [(level, heading)]
            start = first_line + (tok.map[0] if tok.map else 0)
            i += 3
            continue
        body.append(tok)
        if tok.type == "inline":
            texts.append(_inline_text(tok))
        elif tok.type in ("fence", "code_block"):
            texts.append(tok.content)
        i += 1
    flush()
    # An h1 that only repeats the title and has no text of its own is not a section.
    return [b for b in blocks if b.text or len(b.heading_path) > 1]


def related_items(block: Block) -> tuple[str, ...] | None:
    """The items of a section that lists other articles (under a "related documents" heading,
    or nothing but a list of links); None for a section that says something itself."""
    items: list[str | None] = []  # None: an item that is not one bare link
    lines: list[str] = []
    depth = 0
    for tok in block.tokens:
        if tok.type == "list_item_open":
            depth += 1
        elif tok.type == "list_item_close":
            depth -= 1
        elif tok.type == "inline" and depth > 0:
            items.append(_link_item(tok))
            lines.append(_inline_text(tok))
        elif (tok.type == "inline" and tok.content.strip()) or tok.type in ("fence", "code_block"):
            return None
    if not items:
        return None
    if (len(block.heading_path) > 1 and is_related_heading(block.heading_path[-1])) or all(
            item is not None for item in items):
        return tuple(item if item is not None else line for item, line in zip(items, lines, strict=True))
    return None


def parse_sections(body: str, title: str, first_line: int) -> list[Section]:
    """Split the markdown body into sections, one per heading, keeping the heading path.

    A section that lists other articles keeps its items as ``links`` (see ``related_links``)."""
    return [Section(b.heading_path, b.anchor, b.text, b.line, related_items(b))
            for b in split_blocks(_MD.parse(body), title, first_line)]


def _key_lines(node: yaml.Node | None, offset: int) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + offset for k, _ in node.value if hasattr(k, "value")}


def _load_yaml(raw: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for key line numbers) and the values, from one parse."""
    loader = Loader(raw)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _as_date(value: Any) -> str | None:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            return None
    return None


def _str_list(value: Any) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    return None


def parse_article(path: Path, display: str | None = None) -> tuple[Article | None, list[Problem]]:
    """Parse one file. Returns the article (None when unusable) and every problem found."""
    name = display or str(path)
    try:
        text = decode(path.read_bytes())
    except OSError as exc:
        return None, [Problem(name, 1, f"cannot read file: {exc}")]
    except TextError as exc:
        return None, [Problem(name, exc.line, exc.message)]
    if not text.strip():
        return None, [Problem(name, 1, "file is empty")]
    split = _split_front_matter(text)
    if isinstance(split, str):
        return None, [Problem(name, 1, split)]
    raw, body, body_line = split
    try:
        node, meta = _load_yaml(raw)
    except yaml.YAMLError as exc:
        line, problem = error_at(exc, raw, 2)
        return None, [Problem(name, line, f"invalid YAML front matter: {problem}")]
    if not isinstance(meta, dict):
        return None, [Problem(name, 2, "front matter must be a mapping of keys to values")]
    lines = _key_lines(node, 2)
    problems: list[Problem] = []

    def bad(key: str, message: str) -> None:
        problems.append(Problem(name, lines.get(key, 1), message))

    for key in sorted(set(map(str, meta)) - KEYS):
        bad(key, f"unknown front matter key '{key}' (known: {', '.join(sorted(KEYS))})")
    art_id, title, typ = meta.get("id"), meta.get("title"), meta.get("type")
    if art_id is None or str(art_id).strip() == "":
        bad("id", "missing required 'id'")
    elif not _ID.match(str(art_id)):
        bad("id", f"invalid id {art_id!r}: use letters, digits, '.', '_' or '-'")
    if title is None or str(title).strip() == "":
        bad("title", "missing required 'title'")
    if typ is None:
        bad("type", f"missing required 'type' (one of {', '.join(TYPES)})")
    elif typ not in TYPES:
        bad("type", f"unknown type {typ!r} (one of {', '.join(TYPES)})")
    lang = meta.get("lang")
    if lang is not None and lang not in LANGS:
        bad("lang", f"unknown lang {lang!r} (one of {', '.join(LANGS)})")
    audience = meta.get("audience", "public")
    if audience not in AUDIENCES:
        bad("audience", f"unknown audience {audience!r} (one of {', '.join(AUDIENCES)})")
    dates = {}
    for key in ("updated", "review_by"):
        if meta.get(key) is not None:
            dates[key] = _as_date(meta[key])
            if dates[key] is None:
                bad(key, f"{key}: {meta[key]} is not a date (YYYY-MM-DD)")
    lists = {}
    for key in ("tags", "questions"):
        lists[key] = _str_list(meta.get(key))
        if lists[key] is None:
            bad(key, f"'{key}' must be a list of strings")
    product = meta.get("product")
    if product is not None and not isinstance(product, str | int | float):
        bad("product", "'product' must be a string")
    if problems:
        return None, problems

    title = str(title).strip()
    # A question-matching FAQ may be a title and nothing else: the title is then its one section.
    sections = parse_sections(body, title, body_line) or [
        Section((title,), slugify(title), "", body_line)
    ]
    all_text = title + "\n" + "\n".join(s.text for s in sections)
    article = Article(
        id=str(art_id),
        title=title,
        type=str(typ),
        path=name,
        lang=str(lang) if lang else detect_lang(all_text),
        audience=str(audience),
        tags=[t.strip() for t in lists["tags"] or [] if t.strip()],
        product=str(product) if product is not None else None,
        updated=dates.get("updated"),
        review_by=dates.get("review_by"),
        questions=[q.strip() for q in lists["questions"] or [] if q.strip()],
        sections=sections,
    )
    return article, []


@dataclass
class Parsed:
    """A parse cache entry: how a file looked when it was read, and the article parsed from it."""

    stat: tuple[int, int, int, int]  # size, mtime, ctime, inode
    hashed_at: int  # ns since the epoch, taken after the stat and before the hash
    digest: str  # of the file's bytes
    article: Article | None = None


# A file changed within this long before it was hashed may change again with the same stat
# (timestamps are as coarse as the kernel's clock tick): its bytes are hashed again next time.
RACY_NS = 2_000_000_000


def load_articles(root: Path, cache: dict[str, Parsed] | None = None, *,
                  shown_as: str | None = None, max_bytes: int | None = None) -> list[Article]:
    """Parse every ``*.md`` below ``root`` (README.md files excepted); raise with all problems.
    A file larger than ``max_bytes`` is one of them.

    ``cache`` maps absolute paths to what was parsed from them: a file whose size and
    timestamps are unchanged is not read again, one whose bytes are unchanged is not parsed
    again. On return it holds exactly the current files' entries.

    Articles and problems name files below ``shown_as`` (default: ``root`` as given), so a
    build run for a command in another folder reports paths as that command would.
    """
    if not root.is_dir():
        raise ArticleError([Problem(shown_as or str(root), 0, "articles folder does not exist")])
    articles: list[Article] = []
    problems: list[Problem] = []
    seen: dict[str, Article] = {}
    fresh: dict[str, Parsed] = {}
    for real, display in _markdown_files(root, shown_as or str(root)):
        entry = _reusable(real, cache.get(real)) if cache is not None else None
        if max_bytes is not None and (large := _too_large(real, entry, max_bytes)) is not None:
            problems.append(Problem(display, 1, large))
            continue
        if entry is None or entry.article is None:
            article, found = parse_article(Path(real), display)
            if entry is not None and article is not None and not found:
                entry.article = article
        else:
            article, found = entry.article, []
            if article.path != display:  # the same file, reached through another path
                article = entry.article = replace(article, path=display)
        if entry is not None and entry.article is not None:
            fresh[real] = entry
        problems.extend(found)
        if article is None:
            continue
        if article.id in seen:
            first = seen[article.id].path
            line = _id_line(Path(real))
            problems.append(Problem(display, line, f"duplicate id '{article.id}' (also in {first})"))
            continue
        seen[article.id] = article
        articles.append(article)
    if problems:
        raise ArticleError(problems)
    articles = _with_related(articles, fresh)
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    return articles


def related_links(article: Article, by_id: dict[str, str],
                  by_title: dict[str, str]) -> list[dict[str, str | None]]:
    """The articles an article's "related documents" sections name, in order, each found by
    the id in parentheses after it or else by its title."""
    out: list[dict[str, str | None]] = []
    seen: set[str] = set()
    for section in article.sections:
        for item in section.links or ():
            text = item.strip().lstrip("-*+ ").strip()
            found = _ID_IN_PARENS.search(text)
            title = _ID_IN_PARENS.sub("", text).strip() if found else text
            target = found.group(1) if found and found.group(1) in by_id else None
            if target is None:
                target = by_title.get(normalize(title).strip())
            if target == article.id or (target is not None and target in seen):
                continue
            if target is not None:
                seen.add(target)
            out.append({"title": by_id.get(target, title) if target else title, "id": target})
    return out


def _with_related(articles: list[Article], fresh: dict[str, Parsed]) -> list[Article]:
    """The articles with their related links resolved against each other. An article whose
    links changed is a new object (a build reuses the work done for an unchanged object), and
    the parse cache keeps it, so the next build finds the same object again."""
    by_id = {a.id: a.title for a in articles}
    by_title = {normalize(a.title).strip(): a.id for a in articles}
    entries = {id(e.article): e for e in fresh.values() if e.article is not None}
    out = []
    for article in articles:
        related = related_links(article, by_id, by_title)
        if related != article.related:
            updated = replace(article, related=related)
            entry = entries.get(id(article))
            if entry is not None:
                entry.article = updated
            article = updated
        out.append(article)
    return out


def _too_large(path: str, entry: Parsed | None, max_bytes: int) -> str | None:
    """What is wrong with a file over the size limit, None for one within it. A file that size
    is no article a writer wrote (a pasted log, an export), and its build takes memory out of
    all proportion (2 GB for 11 MB)."""
    try:
        size = entry.stat[0] if entry is not None else os.stat(path).st_size
    except OSError:
        return None  # parse_article reports a file it cannot read
    if size <= max_bytes:
        return None
    return (f"article is {_megabytes(size, up=True)} MB, over the limit of "
            f"{_megabytes(max_bytes, up=False)} MB (KB_MAX_ARTICLE_BYTES)")


def _megabytes(size: int, *, up: bool) -> str:
    # A file's size rounded up and the limit down, so a file just over the limit never reads
    # as the same figure.
    tenths = -(-size // 100_000) if up else size // 100_000
    return f"{tenths / 10:g}"


def _reusable(path: str, cached: object) -> Parsed | None:
    """The cached entry when the file is unchanged; else a fresh one, without an article, for
    the caller to parse into (None if the file cannot be read: parse_article reports it)."""
    try:
        st = os.stat(path)
        stat = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if (isinstance(cached, Parsed) and stat == cached.stat
                and stat[1] + RACY_NS < cached.hashed_at):
            return cached
        hashed_at = time.time_ns()
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None
    article = cached.article if isinstance(cached, Parsed) and digest == cached.digest else None
    return Parsed(stat, hashed_at, digest, article)


def _markdown_files(root: Path, shown_as: str) -> list[tuple[str, str]]:
    """(absolute path, path shown) of the articles below ``root``, in the order of their path
    components.

    Hidden files and folders (.git, editor swap dirs) are not articles, nor are README.md files.
    Plain strings and os.walk, not pathlib: a re-index after a one-article edit lists thousands
    of unchanged files, and Path objects made that listing a quarter of its time.
    """
    found: list[tuple[list[str], str, str]] = []
    top = os.path.abspath(root)
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(folder, top)
        parts = [] if rel == "." else rel.split(os.sep)
        real, shown = os.path.join(folder, ""), os.path.join(shown_as, *parts, "")
        for name in files:
            if name.endswith(".md") and not name.startswith(".") and name.lower() != "readme.md":
                found.append(([*parts, name], real + name, shown + name))
    return [(real, shown) for _, real, shown in sorted(found)]


def _id_line(path: Path) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("id:"):
            return n
    return 1
