"""Fit fusion weights and the "answered" model to a knowledge base's own labelled queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression

from kb.embedding import embed_queries
from kb.evaluation import LabelledQuery, mean, retrieval_metrics
from kb.expansion import Expansion
from kb.ranking import FEATURES, Calibration, Candidates, answer_features, rank
from kb.search import Filters, Searcher, real_dense
from kb.text import analyze, detect_lang

ALPHAS = [round(a, 2) for a in np.linspace(0.0, 1.0, 21)]
MIN_QUERIES_PER_LANG = 10  # fewer than this and the default weight is kept


@dataclass
class Prepared:
    query: LabelledQuery
    lang: str
    terms: set[str]
    candidates: Candidates
    expansions: list[Expansion] = field(default_factory=list)  # the query's, as search has


def prepare(searcher: Searcher, labelled: list[LabelledQuery],
            progress: Callable[[Iterable], Iterable] = lambda x: x) -> list[Prepared]:
    """Embed all queries in batches and gather their candidates once, for any number of fits."""
    vectors = embed_queries(searcher.embedder, [q.query for q in labelled])
    out = []
    for q, vec in progress(list(zip(labelled, vectors, strict=True))):
        tokens, terms = analyze(q.query)
        lang = q.lang or detect_lang(q.query)
        expansions = searcher.expansions(q.query, tokens)
        cands = searcher.candidates(tokens, vec, Filters(), expansions, lang)
        out.append(Prepared(q, lang, terms, cands, expansions))
    return out


def _mix(base: dict[str, float], dense: float) -> dict[str, float]:
    """``base`` with the dense and lexical signals sharing what the others leave in the
    proportion ``dense``."""
    pair = base.get("dense", 0.0) + base.get("lexical", 0.0)
    share = pair if pair > 0 else 1.0
    return {**base, "dense": dense * share, "lexical": (1.0 - dense) * share}


def _ndcg(prepared: list[Prepared], weights: dict[str, float], ids: list[str]) -> float:
    runs = {p.query.qid: [(ids[r.article], r.score) for r in rank(p.candidates, weights, 10)]
            for p in prepared}
    return mean(retrieval_metrics([p.query for p in prepared], runs), "ndcg_cut_10")


def fit(searcher: Searcher, prepared: list[Prepared], max_false_gap: float = 0.08) -> Calibration:
    ids = searcher.index.article_ids
    base = searcher.index.calibration
    fusion = {lang: dict(w) for lang, w in base.fusion.items()}
    fitted: dict = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "queries": len(prepared), "max_false_gap": max_false_gap, "ndcg10": {}}
    for lang in sorted({p.lang for p in prepared}):
        group = [p for p in prepared if p.lang == lang and p.query.relevant]
        if len(group) < MIN_QUERIES_PER_LANG:
            continue
        start = base.weights(lang)
        scores = {a: _ndcg(group, _mix(start, a), ids) for a in ALPHAS}
        # Among near-ties prefer the weight closest to an even mix: it generalises better.
        best = max(scores.values())
        alpha = float(min((a for a, s in scores.items() if s >= best - 0.002),
                          key=lambda a: abs(a - 0.5)))
        fusion[lang] = _mix(start, alpha)
        fitted["ndcg10"][lang] = round(scores[alpha], 4)
    calibration = Calibration(fusion=fusion, answer_coef=dict(base.answer_coef),
                              answer_bias=base.answer_bias,
                              answer_threshold=base.answer_threshold, fitted=fitted)

    rows, labels = [], []
    for p in prepared:
        ranked = real_dense(rank(p.candidates, calibration.weights(p.lang), 2))
        cov = searcher.coverage(p.terms, ranked[0].article, p.expansions) if ranked else 0.0
        feats = answer_features(ranked, cov)
        rows.append([feats[f] for f in FEATURES])
        labels.append(1 if p.query.relevant else 0)
    x, y = np.array(rows), np.array(labels)
    if 0 < y.sum() < len(y) and (len(y) - y.sum()) >= 5:
        model = LogisticRegression(class_weight="balanced", C=1.0, max_iter=1000).fit(x, y)
        calibration.answer_coef = dict(zip(FEATURES, map(float, model.coef_[0]), strict=True))
        calibration.answer_bias = float(model.intercept_[0])
    fitted["unanswerable"] = int(len(y) - y.sum())
    probs = np.array([calibration.answer_probability(dict(zip(FEATURES, r, strict=True)))
                      for r in rows])
    if y.sum():
        # The threshold keeps at most max_false_gap of answerable queries below it.
        calibration.answer_threshold = float(np.quantile(probs[y == 1], max_false_gap))
    fitted["flagged_answerable"] = round(float((probs[y == 1] < calibration.answer_threshold)
                                               .mean()) if y.sum() else 0.0, 4)
    fitted["flagged_unanswerable"] = round(float((probs[y == 0] < calibration.answer_threshold)
                                                 .mean()) if (y == 0).any() else 0.0, 4)
    return calibration
