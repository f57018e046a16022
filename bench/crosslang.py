"""Cross-language retrieval and section choice on the sample knowledge base.

    python -m bench.crosslang [--index DIR] [--misses]

Builds ``articles/`` (the sample knowledge base, with its glossary) and runs two labelled
sets of ``tests/golden/``: ``queries.jsonl`` (mostly one language) and ``crosslang.jsonl``
(every query's only relevant article is in the other language), each direction apart. For
each it prints nDCG@10, Recall@1/5, the share of wrong result lists (no relevant article in
the top 5) that still claim an answer, the share of right first results flagged as gaps (with
``--calibration``: the served answered model), and how many of the top-5 shown sections are
"related documents" lists. ``--misses`` prints each cross-language query whose article is not
first: its top three and the first relevant one, with each one's fused score and signals.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from kb.articles import is_related_heading
from kb.build import build_index
from kb.config import Settings
from kb.embedding import Embedder, load_embedder
from kb.evaluation import LabelledQuery, read_queries, report_from_runs
from kb.ranking import Calibration, rank
from kb.search import Filters, Searcher
from kb.store import load_index

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
SETS = {"golden": ("queries.jsonl", "qrels.tsv"),
        "crosslang": ("crosslang.jsonl", "crosslang-qrels.tsv")}


def measure(searcher: Searcher, labelled: list[LabelledQuery]) -> dict:
    runs: dict[str, list[tuple[str, float]]] = {}
    answered: dict[str, bool] = {}
    wrong = wrong_claimed = related_shown = shown = right = right_flagged = 0
    for q in labelled:
        out = searcher.search(q.query, k=10)
        runs[q.qid] = [(h.id, h.score) for h in out.hits]
        answered[q.qid] = out.answered
        top5 = out.hits[:5]
        shown += len(top5)
        related_shown += sum(bool(h.section) and is_related_heading(h.section.split(" > ")[-1])
                             for h in top5)
        if q.relevant and not {h.id for h in top5} & set(q.relevant):
            wrong += 1
            wrong_claimed += out.answered
        if q.relevant and out.hits and out.hits[0].id in q.relevant:
            right += 1
            right_flagged += not out.answered
    report = report_from_runs(labelled, runs, answered)
    return {"queries": len(labelled), "ndcg10": round(report.ndcg10, 4),
            "recall1": round(report.recall1, 4), "recall5": round(report.recall5, 4),
            "wrong_lists": wrong, "wrong_lists_claiming_answer": wrong_claimed,
            "right_first": right, "right_first_flagged": right_flagged,
            "related_sections_in_top5": related_shown, "top5_shown": shown}


def misses(searcher: Searcher, labelled: list[LabelledQuery]) -> str:
    """Each query whose first result is not relevant, with the signals its top three and its
    first relevant article won by (dense as fused: imputed across languages)."""
    index = searcher.index
    lines = []
    for q in labelled:
        started = searcher.begin_search(q.query, k=10, wait=True)
        cands = searcher.candidates(started.tokens, started.vector.result(), Filters(),
                                    expansions=started.expansions, lang=started.lang)
        ranked = rank(cands, index.calibration.weights(started.lang), 10)
        ids = [index.article_ids[r.article] for r in ranked]
        at = next((i for i, a in enumerate(ids) if a in q.relevant), None)
        if at == 0:
            continue
        lines.append(f"{q.qid} ({q.lang}) {q.query}  relevant at "
                     f"{'-' if at is None else at + 1}")
        for i in sorted({0, 1, 2, *([at] if at is not None else [])} & set(range(len(ids)))):
            r = ranked[i]
            evidence = " ".join(f"{n}={v:.3f}" for n, v in sorted(r.signals.items()))
            mark = "*" if ids[i] in q.relevant else " "
            lines.append(f"  {mark}{i + 1} {ids[i]} ({index.articles[ids[i]]['lang']}) "
                         f"fused={r.score:.3f} {evidence}")
    return "\n".join(lines) + "\n"


def run(embedder: Embedder, index: Path, show_misses: bool = False,
        calibration: Calibration | None = None) -> dict:
    build_index(ROOT / "articles", index, lambda: embedder, embedder.name,
                calibration=calibration)
    searcher = Searcher(load_index(index), embedder, max_query_chars=10**6)
    results: dict = {}
    for name, (queries, qrels) in SETS.items():
        labelled = read_queries(GOLDEN / queries, GOLDEN / qrels)
        results[name] = measure(searcher, labelled)
        if name == "crosslang":
            if show_misses:
                print(misses(searcher, labelled))
            for lang in ("zh", "en"):
                part = [q for q in labelled if q.lang == lang]
                results[f"crosslang {lang}→{'en' if lang == 'zh' else 'zh'}"] = measure(
                    searcher, part)
    return results


def table(results: dict) -> str:
    lines = ["| sample KB set | queries | nDCG@10 | R@1 | R@5 | wrong top-5 lists claiming an "
             "answer | right first results flagged as gaps | related-documents sections among "
             "top-5 shown |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        claim = (f"{r['wrong_lists_claiming_answer']}/{r['wrong_lists']}" if r["wrong_lists"]
                 else "0/0")
        lines.append(f"| {name} | {r['queries']} | {r['ndcg10']:.4f} | {r['recall1']:.3f} | "
                     f"{r['recall5']:.3f} | {claim} | {r['right_first_flagged']}/"
                     f"{r['right_first']} | {r['related_sections_in_top5']}/"
                     f"{r['top5_shown']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index folder to build into (default: a "
                        "temporary one)")
    parser.add_argument("--misses", action="store_true", help="print the cross-language "
                        "queries whose article is not first, with the signals of the top three")
    parser.add_argument("--calibration", type=Path, help="a calibration file to search with, "
                        "e.g. articles/calibration.json (what `kb index` serves; fit to the "
                        "golden queries, so their figures are then in-sample); default: the "
                        "engine's default weights")
    args = parser.parse_args()
    embedder = load_embedder(Settings())
    calibration = Calibration.load(args.calibration) if args.calibration else None
    with tempfile.TemporaryDirectory() as tmp:
        results = run(embedder, args.index or Path(tmp) / "index", args.misses, calibration)
    print(json.dumps(results, ensure_ascii=False, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
