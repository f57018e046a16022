"""Fusion of the named signals, one result per article, and the "answered?" decision.

Fusion is a convex combination of the signals of ``kb.signals`` after min-max normalising each
over the candidates (floored at 0), the method that Bruch et al. (2023, "An Analysis of Fusion
Functions for Hybrid Retrieval") found to beat reciprocal-rank fusion once its weights are tuned
on a handful of queries. Min-max rather than division by the best score: candidate cosines sit
in a narrow band (say 0.3 to 0.7) while BM25 spans from 0, so dividing by the best would leave
dense differences a fraction of the weight the mix gives them. The weights depend on the query
language because an embedding model may be strong in one language and weak in another;
``kb calibrate`` fits them per knowledge base. One rule stands above the weights: when a single
article holds any of the query's words, it ranks first (``Candidates.holder``).

"Answered" is a logistic model over named features of the top articles (``FEATURES``), with a
threshold fit to a target false-gap rate. Weights and coefficients are stored by name, so a
calibration file stays valid when signals or features are added: a name it lacks gets its
registered default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.errors import CalibrationError
from kb.signals import SIGNALS, default_weights

CALIBRATION_FORMAT = 2
# The order of the coefficient list in calibration files written before features had names.
LEGACY_FEATURES = ("fused", "dense", "coverage", "margin", "lexical")


@dataclass
class Candidates:
    """Evidence for the candidate chunks of one query (rows into the index's chunk list)."""

    rows: np.ndarray
    articles: np.ndarray  # article ordinal per row
    signals: dict[str, np.ndarray]  # signal name -> score per row
    # Query-level evidence from gathering: the spread of cosines over every row the query may
    # see ("dense_mean", "dense_std"), the share of its tokens the knowledge base knows.
    query: dict[str, float] = field(default_factory=dict)
    # The one article that holds any of the query's words, if only one does: it ranks first.
    holder: int | None = None

    def without(self, articles: set[int]) -> Candidates:
        """These candidates as if ``articles`` were not in the knowledge base."""
        keep = ~np.isin(self.articles, list(articles))
        return Candidates(self.rows[keep], self.articles[keep],
                          {n: s[keep] for n, s in self.signals.items()}, dict(self.query),
                          None if self.holder in articles else self.holder)


@dataclass
class Ranked:
    article: int  # ordinal
    row: int  # best chunk
    score: float
    signals: dict[str, float]  # the article's best score of each signal, over its chunks

    @property
    def dense(self) -> float:
        return self.signals.get("dense", 0.0)

    @property
    def lexical(self) -> float:
        return self.signals.get("lexical", 0.0)


@dataclass
class Judged:
    """What the answered model sees of one query's ranking."""

    ranked: list[Ranked]
    coverage: float  # share of the query's content terms the top article contains
    query: dict[str, float] = field(default_factory=dict)  # see Candidates.query


FeatureFn = Callable[[Judged], float]


@dataclass(frozen=True)
class Feature:
    name: str
    fn: FeatureFn
    default: float  # coefficient when a calibration lacks this name


FEATURES: dict[str, Feature] = {}
# The answered model sees the top two articles, whatever the number of results asked for.
JUDGED = 2
DEFAULT_BIAS = -5.5
DEFAULT_THRESHOLD = 0.5


def feature(name: str, default: float = 0.0) -> Callable[[FeatureFn], FeatureFn]:
    """Register ``fn`` as the answered model's feature ``name`` (``default``: its coefficient
    until a calibration fits one)."""
    def register(fn: FeatureFn) -> FeatureFn:
        FEATURES[name] = Feature(name, fn, default)
        return fn
    return register


# A priori, coverage of the query's words and a clear dense match speak for an answer.
@feature("fused", 1.0)
def _fused(j: Judged) -> float:
    return j.ranked[0].score if j.ranked else 0.0


@feature("dense", 6.0)
def _dense(j: Judged) -> float:
    return max(j.ranked[0].dense, 0.0) if j.ranked else 0.0


@feature("coverage", 5.0)
def _coverage(j: Judged) -> float:
    return j.coverage


@feature("margin", 2.0)
def _margin(j: Judged) -> float:
    if not j.ranked:
        return 0.0
    return j.ranked[0].score - (j.ranked[1].score if len(j.ranked) > 1 else 0.0)


@feature("lexical", 0.0)
def _lexical(j: Judged) -> float:
    """The top article's BM25 as a share of the larger of the judged articles'."""
    if not j.ranked:
        return 0.0
    best = max(r.lexical for r in j.ranked)
    return j.ranked[0].lexical / best if best > 0 else 0.0


@feature("dense_z", 0.0)
def _dense_z(j: Judged) -> float:
    """How far the top article's cosine stands above the query's cosines to every row: a
    query about something the knowledge base lacks is about as close to all of it."""
    std = j.query.get("dense_std", 0.0)
    if not j.ranked or std <= 0:
        return 0.0
    return (j.ranked[0].dense - j.query.get("dense_mean", 0.0)) / std


@feature("known", 0.0)
def _known(j: Judged) -> float:
    """Share of the query's tokens that occur anywhere in the knowledge base."""
    return j.query.get("known", 0.0)


def answer_features(ranked: list[Ranked], coverage: float,
                    query: dict[str, float] | None = None) -> dict[str, float]:
    judged = Judged(ranked, coverage, query or {})
    return {name: float(f.fn(judged)) for name, f in FEATURES.items()}


@dataclass
class Calibration:
    """Fitted weights by name; any name missing here takes its registered default."""

    fusion: dict[str, dict[str, float]] = field(default_factory=dict)  # lang -> signal -> w
    answer_coef: dict[str, float] = field(default_factory=dict)  # feature -> coefficient
    answer_bias: float = DEFAULT_BIAS
    answer_threshold: float = DEFAULT_THRESHOLD
    # An answered query less confident than this is doubtful: the gap report weighs it with
    # the queries alike it (kb.topics); 0, as before calibrations fit one, makes none doubtful.
    answer_doubt: float = 0.0
    fitted: dict = field(default_factory=dict)

    def weights(self, lang: str) -> dict[str, float]:
        """Fusion weight of every registered signal for queries in ``lang``."""
        return {**default_weights(lang),
                **{k: v for k, v in self.fusion.get(lang, {}).items() if k in SIGNALS}}

    def coef(self, name: str) -> float:
        return self.answer_coef.get(name, FEATURES[name].default)

    def answer_probability(self, features: dict[str, float]) -> float:
        z = self.answer_bias + sum(self.coef(name) * features[name] for name in FEATURES)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def to_dict(self) -> dict:
        return {"format": CALIBRATION_FORMAT, "fusion": self.fusion,
                "answer_coef": self.answer_coef, "answer_bias": self.answer_bias,
                "answer_threshold": self.answer_threshold, "answer_doubt": self.answer_doubt,
                "fitted": self.fitted}

    @classmethod
    def from_dict(cls, data: object) -> Calibration:
        """Read either format; raises ValueError naming the first problem found. Unknown keys
        and names are kept out of the way, not refused: a newer file stays readable."""
        return _parse(data)

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read and check a calibration file; a malformed one raises CalibrationError."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CalibrationError(f"{path}:1: cannot read calibration: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"{path}:{exc.lineno}: calibration is not valid JSON: "
                                   f"{exc.msg}") from exc
        try:
            return _parse(data)
        except ValueError as exc:
            raise CalibrationError(f"{path}:1: invalid calibration: {exc}") from exc


def _number(value: object, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{where} must be between {lo:g} and {hi:g}, not {value!r}")
    return float(value)


def _mapping(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, not {type(value).__name__}")
    return value


def _parse(data: object) -> Calibration:
    data = _mapping(data, "the calibration")
    fmt = data.get("format", 1)
    if fmt not in (1, CALIBRATION_FORMAT):
        raise ValueError(f"unknown format {fmt!r}; this version reads 1 and {CALIBRATION_FORMAT}")
    fusion: dict[str, dict[str, float]] = {}
    if "fusion" in data:
        for lang, weights in _mapping(data["fusion"], "fusion").items():
            fusion[lang] = {name: _number(w, f"fusion.{lang}.{name}", 0.0)
                            for name, w in _mapping(weights, f"fusion.{lang}").items()}
    elif "dense_weight" in data:  # format 1: the dense share per language, lexical the rest
        for lang, w in _mapping(data["dense_weight"], "dense_weight").items():
            dense = _number(w, f"dense_weight.{lang}", 0.0, 1.0)
            fusion[lang] = {"dense": dense, "lexical": 1.0 - dense}
    coef: dict[str, float] = {}
    raw = data.get("answer_coef", {})
    if isinstance(raw, list):  # format 1: one coefficient per feature, in LEGACY_FEATURES order
        if len(raw) != len(LEGACY_FEATURES):
            raise ValueError(f"answer_coef has {len(raw)} coefficients; a list must have "
                             f"{len(LEGACY_FEATURES)}, one for each of {list(LEGACY_FEATURES)}")
        raw = dict(zip(LEGACY_FEATURES, raw, strict=True))
    for name, c in _mapping(raw, "answer_coef").items():
        coef[name] = _number(c, f"answer_coef.{name}")
    fitted = _mapping(data.get("fitted", {}), "fitted")
    return Calibration(
        fusion=fusion, answer_coef=coef,
        answer_bias=_number(data.get("answer_bias", DEFAULT_BIAS), "answer_bias"),
        answer_threshold=_number(data.get("answer_threshold", DEFAULT_THRESHOLD),
                                 "answer_threshold", 0.0, 1.0),
        answer_doubt=_number(data.get("answer_doubt", 0.0), "answer_doubt", 0.0, 1.0),
        fitted=fitted)


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = (x.min(), x.max()) if len(x) else (0.0, 0.0)
    if hi > lo:
        return (x - lo) / (hi - lo)
    return (x > 0).astype(np.float64)  # one candidate, or all alike: full marks if any evidence


def fuse(c: Candidates, weights: dict[str, float]) -> np.ndarray:
    """Per-row fused score in [0, 1]. A signal with no evidence among the candidates (nothing
    above 0) gives its weight to the others: with no lexical match, dense evidence is all
    there is."""
    used = {n: w for n, w in weights.items() if w > 0 and n in c.signals}
    present = {n: w for n, w in used.items() if len(c.signals[n]) and c.signals[n].max() > 0}
    total = sum(present.values())
    if not present or total <= 0:
        return np.zeros(len(c.rows))
    fused: np.ndarray | None = None
    for name, w in present.items():
        part = (w / total) * _minmax(np.maximum(c.signals[name], 0.0))
        fused = part if fused is None else fused + part
    assert fused is not None
    return fused


def rank(c: Candidates, weights: dict[str, float], k: int) -> list[Ranked]:
    """Best ``k`` articles, each represented by its best-scoring chunk."""
    if len(c.rows) == 0:
        return []
    fused = fuse(c, weights)
    # Grouped by article, each article's chunks in fused order (lexsort is stable: ties keep row
    # order). An article's evidence is its best chunk for each signal, possibly in different
    # sections; the section shown is its best fused chunk, the first of its group.
    order = np.lexsort((-fused, c.articles))
    grouped = c.articles[order]
    starts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1])))
    present = grouped[starts]
    per_article = {name: np.maximum.reduceat(s[order], starts).astype(np.float64)
                   for name, s in c.signals.items()}
    art_score = fuse(Candidates(present, present, per_article), weights)
    order_by = -art_score
    if c.holder is not None and (singled := np.flatnonzero(present == c.holder)).size:
        # first, at the best score, whatever the other evidence
        art_score[singled] = art_score.max()
        order_by = order_by.copy()
        order_by[singled] = -np.inf
    top = np.argsort(order_by, kind="stable")[:k]
    # Python numbers, converted a column at a time
    names = list(per_article)
    columns = [per_article[n][top].tolist() for n in names]
    rows = c.rows[order[starts[top]]].tolist()
    return [Ranked(a, r, s, dict(zip(names, values, strict=True)))
            for a, r, s, *values in zip(present[top].tolist(), rows, art_score[top].tolist(),
                                        *columns, strict=True)]
