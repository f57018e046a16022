"""The shared gap tool on other removals: ``python -m bench.gap_seeds --kb KB [--seeds 1 2 3]``

``gap_eval.py`` (``../shared/bench/tools``) removes a random choice of topics fixed by its seed;
one choice says little at a dozen topics. This runs the tool unchanged but for that seed (its
module constant), once per seed and set, each in a process of its own, and prints one line of
figures per run. The halves of ``--only`` stay those of the tool (a hash of the query id).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "tools" / "gap_eval.py"
SETS = ("stackfaq-en", "covidqa-faq-en")


def run(tool: Path, seed: int, args: list[str]) -> dict:
    """The tool's JSON line for one seed (``args``: the tool's own arguments)."""
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('gap_eval', sys.argv[1])\n"
            "tool = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(tool)\n"
            "tool.SEED = int(sys.argv[2])\n"
            "sys.argv = [sys.argv[1], *sys.argv[3:]]\n"
            "tool.main()\n")
    out = subprocess.run([sys.executable, "-c", code, str(tool), str(seed), *args],
                         capture_output=True, text=True, check=False)
    first = out.stdout.splitlines()[:1]
    if not first:
        return {"seed": seed, "error": out.stderr[-300:]}
    return {"seed": seed, **json.loads(first[0])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", required=True, help="the kb executable to drive")
    ap.add_argument("--sets", type=Path, default=TOOL.parents[1])
    ap.add_argument("--tool", type=Path, default=TOOL)
    ap.add_argument("--seeds", type=int, nargs="+", default=[20261202, 1, 2, 3])
    ap.add_argument("--project", type=Path, default=Path.cwd())
    a = ap.parse_args()
    keys = ("topic_recall", "precision_at_k", "noise_share", "fragments", "query_recall",
            "false_gap")
    for name in SETS:
        for seed in a.seeds:
            got = run(a.tool, seed, ["--kb", a.kb, "--project", str(a.project), "--set",
                                     str(a.sets / name), "--only", "dev", "--min-queries", "2"])
            print(json.dumps(got), flush=True)
            print(f"{name} seed {seed} stream {got.get('stream')} "
                  + " ".join(f"{k}={got.get(k)}" for k in keys), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
