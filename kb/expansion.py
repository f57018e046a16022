"""Query expansion across languages and jargon: the writers' glossary and the CC-CEDICT bridge,
as lexical evidence weaker than the query's own words.

A query term's alternatives (its glossary group, or its dictionary translations into the other
language's index terms) add BM25 evidence at a fraction of its weight. For each term only its
best-matching alternative counts, so a term with many senses gains no more than one with one;
and when the term itself is in the index, what its alternatives add to a chunk never exceeds
what the term earns where it matches best, so a noisy sense cannot outrank an exact match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rjieba

from kb.bridge import Dictionary, cedict
from kb.glossary import Glossary
from kb.lexical import LexicalIndex
from kb.text import STOPWORDS, is_cjk, latin_tokens, pieces

# Weights of an alternative relative to the term itself. In an article of the query's own
# language the term could have been used, so an equivalent counts less; in an article of the
# other language a translation is the only way the term can appear, and counts as much as the
# term would (a dictionary sense times how main a sense it is).
GLOSSARY_WEIGHT = 0.7
BRIDGE_WEIGHT = 0.45
CROSS_GLOSSARY_WEIGHT = 1.0
CROSS_BRIDGE_WEIGHT = 1.0
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


def expand(lexicon: Lexicon, norm: str, tokens: list[str]) -> list[Expansion]:
    """Alternatives for the terms of a normalized query whose BM25 tokens are ``tokens``."""
    have = set(tokens)
    out: list[Expansion] = []
    covered: set[str] = set()
    for term, others in lexicon.glossary.equivalents(norm, have):
        alts = tuple(Alternative(o.tokens, GLOSSARY_WEIGHT, o.text, CROSS_GLOSSARY_WEIGHT)
                     for o in others if not set(o.tokens) <= have)
        if alts:
            out.append(Expansion(term.tokens, term.text, alts))
        covered.add(term.text)
    for word in _words(norm):
        if any(word in c for c in covered):
            continue  # the glossary speaks for this term
        pairs = lexicon.bridge.translate(word)
        alts = tuple(Alternative((t,), BRIDGE_WEIGHT * w, t, CROSS_BRIDGE_WEIGHT * w)
                     for t, w in pairs if t not in have)
        if alts:
            out.append(Expansion((word,), word, alts))
    return out


def expanded_scores(lexical: LexicalIndex, base: np.ndarray, expansions: list[Expansion],
                    mask: np.ndarray | None, other: np.ndarray | None = None) -> np.ndarray:
    """``base`` (the query's own BM25 per chunk) plus what each expansion adds; ``other``
    marks the chunks of articles in another language than the query's."""
    if not expansions:
        return base
    total = base.astype(np.float32, copy=True)
    cache: dict[str, np.ndarray] = {}

    def scores(token: str) -> np.ndarray:
        if token not in cache:
            cache[token] = lexical.term_scores(token)
        return cache[token]

    for e in expansions:
        best = np.zeros_like(total)
        for alt in e.alternatives:
            if not alt.tokens:
                continue
            s = np.mean([scores(t) for t in alt.tokens], axis=0)
            weight = (alt.weight if other is None
                      else np.where(other, alt.cross_weight, alt.weight).astype(np.float32))
            np.maximum(best, weight * s, out=best)
        # The term itself, where a chunk holds all of its tokens: the cap on its alternatives.
        if e.source:
            parts = np.stack([scores(t) for t in dict.fromkeys(e.source)])
            whole = parts.min(axis=0) > 0
            if whole.any():
                own = float(parts.sum(axis=0)[whole].max())
                np.minimum(best, own, out=best)
        total += best
    if mask is not None:
        total *= mask
    return total
