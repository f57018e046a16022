"""Do the shared gap tool's missing topics leave a sibling that answers them?
``python -m bench.gap_siblings [--seeds 20261202 1 2 3]``

``gap_eval.py`` (``../shared/bench/tools``) removes whole articles and counts their queries as
questions the knowledge base cannot answer. Where a set holds near-duplicate articles (several
agencies answering one question), a removed article leaves a sibling that still answers, and a
confident answer there is right, not a miss. This repeats the tool's choice of removed
articles (its ``--only dev --min-queries 2`` halving, seed and share) and prints, for each,
the title cosine (the bundled model) to the nearest article kept, beside the median of each
kept article's nearest other: a removed article nearer its sibling than articles usually are
to each other is a question the set still answers.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from bench.gap_seeds import SETS, TOOL
from kb.articles import load_articles
from kb.config import Settings
from kb.embedding import embed_queries, load_embedder

FRAC, MAX_TOPICS, MIN_QUERIES = 0.2, 25, 2  # the tool's defaults, and the README's --min-queries


def removed(set_dir: Path, seed: int) -> list[str]:
    """The articles gap_eval.py removes with ``--only dev --min-queries 2`` under ``seed``."""
    qids = [json.loads(line)["qid"] for line in open(set_dir / "queries.dev.jsonl",
                                                      encoding="utf-8")]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in open(set_dir / "qrels.dev.tsv", encoding="utf-8"):
        q, a, r = line.rstrip("\n").split("\t")
        qrels[q][a] = int(r)
    per_article: Counter = Counter()
    for q in qids:  # both halves, calibration and stream, as the tool counts them
        per_article.update(qrels.get(q, {}))
    eligible = sorted(a for a, n in per_article.items() if n >= MIN_QUERIES)
    rng = random.Random(seed)
    return sorted(rng.sample(eligible, min(MAX_TOPICS, int(len(eligible) * FRAC))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", type=Path, default=TOOL.parents[1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[20261202, 1, 2, 3])
    a = ap.parse_args()
    embedder = load_embedder(Settings())
    for name in SETS:
        articles = load_articles(a.sets / name / "articles")
        ids = [x.id for x in articles]
        vectors = embed_queries(embedder, [x.title for x in articles])
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -1.0)
        for seed in a.seeds:
            gone = set(removed(a.sets / name, seed))
            kept = np.array([i not in gone for i in ids])
            usual = float(np.median(sims[np.ix_(kept, kept)].max(axis=1)))
            nearest = {ids[i]: float(sims[i, kept].max()) for i in range(len(ids))
                       if ids[i] in gone}
            above = sum(v > usual for v in nearest.values())
            print(f"{name} seed {seed}: {len(gone)} removed; nearest kept title cosine "
                  f"{min(nearest.values()):.2f}-{max(nearest.values()):.2f} "
                  f"(median {np.median(list(nearest.values())):.2f}); kept articles' nearest "
                  f"other: median {usual:.2f}; removed above it: {above} of {len(gone)}")


if __name__ == "__main__":
    main()
