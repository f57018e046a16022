"""How much say an exact rare word has in the fused ranking.

    python -m bench.rare_terms [--set covidqa-faq-en] [--words 100] [--weights 0.6 0.4]

Agents type product names, error codes and unusual words, which dense retrieval misses and BM25
finds. For ``--words`` words (seven letters or more, sampled with a fixed seed) that occur in
the text of exactly one article of the set, this searches the word alone, and "what about
<word>", and counts how often that article ranks first: with the dense weight the set's
calibration chose (on the index `make bench` built, bench/work/SET/index) and with each of
``--weights``. A probe, not a relevance judgement: an article that merely mentions a word is
not always the best answer to it.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import defaultdict

from bench.run import ROOT
from kb.chunking import Chunk
from kb.config import Settings
from kb.embedding import load_embedder
from kb.search import Searcher
from kb.store import load_index

SEED = 3


def rare_words(chunks: list[Chunk], count: int) -> list[tuple[str, str]]:
    """(word, the one article holding it), ``count`` of them."""
    holders: dict[str, set[str]] = defaultdict(set)
    for chunk in chunks:
        for word in set(re.findall(r"[a-z]{7,}", chunk.text.casefold())):
            holders[word].add(chunk.article_id)
    rare = sorted((w, next(iter(a))) for w, a in holders.items() if len(a) == 1)
    return random.Random(SEED).sample(rare, min(count, len(rare)))


def _first(searcher: Searcher, query: str) -> str | None:
    hits = searcher.search(query, k=1).hits
    return hits[0].id if hits else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="covidqa-faq-en", help="a set in ../shared/bench")
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--weights", type=float, nargs="*", default=[0.6, 0.4],
                        help="dense weights to try besides the calibrated one")
    args = parser.parse_args()
    index_dir = ROOT / "bench" / "work" / args.set / "index"
    if not index_dir.is_dir():
        sys.exit(f"error: {index_dir} not found: 'make bench' builds it")
    index = load_index(index_dir)
    embedder = load_embedder(Settings())
    words = rare_words(index.chunks, args.words)
    calibrated = index.calibration.weights("en")["dense"]
    print(f"{args.set}: {len(words)} words each in one article only; that article first for")
    for weight in [calibrated, *args.weights]:
        index.calibration.fusion = {**index.calibration.fusion,
                                   "en": {"dense": weight, "lexical": 1.0 - weight}}
        searcher = Searcher(index, embedder)
        alone = sum(_first(searcher, w) == a for w, a in words)
        asked = sum(_first(searcher, f"what about {w}") == a for w, a in words)
        label = f"{weight:.2f}" + (" (calibrated)" if weight == calibrated else "")
        print(f"  dense weight {label}: the word alone {alone}/{len(words)}, "
              f"'what about <word>' {asked}/{len(words)}")


if __name__ == "__main__":
    main()
