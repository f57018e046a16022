"""Query expansion across languages and jargon: the writers' glossary and the CC-CEDICT bridge,
as lexical evidence weaker than the query's own words.

A query term's alternatives (its glossary group, or its dictionary translations into the other
language's index terms) add BM25 evidence at a fraction of its weight. For each term only its
best-matching alternative counts, so a term with many senses gains no more than one with one;
and when the term itself is in the index, what its alternatives add to a chunk never exceeds
what the term earns where it matches best, so a noisy sense cannot outrank an exact match.

In an article of the other language a translation's own BM25 is on another scale than the
query's words (a Chinese word counts as itself, its sub-words and its bigrams; the two
languages' words have their own document frequencies), so there it carries the term's weight
in the query instead (see ``expanded_scores``).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rjieba
from cachetools import LRUCache

from kb.bridge import Dictionary, cedict
from kb.glossary import Glossary
from kb.lexical import LexicalIndex
from kb.text import STOPWORDS, analyze, is_cjk, latin_tokens, normalize, pieces, tokenize

# Weights of an alternative relative to the term itself. In an article of the query's own
# language the term could have been used, so an equivalent counts less. In an article of the
# other language a translation is the only way the term can appear: a writer's equivalent
# counts as the term would, a dictionary's main sense a little less (an exact match wins a
# tie with a translation), a lesser sense less again.
GLOSSARY_WEIGHT = 0.7
BRIDGE_WEIGHT = 0.45
CROSS_GLOSSARY_WEIGHT = 1.0
CROSS_BRIDGE_WEIGHT = 0.9
MAX_SENSES = 4  # translations of a term kept among those the index holds
LEXICON_FILE = "lexicon.json"


@dataclass(frozen=True)
class Lexicon:
    """What an index version expands queries with: its glossary, and the dictionary reduced to
    translations into terms its articles hold."""

    glossary: Glossary = field(default_factory=Glossary)
    bridge: Dictionary = field(default_factory=lambda: Dictionary({}, {}))

    def to_dict(self) -> dict:
        return {"glossary": self.glossary.to_list(),
                "zh_en": {k: [list(p) for p in v] for k, v in self.bridge.zh_en.items()},
                "en_zh": {k: [list(p) for p in v] for k, v in self.bridge.en_zh.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> Lexicon:
        def table(raw: dict) -> dict[str, tuple[tuple[str, float], ...]]:
            return {k: tuple((str(t), float(w)) for t, w in v) for k, v in raw.items()}

        return cls(Glossary.from_list(data.get("glossary", [])),
                   Dictionary(table(data.get("zh_en", {})), table(data.get("en_zh", {}))))


def build_lexicon(glossary: Glossary, vocabulary: Iterable[str],
                  dictionary: Dictionary | None = None) -> Lexicon:
    """The lexicon of an index whose BM25 vocabulary is ``vocabulary``."""
    vocab = set(vocabulary)
    full = dictionary if dictionary is not None else cedict()

    def keep(pairs: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
        return tuple(p for p in pairs if p[0] in vocab and p[0] not in STOPWORDS)[:MAX_SENSES]

    zh_en = {h: kept for h, pairs in full.zh_en.items() if (kept := keep(pairs))}
    en_zh = {s: kept for s, pairs in full.en_zh.items() if (kept := keep(pairs))}
    return Lexicon(glossary, Dictionary(zh_en, en_zh))


def write_lexicon(folder: Path, lexicon: Lexicon) -> None:
    (folder / LEXICON_FILE).write_text(json.dumps(lexicon.to_dict(), ensure_ascii=False),
                                       encoding="utf-8")


def read_lexicon(folder: Path) -> Lexicon:
    """The lexicon of a version (an empty one for versions built before lexicons)."""
    try:
        raw = (folder / LEXICON_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Lexicon()
    return Lexicon.from_dict(json.loads(raw))


def read_glossary(folder: Path) -> list[list[str]] | None:
    """The glossary a version was built with, as published; None when it has no lexicon."""
    try:
        return read_lexicon(folder).glossary.to_list() if (folder / LEXICON_FILE).exists() else None
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Alternative:
    tokens: tuple[str, ...]
    weight: float  # in articles of the query's language
    text: str  # normalized surface form, for coverage
    cross_weight: float = 0.0  # in articles of the other language


@dataclass(frozen=True)
class Expansion:
    source: tuple[str, ...]  # the query term's own tokens
    text: str  # the query term, normalized
    alternatives: tuple[Alternative, ...]
    weighed: tuple[str, ...] = ()  # the query's BM25 tokens from the term, repeats kept
    occurs: int = 1  # how often the query has the term


def _words(norm: str) -> list[str]:
    """The query's words to translate: jieba's words (with their sub-words) and English
    stems, without bigram fallbacks or stop words."""
    out: list[str] = []
    for piece in pieces(norm):
        if is_cjk(piece[0]):
            out.extend(w for w in rjieba.cut_for_search(piece)
                       if w.strip() and w not in STOPWORDS)
        else:
            out.extend(t for t in latin_tokens(piece) if t.isalpha() and len(t) > 2)
    return list(dict.fromkeys(out))


def _weighed(text: str, norm: str, tokens: list[str]) -> tuple[tuple[str, ...], int]:
    """The query's tokens that come from ``text``, as often as the query has them (a Chinese
    word counts as itself, its sub-words and its bigrams), and how often the query has it."""
    own = tokenize(text, normalized=True)
    mine = set(own)
    weighed = tuple(t for t in tokens if t in mine)
    if is_cjk(text):
        occurs = norm.count(text)
    else:
        occurs = min((tokens.count(t) for t in own), default=1)
    return weighed, max(occurs, 1)


def expand(lexicon: Lexicon, norm: str, tokens: list[str]) -> list[Expansion]:
    """Alternatives for the terms of a normalized query whose BM25 tokens are ``tokens``."""
    have = set(tokens)
    out: list[Expansion] = []
    covered: set[str] = set()
    for term, others in lexicon.glossary.equivalents(norm, have):
        alts = tuple(Alternative(o.tokens, GLOSSARY_WEIGHT, o.text, CROSS_GLOSSARY_WEIGHT)
                     for o in others if not set(o.tokens) <= have)
        if alts:
            out.append(Expansion(term.tokens, term.text, alts, *_weighed(term.text, norm, tokens)))
        covered.add(term.text)
    for word in _words(norm):
        if any(word in c for c in covered):
            continue  # the glossary speaks for this term
        pairs = lexicon.bridge.translate(word)
        alts = tuple(Alternative((t,), BRIDGE_WEIGHT * w, t, CROSS_BRIDGE_WEIGHT * w)
                     for t, w in pairs if t not in have)
        if alts:
            out.append(Expansion((word,), word, alts, *_weighed(word, norm, tokens)))
    return out


def _nests(expansions: list[Expansion]) -> list[list[int]]:
    """Expansions grouped where one term's tokens hold another's (账号 in 注销账号, 客户 in
    客户端): one stretch of the query, whose weight in another language counts once."""
    parent = list(range(len(expansions)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    tokens = [set(e.weighed or e.source) for e in expansions]
    for i in range(len(expansions)):
        for j in range(i):
            if tokens[i] and tokens[j] and (tokens[i] <= tokens[j] or tokens[j] <= tokens[i]):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(expansions)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _idf(df: int, chunks: int) -> float:
    """Lucene's BM25 idf (kb.lexical's) of a token held by ``df`` of ``chunks`` chunks."""
    return math.log(1.0 + (chunks - df + 0.5) / (df + 0.5))


def _ascending(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] > values[:-1]))


class _Rows:
    """Scratch arrays over the index's rows, made once per query: a flag and a slot per row,
    to gather the rows of a few postings in one pass instead of a sort of them all."""

    def __init__(self, size: int) -> None:
        self._held = np.zeros(size, dtype=bool)
        self._slot = np.empty(size, dtype=np.int32)

    def union(self, positions: list[np.ndarray]) -> np.ndarray:
        """The distinct positions of all of ``positions``, ascending."""
        if len(positions) == 1 and _ascending(positions[0]):
            return positions[0]  # one posting: its rows already are (bm25s keeps them so)
        held = sum(len(at) for at in positions)
        if held * 16 < len(self._held):  # few rows: a sort costs less than a pass over all
            out = np.sort(np.concatenate(positions)) if positions else np.zeros(0, np.int64)
            return out[np.concatenate(([True], out[1:] != out[:-1]))] if held else out
        for at in positions:
            self._held[at] = True
        rows = np.flatnonzero(self._held)
        self._held[rows] = False
        return rows

    def slots(self, rows: np.ndarray) -> np.ndarray:
        """Each row's place in ``rows``, read at the rows of ``rows`` only."""
        self._slot[rows] = np.arange(len(rows), dtype=np.int32)
        return self._slot


class _Local:
    """The tokens of one expansion over only the rows holding one of them (ascending
    positions among the index's rows): every other row scores 0 for each of its tokens, so
    adds 0 to the total, and is never looked at."""

    def __init__(self, scratch: _Rows, postings: dict[str, tuple[np.ndarray, np.ndarray]],
                 tokens: Iterable[str]) -> None:
        held = {t: postings[t] for t in dict.fromkeys(tokens)}
        self.rows = scratch.union([at for at, _ in held.values()])
        self._values: dict[str, np.ndarray] = {}
        if len(held) == 1 and self.rows is next(iter(held.values()))[0]:
            self._values = {t: data for t, (_, data) in held.items()}  # its own rows
            return
        slot = scratch.slots(self.rows)
        for t, (at, data) in held.items():
            out = np.zeros(len(self.rows), dtype=np.float32)
            out[slot[at]] = data
            self._values[t] = out

    def __call__(self, token: str) -> np.ndarray:
        """The token's BM25 in each of these rows."""
        return self._values[token]

    def total(self, tokens: list[str]) -> np.ndarray:
        """The tokens' BM25 summed in order, as numpy sums a stack of them along its first
        axis (one float32 add per token)."""
        out = self(tokens[0]).copy()
        for t in tokens[1:]:
            out += self(t)
        return out

    def biggest(self, values: np.ndarray) -> float:
        """The largest of ``values`` and of the 0 every other row holds (all are >= 0)."""
        return float(values.max()) if len(values) else 0.0


class _Term:
    """The two caps a term's own tokens set on its alternatives, each the largest over the
    rows of a float32 sum of their BM25."""

    def __init__(self, scratch: _Rows, postings: dict[str, tuple[np.ndarray, np.ndarray]],
                 known: list[str], source: tuple[str, ...]) -> None:
        self._known, self._parts = known, list(dict.fromkeys(source))
        distinct = set(known) | set(source)
        # One token, however often repeated: a sum of it is a rising function of its value,
        # so is largest where it is, and its rows need not be gathered.
        self._peak = (postings[next(iter(distinct))][1].max(initial=np.float32(0))
                      if len(distinct) == 1 else None)
        self._local = (_Local(scratch, postings, distinct)
                       if self._peak is None and distinct else None)

    def ceiling(self) -> float:
        """Over every row, the largest sum of the known tokens (in their order)."""
        if self._peak is not None:
            total = self._peak
            for _ in self._known[1:]:
                total = np.float32(total + self._peak)
            return float(total)
        assert self._local is not None
        return self._local.biggest(self._local.total(self._known))

    def own(self) -> float | None:
        """Over the rows holding every token of the term, the largest sum of them; None if
        no row holds them all."""
        if not self._parts:
            return None
        if self._peak is not None:
            return float(self._peak) if self._peak > 0 else None
        assert self._local is not None
        whole = np.all([self._local(t) > 0 for t in self._parts], axis=0)
        return float(self._local.total(self._parts)[whole].max()) if whole.any() else None


def expanded_scores(lexical: LexicalIndex, base: np.ndarray, expansions: list[Expansion],
                    mask: np.ndarray | None, other: np.ndarray | None = None,
                    memo: ExpansionMemo | None = None) -> np.ndarray:
    """``base`` (the query's own BM25 per chunk) plus what each expansion adds; ``other``
    marks the chunks of articles in another language than the query's.

    There a translation's BM25 is rescaled to carry the term's weight in the query: the idf
    of the query's tokens from the term instead of its own, but no more than its own idf
    counted as often as the term's tokens are (a rare word translated by a common one is no
    rarer for it). What it keeps is its own term frequency in the chunk. Terms nested in one
    another count once there, by their best alternative.

    Each expansion is computed over the rows holding one of its tokens only (see _Local):
    the same float32 operations, in the same order, on those rows as over every row. What an
    expansion adds depends on it, the index and ``other`` only, so ``memo`` (one per index and
    ``other``) keeps it for the next query with the same term."""
    if not expansions:
        return base
    if other is not None and not other.any():
        other = None  # one language: nothing to rescale
    total = base.astype(np.float32, copy=True)
    work = _Work(lexical)
    pieces = []
    for e in expansions:
        piece = memo.get(e) if memo is not None else None
        if piece is None:
            piece = _piece(work, e, other)
            if memo is not None:
                memo.put(e, piece)
        pieces.append(piece)
    for piece in pieces:
        total[piece.rows] += piece.same
    if other is not None:
        # Per nest of terms (see _nests), the most any of its expansions adds in the other
        # language.
        for group in _nests(expansions):
            if len(group) == 1:  # the most of one expansion is its own
                piece = pieces[group[0]]
                total[piece.rows] += piece.crossed
                continue
            rows = work.scratch.union([pieces[i].rows for i in group])
            slot = work.scratch.slots(rows)
            most = np.zeros(len(rows), dtype=np.float32)
            for i in group:
                at, values = pieces[i].rows, pieces[i].crossed
                assert values is not None  # made with other
                spot = slot[at]
                most[spot] = np.maximum(most[spot], values)
            total[rows] += most  # 0 at the rows of the query's language, as each of them
    if mask is not None:
        total *= mask
    return total


class Piece(NamedTuple):
    """What one expansion adds at ``rows``: ``same`` in the query's language (all rows when
    the index has one), and ``crossed`` in the other (0 at the query's language's rows; None
    when the index has one language)."""

    rows: np.ndarray
    same: np.ndarray
    crossed: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self if a is not None)


class ExpansionMemo:
    """Each expansion's Piece for one index and one query language, least recently used
    dropped past ``budget`` bytes: a knowledge base's traffic repeats its terms, and their
    translations' postings are most of an expansion's cost. Safe across request threads."""

    def __init__(self, budget: int = 32 << 20) -> None:
        self._pieces: LRUCache[Expansion, Piece] = LRUCache(maxsize=budget,
                                                            getsizeof=lambda p: p.nbytes)
        self._lock = threading.Lock()

    def get(self, expansion: Expansion) -> Piece | None:
        with self._lock:
            return self._pieces.get(expansion)

    def put(self, expansion: Expansion, piece: Piece) -> None:
        if piece.nbytes > self._pieces.maxsize:
            return
        with self._lock:
            self._pieces[expansion] = piece


class _Work:
    """A query's reads of the index, made when an expansion first needs them: its tokens'
    postings and document frequencies, and the scratch rows."""

    def __init__(self, lexical: LexicalIndex) -> None:
        self.lexical = lexical
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.df: dict[str, int] = {}
        self._scratch: _Rows | None = None

    @property
    def scratch(self) -> _Rows:
        if self._scratch is None:
            self._scratch = _Rows(self.lexical.size)
        return self._scratch

    def read(self, tokens: Iterable[str]) -> None:
        for t in tokens:
            if t not in self.postings:
                self.postings[t] = self.lexical.posting(t)
                self.df[t] = int(np.count_nonzero(self.postings[t][1]))


def _piece(work: _Work, e: Expansion, other: np.ndarray | None) -> Piece:
    lexical, postings, df, scratch = work.lexical, work.postings, work.df, work.scratch
    weighed = e.weighed or e.source
    work.read((*weighed, *e.source, *(t for alt in e.alternatives for t in alt.tokens)))
    # Rows holding an alternative: every other row gains 0 from this expansion. The term's
    # own tokens only set its two caps, each one number.
    local = _Local(scratch, postings, (t for alt in e.alternatives for t in alt.tokens))
    best = np.zeros(len(local.rows), dtype=np.float32)
    cross = np.zeros_like(best)
    # Counted once however often the query repeats the term (a ticket pasted twice): a
    # translation is evidence for the term, not for its repetitions. A term the index lacks
    # in its own language is as rare as a term can be.
    count = len(weighed) / e.occurs
    known = [t for t in weighed if df[t]] if other is not None else []
    term = _Term(scratch, postings, known, e.source)
    mass = sum(_idf(df[t], lexical.size) for t in known) / e.occurs if known else math.inf
    # What the term earns in its best chunk: at its weight, the most an alternative adds in
    # the other language.
    ceiling = term.ceiling() / e.occurs if known else math.inf
    for alt in e.alternatives:
        if not alt.tokens:
            continue
        # np.mean's float32 sum, then its division by the count (by 1: the value itself)
        s = (local(alt.tokens[0]) if len(alt.tokens) == 1
             else local.total(list(alt.tokens)) / len(alt.tokens))
        np.maximum(best, alt.weight * s, out=best)
        if other is not None:
            idfs = [_idf(df[t], lexical.size) for t in alt.tokens]
            # np.mean of one value is that value: most alternatives are one token
            idf = idfs[0] if len(idfs) == 1 else float(np.mean(idfs))
            scale = min(mass / idf, count) if idf > 0 else 0.0
            np.maximum(cross, alt.cross_weight * np.minimum(scale * s, ceiling), out=cross)
    # The term itself, where a chunk holds all of its tokens: the cap on its alternatives in
    # the query's language.
    own = term.own()
    if own is not None:
        np.minimum(best, own, out=best)
    if other is None:
        return Piece(local.rows, best)
    mine = other[local.rows]
    return Piece(local.rows, np.where(mine, 0.0, best), np.where(mine, cross, 0.0))


def translations(lexicon: Lexicon, text: str) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """A text's content terms, and what each of its terms (or a word inside one) becomes in
    the other language by the glossary and the dictionary: how two questions asked in two
    languages are told to be one."""
    tokens, terms = analyze(text)
    out: dict[str, set[str]] = {}
    for e in expand(lexicon, normalize(text), tokens):
        other = {a.text for a in e.alternatives if a.cross_weight > 0
                 and is_cjk(a.text[:1]) != is_cjk(e.text[:1])}
        if other:
            # a word inside a term speaks for the term (显示 in 显示器)
            owner = e.text if e.text in terms else next((t for t in sorted(terms) if e.text in t),
                                                        e.text)
            out.setdefault(owner, set()).update(other)
    return frozenset(terms), {t: frozenset(v) for t, v in out.items()}
