"""Vectors of a generated corpus's chunks, kept in bench/work/ between scale runs.

Embedding 200,000 chunks with the real model takes most of an hour on two shared cores; the
scale run measures the model's speed on a sample and takes the rest of the vectors from here.
Shards are written as they are made, so an interrupted run keeps what it embedded.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kb.embedding import Embedder

SHARD = 4096  # texts per shard file


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class VectorCache:
    def __init__(self, folder: Path, model: str) -> None:
        self.folder = folder / "".join(c if c.isalnum() else "-" for c in model)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("shard-*.npz")):
            with np.load(shard) as data:
                self.rows.update(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def missing(self, texts: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(t for t in texts if text_key(t) not in self.rows))

    def fill(self, embedder: Embedder, texts: Sequence[str]) -> None:
        """Embed the texts the cache lacks, a shard at a time, in the order given: a run cut
        short leaves the first articles' vectors complete (the model sorts each shard by length
        itself)."""
        todo = self.missing(texts)
        started, done = time.perf_counter(), 0
        for start in range(0, len(todo), SHARD):
            part = todo[start:start + SHARD]
            vectors = embedder.embed(part)
            keys = [text_key(t) for t in part]
            name = self.folder / f"shard-{time.time_ns()}.npz"
            np.savez(name.with_suffix(".tmp.npz"), keys=np.array(keys), vectors=vectors)
            name.with_suffix(".tmp.npz").rename(name)
            self.rows.update(zip(keys, vectors, strict=True))
            done += len(part)
            rate = done / (time.perf_counter() - started)
            print(f"embedded {done}/{len(todo)} ({rate:.0f} texts/s)", file=sys.stderr, flush=True)


class CachedEmbedder:
    """The model's vectors from the cache; texts it lacks are embedded by ``inner``."""

    def __init__(self, inner: Embedder, cache: VectorCache) -> None:
        self.inner, self.cache = inner, cache
        self.name, self.dim = inner.name, inner.dim
        self.batch_size = getattr(inner, "batch_size", 64)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.cache.missing(texts):
            self.cache.fill(self.inner, texts)
        rows = self.cache.rows
        return np.stack([rows[text_key(t)] for t in texts]) if texts else \
            np.zeros((0, self.dim), np.float32)


_CLAUSE = re.compile(r"(?<=[。！？；!?])|(?<=[.!?])\s+")
_SUFFIX = re.compile(r"^(.*?)\s*[（(]([^（()）]+)[）)]$")


class ComposedEmbedder:
    """Vectors of long texts composed from the model's vectors of their parts.

    A generated chunk is its article's title, product, version and heading and a few
    sentences of real text; the vector of the whole is taken as the normalized, length-weighted
    sum of the model's vectors of those parts (each part is embedded once, however many chunks
    repeat it). Embedding every chunk whole would take most of an hour on two shared cores;
    parts are a tenth of the text. How close the composition comes to the whole-text vector is
    measured by the scale run (``agreement``).
    """

    def __init__(self, inner: Embedder, cache: VectorCache, prefixes: Sequence[str] = ()) -> None:
        self.inner, self.cache = inner, cache
        self.name, self.dim = inner.name, inner.dim
        self.batch_size = getattr(inner, "batch_size", 64)
        self._prefix = re.compile(
            r"^(" + "|".join(map(re.escape, prefixes)) + r") (\d+\.\d+) (.+)$") if prefixes else None

    def parts(self, text: str) -> list[str]:
        out: list[str] = []
        for line in text.split("\n"):
            for segment in line.split(" > "):
                for clause in _CLAUSE.split(segment):
                    clause = clause.strip()
                    if not clause:
                        continue
                    found = self._prefix.match(clause) if self._prefix else None
                    if found:
                        out += [f"{found[1]} {found[2]}", found[3]]
                    elif found := _SUFFIX.match(clause):
                        out += [p for p in (found[1], found[2]) if p]
                    else:
                        out.append(clause)
        return out or [text]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        split = [self.parts(t) for t in texts]
        wanted = [p for parts in split for p in parts]
        if self.cache.missing(wanted):
            self.cache.fill(self.inner, wanted)
        rows = self.cache.rows
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, parts in enumerate(split):
            for p in parts:
                out[i] += len(p) * rows[text_key(p)]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)
