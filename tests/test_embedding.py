import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from kb.embedding import BatchingEmbedder, resolve_model
from tests.conftest import FakeEmbedder


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


class SlowEmbedder(FakeEmbedder):
    """Holds the first call until released, so concurrent queries pile up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.sizes: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.sizes.append(len(texts))
        if len(self.sizes) == 1:
            self.release.wait(5)
        return super().embed(texts)


def test_concurrent_queries_share_a_model_pass_and_get_their_own_vectors():
    inner = SlowEmbedder()
    batching = BatchingEmbedder(inner)
    queries = [f"query {n} vpn" for n in range(9)]
    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(batching.embed, [queries[0]])
        wait_for(lambda: inner.sizes)
        rest = [pool.submit(batching.embed, [q]) for q in queries[1:]]
        wait_for(lambda: batching._queue.unfinished_tasks == len(rest))
        inner.release.set()
        vectors = [first.result()] + [f.result() for f in rest]
    assert inner.sizes == [1, 8]
    expected = FakeEmbedder().embed(queries)
    assert np.allclose(np.vstack(vectors), expected)


def test_a_query_given_up_while_queued_is_skipped_and_the_worker_goes_on():
    inner = SlowEmbedder()
    batching = BatchingEmbedder(inner)
    first = batching.submit("vpn")
    wait_for(lambda: inner.sizes)  # the model is busy with the first query
    gone, kept = batching.submit("printer"), batching.submit("wifi")
    assert gone.cancel()  # as awaiting it from a request that went away does
    inner.release.set()
    assert np.allclose(first.result(5), FakeEmbedder().embed(["vpn"])[0])
    assert np.allclose(kept.result(5), FakeEmbedder().embed(["wifi"])[0])
    assert inner.sizes == [1, 1] and gone.cancelled()
    assert np.allclose(batching.submit("outlook").result(5), FakeEmbedder().embed(["outlook"])[0])


def test_bulk_calls_bypass_the_queue_and_errors_reach_the_caller():
    class Broken(FakeEmbedder):
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            if len(texts) == 1:
                raise RuntimeError("model failed")
            return super().embed(texts)

    batching = BatchingEmbedder(Broken())
    assert batching.embed(["a", "b"]).shape == (2, FakeEmbedder.dim)
    with pytest.raises(RuntimeError, match="model failed"):
        batching.embed(["a"])
    with pytest.raises(RuntimeError, match="model failed"):
        batching.submit("a").result(5)
    assert batching.embed(["a", "b", "c"]).shape[0] == 3
    batching.inner = FakeEmbedder()
    assert np.allclose(batching.submit("a").result(5), FakeEmbedder().embed(["a"])[0])  # it survived


def test_a_waiting_caller_encodes_on_its_own_thread_only_while_the_model_is_idle():
    class Recording(SlowEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.threads: list[str] = []

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            self.threads.append(threading.current_thread().name)
            return super().embed(texts)

    inner = Recording()
    batching = BatchingEmbedder(inner)
    with ThreadPoolExecutor(2, thread_name_prefix="agent") as pool:
        first = pool.submit(batching.embed, ["vpn"])
        wait_for(lambda: inner.sizes)  # the model is busy on the first caller's thread
        second = pool.submit(batching.embed, ["wifi"])
        wait_for(lambda: batching._queue.unfinished_tasks == 1)
        inner.release.set()
        assert np.allclose(first.result(5)[0], FakeEmbedder().embed(["vpn"])[0])
        assert np.allclose(second.result(5)[0], FakeEmbedder().embed(["wifi"])[0])
    assert inner.threads[0].startswith("agent") and inner.threads[1] == "kb-embed"
    batching.embed(["printer"])  # idle again: the caller's own thread
    assert inner.threads[2] == threading.current_thread().name
    batching.submit("outlook").result(5)  # a caller that does not block always hands over
    assert inner.threads[3] == "kb-embed"


def test_model_spec_resolution():
    assert (Path(resolve_model("all-MiniLM-L6-v2")) / "config.json").is_file()
    assert resolve_model("/models/my-model") == "/models/my-model"
