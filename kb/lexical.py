"""BM25 over chunks (bm25s), on tokens from kb.text, as ids in a vocabulary the builder keeps.

A query reads only its tokens' postings: their scores are summed where their chunks are, in an
array over every chunk, with no pass over the rows that hold none of them.
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
    def __init__(self, bm25: bm25s.BM25 | None, size: int) -> None:
        self._bm25 = bm25  # None for an empty knowledge base, which bm25s cannot index
        self._vocab: dict[str, int] = bm25.vocab_dict if bm25 is not None else {}
        self.size = size  # chunks

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
        held = np.zeros(self.size, dtype=bool)
        for i in {self._vocab[t] for t in tokens if t in self._vocab}:
            held[indices[indptr[i]:indptr[i + 1]]] = True
        return np.flatnonzero(held)

    def posting(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """The rows holding ``token`` (ascending) and its BM25 in each: the rows where
        term_scores(token) is not 0, and its values there. Read-only: they are the index's
        own arrays."""
        tid = self._vocab.get(token)
        if tid is None or self._bm25 is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        matrix = self._bm25.scores
        lo, hi = int(matrix["indptr"][tid]), int(matrix["indptr"][tid + 1])
        rows, data = matrix["indices"][lo:hi].view(), matrix["data"][lo:hi].view()
        rows.flags.writeable = data.flags.writeable = False
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
        # bm25s's per-token scores (lucene BM25 has no score for absent tokens), summed in
        # float64 in the tokens' order from their postings alone, in one bincount: half the
        # time of adding each posting into a float32 array in turn.
        assert self._bm25.nonoccurrence_array is None
        matrix = self._bm25.scores
        indptr, indices, data = matrix["indptr"], matrix["indices"], matrix["data"]
        spans = [(indptr[i], indptr[i + 1]) for i in (self._vocab[t] for t in known)]
        rows = np.concatenate([indices[lo:hi] for lo, hi in spans])
        values = np.concatenate([data[lo:hi] for lo, hi in spans])
        out = np.bincount(rows, weights=values, minlength=self.size).astype(np.float32)
        if mask is not None:
            out *= mask
        return out
