"""nDCG@10 against the better single retriever over several random halvings of each set's dev
queries: calibrate on one half, evaluate on the other, the baselines on that same half.

bench.run measures one halving; a site's own labelled queries are another sample, so the spread
over halvings says how much of a ratio is the split rather than the method. The target of the
retrieval issue is met on a halving when nDCG@10 ≥ 1.05× the better baseline, or half the
distance from it to 1.0 where that is lower.

    python -m bench.splits [--sets ../shared/bench] [--splits 5] [--set NAME ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.baselines import BM25Baseline, DenseBaseline
from bench.run import ROOT, SALT, split
from kb.articles import load_articles
from kb.build import build_index
from kb.calibrate import fit, prepare
from kb.config import Settings
from kb.embedding import Embedder, load_embedder
from kb.evaluation import LabelledQuery, read_queries, retrieval_metrics
from kb.search import Searcher
from kb.store import load_index

SETS = ["atec-faq-zh", "covidqa-faq-en", "stackfaq-en", "toyhom-med-faq-zh"]


def target(best: float) -> float:
    return min(1.05 * best, best + (1.0 - best) / 2)


def per_query(queries: list[LabelledQuery], search: Callable[[str], list[tuple[str, float]]]
              ) -> dict[str, float]:
    """nDCG@10 of each answerable query."""
    runs = {q.qid: search(q.query) for q in queries if q.relevant}
    return {qid: m["ndcg_cut_10"] for qid, m in retrieval_metrics(queries, runs).items()}


def ranked_by(searcher: Searcher) -> Callable[[str], list[tuple[str, float]]]:
    return lambda q: [(h.id, h.score) for h in searcher.search(q, k=10).hits]


def halvings(path: Path, work: Path, embedder: Embedder, splits: int, reuse: bool) -> dict:
    articles_dir, index_dir = work / "articles", work / "index"
    if not (reuse and (index_dir / "CURRENT").exists()):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(path / "articles", articles_dir)
        build_index(articles_dir, index_dir, lambda: embedder, embedder.name)
    articles = load_articles(articles_dir)
    lang = max({"zh", "en"}, key=lambda lg: sum(a.lang == lg for a in articles))
    labelled = read_queries(path / "queries.dev.jsonl", path / "qrels.dev.tsv")
    # Each baseline is one ranking per query whatever the split: scored once.
    bm25 = BM25Baseline(articles, lang)
    dense = DenseBaseline(articles, embedder)
    base = {"bm25s": per_query(labelled, bm25.search), "dense": per_query(labelled, dense.search)}
    rows = []
    for i in range(splits):
        calib, held = split(labelled, SALT if i == 0 else f"{SALT}:{i}")
        index = load_index(index_dir)
        searcher = Searcher(index, embedder, max_query_chars=10**6)
        index.calibration = fit(searcher, prepare(searcher, calib))
        searcher = Searcher(index, embedder, max_query_chars=10**6)
        ours = per_query(held, ranked_by(searcher))
        qids = list(ours)
        figures = {name: float(np.mean([scores[q] for q in qids])) for name, scores in
                   {"ours": ours, **base}.items()}
        best = max(figures["bm25s"], figures["dense"])
        row = {"split": i, "queries": len(qids), **{k: round(v, 4) for k, v in figures.items()},
               "ratio": round(figures["ours"] / best, 4), "target": round(target(best), 4),
               "met": figures["ours"] >= target(best)}
        print(f"   {path.name} split {i}: {json.dumps(row)}", flush=True)
        rows.append(row)
    ratios = [r["ratio"] for r in rows]
    return {"set": path.name, "splits": rows, "ratio_mean": round(float(np.mean(ratios)), 4),
            "ratio_min": min(ratios), "ratio_max": max(ratios), "met": sum(r["met"] for r in rows)}


def table(results: list[dict]) -> str:
    lines = ["| set | evaluated queries per split | ratio per split | mean | target met |",
             "|---|---|---|---|---|"]
    for r in results:
        per = ", ".join(f"{s['ratio']:.3f}" for s in r["splits"])
        sizes = sorted({s["queries"] for s in r["splits"]})
        lines.append(f"| {r['set']} | {sizes[0]}–{sizes[-1]} | {per} | {r['ratio_mean']:.3f} | "
                     f"{r['met']} of {len(r['splits'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--set", action="append", dest="names", help="one set (repeatable)")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "splits")
    parser.add_argument("--reuse", action="store_true", help="reuse an index built earlier")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "splits.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder = load_embedder(Settings())
    results = []
    for name in args.names or SETS:
        print(f"== {name}", flush=True)
        results.append(halvings(args.sets / name, args.work / name, embedder, args.splits,
                                args.reuse))
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
