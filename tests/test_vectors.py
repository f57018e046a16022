import numpy as np

from kb.vectors import VectorIndex


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_scores_are_the_cosines_of_every_row(tmp_path):
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(500, 32)))
    index = VectorIndex.build(vectors, 32)
    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss")
    for query in unit(rng.normal(size=(20, 32))):
        for i in (index, loaded):
            assert np.allclose(i.scores(query), vectors @ query, atol=1e-6)
    assert np.array_equal(loaded.reconstruct_all(), vectors)


def test_an_empty_index_scores_nothing():
    index = VectorIndex.build(np.zeros((0, 8), dtype=np.float32), 8)
    assert index.scores(unit(np.ones((1, 8)))[0]).shape == (0,)
    assert index.reconstruct_all().shape == (0, 8)


def clustered(rng: np.random.Generator, n: int, dim: int, centres: int = 200) -> np.ndarray:
    """Unit vectors in clusters, as sentence embeddings of a knowledge base's topics are."""
    middle = rng.normal(size=(centres, dim))
    return unit(middle[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, dim)))


def recall_at_10(index: VectorIndex, vectors: np.ndarray, queries: np.ndarray) -> float:
    found = 0
    for q in queries:
        exact = vectors @ q
        tenth = np.sort(exact)[-10]
        # A row tied with the tenth exact score is as good a tenth as the one exact search chose.
        found += sum(exact[r] >= tenth - 1e-6 for r in index.top(q, 10)[:10])
    return found / (10 * len(queries))


def test_the_index_type_follows_the_size(tmp_path):
    rng = np.random.default_rng(3)
    small = VectorIndex.build(clustered(rng, 500, 16), 16, exact_max=1000)
    assert small.exact and small.describe() == {"type": "flat", "vectors": 500}
    vectors = clustered(rng, 12_000, 32)
    large = VectorIndex.build(vectors, 32, exact_max=1000)
    nlist = round(4 * 12_000 ** 0.5)
    assert not large.exact
    assert large.describe() == {"type": "ivf", "vectors": 12_000, "nlist": nlist,
                                "nprobe": 32}
    large.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss")
    assert loaded.describe() == large.describe()
    queries = unit(vectors[rng.integers(0, len(vectors), 100)] + 0.3 * rng.normal(size=(100, 32)))
    assert recall_at_10(loaded, vectors, queries) >= 0.98
    rows = np.array([5, 17, 11_999])
    assert np.allclose(loaded.cosines(queries[0], rows), vectors[rows] @ queries[0], atol=1e-6)
    assert np.array_equal(loaded.reconstruct_all(), vectors)


def test_a_filter_is_applied_inside_the_ann_search():
    rng = np.random.default_rng(5)
    vectors = clustered(rng, 12_000, 32)
    index = VectorIndex.build(vectors, 32, exact_max=1000)
    mask = np.zeros(len(vectors), dtype=bool)
    mask[rng.choice(len(vectors), 300, replace=False)] = True  # a rare product: 2.5 %
    for q in unit(rng.normal(size=(20, 32))):
        rows = index.top(q, 10, mask)
        assert len(rows) == 10 and mask[rows].all()
        best = np.sort(np.where(mask, vectors @ q, -np.inf))[-10:]
        assert np.allclose(np.sort(vectors[rows] @ q), best, atol=1e-6)  # scans more lists
    assert len(index.top(unit(rng.normal(size=(1, 32)))[0], 10, np.zeros(12_000, bool))) == 0


def test_a_rebuild_keeps_the_centroids_and_the_lists_of_unchanged_rows():
    rng = np.random.default_rng(9)
    vectors = clustered(rng, 12_000, 32)
    first = VectorIndex.build(vectors, 32, exact_max=1000)
    # 100 rows removed, 50 new ones appended.
    fresh = clustered(rng, 50, 32)
    second_vectors = np.concatenate([vectors[100:], fresh])
    origin = np.concatenate([np.arange(100, 12_000), np.full(50, -1)])
    second = VectorIndex.build(second_vectors, 32, first, origin, exact_max=1000)
    assert np.array_equal(second.lists()[:-50], first.lists()[100:])
    assert np.array_equal(second.reconstruct_all(), second_vectors)
    # Each new row went to the list nearest it: searching for it finds it first.
    assert [second.top(v, 1)[0] for v in fresh] == list(range(11_900, 11_950))


def test_a_search_over_an_ivf_index_matches_the_exact_one(tmp_path, monkeypatch, fake_embedder):
    from kb import vectors as module
    from kb.build import build_index
    from kb.search import Searcher
    from kb.store import load_index
    from tests.conftest import FIXTURE_KB

    build_index(FIXTURE_KB, tmp_path / "exact", lambda: fake_embedder, "fake")
    monkeypatch.setattr(module, "EXACT_MAX", 5)
    build_index(FIXTURE_KB, tmp_path / "ivf", lambda: fake_embedder, "fake")
    exact, ivf = (load_index(tmp_path / n) for n in ("exact", "ivf"))
    assert exact.manifest["vectors"]["type"] == "flat"
    assert ivf.manifest["vectors"]["type"] == "ivf" and not ivf.vectors.exact
    for query in ("VPN error 809", "打印机 离线", "reset my password", "退款多久到账"):
        a, b = (Searcher(i, fake_embedder).search(query, k=5) for i in (exact, ivf))
        # Every list is scanned at this size: the same results, scores and decision.
        assert [(h.id, h.score) for h in a.hits] == [(h.id, h.score) for h in b.hits]
        assert (a.answered, a.confidence) == (b.answered, b.confidence)


def test_kept_centroids_scan_as_many_lists_as_a_fresh_build(monkeypatch):
    # A knowledge base that grew keeps its coarser centroids; its queries then scan as many
    # lists as the grown size calls for, which is more of its vectors, not fewer.
    from kb import vectors as module
    monkeypatch.setattr(module, "MIN_PROBES", 1)
    rng = np.random.default_rng(11)
    vectors = clustered(rng, 30_000, 32)
    first = VectorIndex.build(vectors[:12_000], 32, exact_max=1000)
    origin = np.concatenate([np.arange(12_000), np.full(18_000, -1)])
    grown = VectorIndex.build(vectors, 32, first, origin, exact_max=1000)
    fresh = VectorIndex.build(vectors, 32, exact_max=1000)
    assert grown.describe()["nlist"] == first.describe()["nlist"] < fresh.describe()["nlist"]
    assert grown.describe()["nprobe"] == fresh.describe()["nprobe"] > first.describe()["nprobe"]
    queries = unit(vectors[rng.integers(0, len(vectors), 100)] + 0.3 * rng.normal(size=(100, 32)))
    assert recall_at_10(grown, vectors, queries) >= recall_at_10(fresh, vectors, queries) - 0.01
