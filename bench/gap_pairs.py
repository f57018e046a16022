"""How alike are the gap report's phrasings of one missing question, and of different ones?
``python -m bench.gap_pairs --kb KB [--project DIR] [--seeds 20261202 1 2 3 4 5]``

Runs the shared gap tool unchanged but for its HTTP client (as bench.gap_feedback does), once
per set and seed, each in a process of its own, and keeps the report it reads. Each example
phrasing is labelled as the tool labels queries (``bench.gap_siblings.removed``: a query whose
relevant articles were all removed asks that missing question), and every pair of report
phrasings is counted at each cosine of the bundled model: pairs of one missing question, and
pairs of different questions. Where the second grow faster than the first as the cosine falls,
a lower link threshold would merge more than it mends.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.gap_seeds import SETS, TOOL
from bench.gap_siblings import removed
from kb.config import Settings
from kb.embedding import embed_queries, load_embedder

LEVELS = (0.6, 0.55, 0.5, 0.45)
MARK = "report examples: "


def run_one(tool: Path, set_dir: Path, seed: int, kb: str, project: Path) -> None:
    """The tool under ``seed``; prints the examples of each topic of the report it read."""
    import httpx

    spec = importlib.util.spec_from_file_location("gap_eval", tool)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SEED = seed  # type: ignore[attr-defined]
    get = httpx.Client.get

    def keeping(client: httpx.Client, url: str, *args: Any, **kwargs: Any) -> httpx.Response:
        response = get(client, url, *args, **kwargs)
        if url == "/gaps" and response.status_code == 200:
            topics = response.json().get("topics", [])
            print(MARK + json.dumps([t["examples"] for t in topics], ensure_ascii=False),
                  flush=True)
        return response

    httpx.Client.get = keeping  # type: ignore[method-assign,assignment]
    sys.argv = [str(tool), "--kb", kb, "--project", str(project), "--set", str(set_dir),
                "--only", "dev", "--min-queries", "2"]
    module.main()


def labels(set_dir: Path, seed: int) -> dict[str, str]:
    """Each dev query's text: "missing:<article>", "answerable" or "unanswerable"."""
    gone = set(removed(set_dir, seed))
    relevant: dict[str, set[str]] = defaultdict(set)
    for line in open(set_dir / "qrels.dev.tsv", encoding="utf-8"):
        qid, article, grade = line.rstrip("\n").split("\t")
        if int(grade) > 0:
            relevant[qid].add(article)
    out = {}
    for line in open(set_dir / "queries.dev.jsonl", encoding="utf-8"):
        q = json.loads(line)
        rels = relevant.get(q["qid"], set())
        out[q["query"]] = ("unanswerable" if not rels else
                           f"missing:{min(rels)}" if rels <= gone else "answerable")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", required=True, help="the kb executable to drive")
    ap.add_argument("--sets", type=Path, default=TOOL.parents[1])
    ap.add_argument("--tool", type=Path, default=TOOL)
    ap.add_argument("--seeds", type=int, nargs="+", default=[20261202, 1, 2, 3, 4, 5])
    ap.add_argument("--project", type=Path, default=Path.cwd())
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # a set and a seed, here
    a = ap.parse_args()
    if a.one:
        run_one(a.tool, a.sets / a.one[0], int(a.one[1]), a.kb, a.project)
        return
    embedder = load_embedder(Settings())
    for name in SETS:
        pairs: Counter = Counter()
        for seed in a.seeds:
            out = subprocess.run([sys.executable, "-m", "bench.gap_pairs", "--kb", a.kb,
                                  "--sets", str(a.sets), "--tool", str(a.tool), "--project",
                                  str(a.project), "--one", name, str(seed)],
                                 capture_output=True, text=True, check=False)
            reports = [json.loads(line[len(MARK):]) for line in out.stdout.splitlines()
                       if line.startswith(MARK)]
            if not reports:
                print(f"{name} seed {seed}: no report ({out.stderr[-300:]})", flush=True)
                continue
            truth = labels(a.sets / name, seed)
            texts = sorted({e for examples in reports[-1] for e in examples})
            vectors = embed_queries(embedder, texts)
            sims = vectors @ vectors.T
            for i, j in itertools.combinations(range(len(texts)), 2):
                x, y = truth.get(texts[i], "?"), truth.get(texts[j], "?")
                kind = "one missing question" if x == y and x.startswith("missing:") else \
                    "different questions"
                for level in LEVELS:
                    pairs[kind, level] += float(sims[i, j]) >= level
        for level in LEVELS:
            print(f"{name} ({len(a.seeds)} removals) cosine >= {level}: "
                  f"{pairs['one missing question', level]} pairs of one missing question, "
                  f"{pairs['different questions', level]} of different questions", flush=True)


if __name__ == "__main__":
    main()
