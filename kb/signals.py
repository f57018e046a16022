"""The named per-row ranking signals: the registry every candidate row is scored by.

A signal is one function of the query's evidence and the candidate rows, returning one score
per row, registered under a name with ``@signal``. Fusion mixes the signals by the weight the
calibration gives each name (a name it lacks gets the registered default, so a new signal with
a default of 0 changes nothing until ``kb calibrate`` gives it a weight). Scores are read as
evidence: fusion floors them at 0 and min-max normalises each over the candidates.

To add one (recency, popularity, a reranker or glossary score)::

    @signal("recency", default={"*": 0.0})
    def recency(evidence: Evidence, rows: np.ndarray) -> np.ndarray:
        return evidence.index_days_fresh[rows]

Whatever a retriever computed for every row (cosines, BM25, a bridge's lexical scores) travels
in ``Evidence.scores`` by name, so a signal over it is a one-line lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Evidence:
    """What candidate gathering computed for one query: full per-row score arrays by name."""

    scores: dict[str, np.ndarray]
    lang: str = "en"
    extra: dict[str, object] = field(default_factory=dict)


SignalFn = Callable[[Evidence, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Signal:
    name: str
    fn: SignalFn
    default: dict[str, float]  # fusion weight per language, "*" for any other language

    def default_weight(self, lang: str) -> float:
        return self.default.get(lang, self.default.get("*", 0.0))


SIGNALS: dict[str, Signal] = {}


def signal(name: str, default: dict[str, float]) -> Callable[[SignalFn], SignalFn]:
    """Register ``fn`` as the signal ``name`` with default fusion weights per language."""
    def register(fn: SignalFn) -> SignalFn:
        SIGNALS[name] = Signal(name, fn, dict(default))
        return fn
    return register


# The bundled all-MiniLM-L6-v2 is an English model: on Chinese its cosines are close to noise.
@signal("dense", default={"en": 0.6, "zh": 0.2, "*": 0.5})
def dense(evidence: Evidence, rows: np.ndarray) -> np.ndarray:
    """Cosine between the query's and the chunk's embeddings."""
    return evidence.scores["dense"][rows]


@signal("lexical", default={"en": 0.4, "zh": 0.8, "*": 0.5})
def lexical(evidence: Evidence, rows: np.ndarray) -> np.ndarray:
    """BM25 of the query's tokens in the chunk."""
    return evidence.scores["lexical"][rows]


def row_signals(evidence: Evidence, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Every registered signal of ``rows``, by name."""
    return {name: np.asarray(sig.fn(evidence, rows)) for name, sig in SIGNALS.items()}


def default_weights(lang: str) -> dict[str, float]:
    return {name: sig.default_weight(lang) for name, sig in SIGNALS.items()}
