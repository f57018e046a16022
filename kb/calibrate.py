"""Fit fusion weights and the "answered" model to a knowledge base's own labelled queries.

Every figure this reports is held out: fusion weights and the answered model are chosen on
some folds of the queries and scored on the others (cross-validation), then refit on all.

The answered model learns what a near miss looks like from the knowledge base itself: each
answerable query is also replayed with the articles that answer it taken out, which is what a
question about a missing article looks like here (it still finds related articles). Those
replays, with the queries labelled unanswerable, are the negatives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from kb.embedding import embed_queries
from kb.errors import EvalDataError
from kb.evaluation import LabelledQuery, retrieval_metrics
from kb.expansion import Expansion
from kb.ranking import FEATURES, JUDGED, Calibration, Candidates, rank
from kb.search import Filters, Searcher, real_dense
from kb.text import analyze, detect_lang

ALPHAS = [round(a, 2) for a in np.linspace(0.0, 1.0, 21)]
MIN_QUERIES_PER_LANG = 10  # fewer than this and the default weight is kept
FOLDS = 5
MIN_NEGATIVES = 5  # fewer negatives than this and the answered model keeps its coefficients
REGULARIZATION = 0.3  # inverse strength (C) on standardized features: few labels, many features
# Each fold holds out at least one answerable query, and each answerable query's replay is a
# negative: with fewer, the "held-out" threshold is one query's own score.
MIN_ANSWERABLE = max(FOLDS, MIN_NEGATIVES)


@dataclass
class Prepared:
    query: LabelledQuery
    lang: str
    terms: set[str]
    candidates: Candidates
    expansions: list[Expansion] = field(default_factory=list)  # the query's, as search has


def check_enough(labelled: list[LabelledQuery], articles: Collection[str]) -> None:
    """Refuse to fit on too few answerable queries (labelled with an article of the index)."""
    answerable = sum(1 for q in labelled if any(a in articles for a in q.relevant))
    if answerable < MIN_ANSWERABLE:
        raise EvalDataError(
            f"too few labelled queries to calibrate: {answerable} answerable (labelled with an "
            f"article of the index), {len(labelled) - answerable} not; {FOLDS}-fold "
            f"cross-validation needs at least {MIN_ANSWERABLE} answerable queries; nothing "
            "was published")


def prepare(searcher: Searcher, labelled: list[LabelledQuery],
            progress: Callable[[Iterable], Iterable] = lambda x: x) -> list[Prepared]:
    """Embed all queries in batches and gather their candidates once, for any number of fits."""
    vectors = embed_queries(searcher.embedder, [q.query for q in labelled])
    out = []
    for q, vec in progress(list(zip(labelled, vectors, strict=True))):
        tokens, terms = analyze(q.query)
        lang = q.lang or detect_lang(q.query)
        expansions = searcher.expansions(q.query, tokens)
        cands = searcher.candidates(tokens, vec, Filters(), expansions=expansions, lang=lang)
        out.append(Prepared(q, lang, terms, cands, expansions))
    return out


def _mix(base: dict[str, float], dense: float) -> dict[str, float]:
    """``base`` with the dense and lexical signals sharing what the others leave in the
    proportion ``dense``."""
    pair = base.get("dense", 0.0) + base.get("lexical", 0.0)
    share = pair if pair > 0 else 1.0
    return {**base, "dense": dense * share, "lexical": (1.0 - dense) * share}


def _folds(n: int, labels: np.ndarray | None = None) -> list[np.ndarray]:
    """Test indices of each fold, fixed by a seed so a refit on the same queries agrees."""
    k = min(FOLDS, n)
    if labels is not None and min(np.bincount(labels, minlength=2)) >= k:
        splitter = StratifiedKFold(k, shuffle=True, random_state=0)
        return [test for _, test in splitter.split(np.zeros(n), labels)]
    order = np.random.default_rng(0).permutation(n)
    return [order[i::k] for i in range(k)]


def best_weight(scores: dict[float, float]) -> float:
    """The best-scoring weight; a tie goes to the one closest to an even mix. A band of
    near-ties would pull every knowledge base toward 0.5, away from its own best mix."""
    best = max(scores.values())
    return float(min((a for a, s in scores.items() if s >= best - 1e-9),
                     key=lambda a: abs(a - 0.5)))


def fit_fusion(prepared: list[Prepared], base: Calibration, ids: list[str],
               fitted: dict) -> dict[str, dict[str, float]]:
    """Dense/lexical mix per language; ``fitted["ndcg10"]`` gets its held-out nDCG@10."""
    fusion = {lang: dict(w) for lang, w in base.fusion.items()}
    for lang in sorted({p.lang for p in prepared}):
        group = [p for p in prepared if p.lang == lang and p.query.relevant]
        if len(group) < MIN_QUERIES_PER_LANG:
            continue
        start = base.weights(lang)
        # nDCG@10 of every query at every weight, once; folds only pick among the columns.
        per_query = np.zeros((len(group), len(ALPHAS)))
        for j, alpha in enumerate(ALPHAS):
            weights = _mix(start, alpha)
            runs = {p.query.qid: [(ids[r.article], r.score) for r in rank(p.candidates, weights, 10)]
                    for p in group}
            got = retrieval_metrics([p.query for p in group], runs)
            per_query[:, j] = [got.get(p.query.qid, {}).get("ndcg_cut_10", 0.0) for p in group]
        held_out = []
        for test in _folds(len(group)):
            train = np.setdiff1d(np.arange(len(group)), test)
            alpha = best_weight(dict(zip(ALPHAS, per_query[train].mean(axis=0), strict=True)))
            held_out.extend(per_query[test, ALPHAS.index(alpha)])
        fusion[lang] = _mix(start, best_weight(dict(zip(ALPHAS, per_query.mean(axis=0), strict=True))))
        fitted["ndcg10"][lang] = round(float(np.mean(held_out)), 4)
    return fusion


def _features(searcher: Searcher, p: Prepared, calibration: Calibration,
              candidates: Candidates) -> dict[str, float]:
    ranked = real_dense(rank(candidates, calibration.weights(p.lang), JUDGED))
    return searcher.judge(ranked, candidates, p.terms, p.expansions)


def answer_examples(searcher: Searcher, prepared: list[Prepared], calibration: Calibration
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, labels (1 answered), and kinds (0 answerable, 1 labelled unanswerable,
    2 answerable replayed without its articles)."""
    ordinal = {a: i for i, a in enumerate(searcher.index.article_ids)}
    rows, labels, kinds = [], [], []
    for p in prepared:
        feats = _features(searcher, p, calibration, p.candidates)
        rows.append([feats[f] for f in FEATURES])
        labels.append(1 if p.query.relevant else 0)
        kinds.append(0 if p.query.relevant else 1)
        answers = {ordinal[a] for a in p.query.relevant if a in ordinal}
        if answers:
            feats = _features(searcher, p, calibration, p.candidates.without(answers))
            rows.append([feats[f] for f in FEATURES])
            labels.append(0)
            kinds.append(2)
    return np.array(rows, dtype=np.float64), np.array(labels), np.array(kinds)


def _logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients and bias on the raw features (standardization folded in)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    model = LogisticRegression(class_weight="balanced", C=REGULARIZATION, max_iter=2000)
    model.fit((x - mean) / std, y)
    coef = model.coef_[0] / std
    return coef, float(model.intercept_[0] - (coef * mean).sum())


def _probabilities(x: np.ndarray, coef: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x @ coef + bias, -50.0, 50.0)))


def doubt_level(answerable: np.ndarray, unanswered: np.ndarray, threshold: float) -> float:
    """The probability below which an answered query is doubtful: where the held-out
    probabilities of questions without an answer here (unanswerable, replays) most outnumber
    the answerable ones' (the largest gap between their distributions, Youden's J), never
    below the answered threshold. The gap report weighs such queries with the stream."""
    if not len(answerable) or not len(unanswered):
        return threshold
    levels = np.unique(np.concatenate([answerable, unanswered, [threshold]]))
    levels = levels[levels >= threshold]
    below_gap = (unanswered[None, :] < levels[:, None]).mean(axis=1)
    below_ok = (answerable[None, :] < levels[:, None]).mean(axis=1)
    return round(float(levels[int(np.argmax(below_gap - below_ok))]), 4)


def fit(searcher: Searcher, prepared: list[Prepared], max_false_gap: float = 0.08) -> Calibration:
    ids = searcher.index.article_ids
    base = searcher.index.calibration
    fitted: dict = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "queries": len(prepared), "max_false_gap": max_false_gap,
                    "folds": FOLDS, "held_out": True, "ndcg10": {}}
    calibration = Calibration(fusion=fit_fusion(prepared, base, ids, fitted),
                              answer_coef=dict(base.answer_coef), answer_bias=base.answer_bias,
                              answer_threshold=base.answer_threshold, fitted=fitted)
    x, y, kinds = answer_examples(searcher, prepared, calibration)
    fitted["answerable"] = int((kinds == 0).sum())
    fitted["unanswerable"] = int((kinds == 1).sum())
    fitted["replayed_without_answer"] = int((kinds == 2).sum())
    if len(y) == 0 or not y.any():
        return calibration
    if (y == 0).sum() >= MIN_NEGATIVES:
        # Held-out probability of every example: the model of the folds that did not see it.
        held = np.zeros(len(y))
        for test in _folds(len(y), y):
            train = np.setdiff1d(np.arange(len(y)), test)
            if len(set(y[train])) < 2:
                continue
            coef, bias = _logistic(x[train], y[train])
            held[test] = _probabilities(x[test], coef, bias)
        coef, bias = _logistic(x, y)
        calibration.answer_coef = dict(zip(FEATURES, map(float, coef), strict=True))
        calibration.answer_bias = bias
    else:  # too few negatives to fit: the coefficients stay, nothing was fit to these queries
        held = _probabilities(x, np.array([calibration.coef(f) for f in FEATURES]),
                              calibration.answer_bias)
    # The threshold keeps at most max_false_gap of answerable queries below it, judged on
    # probabilities from models that did not see them.
    calibration.answer_threshold = float(np.quantile(held[kinds == 0], max_false_gap))
    calibration.answer_doubt = doubt_level(held[kinds == 0], held[kinds != 0],
                                           calibration.answer_threshold)
    for name, kind in (("flagged_answerable", 0), ("flagged_unanswerable", 1),
                       ("flagged_without_answer", 2)):
        chosen = kinds == kind
        fitted[name] = (round(float((held[chosen] < calibration.answer_threshold).mean()), 4)
                        if chosen.any() else None)
    return calibration


def calibration_summary(fitted: dict) -> str:
    """What ``kb calibrate`` prints: the held-out figures of a fit, one line each."""
    def rate(name: str) -> str:
        value = fitted.get(name)
        return "-" if value is None else f"{value:.1%}"

    ndcg = ", ".join(f"{lang} {v:.3f}" for lang, v in sorted(fitted.get("ndcg10", {}).items()))
    return "\n".join([
        f"held-out figures ({fitted.get('folds', FOLDS)}-fold cross-validation, "
        f"{fitted.get('queries', 0)} queries):",
        f"  nDCG@10 per language: {ndcg or '-'}",
        f"  answerable flagged as gaps: {rate('flagged_answerable')} "
        f"of {fitted.get('answerable', 0)} (target {fitted.get('max_false_gap', 0):.0%})",
        f"  unanswerable flagged as gaps: {rate('flagged_unanswerable')} "
        f"of {fitted.get('unanswerable', 0)}",
        f"  answerable with their articles removed, flagged: {rate('flagged_without_answer')} "
        f"of {fitted.get('replayed_without_answer', 0)}",
    ])
