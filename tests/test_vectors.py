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
