"""Fusion of dense and lexical evidence, one result per article, and the "answered?" decision.

Fusion is a convex combination of the two signals after min-max normalising each over the
candidates (cosine floored at 0), the method that Bruch et al. (2023, "An Analysis of Fusion
Functions for Hybrid Retrieval") found to beat reciprocal-rank fusion once its weight is tuned
on a handful of queries. Min-max rather than division by the best score: candidate cosines sit
in a narrow band (say 0.3 to 0.7) while BM25 spans from 0, so dividing by the best would leave
dense differences a fraction of the weight the mix gives them. The weight depends on the query
language because an embedding model may be strong in one language and weak in another;
``kb calibrate`` fits it per knowledge base.

"Answered" is a logistic model over several signals of the top article, with a threshold fit to a
target false-gap rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# The bundled all-MiniLM-L6-v2 is an English model: on Chinese its cosines are close to noise.
DEFAULT_DENSE_WEIGHT = {"en": 0.6, "zh": 0.2}
FEATURES = ("fused", "dense", "coverage", "margin", "lexical")


@dataclass
class Calibration:
    dense_weight: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DENSE_WEIGHT))
    # Logistic weights over FEATURES (+ bias): a priori, coverage of the query's words and a
    # clear dense match speak for an answer.
    answer_coef: list[float] = field(default_factory=lambda: [1.0, 6.0, 5.0, 2.0, 0.0])
    answer_bias: float = -5.5
    answer_threshold: float = 0.5
    fitted: dict = field(default_factory=dict)

    def weight(self, lang: str) -> float:
        return self.dense_weight.get(lang, DEFAULT_DENSE_WEIGHT.get(lang, 0.5))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def answer_probability(self, features: dict[str, float]) -> float:
        z = self.answer_bias + sum(
            c * features[name] for c, name in zip(self.answer_coef, FEATURES, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass
class Candidates:
    """Evidence for the candidate chunks of one query (rows into the index's chunk list)."""

    rows: np.ndarray
    dense: np.ndarray  # cosine per row
    lexical: np.ndarray  # BM25 per row
    articles: np.ndarray  # article ordinal per row


@dataclass
class Ranked:
    article: int  # ordinal
    row: int  # best chunk
    score: float
    dense: float
    lexical: float


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = (x.min(), x.max()) if len(x) else (0.0, 0.0)
    if hi > lo:
        return (x - lo) / (hi - lo)
    return (x > 0).astype(np.float64)  # one candidate, or all alike: full marks if any evidence


def fuse(c: Candidates, alpha: float | np.ndarray) -> np.ndarray:
    """Per-row fused score in [0, 1]. ``alpha``, the dense weight, may differ per row: 0 where
    the model's cosines mean nothing (an English-only model between languages)."""
    d = _minmax(np.maximum(c.dense, 0.0))
    if not len(c.lexical) or c.lexical.max() <= 0:
        return d  # nothing matched lexically: dense evidence is all there is
    return alpha * d + (1.0 - alpha) * _minmax(c.lexical)


def rank(c: Candidates, alpha: float | np.ndarray, k: int) -> list[Ranked]:
    """Best ``k`` articles, each represented by its best-scoring chunk."""
    if len(c.rows) == 0:
        return []
    fused = fuse(c, alpha)
    # Grouped by article, each article's chunks in fused order (lexsort is stable: ties keep row
    # order). Article-level evidence is its best dense and best lexical chunk, possibly in
    # different sections; the section shown is its best fused chunk, the first of its group.
    order = np.lexsort((-fused, c.articles))
    grouped = c.articles[order]
    starts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1])))
    present = grouped[starts]
    art_dense = np.maximum.reduceat(c.dense[order], starts).astype(np.float64)
    art_lex = np.maximum.reduceat(c.lexical[order], starts).astype(np.float64)
    art_alpha = alpha if np.isscalar(alpha) else np.asarray(alpha)[order][starts]
    art_score = fuse(Candidates(present, art_dense, art_lex, present), art_alpha)
    top = np.argsort(-art_score, kind="stable")[:k]
    # Python numbers, converted a column at a time
    columns = (present[top], c.rows[order[starts[top]]], art_score[top], art_dense[top],
               art_lex[top])
    return [Ranked(*values) for values in zip(*(col.tolist() for col in columns), strict=True)]


def answer_features(ranked: list[Ranked], coverage: float) -> dict[str, float]:
    top = ranked[0] if ranked else None
    second = ranked[1].score if len(ranked) > 1 else 0.0
    lexical_share = 0.0
    if top is not None and ranked:
        best_lex = max(r.lexical for r in ranked)
        lexical_share = top.lexical / best_lex if best_lex > 0 else 0.0
    return {
        "fused": top.score if top else 0.0,
        "dense": max(top.dense, 0.0) if top else 0.0,
        "coverage": coverage,
        "margin": (top.score - second) if top else 0.0,
        "lexical": lexical_share,
    }
