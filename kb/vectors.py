"""Exact inner-product scores (FAISS) over unit vectors, i.e. cosine similarity."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


class VectorIndex:
    def __init__(self, index: faiss.IndexFlat) -> None:
        self._index = index
        self.dim = index.d
        self.size = index.ntotal
        # The index's own float32 rows, not a copy: valid while self._index lives.
        self._rows = (faiss.rev_swig_ptr(index.get_xb(), self.size * self.dim)
                      .reshape(self.size, self.dim) if self.size
                      else np.zeros((0, self.dim), dtype=np.float32))

    @classmethod
    def build(cls, vectors: np.ndarray, dim: int) -> VectorIndex:
        index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        return cls(faiss.read_index(str(path)))

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Inner product of ``query`` with every row.

        One pass of FAISS's SIMD kernel on this thread, keeping every score: a top-k search
        then needs only a partition, and the rows found lexically alone have their cosines
        already (half the time of a FAISS top-k search plus their lookup, after the model has
        emptied the caches). No OpenMP or BLAS helper threads: they would spin after one query
        on the cores the model needs next.
        """
        out = np.empty(self.size, dtype=np.float32)
        if self.size:
            q = np.ascontiguousarray(query.reshape(-1), dtype=np.float32)
            faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(q),
                                         faiss.swig_ptr(self._rows), self.dim, self.size)
        return out

    def reconstruct_all(self) -> np.ndarray:
        return self._rows.copy()
