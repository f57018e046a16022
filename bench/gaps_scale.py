"""How fast is the gap report on a big query log? ``python -m bench.gaps_scale``

Fills a fresh SQLite query log with ``--queries`` gap queries (``--distinct`` phrasings of
``--topics`` questions, embedding-like vectors clustered by question, over eight weeks; a
share ``--doubtful`` of them answered doubtfully, which join the gap topics too), then
does what the service does: a GapReporter catches up with the log once (as the background
thread does after a start), then each report reads the new queries logged since the last one
and answers. Prints the catch-up time, the report's p50/p95 (including the JSON the route
sends), the memory the topics hold, and how many topics were found for how many questions.
No model is loaded: the vectors are synthetic, so this measures the report, not the model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from kb.ranking import Calibration
from kb.storage.schema import queries
from kb.storage.sql import SqlStore, normalized
from kb.topics import GapReporter, topics_json


def fill(store: SqlStore, total: int, distinct: int, topics: int, dim: int,
         rng: np.random.Generator, start: dt.datetime, doubtful: float = 0.0) -> list[int]:
    """Log ``total`` gap queries, of which a share ``doubtful`` answered with a confidence
    between the threshold and the doubt level of ``INDEX``; returns the question of each
    distinct phrasing."""
    centres = rng.normal(size=(topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    question = rng.integers(0, topics, size=distinct)
    vectors = centres[question] + 0.35 * rng.normal(size=(distinct, dim)).astype(np.float32) \
        / np.sqrt(dim)
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    # how often each phrasing is asked: a long tail, as real traffic has
    weights = 1.0 / np.arange(1, distinct + 1) ** 0.6
    asked = rng.choice(distinct, size=total, p=weights / weights.sum())
    seconds = np.sort(rng.integers(0, 56 * 86400, size=total))
    answered = (rng.random(total) < doubtful).tolist()
    rows = []
    for n, (p, s) in enumerate(zip(asked.tolist(), seconds.tolist(), strict=True)):
        text = f"question {question[p]} phrased {p}"
        rows.append({
            "id": f"q{n:08d}", "ts": (start + dt.timedelta(seconds=s)).isoformat(
                timespec="seconds"),
            "channel": ("search", "suggest")[n % 2], "audience": "internal", "query": text,
            "norm": normalized(text), "lang": "en", "filters": "{}",
            "ticket_id": f"T-{n}" if n % 5 == 0 else None, "answered": answered[n],
            "confidence": 0.4 if answered[n] else 0.1, "top_article": f"a{question[p] % 300}",
            "top_score": 0.3,
            "neighbours": json.dumps([f"a{question[p] % 300}"]),
            "results": json.dumps([f"a{question[p] % 300}"]),
            "vector": vectors[p].tobytes(), "index_version": "v1", "resolved_by": None,
            "resolved_at": None, "reported": False, "purged_at": None, "outside_filters": None,
        })
    with store._write() as conn:  # noqa: SLF001 - a bulk load, not the service's path
        for start_row in range(0, len(rows), 5000):
            conn.execute(queries.insert(), rows[start_row : start_row + 5000])
    return question.tolist()


# What the reporter reads of a served index: no articles, a calibration with a doubt level.
INDEX = SimpleNamespace(version="v1", articles={}, chunks=[],
                        calibration=Calibration(answer_threshold=0.3, fitted={"doubt": 0.5}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=10_000)
    parser.add_argument("--topics", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--reports", type=int, default=30)
    parser.add_argument("--trickle", type=int, default=20, help="new queries between reports")
    parser.add_argument("--doubtful", type=float, default=0.2,
                        help="share of the queries answered doubtfully (they join gap topics)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'gaps.sqlite3'}")
        start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
        t0 = time.perf_counter()
        question = fill(store, args.queries, args.distinct, args.topics, args.dim, rng, start,
                        args.doubtful)
        filled = time.perf_counter() - t0
        reporter = GapReporter(store)
        tracemalloc.start()
        t0 = time.perf_counter()
        reporter.topics(INDEX).refresh(store)
        catch_up = time.perf_counter() - t0
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        timings = []
        topics = []
        for n in range(args.reports):
            vec = rng.normal(size=args.dim).astype(np.float32)
            for k in range(args.trickle):
                store.record(channel="search", query=f"new question {n} {k}", lang="en",
                             filters={}, answered=False, confidence=0.1, neighbours=["a1"],
                             top_score=0.2, vector=vec / np.linalg.norm(vec), index_version="v1")
            store.flush()
            t0 = time.perf_counter()
            topics = reporter.report(INDEX)
            topics_json(topics)  # what the route sends
            timings.append(time.perf_counter() - t0)
        found = {}
        index = reporter.topics(INDEX)
        for p in index.phrasings:
            if p.text.startswith("question "):
                found.setdefault(index._find(index._by_norm[p.norm]), set()).add(  # noqa: SLF001
                    question[int(p.text.split()[-1])])
        pure = sum(1 for qs in found.values() if len(qs) == 1) / max(1, len(found))
        store.close()
    timings.sort()
    print(json.dumps({
        "queries": args.queries, "distinct": args.distinct, "questions": args.topics,
        "fill_seconds": round(filled, 1), "catch_up_seconds": round(catch_up, 2),
        "report_p50_ms": round(1000 * statistics.median(timings), 1),
        "report_p95_ms": round(1000 * timings[int(0.95 * (len(timings) - 1))], 1),
        "reports": len(timings), "new_queries_per_report": args.trickle,
        "doubtful_share": args.doubtful,
        "topics": len(topics), "topic_purity": round(pure, 4),
        "topics_memory_mb": round(held / 2**20, 1),
    }))


if __name__ == "__main__":
    main()
