"""BM25 over chunks (bm25s), on tokens from kb.text, as ids in a vocabulary the builder keeps.

A query scores only the chunks that hold one of its tokens, so ``over`` restricts the index to
those rows: the same scores, summed in the same order, in arrays as long as the rows rather than
the knowledge base.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import bm25s
import numpy as np
from bm25s.tokenization import Tokenized

EMPTY = ""  # the one token of a chunk without any: bm25s keeps row numbers aligned with chunks


def new_vocabulary() -> dict[str, int]:
    """Token -> id, ids counting up from 0 as tokens are first met; EMPTY is always there."""
    return {EMPTY: 0}


class LexicalIndex:
    def __init__(self, bm25: bm25s.BM25 | None, size: int,
                 rows: np.ndarray | None = None, whole: Iterable[str] = ()) -> None:
        self._bm25 = bm25  # None for an empty knowledge base, which bm25s cannot index
        self._vocab: dict[str, int] = bm25.vocab_dict if bm25 is not None else {}
        self.chunks = size  # of the whole knowledge base, however many rows this index has
        # Only these rows (ascending) are scored, if given (see ``over``); _where holds each
        # chunk's place among them, or -1.
        self.rows = rows
        self.size = size if rows is None else len(rows)
        self._where: np.ndarray | None = None
        # Tokens all of whose chunks are among the rows (see ``over``), and each token's
        # place among the rows once found: a query reads a token's posting more than once.
        self._whole = {self._vocab[t] for t in whole if t in self._vocab}
        self._found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if rows is not None:
            self._where = np.full(size, -1, dtype=np.int32)
            self._where[rows] = np.arange(len(rows), dtype=np.int32)

    @classmethod
    def build(cls, documents: list[list[int]], vocabulary: dict[str, int]) -> LexicalIndex:
        """Index ``documents`` given as token ids in ``vocabulary`` (see new_vocabulary).
        The vocabulary may hold tokens no document has any more: they match nothing."""
        if not documents:
            return cls(None, 0)
        bm25 = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
        empty = vocabulary[EMPTY]
        bm25.index(Tokenized(ids=[doc or [empty] for doc in documents], vocab=dict(vocabulary)),
                   show_progress=False)
        return cls(bm25, len(documents))

    @property
    def terms(self) -> int:
        """Tokens in the vocabulary, used or not."""
        return len(self._vocab)

    def unused_terms(self) -> int:
        """Tokens of the vocabulary that no document holds."""
        if self._bm25 is None:
            return 0
        return int((np.diff(self._bm25.scores["indptr"]) == 0).sum())

    def save(self, directory: Path) -> None:
        if self._bm25 is not None:
            self._bm25.save(str(directory), show_progress=False)
        (directory / "size").write_text(str(self.size))

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        size = int((directory / "size").read_text())
        if size == 0:
            return cls(None, 0)
        return cls(bm25s.BM25.load(str(directory), show_progress=False, verbosity=0), size)

    def known(self, tokens: list[str]) -> list[str]:
        return [t for t in tokens if t in self._vocab]

    def postings(self, tokens: Iterable[str]) -> np.ndarray:
        """Rows holding at least one of ``tokens``, ascending: the only rows they score."""
        if self._bm25 is None:
            return np.zeros(0, dtype=np.int64)
        matrix = self._bm25.scores
        indptr, indices = matrix["indptr"], matrix["indices"]
        # Marked in a flag per chunk rather than sorted: a common token's chunks are a large
        # share of a big knowledge base, and one pass over the flags is cheaper than a sort.
        held = np.zeros(self.chunks, dtype=bool)
        for i in {self._vocab[t] for t in tokens if t in self._vocab}:
            held[indices[indptr[i]:indptr[i + 1]]] = True
        if self._where is not None:
            held &= self._where >= 0
        return np.flatnonzero(held)

    def over(self, rows: np.ndarray, whole: Iterable[str] = ()) -> LexicalIndex:
        """This index with only ``rows`` (ascending, e.g. ``postings`` of a query's tokens):
        ``scores`` and ``term_scores`` return one value per row of ``rows``, each exactly the
        whole index's value for that row. ``whole``: tokens whose every chunk is among
        ``rows`` (those ``rows`` are the postings of), which then need no check."""
        return LexicalIndex(self._bm25, self.chunks, np.asarray(rows, dtype=np.int64), whole)

    def posting(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """Where ``token``'s chunks are among this index's rows, and its BM25 in each: the
        rows where term_scores(token) is not 0, and its values there."""
        tid = self._vocab.get(token)
        if tid is None or self._bm25 is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return self._posting(tid)

    def _posting(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        """Read-only: the data may be the index's own."""
        found = self._found.get(tid)
        if found is not None:
            return found
        assert self._bm25 is not None
        matrix = self._bm25.scores
        lo, hi = int(matrix["indptr"][tid]), int(matrix["indptr"][tid + 1])
        rows, data = matrix["indices"][lo:hi], matrix["data"][lo:hi]
        if self._where is not None:
            at = self._where[rows]
            if tid not in self._whole:
                held = at >= 0
                if not held.all():
                    at, data = at[held], data[held]
            rows = at
        rows, data = rows.view(), data.view()
        rows.flags.writeable = data.flags.writeable = False
        if self._where is not None:  # a view lives for one query; the whole index stays
            self._found[tid] = rows, data
        return rows, data

    def term_scores(self, token: str) -> np.ndarray:
        """BM25 contribution of one token to every row (what scores() sums per token)."""
        out = np.zeros(self.size, dtype=np.float32)
        at, data = self.posting(token)
        out[at] = data
        return out

    def vocabulary(self) -> list[str]:
        return list(self._vocab)

    def scores(self, tokens: list[str], mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every row; rows outside ``mask`` (0/1 per row) score 0. A token
        repeated in ``tokens`` counts again, as in bm25s."""
        known = self.known(tokens)
        if not known or self._bm25 is None:
            return np.zeros(self.size, dtype=np.float32)
        if self.rows is None:
            scores = self._bm25.get_scores(known, weight_mask=mask)
            return np.asarray(scores, dtype=np.float32)
        # As bm25s sums (lucene BM25 has no score for absent tokens): token by token, in
        # float32; a token's rows are distinct, so one fancy-index add is its np.add.at.
        assert self._bm25.nonoccurrence_array is None
        # Summed over every chunk, then read at the rows: a token's chunks are added where
        # they are, with no lookup of their places among the rows.
        every = np.zeros(self.chunks, dtype=np.float32)
        matrix = self._bm25.scores
        indptr, indices, data = matrix["indptr"], matrix["indices"], matrix["data"]
        for token in known:
            tid = self._vocab[token]
            lo, hi = indptr[tid], indptr[tid + 1]
            every[indices[lo:hi]] += data[lo:hi]
        out = every[self.rows]
        if mask is not None:
            out *= mask
        return out
