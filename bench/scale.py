"""The scale run: a 20,000-article knowledge base (about 200,000 chunks), built, loaded and
searched; not part of ``make test`` (``make bench-scale``).

Prints, and writes to bench/results/scale.{md,json}: build time, peak memory and index size per
1,000 chunks; the serving process's memory growth per chunk (between a quarter of the knowledge
base and all of it); search p50 against the model's own encoding time, in process; and recall@10
of the dense top 10 against exact search. The corpus is generated from the shared sets' real text
(bench.scale_corpus); its chunk vectors are composed from the real model's vectors of their parts
(bench.vector_cache.ComposedEmbedder), cached in bench/work/ between runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.scale_corpus import PRODUCTS, SHARED, generate
from bench.vector_cache import ComposedEmbedder, VectorCache

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "scale"
RESULTS = ROOT / "bench" / "results"
ARTICLES = 20_000
QUARTER = 5_000
QUERY_SETS = {"atec-faq-zh": 150, "toyhom-med-faq-zh": 60, "covidqa-faq-en": 45, "stackfaq-en": 45}
SAMPLE_TEXTS = 500  # chunks embedded whole by the real model, to time the model at build
LATENCY_BLOCK = 25


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def real_embedder():  # type: ignore[no-untyped-def]
    from kb.config import load_settings
    from kb.embedding import load_embedder

    return load_embedder(load_settings())


def composed(inner) -> ComposedEmbedder:  # type: ignore[no-untyped-def]
    return ComposedEmbedder(inner, VectorCache(WORK / "parts", inner.name), PRODUCTS)


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def subset(articles: Path, n: int) -> Path:
    """The first ``n`` generated articles, as a folder of links."""
    target = WORK / f"articles-{n}"
    if not target.exists():
        target.mkdir()
        for path in sorted(articles.glob("*.md"))[:n]:
            (target / path.name).symlink_to(path)
    return target


def _build(articles: Path, index: Path) -> dict:
    """In its own process (``_build``): one full build, its time and memory."""
    from kb.build import build_index
    from kb.store import load_index

    embedder = composed(real_embedder())
    embedder.embed(["warm-up"])
    before = rss_mb()
    shutil.rmtree(index, ignore_errors=True)
    started = time.perf_counter()
    built = build_index(articles, index, lambda: embedder, embedder.name)
    seconds = time.perf_counter() - started
    version = index / "versions" / built.report.version
    return {"articles": built.report.articles, "chunks": built.report.chunks,
            "seconds": seconds, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb(),
            "index_mb": folder_mb(version),
            "vectors_mb": (version / "vectors.faiss").stat().st_size / 2**20,
            "vectors": load_index(index).manifest["vectors"]}


def _serve(index: Path) -> dict:
    """In its own process (``_serve``): memory of a serving engine on ``index``."""
    from kb.config import Settings
    from kb.engine import Engine

    embedder = real_embedder()
    embedder.embed(["warm-up"])
    before = rss_mb()
    engine = Engine(Settings(index=index, gap_db=WORK / "serve-gaps.sqlite3"), embedder)
    engine.search("VPN 连不上", k=5)
    after = rss_mb()
    chunks = len(engine.searcher.index.chunks)
    engine.close()
    return {"chunks": chunks, "rss_model_mb": before, "rss_serving_mb": after}


def in_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "bench.scale", *args], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def queries(shared: Path = SHARED) -> list[str]:
    rng = random.Random(18)
    out = []
    for name, n in QUERY_SETS.items():
        lines = (shared / name / "queries.dev.jsonl").read_text(encoding="utf-8").splitlines()
        out += [json.loads(line)["query"] for line in rng.sample(lines, n)]
    rng.shuffle(out)
    return out


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.array(values), p))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def search_figures(index_root: Path, texts: list[str]) -> dict:
    """Search p50 against the model's p50 on the same queries, in alternating blocks; the same
    search over an exact index of the same vectors; recall@10 of the dense top 10."""
    from kb.embedding import BatchingEmbedder
    from kb.search import Searcher
    from kb.store import load_index
    from kb.vectors import VectorIndex

    model = real_embedder()
    index = load_index(index_root)
    batching = BatchingEmbedder(model)
    ann = Searcher(index, batching)
    matrix = index.vectors.reconstruct_all()
    flat = VectorIndex.build(matrix, matrix.shape[1], exact_max=len(matrix))
    exact = Searcher(dataclasses.replace(index, vectors=flat), batching, previous=ann)
    for q in texts[:10]:  # warm: the segmentation dictionary, the model's first runs
        ann.search(q, k=10)
        exact.search(q, k=10)
    # The model on the caller's thread, as a small knowledge base's search runs it, and on its
    # own thread, as a large one's does: the faster is the model's own time.
    encode, encode_thread, search, search_exact = [], [], [], []
    for start in range(0, len(texts), LATENCY_BLOCK):
        block = texts[start:start + LATENCY_BLOCK]
        encode += [timed(lambda q=q: batching.embed([q])) for q in block]
        encode_thread += [timed(lambda q=q: batching.submit(q).result()) for q in block]
        search += [timed(lambda q=q: ann.search(q, k=10)) for q in block]
        search_exact += [timed(lambda q=q: exact.search(q, k=10)) for q in block]
    vectors = model.embed(texts)
    hits = 0
    for q in vectors:
        scores = matrix @ q
        tenth = np.sort(scores)[-10]
        # A row tied with the tenth exact score is as good a tenth as exact search's own.
        hits += int((scores[index.vectors.top(q, 10)[:10]] >= tenth - 1e-6).sum())
    same_top = sum(a.hits[0].id == b.hits[0].id for a, b in (
        (ann.search(q, k=1), exact.search(q, k=1)) for q in texts[:100]) if a.hits and b.hits)
    own = min(percentile(encode, 50), percentile(encode_thread, 50))
    return {"queries": len(texts), "model_p50_ms": own * 1e3,
            "model_p50_ms_caller_thread": percentile(encode, 50) * 1e3,
            "model_p50_ms_model_thread": percentile(encode_thread, 50) * 1e3,
            "search_p50_ms": percentile(search, 50) * 1e3,
            "search_p95_ms": percentile(search, 95) * 1e3,
            "exact_search_p50_ms": percentile(search_exact, 50) * 1e3,
            "recall_at_10": hits / (10 * len(texts)), "same_top_result_of_100": same_top}


class Known:
    """An embedder that knows the vectors of some texts already: searches without the model."""

    def __init__(self, name: str, texts: list[str], vectors: np.ndarray) -> None:
        self.name, self.dim = name, vectors.shape[1]
        self._rows = dict(zip(texts, vectors, strict=True))

    def embed(self, texts) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.stack([self._rows[t] for t in texts])


def profile_search(index_root: Path, texts: list[str], top: int = 30,
                   order: str = "tottime") -> None:
    """cProfile of three passes of searches without the model (its vectors made first),
    printed to stderr by each function's own time: where a search spends what it adds to the
    model's time."""
    import cProfile
    import pstats

    from kb.embedding import embed_queries
    from kb.search import Searcher
    from kb.store import load_index

    model = real_embedder()
    searcher = Searcher(load_index(index_root), Known(model.name, texts,
                                                      embed_queries(model, texts)))
    for q in texts[:10]:
        searcher.search(q, k=10)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(3):
        for q in texts:
            searcher.search(q, k=10)
    profiler.disable()
    seconds = time.perf_counter() - started
    print(f"{3 * len(texts)} searches, {seconds / (3 * len(texts)) * 1e3:.1f} ms each under "
          "the profiler", file=sys.stderr)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats(order).print_stats(top)


def agreement(articles: Path, n: int = 400) -> dict:
    """How close composed vectors come to the model's vectors of the whole chunk texts."""
    from kb.articles import load_articles
    from kb.chunking import chunk_article

    inner = real_embedder()
    rng = random.Random(7)
    texts = [c.embed_text for a in load_articles(subset(articles, 2_000))
             for c in chunk_article(a)]
    sample = rng.sample(texts, n)
    started = time.perf_counter()
    whole = inner.embed(sample)
    seconds = time.perf_counter() - started
    cos = np.sum(whole * composed(inner).embed(sample), axis=1)
    return {"texts": n, "mean_cosine": float(cos.mean()), "p10_cosine": percentile(cos, 10),
            "model_seconds_per_1000_chunks": seconds / n * 1000}


def table(r: dict) -> str:
    full, quarter, s = r["build"], r["build_quarter"], r["search"]
    per_k = full["chunks"] / 1000
    growth = (r["serve"]["rss_serving_mb"] - r["serve_quarter"]["rss_serving_mb"]) / (
        r["serve"]["chunks"] - r["serve_quarter"]["chunks"]) * 2**20
    lines = [
        f"Produced by `{r['command']}` on {r['date']}, {os.cpu_count()} cores (shared).", "",
        f"Knowledge base: {full['articles']:,} generated articles, {full['chunks']:,} chunks "
        f"(a quarter: {quarter['articles']:,} articles, {quarter['chunks']:,} chunks). "
        f"Vector index: {full['vectors']}.", "",
        "| figure | value |", "|---|---|",
        f"| build, whole knowledge base | {full['seconds']:.0f} s, "
        f"{full['seconds'] / per_k:.2f} s per 1,000 chunks, plus the model: "
        f"{r['agreement']['model_seconds_per_1000_chunks']:.0f} s per 1,000 chunks |",
        f"| build memory (peak RSS less the loaded model and vector cache) | "
        f"{full['peak_rss_mb'] - full['rss_before_mb']:.0f} MB, "
        f"{(full['peak_rss_mb'] - full['rss_before_mb']) / per_k:.1f} MB per 1,000 chunks |",
        f"| index on disk | {full['index_mb']:.0f} MB ({full['vectors_mb']:.0f} MB vectors), "
        f"{full['index_mb'] / per_k:.2f} MB per 1,000 chunks |",
        f"| serving process RSS, model loaded → index served | "
        f"{r['serve']['rss_model_mb']:.0f} → {r['serve']['rss_serving_mb']:.0f} MB "
        f"(a quarter: {r['serve_quarter']['rss_serving_mb']:.0f} MB) |",
        f"| serving memory growth per chunk (quarter → whole) | {growth / 1024:.1f} KB |",
        f"| model p50, one query (the faster of the caller's thread and its own) | "
        f"{s['model_p50_ms']:.1f} ms ({s.get('model_p50_ms_caller_thread', 0):.1f} / "
        f"{s.get('model_p50_ms_model_thread', 0):.1f} ms) |",
        f"| search p50 / model p50 | {s['search_p50_ms'] / s['model_p50_ms']:.2f} "
        f"({s['search_p50_ms']:.1f} ms; p95 {s['search_p95_ms']:.1f} ms) |",
        f"| the same search, exact index | {s['exact_search_p50_ms'] / s['model_p50_ms']:.2f} "
        f"({s['exact_search_p50_ms']:.1f} ms) |",
        f"| dense recall@10 against exact search | {s['recall_at_10']:.3f} ({s['queries']} "
        "queries) |",
        f"| same top result as the exact index | {s['same_top_result_of_100']} of 100 |",
        f"| composed vs whole-text vectors | mean cosine {r['agreement']['mean_cosine']:.3f}, "
        f"p10 {r['agreement']['p10_cosine']:.3f} ({r['agreement']['texts']} chunks) |",
    ]
    return "\n".join(lines) + "\n"


def built(articles: Path, index: Path, reuse: bool) -> dict:
    """One build's figures, from a child process; with ``reuse``, an index built before (and
    the figures recorded beside it) stands in for a new build."""
    record = index.with_name(index.name + ".build.json")
    if reuse and record.exists() and (index / "CURRENT").exists():
        print(f"reusing {index}", file=sys.stderr)
        return json.loads(record.read_text())
    figures = in_child("_build", "--articles", str(articles), "--index", str(index))
    record.write_text(json.dumps(figures) + "\n")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", default="all", choices=["all", "_build", "_serve"])
    parser.add_argument("--articles", type=Path)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--sets", type=Path, default=SHARED,
                        help=f"the shared bench sets (default {SHARED})")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the indexes a previous run built in bench/work/scale (the "
                             "generated articles are always kept); for iterating on search")
    parser.add_argument("--quarter", action="store_true",
                        help="build and search only the quarter knowledge base (5,000 articles);"
                             " prints its search figures, writes nothing to bench/results")
    parser.add_argument("--profile", action="store_true",
                        help="only profile searches on an index built before (the quarter one "
                             "with --quarter), without the model")
    parser.add_argument("--search-only", action="store_true",
                        help="only the search figures of an index built before (the quarter "
                             "one with --quarter), printed; writes nothing to bench/results")
    parser.add_argument("--profile-order", default="tottime", choices=["tottime", "cumulative"],
                        help="with --profile: by each function's own time (default) or with "
                             "what it calls")
    args = parser.parse_args()
    if args.step == "_build":
        print(json.dumps(_build(args.articles, args.index)))
        return
    if args.step == "_serve":
        print(json.dumps(_serve(args.index)))
        return
    articles = WORK / "articles"
    if not articles.exists():
        print(f"generating {ARTICLES} articles in {articles}", file=sys.stderr)
        generate(articles, ARTICLES, shared=args.sets)
    quarter = subset(articles, QUARTER)
    if args.profile:
        profile_search(WORK / ("index-quarter" if args.quarter else "index"), queries(args.sets),
                       order=args.profile_order)
        return
    if args.search_only:
        index = WORK / ("index-quarter" if args.quarter else "index")
        print(json.dumps(search_figures(index, queries(args.sets)), indent=1))
        return
    command = " ".join(["python -m bench.scale", *sys.argv[1:]])
    result: dict = {"command": command, "date": time.strftime("%Y-%m-%d")}
    print("building (a quarter, then all) ...", file=sys.stderr)
    result["build_quarter"] = built(quarter, WORK / "index-quarter", args.reuse)
    if args.quarter:
        print("search latency and recall (a quarter) ...", file=sys.stderr)
        result["search"] = search_figures(WORK / "index-quarter", queries(args.sets))
        print(json.dumps(result, indent=1))
        return
    result["build"] = built(articles, WORK / "index", args.reuse)
    print("serving memory ...", file=sys.stderr)
    result["serve_quarter"] = in_child("_serve", "--index", str(WORK / "index-quarter"))
    result["serve"] = in_child("_serve", "--index", str(WORK / "index"))
    print("search latency and recall ...", file=sys.stderr)
    result["search"] = search_figures(WORK / "index", queries(args.sets))
    result["agreement"] = agreement(articles)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    text = table(result)
    (RESULTS / "scale.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
