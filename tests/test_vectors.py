import numpy as np

from kb.vectors import VectorIndex


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_the_half_precision_copy_finds_the_same_rows_with_near_cosines():
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(500, 32)))
    full, half = VectorIndex.build(vectors, 32), VectorIndex.build(vectors, 32).half()
    for query in unit(rng.normal(size=(20, 32))):
        rows, cosines = half.search(query, 10)
        assert set(rows) == set(full.search(query, 10)[0])
        assert np.abs(cosines - vectors[rows] @ query).max() < 1e-3
        assert np.abs(half.cosines(rows, query) - cosines).max() < 1e-6
        assert np.allclose(full.cosines(rows, query), vectors[rows] @ query, atol=1e-6)
    allowed = np.arange(0, 500, 7)
    assert set(half.search(vectors[14], 5, allowed)[0]) <= set(allowed)
    assert half.search(vectors[14], 1, allowed)[0][0] == 14


def test_an_empty_index_stays_searchable_in_half_precision():
    full = VectorIndex.build(np.zeros((0, 8), dtype=np.float32), 8)
    rows, cosines = full.half().search(unit(np.ones((1, 8)))[0], 5)
    assert len(rows) == 0 and len(cosines) == 0
    for index in (full, full.half()):
        assert len(index.cosines(np.zeros(0, dtype=np.int64), np.ones(8, dtype=np.float32))) == 0
