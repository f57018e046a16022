"""The shared gap tool with agents who vote: ``python -m bench.gap_feedback --kb KB [--share 0.3]``

``gap_eval.py`` streams queries through ``POST /search`` and reads the report; nobody votes.
In the service agents say whether a result helped, and the report reads those votes: a flagged
query voted helpful is answered after all, and a confidently answered one voted not helpful is
a gap. This runs the tool unchanged but for its HTTP client: after each search, with
probability ``--share`` (seeded by the query's text), an agent votes on the first result,
helpful if it is one of the query's relevant articles in the set's labels, not helpful if
not. It prints the tool's figures and how many votes of each kind were cast. One run per set,
each in its own process.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.gap_seeds import SETS, TOOL


def relevant_by_text(set_dir: Path) -> dict[str, set[str]]:
    """The relevant articles of each query text of the dev split (texts asked twice: both)."""
    labels: dict[str, set[str]] = defaultdict(set)
    for line in open(set_dir / "qrels.dev.tsv", encoding="utf-8"):
        qid, article, grade = line.rstrip("\n").split("\t")
        if int(grade) > 0:
            labels[qid].add(article)
    out: dict[str, set[str]] = defaultdict(set)
    for line in open(set_dir / "queries.dev.jsonl", encoding="utf-8"):
        q = json.loads(line)
        out[q["query"]] |= labels.get(q["qid"], set())
    return out


def votes(share: float, relevant: dict[str, set[str]], cast: Counter) -> Any:
    """A replacement for ``httpx.Client.post`` that votes after some searches."""
    import httpx

    post = httpx.Client.post

    def voting(client: httpx.Client, url: str, *args: Any, **kwargs: Any) -> httpx.Response:
        response = post(client, url, *args, **kwargs)
        query = (kwargs.get("json") or {}).get("query")
        if url != "/search" or response.status_code != 200 or query is None:
            return response
        roll = int(hashlib.sha256(query.encode()).hexdigest(), 16) % 10_000 / 10_000
        results = response.json().get("results") or []
        if roll >= share or not results:
            return response
        top = results[0]["id"]
        helpful = top in relevant.get(query, set())
        vote = post(client, "/feedback", json={"query_id": response.json()["query_id"],
                                               "article_id": top, "helpful": helpful})
        cast["helpful" if helpful else "not helpful"] += vote.status_code == 200
        return response

    return voting


def run_one(tool: Path, set_dir: Path, share: float, kb: str, project: Path) -> None:
    import httpx

    spec = importlib.util.spec_from_file_location("gap_eval", tool)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cast: Counter = Counter()
    httpx.Client.post = votes(share, relevant_by_text(set_dir), cast)  # type: ignore[method-assign]
    sys.argv = [str(tool), "--kb", kb, "--project", str(project), "--set", str(set_dir),
                "--only", "dev", "--min-queries", "2"]
    module.main()
    print(json.dumps({"votes": dict(cast)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", required=True, help="the kb executable to drive")
    ap.add_argument("--sets", type=Path, default=TOOL.parents[1])
    ap.add_argument("--tool", type=Path, default=TOOL)
    ap.add_argument("--share", type=float, default=0.3, help="share of searches voted on")
    ap.add_argument("--project", type=Path, default=Path.cwd())
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a set, run in this process
    a = ap.parse_args()
    if a.one:
        run_one(a.tool, a.sets / a.one, a.share, a.kb, a.project)
        return
    for name in SETS:
        out = subprocess.run([sys.executable, "-m", "bench.gap_feedback", "--kb", a.kb,
                              "--sets", str(a.sets), "--tool", str(a.tool), "--share",
                              str(a.share), "--project", str(a.project), "--one", name],
                             capture_output=True, text=True, check=False)
        lines = out.stdout.splitlines()
        print(f"{name} share {a.share}: " + (" ".join(lines[1:]) if len(lines) > 1
                                               else out.stderr[-300:]), flush=True)


if __name__ == "__main__":
    main()
