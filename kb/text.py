"""Text normalization and tokenization shared by indexing, search and the gap log.

Normalization folds width and case (NFKC + casefold) and converts Traditional to Simplified
Chinese phrase by phrase (OpenCC ``tw2sp``: 印表機 → 打印机), so every later stage sees one form.
Tokens: identifiers (error codes, order numbers, versions, file names) stay whole, English words
are stemmed with stop words dropped, Chinese runs are cut by jieba in search mode (words plus
their sub-words) with character bigrams as a fallback for words jieba does not know. jieba runs
as rjieba (jieba-rs: the same dictionary and cuts, twenty times faster, and it loads in a tenth
of the time).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

import opencc
import rjieba
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# An identifier has a digit or an inner separator between alphanumerics: 0x800ccc0e, err-1024,
# ord-20260915-0042, v2.3.1, outlook.pst, kb5034441, 49.4c02. Plain words are not identifiers.
_IDENT = re.compile(
    r"[a-z0-9]+(?:[._\-/:#][a-z0-9]+)+|[a-z]*\d[a-z0-9]*",
)
_PIECE = re.compile(rf"[{_CJK}]+|[a-z0-9]+(?:[._\-/:#][a-z0-9]+)*")
_HAS_DIGIT = re.compile(r"\d")
_ASCII_WORD = re.compile(r"[a-z0-9]+")

# Function words that carry no topic in support queries; IDF alone under-weights them too little
# in small knowledge bases.
STOPWORDS_ZH = frozenset(
    "的 了 吗 呢 吧 啊 呀 么 嘛 哦 和 与 及 或 是 在 有 我 你 他 她 它 我们 你们 他们 这 那 这个 那个 "
    "怎么 怎么办 怎样 如何 什么 为什么 为何 哪里 哪个 可以 能 能不能 可不可以 会 要 想 请问 请 一下 "
    "就 都 也 还 又 被 把 给 对 让 从 到 上 下 中 里 后 前 时 时候 没 没有 不 不能 一个 个 吗 啥 咋".split()
)
# bm25s' English list keeps question words; in a support query they never name the topic.
STOPWORDS_EN_ALL = frozenset(STOPWORDS_EN) | frozenset(
    "how do does did what why when where which who can could should would i my me you your we our "
    "please hi hello get got".split()
)
STOPWORDS = STOPWORDS_EN_ALL | STOPWORDS_ZH


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("tw2sp")


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def stem_words(words: list[str]) -> list[str]:
    """English stems, as tokenize() stems plain words."""
    return _stemmer().stemWords(words)


def to_simplified(text: str) -> str:
    return _converter().convert(text)


@lru_cache(maxsize=1)
def _characters() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def is_traditional(text: str) -> bool:
    """Written in Traditional characters. Judged by characters alone: tw2sp also rewrites
    Taiwanese phrasing, and 外接 (external) is as Simplified as it is Traditional."""
    return _characters().convert(text) != text


def normalize(text: str) -> str:
    """NFKC, case folding and Traditional→Simplified, in that order."""
    return to_simplified(unicodedata.normalize("NFKC", text).casefold())


def normalize_lines(lines: list[str]) -> list[str]:
    """normalize() of each of many texts without line breaks, in one conversion: for short
    texts OpenCC's cost per call outweighs the conversion."""
    if not lines:
        return []
    out = normalize("\n".join(lines)).split("\n")
    if len(out) != len(lines):  # a line held a break after all
        return [normalize(line) for line in lines]
    return out


# What continues an English word in folded text: a stem matches only where none precedes it.
WORD_CHARS = frozenset(string.ascii_lowercase + string.digits)


def word_starts(text: str, term: str) -> Iterator[int]:
    """Where ``term`` occurs in ``text`` at the start of a word (an English stem match).

    str.find, not a regex look-behind, which makes re try every position of a long article.
    """
    at = text.find(term)
    while at >= 0:
        if at == 0 or text[at - 1] not in WORD_CHARS:
            yield at
        at = text.find(term, at + 1)


def starts_a_word(text: str, term: str) -> bool:
    return next(word_starts(text, term), -1) >= 0


def is_cjk(text: str) -> bool:
    return re.search(rf"[{_CJK}]", text) is not None


def detect_lang(text: str) -> str:
    """``zh`` when CJK characters make up a fair share of the letters, else ``en``."""
    cjk = len(re.findall(rf"[{_CJK}]", text))
    latin = len(re.findall(r"[A-Za-z]", text))
    # A Chinese character carries about as much as a whole English word (~5 letters).
    return "zh" if cjk * 5 >= latin * 1 and cjk > 0 else "en"


def _chinese_tokens(run: str) -> list[str]:
    words = [w for w in rjieba.cut_for_search(run) if w.strip()]
    tokens = [w for w in words if w not in STOPWORDS_ZH]
    # Bigrams catch words jieba splits differently in query and article (typos, new product names).
    tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    if len(run) == 1 and run not in STOPWORDS_ZH:
        tokens.append(run)
    return tokens


def _latin_tokens(piece: str) -> list[str]:
    tokens: list[str] = []
    if _IDENT.fullmatch(piece) and (_HAS_DIGIT.search(piece) or len(piece) > 1 and not piece.isalpha()):
        tokens.append(piece)  # whole identifier: an exact error code must match exactly
        parts = _ASCII_WORD.findall(piece)
        if len(parts) == 1:
            return tokens
        if not _HAS_DIGIT.search(piece):
            tokens.append("".join(parts))  # wi-fi meets wifi, e-mail meets email
        words = [p for p in parts if len(p) > 1]
    else:
        words = _ASCII_WORD.findall(piece)
    plain = [w for w in words if w not in STOPWORDS_EN_ALL]
    alpha = [w for w in plain if w.isalpha()]
    stems = dict(zip(alpha, _stemmer().stemWords(alpha), strict=True))
    tokens.extend(stems.get(w, w) for w in plain)
    return tokens


def pieces(norm: str) -> list[str]:
    """The runs of a normalized text that tokens come from: Chinese runs and Latin words."""
    return _PIECE.findall(norm)


def latin_tokens(piece: str) -> list[str]:
    """The BM25 tokens of one Latin piece (an identifier whole, words stemmed)."""
    return _latin_tokens(piece)


# Bump when tokenize() changes: index builds reuse stored tokens only from the same tokenizer.
TOKENIZER = "kb-1"


def is_identifier(token: str) -> bool:
    """An error code, order number or version as ``tokenize`` keeps it whole: ASCII with a
    digit."""
    return token.isascii() and any(ch.isdigit() for ch in token)


def tokenize(text: str, *, normalized: bool = False) -> list[str]:
    """Tokens for BM25. Pass ``normalized=True`` when the text already went through normalize()."""
    return _split(text if normalized else normalize(text), tokens=True, terms=False)[0]


def content_terms(text: str) -> set[str]:
    """Distinct meaningful terms of a query: words and identifiers, without bigram fallbacks."""
    return _split(normalize(text), tokens=False, terms=True)[1]


def analyze(text: str) -> tuple[list[str], set[str]]:
    """tokenize() and content_terms() of one text, normalized and split once."""
    return _split(normalize(text), tokens=True, terms=True)


def _split(norm: str, *, tokens: bool, terms: bool) -> tuple[list[str], set[str]]:
    found: list[str] = []
    words: set[str] = set()
    for piece in _PIECE.findall(norm):
        if is_cjk(piece[0]):
            if tokens:
                found.extend(_chinese_tokens(piece))
            if terms:
                words.update(w for w in rjieba.cut(piece) if w.strip() and w not in STOPWORDS_ZH)
        else:  # the same for both
            latin = _latin_tokens(piece)
            found.extend(latin)
            words.update(latin)
    return found, words
