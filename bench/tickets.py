"""Tickets: each dev query of a set as a ticket's description, through the ticket path.

    python -m bench.tickets [--sets DIR] [--only NAME] [--out bench/results]

For each set: build (or bring up to date) an index in bench/work/tickets/<set>, split the dev
queries into bench.run's two halves, calibrate on one and evaluate the other, both ways, so
every query is scored under a calibration that did not see it. A query is searched as
``POST /suggest`` searches (kb.tickets.begin_ticket, then Searcher.finish): description only,
and with a subject derived from the description alone (kb.tickets.derived_subject: its first
clause, at most 30 characters; the answer is never looked at). Beside them: the same text
through ``POST /search``, and the baselines (bm25s, dense over whole articles) on the
description. toyhom-med-faq-zh is the set with tickets' shape (long colloquial descriptions);
on the short-query sets the ticket path should match the search path.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.baselines import BM25Baseline, DenseBaseline
from bench.run import run_baseline, split
from bench.vector_cache import CachedEmbedder, VectorCache
from kb.articles import load_articles
from kb.build import build_index
from kb.calibrate import fit, prepare
from kb.config import Settings
from kb.embedding import Embedder, load_embedder
from kb.evaluation import LabelledQuery, Report, read_queries, report_from_runs
from kb.search import Filters, Searcher
from kb.store import load_index
from kb.tickets import begin_ticket, derived_subject

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "tickets"
MODES = ("description", "subject", "search")


def _ask(searcher: Searcher, mode: str, text: str) -> tuple[list[tuple[str, float]], bool]:
    if mode == "search":
        out = searcher.search(text, k=10)
    else:
        subject = derived_subject(text) if mode == "subject" else ""
        started = begin_ticket(searcher, subject, text, Filters(), 10, wait=True)
        out = searcher.finish(started, started.vector.result())
    return [(h.id, h.score) for h in out.hits], out.answered


def ours(searcher: Searcher, labelled: list[LabelledQuery]) -> dict[str, Report]:
    """Each mode's report, every query under the calibration fit on the other half."""
    halves = split(labelled)
    calibrations = [fit(searcher, prepare(searcher, half)) for half in halves]
    runs: dict[str, dict[str, list[tuple[str, float]]]] = {m: {} for m in MODES}
    answered: dict[str, dict[str, bool]] = {m: {} for m in MODES}
    for calibration, held in zip(calibrations, reversed(halves), strict=True):
        searcher.index.calibration = calibration
        for q in held:
            for mode in MODES:
                runs[mode][q.qid], answered[mode][q.qid] = _ask(searcher, mode, q.query)
    return {m: report_from_runs(labelled, runs[m], answered[m]) for m in MODES}


def bench_set(path: Path, embedder: Embedder) -> dict:
    print(f"== {path.name}", flush=True)
    index = WORK / path.name / "index"
    started = time.perf_counter()
    build_index(path / "articles", index, lambda: embedder, embedder.name)  # unchanged: reused
    built = time.perf_counter() - started
    articles = load_articles(path / "articles")
    lang = max({"zh", "en"}, key=lambda lg: sum(a.lang == lg for a in articles))
    labelled = read_queries(path / "queries.dev.jsonl", path / "qrels.dev.tsv")
    reports = ours(Searcher(load_index(index), embedder, max_query_chars=10**6), labelled)
    # Whole-article vectors kept between runs: 5,000 articles take minutes on two cores.
    cached = CachedEmbedder(embedder, VectorCache(WORK / "vectors", embedder.name))
    bm25 = run_baseline(BM25Baseline(articles, lang), labelled)
    dense = run_baseline(DenseBaseline(articles, cached), labelled)
    better = max(bm25.ndcg10, dense.ndcg10)
    chars = sorted(len(q.query) for q in labelled)
    result = {
        "set": path.name, "articles": len(articles), "queries": len(labelled),
        "answerable": sum(bool(q.relevant) for q in labelled),
        "median_query_chars": chars[len(chars) // 2],
        **{m: r.__dict__ for m, r in reports.items()},
        "bm25s": bm25.__dict__, "dense": dense.__dict__,
        "ratio_description": reports["description"].ndcg10 / better,
        "ratio_subject": reports["subject"].ndcg10 / better, "index_seconds": built,
    }
    print(json.dumps(result, ensure_ascii=False, indent=1), flush=True)
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| set | n (answerable) | median query chars | ours, description only | "
        "ours, subject + description | ours via /search | bm25s | dense | ratio description "
        "only | ratio subject + description | R@1 description only | answerable flagged | "
        "unanswerable flagged |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        d = r["description"]
        lines.append(
            f"| {r['set']} | {r['queries']} ({r['answerable']}) | {r['median_query_chars']} | "
            f"{d['ndcg10']:.4f} | {r['subject']['ndcg10']:.4f} | {r['search']['ndcg10']:.4f} | "
            f"{r['bm25s']['ndcg10']:.4f} | {r['dense']['ndcg10']:.4f} | "
            f"{r['ratio_description']:.3f} | {r['ratio_subject']:.3f} | {d['recall1']:.3f} | "
            f"{1 - d['answered_when_answerable']:.1%} | {d['flagged_when_unanswerable']:.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--only", action="append", help="run only this set (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sets = sorted(p for p in args.sets.iterdir() if (p / "queries.dev.jsonl").exists())
    if args.only:
        sets = [p for p in sets if p.name in args.only]
    embedder = load_embedder(Settings())
    results = [bench_set(p, embedder) for p in sets]
    text = table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tickets.json").write_text(json.dumps(results, ensure_ascii=False, indent=1))
    (args.out / "tickets.md").write_text(
        f"Produced by `python -m bench.tickets` on {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores. nDCG@10 over every dev query, each scored under the "
        "calibration fit on the other half; the subject is the description's first clause "
        "(at most 30 characters); baselines on the description.\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
