"""The lexical half reads only the postings of a query's tokens: exactly the scores, the
candidate rows and the ranking of scoring every row by bm25s, as it was done before."""

import json
import math

import numpy as np
import pytest

from kb import search
from kb.build import build_index
from kb.expansion import Expansion, _nests
from kb.lexical import LexicalIndex, new_vocabulary
from kb.search import Filters, Lexical, Searcher, best_first
from kb.store import load_index
from kb.text import analyze
from tests.conftest import GOLDEN, ROOT, FakeEmbedder

AUDIENCES = [("internal", Filters()), ("public", Filters()), ("internal", Filters(lang="en")),
             ("internal", Filters(type=("sop",)))]


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    """The sample knowledge base (glossary, both languages, internal articles), fake model."""
    embedder = FakeEmbedder()
    root = tmp_path_factory.mktemp("lexical-index")
    build_index(ROOT / "articles", root, lambda: embedder, embedder.name)
    return Searcher(load_index(root), embedder)


def queries() -> list[str]:
    lines = (GOLDEN / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["query"] for line in lines] + ["vpn vpn 809 809 809", "退款 退款"]


def _idf(scores: np.ndarray, chunks: int) -> float:
    df = int(np.count_nonzero(scores))
    return math.log(1.0 + (chunks - df + 0.5) / (df + 0.5))


def expanded_every_row(lexical: LexicalIndex, base: np.ndarray, expansions: list[Expansion],
                       mask: np.ndarray | None, other: np.ndarray | None = None) -> np.ndarray:
    """kb.expansion.expanded_scores as it was: every expansion over every row."""
    if not expansions:
        return base
    if other is not None and not other.any():
        other = None
    total = base.astype(np.float32, copy=True)
    cache: dict[str, np.ndarray] = {}

    def scores(token: str) -> np.ndarray:
        if token not in cache:
            cache[token] = lexical.term_scores(token)
        return cache[token]

    crossed = [np.zeros_like(total) for _ in expansions]
    for e, cross in zip(expansions, crossed, strict=True):
        best = np.zeros_like(total)
        weighed = e.weighed or e.source
        count = len(weighed) / e.occurs
        known = [t for t in weighed if scores(t).any()]
        mass = (sum(_idf(scores(t), lexical.size) for t in known) / e.occurs if known
                else math.inf)
        ceiling = (float(np.sum([scores(t) for t in known], axis=0).max()) / e.occurs
                   if known else math.inf)
        for alt in e.alternatives:
            if not alt.tokens:
                continue
            s = np.mean([scores(t) for t in alt.tokens], axis=0)
            np.maximum(best, alt.weight * s, out=best)
            if other is not None:
                idf = float(np.mean([_idf(scores(t), lexical.size) for t in alt.tokens]))
                scale = min(mass / idf, count) if idf > 0 else 0.0
                np.maximum(cross, alt.cross_weight * np.minimum(scale * s, ceiling), out=cross)
        if e.source:
            parts = np.stack([scores(t) for t in dict.fromkeys(e.source)])
            whole = parts.min(axis=0) > 0
            if whole.any():
                own = float(parts.sum(axis=0)[whole].max())
                np.minimum(best, own, out=best)
        total += best if other is None else np.where(other, 0.0, best)
    if other is not None:
        for group in _nests(expansions):
            total += np.where(other, np.max([crossed[i] for i in group], axis=0), 0.0)
    if mask is not None:
        total *= mask
    return total


def bm25s_scores(lexical: LexicalIndex, tokens: list[str],
                 mask: np.ndarray | None = None) -> np.ndarray:
    """BM25 of every row from bm25s's scores of each token, summed in float64 in the tokens'
    order."""
    total = np.zeros(lexical.size, dtype=np.float64)
    for t in lexical.known(tokens):
        total += np.asarray(lexical._bm25.get_scores([t]), dtype=np.float32)
    out = total.astype(np.float32)
    return out if mask is None else out * mask


def every_row(s: Searcher, tokens, filters, audience, expansions, lang) -> Lexical:
    """The lexical half as it was: BM25 of every row from bm25s, expansions over every row
    (its candidates taken as the fast half takes them among tied rows)."""
    mask = s._mask(filters, audience)
    weights = None if mask is None else mask.astype(np.float32)
    scores = bm25s_scores(s.index.lexical, tokens, weights)
    if expansions:
        other = s._article_lang[s.index.chunk_article] != lang
        scores = expanded_every_row(s.index.lexical, scores, expansions, weights, other)
    top = best_first(scores, search.POOL)
    distinct = set(tokens)
    known = len(set(s.index.lexical.known(list(distinct)))) / len(distinct)
    return Lexical(scores, top[scores[top] > 0], known)


def test_the_queries_have_expansions_and_filters_that_hide_rows(searcher):
    # What the comparisons below rest on: they cover expansions and masked rows.
    assert sum(bool(searcher.expansions(q, analyze(q)[0])) for q in queries()) >= 5
    assert all(searcher._mask(f, a) is not None for a, f in AUDIENCES[1:])


@pytest.mark.parametrize("pool", [search.POOL, 3])
def test_scores_and_candidate_rows_are_those_of_every_row(searcher, monkeypatch, pool):
    monkeypatch.setattr(search, "POOL", pool)  # 3: the cut falls among many matching rows
    compared = 0
    for q in queries():
        tokens, _ = analyze(q)
        lang = search.detect_lang(q)
        expansions = searcher.expansions(q, tokens)
        for audience, filters in AUDIENCES:
            fast = searcher.lexical(tokens, filters, audience, expansions, lang)
            full = every_row(searcher, tokens, filters, audience, expansions, lang)
            scores = fast.scores
            assert scores.dtype == full.scores.dtype == np.float32
            # Bit for bit: the same sums in the same order.
            assert scores.tobytes() == full.scores.tobytes(), (q, audience, filters)
            assert sorted(fast.top.tolist()) == sorted(full.top.tolist()), (q, audience)
            assert fast.known == full.known
            compared += int(len(full.top) > 0)
    assert compared > 20


def test_search_ranks_as_with_every_row_scored(searcher, monkeypatch):
    fast = [(searcher.search(q, k=10, audience=a, filters=f), q) for q in queries()
            for a, f in AUDIENCES]

    def old(tokens, filters, audience="internal", expansions=None, lang=None):
        return every_row(searcher, tokens, filters, audience, expansions, lang)

    monkeypatch.setattr(searcher, "lexical", old)
    for (outcome, q), (audience, filters) in zip(fast, AUDIENCES * len(queries()), strict=True):
        again = searcher.search(q, k=10, audience=audience, filters=filters)
        assert [(h.id, h.anchor, h.score) for h in outcome.hits] == [
            (h.id, h.anchor, h.score) for h in again.hits], q
        assert (outcome.answered, outcome.confidence) == (again.answered, again.confidence)
    assert sum(bool(o.hits) for o, _ in fast) > 20


def test_scores_from_the_postings_are_those_of_bm25s():
    vocabulary = new_vocabulary()
    words = "vpn 809 error printer offline refund 退款 打印机".split()
    for w in words:
        vocabulary[w] = len(vocabulary)
    rng = np.random.default_rng(3)
    docs = [[vocabulary[w] for w in rng.choice(words, rng.integers(0, 6))] for _ in range(60)]
    whole = LexicalIndex.build(docs, vocabulary)
    tokens = ["vpn", "809", "vpn", "退款", "unknown"]
    rows = whole.postings(tokens)
    assert rows.tolist() == [r for r, d in enumerate(docs)
                             if {vocabulary[t] for t in tokens if t in vocabulary} & set(d)]
    mask = (rng.random(60) < 0.7).astype(np.float32)
    for weights in (None, mask):
        assert whole.scores(tokens, weights).tobytes() == bm25s_scores(whole, tokens,
                                                                     weights).tobytes()
    assert whole.scores(tokens)[np.setdiff1d(np.arange(60), rows)].max() == 0
    for t in tokens:
        at, data = whole.posting(t)
        term = whole.term_scores(t)
        assert at.tolist() == np.flatnonzero(term).tolist() and (term[at] == data).all()
        assert term.tobytes() == bm25s_scores(whole, [t]).tobytes()
    assert whole.scores(["unknown"]).tolist() == [0.0] * 60


def test_best_first_takes_the_first_of_rows_tied_at_the_cut():
    scores = np.array([1, 5, 3, 3, 0, 3, 5, 3], dtype=np.float32)
    assert sorted(best_first(scores, 4).tolist()) == [1, 2, 3, 6]
    assert sorted(best_first(scores, 2).tolist()) == [1, 6]
    # Among rows holding the same scores in the same order, the same rows.
    held = np.array([1, 2, 3, 5, 6, 7])
    assert sorted(held[best_first(scores[held], 4)].tolist()) == [1, 2, 3, 6]
    assert best_first(scores, 0).tolist() == [] and sorted(best_first(scores, 9).tolist()) == list(range(8))


@pytest.mark.parametrize("query", ["客户退款", "客户退款 客户退款", "退款", "客户 退款"])
def test_translations_into_the_other_language_score_as_over_every_row(tmp_path, query):
    """Where translations are rescaled for the other language's articles (kb.expansion)."""
    from kb.bridge import parse
    from tests.test_bridge import LINES, generic_kb, small_kb

    for s in (generic_kb(tmp_path / "generic", FakeEmbedder()),
              small_kb(tmp_path / "small", FakeEmbedder(), parse(LINES))):
        assert s._article_lang.tolist().count("en") >= 1
        tokens, _ = analyze(query)
        expansions = s.expansions(query, tokens)
        assert expansions
        fast = s.lexical(tokens, Filters(), "internal", expansions, "zh")
        full = every_row(s, tokens, Filters(), "internal", expansions, "zh")
        assert fast.scores.tobytes() == full.scores.tobytes()


@pytest.mark.parametrize("seed", range(12))
def test_best_first_of_many_rows_takes_what_one_partition_of_them_all_takes(seed):
    # Enough rows for best_first to narrow them first; scores with many ties, at the cut too.
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, [3, 40, 400][seed % 3], 5_000).astype(np.float32)
    for k in (1, 7, 100, 300):
        assert len(scores) >= 16 * k
        assert sorted(best_first(scores, k).tolist()) == sorted(search._first(scores, k).tolist())
