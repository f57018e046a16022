"""Cut articles into chunks: one per section (long ones split at line breaks) and one per FAQ
alternative question, each with the text to embed and the weighted text to index lexically."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from kb.articles import Article, Section

# Bump when a change here changes the chunks cut from the same article: builds then reuse nothing
# of an index cut by the old code.
CHUNKING_VERSION = 2

# Field boosts for BM25, applied by repeating a field's text (a BM25F approximation).
TITLE_BOOST = 3
QUESTION_BOOST = 3
HEADING_BOOST = 2
# A line this many times the chunk size is no paragraph a writer wrote (a pasted log, an export
# on one line): it is cut into chunk-sized pieces. Lines of real articles stay whole (the
# longest in the benchmark sets is about 6 chunks), so their chunks are as before.
LONG_LINE = 20
_BREAKS = " \t。！？；，、.!?;,"


@dataclass(frozen=True)
class Chunk:
    id: str
    article_id: str
    kind: str  # "section", "title" or "question"
    section: str  # heading path below the title, " > "-joined; "" for the top of the article
    anchor: str
    text: str  # what a snippet is cut from
    embed_text: str
    lexical_text: str
    hash: str

    def to_dict(self) -> dict[str, str]:
        return dict(vars(self))  # every field is a str: no need for asdict's deep copy


def _cut(line: str, limit: int) -> list[str]:
    """A line in pieces of at most ``limit`` characters, each ending after a space or a
    punctuation mark in its second half where it has one."""
    pieces = []
    start = 0
    while len(line) - start > limit:
        end = start + limit
        at = max(line.rfind(c, start + limit // 2, end) for c in _BREAKS)
        end = at + 1 if at >= 0 else end
        pieces.append(line[start:end].strip())
        start = end
    pieces.append(line[start:].strip())
    return [p for p in pieces if p]


def _split(text: str, limit: int) -> list[str]:
    """Split at line breaks into pieces of at most ``limit`` characters (a longer line stays,
    unless it is over LONG_LINE times as long)."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    lines = [piece for line in text.split("\n")
             for piece in (_cut(line, limit) if len(line) > LONG_LINE * limit else [line])]
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            pieces.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        pieces.append(current)
    return pieces


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _section_chunks(article: Article, section: Section, limit: int) -> list[tuple[str, str, str]]:
    heading = " > ".join(section.heading_path[1:])
    out = []
    for piece in _split(section.text, limit):
        context = f"{article.title} > {heading}" if heading else article.title
        embed = f"{context}\n{piece}".strip()
        lexical = " ".join(
            [article.title] * TITLE_BOOST + [heading] * HEADING_BOOST + [piece]
        )
        out.append((piece, embed, lexical))
    return out


def chunk_article(article: Article, max_chars: int = 600) -> list[Chunk]:
    chunks: list[Chunk] = []
    first = article.sections[0]
    for section in article.sections:
        if section.links is not None:
            continue  # a list of other articles: links, not content (see Article.related)
        heading = " > ".join(section.heading_path[1:])
        for text, embed, lexical in _section_chunks(article, section, max_chars):
            n = len(chunks)
            chunks.append(Chunk(f"{article.id}#{n}", article.id, "section", heading,
                                section.anchor, text, embed, lexical, _hash(embed)))
    # The title and each alternative question get vectors of their own: in a support knowledge
    # base they are the problem statements queries paraphrase, and a long answer would dilute
    # them. They point at the first section, where the answer starts.
    # Tags are English slugs whatever the article's language ("refund-timeline"): on the
    # title chunk they are evidence in English for a Chinese article, and back.
    first_heading = " > ".join(first.heading_path[1:])
    if any(c.text for c in chunks):
        n = len(chunks)
        tags = " ".join(t.replace("-", " ") for t in article.tags)
        chunks.append(Chunk(f"{article.id}#{n}", article.id, "title", first_heading,
                            first.anchor, first.text, article.title,
                            f"{article.title} {tags}".strip(), _hash(article.title)))
    for question in article.questions:
        n = len(chunks)
        lexical = " ".join([question] * QUESTION_BOOST + [article.title] * TITLE_BOOST)
        chunks.append(Chunk(f"{article.id}#{n}", article.id, "question", first_heading,
                            first.anchor, first.text, question, lexical, _hash(question)))
    return chunks
