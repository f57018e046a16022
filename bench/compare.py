"""Two revisions side by side: search latency in process and over HTTP, and throughput.

    python -m bench.compare REV_A REV_B [--set atec-faq-zh] [--queries 300] [--rounds 2]

Each revision is checked out into a temporary git worktree and runs from there, on the index
`make bench` built for the set (bench/work/SET/index). In process, a worker process per
revision times blocks of queries (the model alone, then search, as bench.run does), the
revisions taking turns block by block so that the machine's drift hits both alike. Over HTTP, a
service per revision answers each query in turn, after the model alone has encoded it in this
process; then each service's throughput at 8 clients, revision after revision, ``--rounds``
times. Ratios are to the model's time measured beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.run import LATENCY_BLOCK, ROOT, Client, _wait_ready, percentile, throughput, timed
from kb.config import Settings
from kb.embedding import load_embedder
from kb.evaluation import read_queries

# Runs inside each revision's worktree: only APIs every recent revision has.
WORKER = """
import json, sys, time
from pathlib import Path
from kb.config import Settings
from kb.embedding import BatchingEmbedder, load_embedder
try:
    from kb.store import load_index
except ImportError:  # revisions before the index store had its own module
    from kb.index import load_index
from kb.search import Searcher
model = load_embedder(Settings())
searcher = Searcher(load_index(Path(sys.argv[1])), BatchingEmbedder(model), max_query_chars=10**6)
def timed(fn):
    start = time.perf_counter(); fn(); return time.perf_counter() - start
print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    block = json.loads(line)
    alone = [timed(lambda q=q: model.embed([q])) for q in block]
    search = [timed(lambda q=q: searcher.search(q, k=10)) for q in block]
    print(json.dumps({"model": alone, "search": search}), flush=True)
"""


def worktree(stack: ExitStack, rev: str, folder: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                    str(folder), rev], check=True)
    stack.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                    str(folder)], check=False)
    return folder


def env_for(tree: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", **extra}


def _answer(rev: str, worker: subprocess.Popen) -> dict:
    line = worker.stdout.readline()  # type: ignore[union-attr]
    if not line:
        raise SystemExit(f"revision {rev} stopped without answering (its error is above; a "
                         f"revision older than the index format cannot load this index)")
    return json.loads(line)


def in_process(trees: dict[str, Path], index: Path, queries: list[str]) -> dict[str, dict]:
    workers = {rev: subprocess.Popen([sys.executable, "-c", WORKER, str(index)], cwd=tree,
                                     env=env_for(tree), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
               for rev, tree in trees.items()}
    times: dict[str, dict[str, list[float]]] = {rev: {"model": [], "search": []} for rev in trees}
    try:
        for rev, worker in workers.items():
            _answer(rev, worker)
        for n, start in enumerate(range(0, len(queries), LATENCY_BLOCK)):
            block = json.dumps(queries[start:start + LATENCY_BLOCK])
            order = list(workers.items())
            for rev, worker in order if n % 2 == 0 else order[::-1]:
                worker.stdin.write(block + "\n")  # type: ignore[union-attr]
                worker.stdin.flush()  # type: ignore[union-attr]
                result = _answer(rev, worker)
                for key in ("model", "search"):
                    times[rev][key] += result[key]
    finally:
        for worker in workers.values():
            worker.stdin.close()  # type: ignore[union-attr]
            worker.wait(30)
    return {rev: {"model_p50_ms": percentile(t["model"], 50) * 1e3,
                  "search_p50_ms": percentile(t["search"], 50) * 1e3,
                  "search_p95_ms": percentile(t["search"], 95) * 1e3} for rev, t in times.items()}


def over_http(trees: dict[str, Path], work: Path, queries: list[str], rounds: int,
              scratch: Path) -> dict[str, dict]:
    model = load_embedder(Settings())
    ports = {rev: 8860 + n for n, rev in enumerate(trees)}
    servers = []
    try:
        for rev, tree in trees.items():
            env = env_for(tree, KB_INDEX=str(work / "index"), KB_ARTICLES=str(work / "articles"),
                          KB_GAP_DB=str(scratch / f"{ports[rev]}.sqlite3"),
                          KB_PORT=str(ports[rev]), KB_ACCEPT_BUILDS="0", KB_RELOAD_INTERVAL="0")
            servers.append(subprocess.Popen([sys.executable, "-m", "kb", "serve"], cwd=tree,
                                            env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        clients = {}
        for rev, port in ports.items():
            _wait_ready(port)
            clients[rev] = Client(port)
            for q in queries[:20]:  # warm-up
                clients[rev].request("POST", "/search", {"query": q})
        alone: list[float] = []
        http: dict[str, list[float]] = {rev: [] for rev in trees}
        for n, q in enumerate(queries):
            alone.append(timed(lambda q=q: model.embed([q]))[1])
            order = list(clients.items())
            for rev, client in order if n % 2 == 0 else order[::-1]:
                http[rev].append(timed(lambda q=q, c=client: c.request(
                    "POST", "/search", {"query": q, "k": 10}))[1])
        for client in clients.values():
            client.close()
        qps: dict[str, list[float]] = {rev: [] for rev in trees}
        for _ in range(rounds):
            for rev, port in ports.items():
                qps[rev].append(throughput(port, queries)[0])
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
    return {rev: {"http_model_p50_ms": percentile(alone, 50) * 1e3,
                  "http_p50_ms": percentile(http[rev], 50) * 1e3,
                  "http_p95_ms": percentile(http[rev], 95) * 1e3,
                  "throughput_qps": qps[rev]} for rev in trees}


def table(results: dict[str, dict]) -> str:
    lines = ["| revision | search p50 / model | search p95 / model | HTTP p50 / model | "
             "HTTP p95 / model | q/s at 8 clients |", "|---|---|---|---|---|---|"]
    for rev, r in results.items():
        lines.append(
            f"| {rev} | {r['search_p50_ms'] / r['model_p50_ms']:.2f} ({r['search_p50_ms']:.2f} ms,"
            f" model {r['model_p50_ms']:.2f}) | {r['search_p95_ms'] / r['model_p50_ms']:.2f} | "
            f"{r['http_p50_ms'] / r['http_model_p50_ms']:.2f} ({r['http_p50_ms']:.2f} ms, model "
            f"{r['http_model_p50_ms']:.2f}) | {r['http_p95_ms'] / r['http_model_p50_ms']:.2f} | "
            f"{' / '.join(f'{q:.0f}' for q in r['throughput_qps'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs=2, help="two git revisions, e.g. HEAD~3 HEAD")
    parser.add_argument("--set", default="atec-faq-zh", help="a set in ../shared/bench")
    parser.add_argument("--sets", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds per revision")
    args = parser.parse_args()
    work = ROOT / "bench" / "work" / args.set
    if not (work / "index").is_dir():
        sys.exit(f"error: {work / 'index'} not found: 'make bench' builds it")
    source = args.sets / args.set
    queries = [q.query for q in read_queries(source / "queries.dev.jsonl",
                                             source / "qrels.dev.tsv")][:args.queries]
    with ExitStack() as stack:
        scratch = Path(tempfile.mkdtemp(prefix="kb-compare-"))
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        trees = {rev: worktree(stack, rev, scratch / f"tree-{n}")
                 for n, rev in enumerate(args.revisions)}
        results = in_process(trees, work / "index", queries)
        for rev, figures in over_http(trees, work, queries, args.rounds, scratch).items():
            results[rev].update(figures)
    print(f"{args.set}, {len(queries)} queries, side by side in one run:\n")
    print(table(results))


if __name__ == "__main__":
    main()
