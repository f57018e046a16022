"""A process that logs queries and feedback, for the tests of several processes on one store
(kept apart from the test modules so that a spawned process imports little)."""

from __future__ import annotations

from kb.storage.sql import SqlStore


def write(url: str, worker: int, n: int) -> None:
    store = SqlStore(url)
    for i in range(n):
        qid = store.record(channel="search", query=f"worker {worker} query {i}", lang="en",
                           filters={}, answered=False, confidence=0.1, neighbours=["a1"],
                           top_score=0.2, vector=None, index_version="v1")
        store.feedback(qid, "a1", i % 2 == 0)
    store.close()
