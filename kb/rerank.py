"""Optional cross-encoder reranking of the top fused results (off unless KB_RERANKER is set).

A cross-encoder reads query and section together and is far more precise than either
retriever, at the price of one model pass per candidate: the bench reports that cost.
"""

from __future__ import annotations

import numpy as np

from kb.errors import ModelError


class Reranker:
    def __init__(self, spec: str, top: int = 20) -> None:
        from sentence_transformers import CrossEncoder

        try:
            # Nothing is fetched from a model hub at run time: a name must already be cached.
            self._model = CrossEncoder(spec, device="cpu", local_files_only=True)
        except Exception as exc:  # the library raises many types for a missing or broken model
            raise ModelError(f"cannot load reranker {spec!r}: {exc}") from exc
        self.name = spec
        self.top = top

    def scores(self, query: str, passages: list[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._model.predict([(query, p) for p in passages],
                                              show_progress_bar=False), dtype=np.float32)
