"""Search: validate the query, gather dense and lexical candidates, rank, decide "answered"."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

import numpy as np

from kb.audience import INTERNAL, PUBLIC, Scrubber
from kb.embedding import Embedder, encode_one
from kb.errors import InvalidQuery, UnknownFilter
from kb.expansion import Expansion, ExpansionMemo, expand, expanded_scores
from kb.models import profile
from kb.ranking import JUDGED, Candidates, Ranked, answer_features, rank
from kb.rerank import Reranker
from kb.signals import Evidence, row_signals
from kb.snippets import flatten, match_order, window
from kb.store import Index
from kb.text import (
    analyze,
    detect_lang,
    is_identifier,
    normalize,
    normalize_lines,
    starts_a_word,
)

POOL = 100  # candidate chunks taken from each retriever
MODEL_FIRST_CHUNKS = 20_000  # chunks above which the model starts before the lexical half
FILTER_KEYS = ("type", "tags", "product", "lang")


def best(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` highest scores, in no particular order."""
    if k >= len(scores):
        return np.arange(len(scores))
    return np.argpartition(-scores, k - 1)[:k]


def best_first(scores: np.ndarray, k: int) -> np.ndarray:
    """``best``, but of rows tied at the k-th score the first ones: the same rows whichever
    subset of rows holding them is given (the lexical half sees only some rows)."""
    if k >= len(scores):
        return np.arange(len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if len(scores) >= 16 * k:
        # The k-th best of every 8th row is at most the k-th best of all: the partition then
        # sorts out only the rows at or above it, which hold all of the top k and its ties.
        floor = np.partition(scores[::8], -k)[-k]
        keep = np.flatnonzero(scores >= floor)
        return keep[best_first(scores[keep], k)] if len(keep) < len(scores) else _first(scores, k)
    return _first(scores, k)


def _first(scores: np.ndarray, k: int) -> np.ndarray:
    top = np.argpartition(-scores, k - 1)[:k]
    kth = scores[top].min()
    above = top[scores[top] > kth]
    tied = np.flatnonzero(scores == kth)[:k - len(above)]
    return np.concatenate((above, tied))


@dataclass(frozen=True)
class Lexical:
    """The lexical half of a query: BM25 of every row (0 for the rows holding none of its
    tokens or an expansion's, and outside the filters and the audience), and of those the best
    rows that matched."""

    scores: np.ndarray  # one per chunk of the knowledge base
    top: np.ndarray  # rows, at most POOL of them
    known: float  # share of the query's distinct tokens the knowledge base knows
    holder: int | None = None  # see Searcher._holder


@dataclass(frozen=True)
class Filters:
    type: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    product: str | None = None
    lang: str | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> Filters:
        data = data or {}
        unknown = sorted(set(data) - set(FILTER_KEYS))
        if unknown:
            raise UnknownFilter(f"unknown filter(s) {unknown}; known: {list(FILTER_KEYS)}")

        def many(value: Any) -> tuple[str, ...]:
            if value is None:
                return ()
            return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)

        return cls(many(data.get("type")), many(data.get("tags")), data.get("product"),
                   data.get("lang"))

    def to_dict(self) -> dict:
        out: dict = {}
        if self.type:
            out["type"] = list(self.type)
        if self.tags:
            out["tags"] = list(self.tags)
        if self.product:
            out["product"] = self.product
        if self.lang:
            out["lang"] = self.lang
        return out

    def admits(self, article: dict) -> bool:
        if self.type and article["type"] not in self.type:
            return False
        if self.tags and not {t.casefold() for t in self.tags} & {
            t.casefold() for t in article["tags"]
        }:
            return False
        if self.product and (article.get("product") or "").casefold() != self.product.casefold():
            return False
        return not (self.lang and article["lang"] != self.lang)


@dataclass
class Hit:
    id: str
    title: str
    type: str
    section: str
    anchor: str
    snippet: str
    score: float
    path: str
    tags: list[str]
    audience: str = PUBLIC


@dataclass
class Outcome:
    query: str
    hits: list[Hit]
    answered: bool
    confidence: float
    features: dict[str, float] = field(default_factory=dict)
    lang: str = "en"
    vector: np.ndarray | None = None  # the query embedding, kept for clustering gaps


@dataclass
class Started:
    """A query whose lexical half is done, its vector on the way from the model."""
    shown: str
    dense_text: str
    terms: set[str]
    lang: str
    filters: Filters
    k: int
    lexical: Lexical
    vector: Future[np.ndarray]
    tokens: list[str] = field(default_factory=list)
    audience: str = INTERNAL
    expansions: list[Expansion] = field(default_factory=list)


COSINE = "cosine"  # the model's own cosine, kept beside the dense signal where it was imputed


def real_dense(ranked: list[Ranked]) -> list[Ranked]:
    """``ranked`` with each article's dense evidence its model cosine again: an imputed value
    may rank an article but is no evidence that the query is answered."""
    for r in ranked:
        if COSINE in r.signals:
            r.signals["dense"] = r.signals.pop(COSINE)
    return ranked


Wanted = tuple[str, float, list[str]]  # a term, its weight, its equivalents


def _holds(text: str, term: str) -> bool:
    if term.isascii() and term.replace(" ", "").isalnum():
        return starts_a_word(text, term)
    return term in text


class Searcher:
    """Answers queries against one loaded index version."""

    def __init__(self, index: Index, embedder: Embedder, *, max_query_chars: int = 1000,
                 reranker: Reranker | None = None, previous: Searcher | None = None) -> None:
        """``previous``, the searcher this one replaces, lends what it computed for articles
        that did not change."""
        self.index = index
        self.reranker = reranker
        self.embedder = embedder
        self.max_query_chars = max_query_chars
        self.scrubber = Scrubber(index.articles)
        self._chunk_flat, self._chunk_text, self._headings, self._article_text = \
            self._fold(previous)
        self._mask = lru_cache(maxsize=256)(self._compute_mask)
        self._other_lang = lru_cache(maxsize=8)(self._compute_other_lang)
        self._memo = lru_cache(maxsize=8)(lambda lang: ExpansionMemo())  # per query language
        # What public callers see of a chunk or line that quotes an internal article; made
        # when first shown, most chunks quote none.
        self._public_rows: dict[int, tuple[str, str]] = {}
        self._public_lines: dict[str, str] = {}
        # An English-only model's cosine between a Chinese and an English text is noise: there
        # a result's dense evidence counts as missing, not as low.
        self.multilingual = profile(str(index.manifest.get("model", ""))).multilingual
        self._article_lang = np.array([index.articles[a]["lang"] for a in index.article_ids])
        self._section_rows: list[list[int]] = [[] for _ in index.article_ids]
        for row, chunk in enumerate(index.chunks):
            if chunk.kind == "section":
                self._section_rows[int(index.chunk_article[row])].append(row)
        sizes = np.bincount(index.chunk_article, minlength=len(index.article_ids))
        self._longest = int(sizes.max()) if len(sizes) else 0  # chunks of the longest article
        self._model_first = len(index.chunks) > MODEL_FIRST_CHUNKS

    @property
    def version(self) -> str:
        return self.index.version

    def _fold(self, previous: Searcher | None
              ) -> tuple[list[str], list[str], list[str], list[str]]:
        """The text of each chunk on one line, as its snippet is cut from, and normalized, as
        the query's terms are found in it; each section chunk's heading, normalized; and the
        normalized text of each article, on which coverage is measured. Made once per version:
        OpenCC on the query's path cost about 40 µs a result, and flattening a long section
        about 10."""
        index = self.index
        rows_of: dict[str, list[int]] = {a: [] for a in index.article_ids}
        for row, chunk in enumerate(index.chunks):
            rows_of[chunk.article_id].append(row)
        kept = self._kept(previous)
        # Every other article's lines (title, questions, headings) and chunk texts, flattened
        # as snippets show them, and its headings as they are, are folded together: one
        # conversion, not one per text.
        flats: dict[str, list[str]] = {}
        heads: dict[str, list[str]] = {}
        for a in index.article_ids:
            if a in kept:
                continue
            record, chunks = index.articles[a], [index.chunks[r] for r in rows_of[a]]
            flats[a] = [flatten(c.text or record["title"]) for c in chunks]
            heads[a] = [flatten(line) for line in (record["title"], *record["questions"],
                                                   *(c.section for c in chunks
                                                     if c.kind == "section"))]
        raw = [index.chunks[r].section for a in flats for r in rows_of[a]
               if index.chunks[r].kind == "section"]
        lines = list(dict.fromkeys(line for group in (*flats.values(), *heads.values(), raw)
                                   for line in group))
        folded = dict(zip(lines, normalize_lines(lines), strict=True))
        size = len(index.chunks)
        chunk_flat, chunk_text, headings = [""] * size, [""] * size, [""] * size
        article_text = []
        for a in index.article_ids:
            if a in kept:
                text, flat, texts, heading = kept[a]
            else:  # equal texts share one string: title and question chunks repeat a section's
                flat, texts = flats[a], [folded[f] for f in flats[a]]
                sections = [t for t, r in zip(texts, rows_of[a], strict=True)
                            if index.chunks[r].kind == "section"]
                text = "\n".join([*(folded[h] for h in heads[a]), *sections])
                heading = [folded[index.chunks[r].section]
                           if index.chunks[r].kind == "section" else "" for r in rows_of[a]]
            article_text.append(text)
            for row, f, t, h in zip(rows_of[a], flat, texts, heading, strict=True):
                chunk_flat[row], chunk_text[row], headings[row] = f, t, h
        return chunk_flat, chunk_text, headings, article_text

    def _kept(self, previous: Searcher | None
              ) -> dict[str, tuple[str, list[str], list[str], list[str]]]:
        """What ``previous`` made for articles that did not change (an article's hash covers
        its record and its chunks): article text, chunk texts flattened and folded, and
        headings folded."""
        if previous is None:
            return {}
        hashes = self.index.manifest["article_hashes"]
        old = previous.index.manifest["article_hashes"]
        kept: dict[str, tuple[str, list[str], list[str], list[str]]] = {
            a: (text, [], [], []) for a, text in zip(previous.index.article_ids,
                                                     previous._article_text, strict=True)
            if old[a] == hashes.get(a)}
        for chunk, flat, text, heading in zip(previous.index.chunks, previous._chunk_flat,
                                              previous._chunk_text, previous._headings,
                                              strict=True):
            if chunk.article_id in kept:
                kept[chunk.article_id][1].append(flat)
                kept[chunk.article_id][2].append(text)
                kept[chunk.article_id][3].append(heading)
        return kept

    def _compute_mask(self, filters: Filters, audience: str = INTERNAL) -> np.ndarray | None:
        """Rows a query may see, or None when every row may be seen."""
        arts = self.index.articles
        allowed = np.array([
            filters.admits(arts[a]) and (audience != PUBLIC or arts[a]["audience"] == PUBLIC)
            for a in self.index.article_ids
        ], dtype=bool)
        if allowed.all():
            return None
        return allowed[self.index.chunk_article] if len(self.index.chunks) else allowed[:0]

    def _compute_other_lang(self, lang: str) -> np.ndarray:
        """Chunks of articles in another language than ``lang``."""
        return self._article_lang[self.index.chunk_article] != lang

    def validate(self, query: str, what: str = "query") -> str:
        """``query`` stripped, or InvalidQuery naming ``what`` is wrong with it. Text without
        a letter or a digit ("???", "…") has nothing to search for: answering it would only
        put noise in the gap report."""
        text = query.strip()
        if not text:
            raise InvalidQuery(f"{what} is empty")
        if len(text) > self.max_query_chars:
            raise InvalidQuery(
                f"{what} is {len(text)} characters long; the limit is {self.max_query_chars}"
            )
        if not any(ch.isalnum() for ch in text):
            raise InvalidQuery(f"{what} has no letters or digits to search for")
        return text

    def expansions(self, text: str, tokens: list[str]) -> list[Expansion]:
        """Glossary equivalents and dictionary translations of a query's terms."""
        return expand(self.index.lexicon, normalize(text), tokens)

    def lexical(self, tokens: list[str], filters: Filters, audience: str = INTERNAL,
                expansions: list[Expansion] | None = None,
                lang: str | None = None) -> Lexical:
        """BM25 of the query's tokens, its expansions included, of every row (0 outside the
        filters and the audience), the best rows that matched, and the share of distinct
        tokens the knowledge base knows. Only the tokens' postings are read; of rows tied at
        the last candidate's score the first are taken."""
        mask = self._mask(filters, audience)
        lexical = self.index.lexical
        # Over every chunk, each token's posting added where it is: cheaper than gathering
        # the rows that hold a token and finding each posting's places among them.
        weights = None if mask is None else mask.astype(np.float32)
        scores = lexical.scores(tokens, weights)
        if expansions:
            other = None if lang is None else self._other_lang(lang)
            scores = expanded_scores(lexical, scores, expansions, weights, other,
                                     self._memo(lang))
        held = np.flatnonzero(scores > 0)
        top = held[best_first(scores[held], POOL)]
        distinct = set(tokens)
        known = len(set(lexical.known(list(distinct)))) / len(distinct) if distinct else 0.0
        return Lexical(scores, top, known, self._holder(held))

    def _holder(self, held: np.ndarray) -> int | None:
        """The one article whose chunks hold any of the query's words or their equivalents,
        among those the query may see, if only one does (``held``: the rows that scored). A
        product name or error code that a single article has singles that article out, however
        little the dense model makes of the word."""
        if not len(held) or len(held) > self._longest:  # more chunks than any article has
            return None
        articles = np.unique(self.index.chunk_article[held])
        return int(articles[0]) if articles.size == 1 else None

    def candidates(self, tokens: list[str], qvec: np.ndarray, filters: Filters,
                   audience: str = INTERNAL, expansions: list[Expansion] | None = None,
                   lang: str | None = None) -> Candidates:
        return self._candidates(self.lexical(tokens, filters, audience, expansions, lang), qvec,
                                filters, audience, lang)

    def _candidates(self, lexical: Lexical, qvec: np.ndarray,
                    filters: Filters, audience: str = INTERNAL,
                    lang: str | None = None) -> Candidates:
        mask = self._mask(filters, audience)
        if len(self.index.chunks) == 0 or (mask is not None and not mask.any()):
            empty = np.zeros(0, dtype=np.int64)
            nothing = np.zeros(len(self.index.chunks), dtype=np.float32)
            evidence = Evidence({"dense": nothing, "lexical": nothing})
            return Candidates(empty, empty, row_signals(evidence, empty))
        lex_all, lex_rows = lexical.scores, lexical.top
        vectors = self.index.vectors
        if vectors.exact:
            cosines = vectors.scores(qvec)
            chosen = np.zeros(len(cosines), dtype=bool)
            if mask is None:
                chosen[best(cosines, POOL)] = True
            else:
                chosen[best(np.where(mask, cosines, -np.inf), min(POOL, int(mask.sum())))] = True
            chosen[lex_rows] = True  # lexical rows obey the mask already
            rows = np.flatnonzero(chosen)
            seen = cosines if mask is None else cosines[mask]
        else:  # a large index: approximate dense top rows, then exact cosines of every candidate
            rows = np.union1d(vectors.top(qvec, POOL, mask), lex_rows)
            cosines = np.zeros(len(self.index.chunks), dtype=np.float32)  # read at rows only
            cosines[rows] = vectors.cosines(qvec, rows)
            seen = vectors.sample_cosines(qvec, mask)  # the spread, from a fixed sample of rows
        query = {"dense_mean": float(seen.mean()), "dense_std": float(seen.std()),
                 "known": lexical.known}
        signals_of = row_signals
        if lang is not None and not self.multilingual:
            imputed = self._impute_dense(cosines, lex_all, rows, lang)
            if imputed is not cosines:
                real = cosines[rows]

                def signals_of(evidence: Evidence, rows: np.ndarray) -> dict[str, np.ndarray]:
                    return {**row_signals(evidence, rows), COSINE: real}

                cosines = imputed
        evidence = Evidence({"dense": cosines, "lexical": lex_all}, lang or "en")
        return Candidates(rows, self.index.chunk_article[rows], signals_of(evidence, rows), query,
                          lexical.holder)

    def shown_row(self, article: int, row: int, wanted: list[Wanted]) -> int:
        """The chunk a result is shown by: the best-ranked one, unless another section of the
        article holds more of the query's specific terms in its own heading and text (every
        chunk repeats the title, so the title cannot tell sections apart); ``wanted``: the
        query's terms by wanted()."""
        sections = self._section_rows[article]
        if len(sections) < 2 or not wanted:
            return row
        # A term or equivalent that is in no section's heading or text holds in none: only
        # the others are looked for in each section.
        joined = "\n".join(f"{self._headings[r]}\n{self._chunk_text[r]}" for r in sections)
        weighed = [(term, weight, [a for a in alts if a in joined])
                   for term, weight, alts in wanted]
        weighed = [(term, weight, alts) for term, weight, alts in weighed
                   if alts or term in joined]

        @cache
        def held(r: int) -> float:
            body, heading = self._chunk_text[r], self._headings[r]
            total = 0.0
            for term, weight, alts in weighed:
                if _holds(body, term) or _holds(heading, term):
                    total += weight
                elif any(_holds(body, a) or _holds(heading, a) for a in alts):
                    total += weight / 2
            return total

        current = held(row) if self.index.chunks[row].kind == "section" else -1.0
        best = max(sections, key=held)  # the first of equals: the article's order
        return best if held(best) > current else row

    @staticmethod
    def wanted(terms: set[str], expansions: list[Expansion] | None = None) -> list[Wanted]:
        """The query's terms as shown_row weighs them, with their equivalents: an identifier
        (an error code, an order number) weighs three words; an equivalent of a term half."""
        alternatives = {e.text: [a.text for a in e.alternatives] for e in expansions or ()}
        return [(term, 3.0 if is_identifier(term) else 1.0, alternatives.get(term, []))
                for term in terms]

    def _impute_dense(self, cosines: np.ndarray, lexical: np.ndarray, rows: np.ndarray,
                      lang: str) -> np.ndarray:
        """Cosines with those of candidates in another language than the query's replaced:
        an English-only model's cosine between languages is noise, so there dense evidence is
        missing, and stands in for the lexical evidence at its place in the same-language
        band. Fusion then ranks such a candidate by its lexical evidence alone, whatever the
        weights."""
        other = self._article_lang[self.index.chunk_article[rows]] != lang
        if not other.any():
            return cosines
        same = np.maximum(cosines[rows[~other]], 0.0)
        lo, hi = (float(same.min()), float(same.max())) if len(same) else (0.0, 1.0)
        # Its place among the other-language candidates: a translation's BM25 sits below
        # the query's own words' in every article, so a share of the best over all candidates
        # would count the missing dense evidence against it a second time.
        lex = lexical[rows[other]]
        span = float(lex.max() - lex.min())
        share = (lex - lex.min()) / span if span > 0 else (lex > 0).astype(np.float64)
        out = cosines.copy()
        out[rows[other]] = lo + share * (hi - lo)
        return out

    def coverage(self, terms: set[str], article: int,
                 expansions: list[Expansion] | None = None) -> float:
        """Share of the query's terms the article holds; a term found only through a glossary
        equivalent or a translation counts as found."""
        if not terms:
            return 0.0
        text = self._article_text[article]
        alternatives: dict[str, list[str]] = {}
        for e in expansions or ():
            alternatives.setdefault(e.text, []).extend(a.text for a in e.alternatives)
        found = 0
        for term in terms:
            if _holds(text, term):
                found += 1
                continue
            alts = [a for t, group in alternatives.items() if term in t or t in term
                    for a in group]
            found += any(_holds(text, a) for a in alts)
        return found / len(terms)

    def judge(self, ranked: list[Ranked], candidates: Candidates, terms: set[str],
              expansions: list[Expansion]) -> dict[str, float]:
        """The answered model's features of a ranking (its first ``JUDGED`` articles, the share
        of the query's terms the first holds). Calibration, search and the check outside
        filters all judge here, so what is served is what the calibration was fit on."""
        top = ranked[:JUDGED]
        coverage = self.coverage(terms, top[0].article, expansions) if top else 0.0
        return answer_features(top, coverage, candidates.query)

    def begin(self, shown: str, dense_text: str, filters: Filters, k: int, wait: bool = False,
              audience: str = INTERNAL,
              analyzed: tuple[list[str], set[str]] | None = None) -> Started:
        """Do the lexical half and ask the model for the vector of ``dense_text``: under way in
        the background, or done on return if the caller will ``wait`` for it. ``shown`` is the
        query as results and the log show it; ``analyzed``: the BM25 tokens and content terms,
        where the caller weighs them (a ticket, see kb.tickets), else those of the text.

        In a small knowledge base the lexical half goes first, then the model on this thread:
        the model's threads keep both cores busy, so work beside them only preempts one, and
        handing the text to the model's thread costs more than the lexical half. In a large
        one the model starts first on its own thread and the lexical half runs beside it: the
        lexical half then costs more than what it slows the model by (bench/NOTES.md)."""
        vector = encode_one(self.embedder, dense_text) if self._model_first else None
        tokens, terms = analyzed or analyze(dense_text)
        lang = detect_lang(dense_text)
        expansions = self.expansions(dense_text, tokens)
        lexical = self.lexical(tokens, filters, audience, expansions, lang)
        if vector is None:
            vector = encode_one(self.embedder, dense_text, wait)
        return Started(shown, dense_text, terms, lang, filters, k, lexical, vector, tokens,
                       audience=audience, expansions=expansions)

    def finish(self, started: Started, qvec: np.ndarray) -> Outcome:
        """Rank with the query vector, decide "answered" and make the results."""
        cands = self._candidates(started.lexical, qvec, started.filters, started.audience,
                                 started.lang)
        depth = max(started.k, 2, self.reranker.top if self.reranker else 0)
        ranked = real_dense(rank(cands, self.index.calibration.weights(started.lang), depth))
        # The answered decision is calibrated on fused evidence, so it is taken before reranking.
        features = self.judge(ranked, cands, started.terms, started.expansions)
        confidence = self.index.calibration.answer_probability(features) if ranked else 0.0
        if self.reranker is not None and len(ranked) > 1:
            ranked = self._rerank(started.dense_text, ranked)
        return self._outcome(started, ranked[:started.k], features, confidence, qvec)

    def outside_filters(self, started: Started, qvec: np.ndarray) -> str | None:
        """The article that answers a filtered query once its filters are lifted (the
        audience rule stays), if one does."""
        if started.filters == Filters():
            return None
        lexical = self.lexical(started.tokens, Filters(), started.audience, started.expansions,
                               started.lang)
        cands = self._candidates(lexical, qvec, Filters(), started.audience, started.lang)
        ranked = real_dense(rank(cands, self.index.calibration.weights(started.lang), JUDGED))
        if not ranked:
            return None
        confidence = self.index.calibration.answer_probability(
            self.judge(ranked, cands, started.terms, started.expansions))
        if confidence < self.index.calibration.answer_threshold:
            return None
        return self.index.article_ids[ranked[0].article]

    def _rerank(self, query: str, ranked: list[Ranked]) -> list[Ranked]:
        assert self.reranker is not None
        head, tail = ranked[: self.reranker.top], ranked[self.reranker.top :]
        passages = [self.index.chunks[r.row].embed_text for r in head]
        order = np.argsort(-self.reranker.scores(query, passages), kind="stable")
        # Scores stay the fused ones (monotone for clients); only the order changes.
        scores = sorted((r.score for r in head), reverse=True)
        reordered = [head[i] for i in order]
        for r, score in zip(reordered, scores, strict=True):
            r.score = score
        return reordered + tail

    def _public_row(self, row: int) -> tuple[str, str]:
        """A chunk's flat and folded text as public callers see it: no internal article's id or
        title quoted (see kb.audience)."""
        if row not in self._public_rows:
            chunk = self.index.chunks[row]
            raw = chunk.text or self.index.articles[chunk.article_id]["title"]
            if self.scrubber.mentions(raw):
                flat = flatten(self.scrubber.scrub(raw))
                self._public_rows[row] = (flat, normalize(flat))
            else:
                self._public_rows[row] = (self._chunk_flat[row], self._chunk_text[row])
        return self._public_rows[row]

    def _public_line(self, line: str) -> str:
        if line not in self._public_lines:
            self._public_lines[line] = self.scrubber.scrub(line) if self.scrubber.mentions(
                line) else line
        return self._public_lines[line]

    def begin_search(self, query: str, k: int = 5, filters: Filters | None = None,
                     wait: bool = False, audience: str = INTERNAL) -> Started:
        text = self.validate(query)
        return self.begin(text, text, filters or Filters(), k, wait, audience)

    def search(self, query: str, k: int = 5, filters: Filters | None = None,
               audience: str = INTERNAL) -> Outcome:
        started = self.begin_search(query, k, filters, wait=True, audience=audience)
        return self.finish(started, started.vector.result())

    def _outcome(self, started: Started, ranked: list[Ranked], features: dict[str, float],
                 confidence: float, qvec: np.ndarray) -> Outcome:
        hits = []
        ordered = match_order(started.terms)
        wanted = self.wanted(started.terms, started.expansions)
        public = started.audience == PUBLIC and bool(self.scrubber)
        for r in ranked:
            row = self.shown_row(r.article, r.row, wanted)
            chunk = self.index.chunks[row]
            art = self.index.articles[chunk.article_id]
            flat, text = self._public_row(row) if public else (self._chunk_flat[row],
                                                                 self._chunk_text[row])
            title, section = ((self._public_line(art["title"]), self._public_line(chunk.section))
                              if public else (art["title"], chunk.section))
            hits.append(Hit(
                id=art["id"], title=title, type=art["type"], section=section,
                anchor=chunk.anchor, snippet=window(flat, text, ordered),
                score=round(r.score, 4), path=art["path"], tags=list(art["tags"]),
                audience=art["audience"],
            ))
        answered = bool(hits) and confidence >= self.index.calibration.answer_threshold
        return Outcome(started.shown, hits, answered, round(confidence, 4), features,
                       started.lang, qvec)
