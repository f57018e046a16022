"""Cross-language retrieval and section choice on the sample knowledge base.

    python -m bench.crosslang [--index DIR]

Builds ``articles/`` (the sample knowledge base, with its glossary) and runs two labelled
sets of ``tests/golden/``: ``queries.jsonl`` (mostly one language) and ``crosslang.jsonl``
(every query's only relevant article is in the other language), each direction apart. For
each it prints nDCG@10, Recall@1/5, the share of wrong result lists (no relevant article in
the top 5) that still claim an answer, and how many of the top-5 shown sections are
"related documents" lists.
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
from kb.search import Searcher
from kb.store import load_index

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
SETS = {"golden": ("queries.jsonl", "qrels.tsv"),
        "crosslang": ("crosslang.jsonl", "crosslang-qrels.tsv")}


def measure(searcher: Searcher, labelled: list[LabelledQuery]) -> dict:
    runs: dict[str, list[tuple[str, float]]] = {}
    answered: dict[str, bool] = {}
    wrong = wrong_claimed = related_shown = shown = 0
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
    report = report_from_runs(labelled, runs, answered)
    return {"queries": len(labelled), "ndcg10": round(report.ndcg10, 4),
            "recall1": round(report.recall1, 4), "recall5": round(report.recall5, 4),
            "wrong_lists": wrong, "wrong_lists_claiming_answer": wrong_claimed,
            "related_sections_in_top5": related_shown, "top5_shown": shown}


def run(embedder: Embedder, index: Path) -> dict:
    build_index(ROOT / "articles", index, lambda: embedder, embedder.name)
    searcher = Searcher(load_index(index), embedder, max_query_chars=10**6)
    results: dict = {}
    for name, (queries, qrels) in SETS.items():
        labelled = read_queries(GOLDEN / queries, GOLDEN / qrels)
        results[name] = measure(searcher, labelled)
        if name == "crosslang":
            for lang in ("zh", "en"):
                part = [q for q in labelled if q.lang == lang]
                results[f"crosslang {lang}→{'en' if lang == 'zh' else 'zh'}"] = measure(
                    searcher, part)
    return results


def table(results: dict) -> str:
    lines = ["| sample KB set | queries | nDCG@10 | R@1 | R@5 | wrong top-5 lists claiming an "
             "answer | related-documents sections among top-5 shown |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        claim = (f"{r['wrong_lists_claiming_answer']}/{r['wrong_lists']}" if r["wrong_lists"]
                 else "0/0")
        lines.append(f"| {name} | {r['queries']} | {r['ndcg10']:.4f} | {r['recall1']:.3f} | "
                     f"{r['recall5']:.3f} | {claim} | {r['related_sections_in_top5']}/"
                     f"{r['top5_shown']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index folder to build into (default: a "
                        "temporary one)")
    args = parser.parse_args()
    embedder = load_embedder(Settings())
    with tempfile.TemporaryDirectory() as tmp:
        results = run(embedder, args.index or Path(tmp) / "index")
    print(json.dumps(results, ensure_ascii=False, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
