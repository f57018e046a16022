"""Benchmark every set in ../shared/bench: quality against the baselines, latency, build times.

    python -m bench.run [--sets DIR] [--only NAME] [--out bench/results] [--reindex-only]

For each set: build the index (timed against bare embedding of the same chunks, best of two
for each, alternating), re-index after editing one article (best of two edits, in process and
as a `kb index` command with no service), calibrate on half of the dev queries and evaluate on
the other half, run both baselines on that same half, repeat with the queries converted to
Traditional Chinese, time queries in process and over HTTP next to the model's own encoding
time, measure HTTP throughput at 8 concurrent clients, and, with that service still running,
time how long after `kb index` starts a one-article edit is served. Everything is measured
side by side in this one run; each set in a process of its own.

``--reindex-only`` measures just that last figure (with ``--only``), on the benchmark's index
of the set, built or brought up to date first.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import opencc
from sklearn.metrics import roc_auc_score

from bench.baselines import BM25Baseline, DenseBaseline
from kb.articles import load_articles
from kb.build import build_index
from kb.calibrate import fit, prepare
from kb.chunking import chunk_article
from kb.config import Settings
from kb.embedding import BatchingEmbedder, Embedder, SentenceTransformerEmbedder, load_embedder
from kb.evaluation import LabelledQuery, Report, evaluate, read_queries
from kb.search import Searcher
from kb.store import load_index, publish_calibration

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
LATENCY_BLOCK = 25  # queries per block when model and search timings alternate
BUILD_REPEATS = 2  # full builds (each beside a bare embedding) and one-article re-indexes
SALT = "kb-bench-split"  # fixed: the split is reproducible, and not chosen by looking at scores


def split(labelled: list[LabelledQuery], salt: str = SALT
          ) -> tuple[list[LabelledQuery], list[LabelledQuery]]:
    """Half the queries calibrate, the other half evaluate."""
    def half(q: LabelledQuery) -> int:
        return int(hashlib.sha256(f"{salt}:{q.qid}".encode()).hexdigest(), 16) % 2

    return [q for q in labelled if half(q) == 0], [q for q in labelled if half(q) == 1]


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values), p)) if values else 0.0


def run_searcher(searcher: Searcher, queries: list[LabelledQuery]) -> tuple[Report, float | None]:
    """The report, and the ROC AUC of the "answered" confidence between answerable and
    unanswerable queries: how far any threshold could separate them (0.5 is chance)."""
    confidence: dict[str, float] = {}

    def one(q: LabelledQuery) -> tuple[list[tuple[str, float]], bool]:
        out = searcher.search(q.query, k=10)
        confidence[q.qid] = out.confidence
        return [(h.id, h.score) for h in out.hits], out.answered

    report = evaluate(queries, one)
    labels = [bool(q.relevant) for q in queries]
    if all(labels) or not any(labels):
        return report, None
    return report, float(roc_auc_score(labels, [confidence[q.qid] for q in queries]))


def run_baseline(baseline: BM25Baseline | DenseBaseline, queries: list[LabelledQuery]) -> Report:
    return evaluate(queries, lambda q: (baseline.search(q.query), True))


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def latency(searcher: Searcher, embedder: Embedder, torch_embedder: SentenceTransformerEmbedder,
            queries: list[str]) -> dict[str, float]:
    """Search and bare query encoding, in alternating blocks so machine noise hits both alike;
    then the same queries on PyTorch for reference, apart, as its idle threads would slow what
    follows.

    Blocks, not query by query: ONNX Runtime called from one thread and then another is slower
    per call than called from the same thread again (bench/NOTES.md), and a searcher that finds
    the model busy hands its query to the batching thread.
    """
    model, search = [], []
    for start in range(0, len(queries), LATENCY_BLOCK):
        block = queries[start:start + LATENCY_BLOCK]
        model += [timed(partial(embedder.embed, [q]))[1] for q in block]
        search += [timed(partial(searcher.search, q, k=10))[1] for q in block]
    torch_model = [timed(partial(torch_embedder.embed, [q]))[1] for q in queries]
    return {"model_p50_ms": percentile(model, 50) * 1e3, "model_p95_ms": percentile(model, 95) * 1e3,
            "torch_model_p50_ms": percentile(torch_model, 50) * 1e3,
            "search_p50_ms": percentile(search, 50) * 1e3,
            "search_p95_ms": percentile(search, 95) * 1e3}


class Client:
    """One keep-alive connection, as a ticket system or the agents' web page holds.

    The standard library's client, not httpx: client and server share this machine's two
    cores, and httpx's own Python work would be counted as the service's latency and take CPU
    from it under load (bench/NOTES.md).
    """

    def __init__(self, port: int, timeout: float = 60) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, payload: dict | None = None) -> int:
        return self.fetch(method, path, json.dumps(payload) if payload is not None else None)[0]

    def fetch(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self._conn.request(method, path, body, headers)
        response = self._conn.getresponse()
        return response.status, response.read().decode("utf-8")

    def close(self) -> None:
        self._conn.close()


def _wait_ready(port: int, tries: int = 240) -> None:
    for _ in range(tries):
        client = Client(port, timeout=5)
        try:
            if client.request("GET", "/healthz") == 200:
                return
        except OSError:
            pass
        finally:
            client.close()
        time.sleep(0.5)
    raise RuntimeError("server did not start")


def after_edits(edited: Path, run: Callable[[], T]) -> tuple[T | None, float]:
    """``run`` after each of BUILD_REPEATS one-article edits: its last result, and its best
    time."""
    best, result = float("inf"), None
    for n in range(BUILD_REPEATS):
        edited.write_text(edited.read_text(encoding="utf-8") + f"\n\nEdit {n} for the benchmark.\n",
                          encoding="utf-8")
        result, seconds = timed(run)
        best = min(best, seconds)
    return result, best


def index_command(env: dict[str, str], edited: Path, flags: list[str]) -> float:
    """Seconds `kb index` takes, as a command, after a one-article edit (best of
    BUILD_REPEATS edits)."""
    return after_edits(edited, lambda: subprocess.run(
        [sys.executable, "-m", "kb", "index", *flags], env=env, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))[1]


def edit_served(env: dict[str, str], edited: Path, port: int) -> dict[str, float]:
    """Seconds from starting `kb index` after a one-article edit to the first search of the
    running service on ``port`` that returns the edited text, and to the command's exit (best
    of BUILD_REPEATS edits, each adding a word no article holds), with the command's CPU time
    (user + system), which does not depend on what else the machine runs."""
    served, command, cpu = [], [], []
    client = Client(port)
    try:
        for n in range(BUILD_REPEATS):
            word = f"benchedit{os.getpid()}x{n}"
            edited.write_text(edited.read_text(encoding="utf-8") + f"\n\n{word}\n",
                              encoding="utf-8")
            body = json.dumps({"query": word, "k": 3})
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            process = subprocess.Popen([sys.executable, "-m", "kb", "index"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            exited = None
            while True:
                if exited is None and process.poll() is not None:
                    exited = time.perf_counter() - start
                    if process.returncode != 0:
                        raise RuntimeError(f"kb index exited with {process.returncode}")
                status, text = client.fetch("POST", "/search", body)
                if status == 200 and word in text:
                    served.append(time.perf_counter() - start)
                    break
                if time.perf_counter() - start > 120:
                    raise RuntimeError("the edit was not served within 120 s")
                time.sleep(0.01)
            if exited is None:
                process.wait()
                exited = time.perf_counter() - start
            command.append(exited)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    finally:
        client.close()
    return {"edit_served_seconds": min(served), "edit_served_worst_seconds": max(served),
            "edit_command_seconds": min(command), "edit_command_cpu_seconds": min(cpu),
            "edit_repeats": len(served), "load_average": os.getloadavg()[0]}


def start_service(env: dict[str, str], port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "kb", "serve"],
                              env={**env, "KB_PORT": str(port)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port)
    except BaseException:
        server.terminate()
        raise
    return server


def service_figures(env: dict[str, str], queries: list[str], embedder: Embedder,
                    edited: Path, port: int = 8765) -> tuple[dict[str, float], dict[str, float]]:
    """HTTP latency and throughput; then, with the service still up, how soon a one-article
    edit is served after `kb index` starts."""
    server = start_service(env, port)
    try:
        client = Client(port)
        for q in queries[:20]:  # warm-up
            client.request("POST", "/search", {"query": q})
        model, http = [], []
        for q in queries:
            model.append(timed(partial(embedder.embed, [q]))[1])
            http.append(timed(partial(client.request, "POST", "/search",
                                      {"query": q, "k": 10}))[1])
        client.close()
        qps, total, ok = throughput(port, queries)
        served = edit_served(env, edited, port)
    finally:
        server.terminate()
        server.wait(30)
    return {"http_model_p50_ms": percentile(model, 50) * 1e3,
            "http_p50_ms": percentile(http, 50) * 1e3, "http_p95_ms": percentile(http, 95) * 1e3,
            "throughput_qps": qps, "throughput_requests": total,
            "throughput_errors": total - ok}, served


def throughput(port: int, queries: list[str], clients: int = 8) -> tuple[float, int, int]:
    """Queries/s answered by the service on ``port`` to ``clients`` concurrent keep-alive
    clients (at least 400 requests), the requests sent and those answered with 200."""
    total = max(400, len(queries))
    work_items = [queries[i % len(queries)] for i in range(total)]

    def worker(chunk: list[str]) -> int:
        c = Client(port)
        try:
            return sum(c.request("POST", "/search", {"query": q}) == 200 for q in chunk)
        finally:
            c.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        ok = sum(pool.map(worker, [work_items[i::clients] for i in range(clients)]))
    return ok / (time.perf_counter() - start), total, ok


def bench_set(path: Path, work: Path, embedder: Embedder,
              torch_embedder: SentenceTransformerEmbedder, with_http: bool) -> dict:
    name = path.name
    print(f"== {name}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    articles_dir = work / "articles"
    shutil.copytree(path / "articles", articles_dir)
    index = work / "index"
    articles = load_articles(articles_dir)
    lang = max({"zh", "en"}, key=lambda lg: sum(a.lang == lg for a in articles))

    chunks = [c for a in articles for c in chunk_article(a)]
    texts = sorted({c.hash: c.embed_text for c in chunks}.values())
    # Each timing is the best of BUILD_REPEATS, and bare embedding and build alternate: one
    # timing of each is too noisy on a shared machine (bench/NOTES.md).
    bares, fulls = [], []
    for _ in range(BUILD_REPEATS):
        bares.append(timed(lambda: embedder.embed(texts))[1])
        shutil.rmtree(index, ignore_errors=True)
        report, seconds = timed(lambda: build_index(articles_dir, index, lambda: embedder,
                                                    embedder.name).report)
        fulls.append(seconds)
    bare, full = min(bares), min(fulls)
    edited = articles_dir / sorted(os.listdir(articles_dir))[len(articles) // 2]
    incremental_report, incremental = after_edits(edited, lambda: build_index(
        articles_dir, index, lambda: embedder, embedder.name).report)
    assert incremental_report is not None
    env = {**os.environ, "KB_ARTICLES": str(articles_dir), "KB_INDEX": str(index),
           "KB_GAP_DB": str(work / "gaps.sqlite3"), "HF_HUB_OFFLINE": "1"}
    incremental_alone = index_command(env, edited, [])
    print(f"   build {full:.1f}s (bare embedding {bare:.1f}s), incremental {incremental:.2f}s "
          f"in process, {incremental_alone:.2f}s as a command alone", flush=True)

    labelled = read_queries(path / "queries.dev.jsonl", path / "qrels.dev.tsv")
    calib, held = split(labelled)
    searcher = Searcher(load_index(index), embedder, max_query_chars=10**6)
    calibration = fit(searcher, prepare(searcher, calib))
    publish_calibration(index, calibration)
    searcher = Searcher(load_index(index), embedder, max_query_chars=10**6)

    ours, answer_auc = run_searcher(searcher, held)
    bm25 = run_baseline(BM25Baseline(articles, lang), held)
    dense = run_baseline(DenseBaseline(articles, embedder), held)
    result: dict = {
        "set": name, "lang": lang, "articles": len(articles), "chunks": report.chunks,
        "queries_calibrate": len(calib), "queries_evaluate": len(held),
        "calibration": {"fusion": calibration.fusion,
                        "answer_threshold": round(calibration.answer_threshold, 4)},
        "ours": ours.__dict__, "answer_auc": answer_auc, "bm25s": bm25.__dict__, "dense": dense.__dict__,
        "ndcg_ratio_to_best_baseline": ours.ndcg10 / max(bm25.ndcg10, dense.ndcg10),
        "build_seconds": full, "bare_embedding_seconds": bare, "build_ratio": full / bare,
        "incremental_seconds": incremental, "incremental_ratio": incremental / full,
        "incremental_embedded": incremental_report.embedded,
        "incremental_command_alone_seconds": incremental_alone,
    }
    if lang == "zh":
        converter = opencc.OpenCC("s2twp")
        traditional = [LabelledQuery(q.qid, converter.convert(q.query), q.lang, q.relevant)
                       for q in held]
        trad, _ = run_searcher(searcher, traditional)
        result["traditional"] = trad.__dict__
        result["traditional_ratio"] = trad.ndcg10 / ours.ndcg10
    sample = [q.query for q in held][:300]
    # As the engine searches in process: through the batching embedder, which encodes a waiting
    # caller's query on that caller's thread while the model is idle (the HTTP figures below
    # cover the hand-off to the batching thread, which the service always makes).
    serving = Searcher(load_index(index), BatchingEmbedder(embedder), max_query_chars=10**6)
    result["latency"] = latency(serving, embedder, torch_embedder, sample)
    if with_http:
        result["http"], result["reindex"] = service_figures(env, sample, embedder, edited)
    print(json.dumps(result, ensure_ascii=False, indent=1), flush=True)
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reindex_only(path: Path, work: Path, port: int | None = None) -> dict:
    """How soon a running service serves a one-article edit after `kb index` starts, on the
    benchmark's copy of the set (copied and indexed first if need be). A free port by default:
    a fixed one may be taken by another benchmark's service, which would answer instead."""
    port = free_port() if port is None else port
    articles_dir, index = work / "articles", work / "index"
    if not articles_dir.is_dir():
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(path / "articles", articles_dir)
    env = {**os.environ, "KB_ARTICLES": str(articles_dir), "KB_INDEX": str(index),
           "KB_GAP_DB": str(work / "gaps.sqlite3"), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "kb", "index"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    names = sorted(os.listdir(articles_dir))
    edited = articles_dir / names[len(names) // 2]
    server = start_service(env, port)
    try:
        figures = edit_served(env, edited, port)
    finally:
        server.terminate()
        server.wait(30)
    return {"set": path.name, "articles": len(names), **figures}


def table(results: list[dict]) -> str:
    lines = [
        "| set | nDCG@10 ours | bm25s | dense | ratio to better baseline | Trad. ratio | "
        "R@1 | R@10 | MRR@10 | answerable flagged | unanswerable flagged | answered AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o = r["ours"]
        lines.append(
            f"| {r['set']} | {o['ndcg10']:.4f} | {r['bm25s']['ndcg10']:.4f} | "
            f"{r['dense']['ndcg10']:.4f} | {r['ndcg_ratio_to_best_baseline']:.3f} | "
            f"{_figure(r.get('traditional_ratio'), 'no Chinese queries')} | {o['recall1']:.3f} | "
            f"{o['recall10']:.3f} | {o['mrr10']:.3f} | {1 - o['answered_when_answerable']:.1%} | "
            f"{o['flagged_when_unanswerable']:.1%} | "
            f"{_figure(r.get('answer_auc'), 'no unanswerable queries')} |")
    lines += ["", "| set | model p50 (PyTorch) | search p50 / model p50 | search p95 / model p50 | "
              "HTTP p50 / model p50 | HTTP q/s at 8 clients | build / bare embedding | "
              "one-article edit served, from `kb index` start (the command's exit) | "
              "the same build in process |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lat, http = r["latency"], r.get("http", {})
        http_ratio = (f"{http['http_p50_ms'] / http['http_model_p50_ms']:.2f} "
                      f"({http['http_p50_ms']:.1f} ms)" if http else "-")
        qps = f"{http['throughput_qps']:.0f}" if http else "-"
        reindex = r.get("reindex")
        command = (f"{reindex['edit_served_seconds']:.2f} s ({reindex['edit_command_seconds']:.2f}"
                   " s)" if reindex else "-")
        lines.append(
            f"| {r['set']} | {lat['model_p50_ms']:.1f} ms ({lat['torch_model_p50_ms']:.1f} ms) "
            f"| {lat['search_p50_ms'] / lat['model_p50_ms']:.2f} "
            f"({lat['search_p50_ms']:.1f} ms) | {lat['search_p95_ms'] / lat['model_p50_ms']:.2f} | "
            f"{http_ratio} | {qps} | {r['build_ratio']:.2f} ({r['build_seconds']:.1f} s) | "
            f"{command} | {r['incremental_ratio']:.3f} ({r['incremental_seconds']:.2f} s; as a "
            f"command alone {r['incremental_command_alone_seconds']:.1f} s) |")
    return "\n".join(lines) + "\n"


def _figure(value: float | None, missing: str) -> str:
    return f"n/a ({missing})" if value is None else f"{value:.3f}"


def in_own_process(path: Path, sets: Path, no_http: bool) -> list[dict]:
    """The figures of one set, benchmarked by a process of its own: whatever a first set leaves
    behind in a process weighs on the second (bench/NOTES.md)."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "bench.run", "--sets", str(sets), "--only",
                        path.name, "--out", out, *(["--no-http"] if no_http else [])],
                       check=True)
        return json.loads((Path(out) / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--only", action="append", help="run only this set (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP figures")
    parser.add_argument("--reindex-only", action="store_true",
                        help="only time how soon a one-article edit is served (one set)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sets = sorted(p for p in args.sets.iterdir() if (p / "queries.dev.jsonl").exists())
    if args.only:
        sets = [p for p in sets if p.name in args.only]
    if args.reindex_only:
        if len(sets) != 1:
            parser.error("--reindex-only takes one set: --only NAME")
        print(json.dumps(reindex_only(sets[0], ROOT / "bench" / "work" / sets[0].name), indent=1))
        return
    if len(sets) == 1:
        settings = Settings()
        results = [bench_set(sets[0], ROOT / "bench" / "work" / sets[0].name,
                             load_embedder(settings), SentenceTransformerEmbedder(settings.model),
                             not args.no_http)]
    else:
        results = [r for p in sets for r in in_own_process(p, args.sets, args.no_http)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1))
    text = table(results)
    if not args.only:  # the sample knowledge base: across languages, the section shown
        from bench import crosslang

        with tempfile.TemporaryDirectory() as tmp:
            sample = crosslang.run(load_embedder(Settings()), Path(tmp) / "index")
        (args.out / "crosslang.json").write_text(json.dumps(sample, ensure_ascii=False, indent=1))
        text += "\n" + crosslang.table(sample)
    (args.out / "results.md").write_text(
        f"Produced by `python -m bench.run` on {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores.\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
