"""expanded_scores looks only at the rows holding an expansion's tokens: bit for bit the
scores of its computation over every row, on random indexes and random expansions (nested
terms, repeated tokens, tokens the index lacks, masks, both languages)."""

import numpy as np
import pytest

from kb.expansion import Alternative, Expansion, ExpansionMemo, expanded_scores
from kb.lexical import LexicalIndex, new_vocabulary
from tests.test_lexical import expanded_every_row

WORDS = [f"w{i}" for i in range(14)]


def random_case(seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    vocabulary = new_vocabulary()
    for w in WORDS:
        vocabulary[w] = len(vocabulary)
    # Zipf-like: a few tokens in most rows, most tokens in a few.
    weights = 1.0 / np.arange(1, len(WORDS) + 1)
    weights /= weights.sum()
    size = int(rng.integers(1, 400))
    docs = [[vocabulary[w] for w in rng.choice(WORDS, rng.integers(0, 8), p=weights)]
            for _ in range(size)]
    lexical = LexicalIndex.build(docs, vocabulary)
    pool = [*WORDS, "absent"]

    def some(n: int) -> tuple[str, ...]:
        return tuple(str(t) for t in rng.choice(pool, n))

    expansions = []
    for _ in range(int(rng.integers(1, 6))):
        source = some(int(rng.integers(0, 3)))
        alternatives = tuple(
            Alternative(some(int(rng.integers(0, 4))), float(rng.uniform(0.2, 1.0)), "alt",
                        float(rng.uniform(0.2, 1.0)))
            for _ in range(int(rng.integers(1, 5))))
        weighed = source + some(int(rng.integers(0, 3))) if rng.random() < 0.7 else ()
        expansions.append(Expansion(source, "term", alternatives, weighed,
                                    int(rng.integers(1, 3))))
    base = lexical.scores(list(some(3)))
    mask = (rng.random(size) < 0.8).astype(np.float32) if rng.random() < 0.5 else None
    other = rng.random(size) < rng.choice([0.0, 0.3, 0.6, 1.0]) if rng.random() < 0.8 else None
    return lexical, base, expansions, mask, other


@pytest.mark.parametrize("seed", range(200))
def test_sparse_expansions_score_as_over_every_row(seed):
    lexical, base, expansions, mask, other = random_case(seed)
    fast = expanded_scores(lexical, base, expansions, mask, other)
    full = expanded_every_row(lexical, base, expansions, mask, other)
    assert fast.dtype == full.dtype == np.float32
    assert fast.tobytes() == full.tobytes()


def test_the_random_cases_exercise_what_the_sparse_path_skips():
    # The comparison above must cover rows no expansion token holds, rescaled translations and
    # caps by the term itself, or it would prove little.
    skipped = crossed = 0
    for seed in range(200):
        lexical, base, expansions, mask, other = random_case(seed)
        tokens = {t for e in expansions for a in e.alternatives for t in a.tokens}
        skipped += len(lexical.postings(tokens)) < lexical.size
        crossed += other is not None and bool(other.any()) and not other.all()
    assert skipped > 50 and crossed > 50


def test_an_empty_knowledge_base_adds_nothing():
    e = Expansion(("a",), "a", (Alternative(("a",), 0.5, "a", 0.9),), ("a",))
    zero = np.zeros(0, dtype=np.float32)
    assert expanded_scores(LexicalIndex(None, 0), zero, [e], None,
                           np.zeros(0, dtype=bool)).shape == (0,)


@pytest.mark.parametrize("seed", range(40))
def test_a_memo_of_expansions_changes_no_score(seed):
    # Queries that share terms, in any order and company, score as they do without a memo.
    lexical, base, expansions, mask, other = random_case(seed)
    rng = np.random.default_rng(seed)
    memo = ExpansionMemo()
    for _ in range(6):
        some = [expansions[i] for i in rng.permutation(len(expansions))[:rng.integers(1, 4)]]
        with_memo = expanded_scores(lexical, base, some, mask, other, memo)
        assert with_memo.tobytes() == expanded_scores(lexical, base, some, mask, other).tobytes()


def test_the_memo_keeps_to_its_budget():
    lexical, base, expansions, mask, other = random_case(3)
    pieces = []
    for e in expansions:
        memo = ExpansionMemo()
        expanded_scores(lexical, base, [e], mask, other, memo)
        pieces.append(memo.get(e))
    sizes = [p.nbytes for p in pieces]
    memo = ExpansionMemo(budget=max(sizes))
    for e in expansions:
        expanded_scores(lexical, base, [e], mask, other, memo)
    kept = [e for e in expansions if memo.get(e) is not None]
    assert kept and expansions[-1] in kept  # the latest stays, older ones give way
    assert sum(memo.get(e).nbytes for e in kept) <= max(sizes)
