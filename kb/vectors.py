"""Inner-product scores (FAISS) over unit vectors, i.e. cosine similarity: exact for a small
knowledge base, an inverted-file (IVF) index above ``EXACT_MAX`` vectors.

Below the threshold a query's one pass over every row costs less than the model's encoding of
the query, and it is exact. Above it the pass grows with the knowledge base and soon costs
several times the model, so the dense candidates come from an IVF index that scans the
``nprobe`` lists nearest the query; the lexical candidates' cosines are still exact (their rows
are reconstructed from the index). IVF rather than HNSW: a rebuild after a one-article edit
keeps the previous version's centroids and the list of every unchanged row, so it only assigns
the new rows, where an HNSW graph would be built again from nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

EXACT_MAX = 20_000  # vectors up to which every query scans every row
LISTS_PER_SQRT = 4  # nlist = 4 * sqrt(vectors), the low end of FAISS's guideline
TRAIN_PER_LIST = 40  # training sample: this many vectors per list (FAISS asks for 39)
TRAIN_ITERATIONS = 10
PROBE_SHARE = 0.03  # share of the lists a query scans: recall@10 at or above 0.98 (bench.scale)
MIN_PROBES = 32
SAMPLE_ROWS = 4096  # rows whose cosines stand for all rows' spread on an IVF index
RETRAIN_FACTOR = 2.0  # centroids are kept while the ideal list count is within this factor


def lists_for(size: int) -> int:
    return max(1, round(LISTS_PER_SQRT * math.sqrt(size)))


def probes_for(nlist: int, size: int) -> int:
    """Lists a query scans: a share of the lists ``size`` vectors would be given. Centroids
    kept from an earlier build may be coarser or finer than that; the same number of lists
    then scans more vectors of coarse lists (which need more for the same recall) and fewer
    of fine ones (which need fewer)."""
    return min(nlist, max(MIN_PROBES, math.ceil(PROBE_SHARE * lists_for(size))))


class VectorIndex:
    def __init__(self, index: faiss.Index) -> None:
        self._index = index
        self.dim = index.d
        self.size = index.ntotal
        ivf = faiss.try_extract_index_ivf(index) if not isinstance(index, faiss.IndexFlat) \
            else None
        self._ivf: faiss.IndexIVF | None = ivf
        if ivf is not None:
            self.kind = "ivf"
            ivf.make_direct_map()  # rows by number, for exact cosines and for the next build
            self._rows: np.ndarray | None = None
            rng = np.random.default_rng(0)
            self._sample_rows = np.sort(rng.choice(self.size, min(self.size, SAMPLE_ROWS),
                                                   replace=False))
            self._sample = ivf.reconstruct_batch(self._sample_rows)
        else:
            self.kind = "flat"
            # The index's own float32 rows, not a copy: valid while self._index lives.
            self._rows = (faiss.rev_swig_ptr(index.get_xb(), self.size * self.dim)
                          .reshape(self.size, self.dim) if self.size
                          else np.zeros((0, self.dim), dtype=np.float32))

    @property
    def exact(self) -> bool:
        return self._ivf is None

    def describe(self) -> dict:
        """What a manifest records of this index."""
        if self._ivf is None:
            return {"type": "flat", "vectors": self.size}
        return {"type": "ivf", "vectors": self.size, "nlist": self._ivf.nlist,
                "nprobe": self._ivf.nprobe}

    @classmethod
    def build(cls, vectors: np.ndarray, dim: int, previous: VectorIndex | None = None,
              origin: np.ndarray | None = None, exact_max: int | None = None) -> VectorIndex:
        """An exact index up to ``exact_max`` vectors, else IVF. ``origin[i]``, the row of
        vector ``i`` in ``previous`` (or -1), lets an IVF build keep the previous centroids and
        the lists unchanged rows were in."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(vectors) <= (EXACT_MAX if exact_max is None else exact_max):
            index = faiss.IndexFlatIP(dim)
            if len(vectors):
                index.add(vectors)
            return cls(index)
        nlist = lists_for(len(vectors))
        kept = previous._ivf if previous is not None and previous.dim == dim else None
        if kept is not None and not (nlist / RETRAIN_FACTOR <= kept.nlist
                                     <= nlist * RETRAIN_FACTOR):
            kept = None
        if kept is not None:
            centroids = faiss.downcast_index(kept.quantizer).reconstruct_n(0, kept.nlist)
            nlist = kept.nlist
        else:
            centroids = _train(vectors, nlist)
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(centroids)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True
        lists = np.full(len(vectors), -1, dtype=np.int64)
        if kept is not None and origin is not None and previous is not None:
            was = previous.lists()
            known = origin >= 0
            lists[known] = was[origin[known]]
        todo = np.flatnonzero(lists < 0)
        if len(todo):
            _, nearest = quantizer.search(vectors[todo], 1)
            lists[todo] = nearest[:, 0]
        ids = np.arange(len(vectors), dtype=np.int64)
        index.add_core(len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(ids),
                       faiss.swig_ptr(lists))
        index.nprobe = probes_for(nlist, len(vectors))
        return cls(index)

    def lists(self) -> np.ndarray:
        """The inverted list of every row (IVF only)."""
        assert self._ivf is not None
        invlists = self._ivf.invlists
        out = np.empty(self.size, dtype=np.int64)
        for number in range(self._ivf.nlist):
            n = invlists.list_size(number)
            if n:
                ids = faiss.rev_swig_ptr(invlists.get_ids(number), n)
                out[ids] = number
        return out

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        return cls(faiss.read_index(str(path)))

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Inner product of ``query`` with every row (exact indexes).

        One pass of FAISS's SIMD kernel on this thread, keeping every score: a top-k search
        then needs only a partition, and the rows found lexically alone have their cosines
        already (half the time of a FAISS top-k search plus their lookup, after the model has
        emptied the caches). No OpenMP or BLAS helper threads: they would spin after one query
        on the cores the model needs next.
        """
        assert self._rows is not None, "an IVF index scores candidates, not every row"
        return _inner(self._rows, query)

    def top(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Rows of about the ``k`` highest scores among the rows ``mask`` admits (IVF: the
        nearest lists' rows; a filter admitting a small share scans more lists, so as many
        admitted rows are looked at)."""
        assert self._ivf is not None
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        nprobe = self._ivf.nprobe
        params = faiss.SearchParametersIVF()
        if mask is not None:
            share = float(mask.mean()) if len(mask) else 0.0
            if share == 0.0:
                return np.zeros(0, dtype=np.int64)
            nprobe = min(self._ivf.nlist, math.ceil(nprobe / share))
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
            params.sel = selector
        params.nprobe = nprobe
        _, rows = self._index.search(q, k, params=params)
        found = rows[0]
        return found[found >= 0]

    def cosines(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact inner products of ``query`` with ``rows``."""
        if self._rows is not None:
            return _inner(self._rows[rows], query)
        assert self._ivf is not None
        if not len(rows):
            return np.zeros(0, dtype=np.float32)
        return _inner(self._ivf.reconstruct_batch(np.ascontiguousarray(rows, dtype=np.int64)),
                      query)

    def sample_cosines(self, query: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Cosines of a fixed random sample of the rows ``mask`` admits (IVF), standing for
        every row's where a statistic of them all is wanted."""
        assert self._ivf is not None
        scores = _inner(self._sample, query)
        if mask is None:
            return scores
        admitted = scores[mask[self._sample_rows]]
        return admitted if len(admitted) else scores[:0]

    def reconstruct_all(self) -> np.ndarray:
        if self._rows is not None:
            return self._rows.copy()
        assert self._ivf is not None
        return self._ivf.reconstruct_n(0, self.size)


def _inner(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``rows @ query`` by FAISS's kernel on this thread: a BLAS product of a query's size
    wakes OpenBLAS's threads, which then spin on the cores the model needs."""
    out = np.empty(len(rows), dtype=np.float32)
    if len(rows):
        q = np.ascontiguousarray(query.reshape(-1), dtype=np.float32)
        m = np.ascontiguousarray(rows, dtype=np.float32)
        faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(q), faiss.swig_ptr(m),
                                     m.shape[1], len(m))
    return out


def _train(vectors: np.ndarray, nlist: int) -> np.ndarray:
    """Centroids of ``nlist`` clusters of a sample, by spherical k-means."""
    rng = np.random.default_rng(0)  # the same knowledge base gets the same lists
    sample = vectors[rng.choice(len(vectors), min(len(vectors), TRAIN_PER_LIST * nlist),
                                replace=False)]
    kmeans = faiss.Kmeans(vectors.shape[1], nlist, niter=TRAIN_ITERATIONS, spherical=True,
                          seed=1, verbose=False)
    kmeans.train(sample)
    return kmeans.centroids
