import numpy as np

from kb.ranking import Calibration, Candidates, answer_features, fuse, rank


def mix(alpha):
    return {"dense": alpha, "lexical": 1.0 - alpha}


def cands(dense, lexical, articles, rows=None):
    n = len(dense)
    return Candidates(np.arange(n) if rows is None else np.array(rows), np.array(articles),
                      {"dense": np.array(dense, dtype=np.float32),
                       "lexical": np.array(lexical, dtype=np.float32)})


def test_fusion_weights_between_signals():
    c = cands([0.9, 0.3], [1.0, 10.0], [0, 1])
    assert fuse(c, mix(1.0)).argmax() == 0  # dense only
    assert fuse(c, mix(0.0)).argmax() == 1  # lexical only
    assert np.all((fuse(c, mix(0.5)) >= 0) & (fuse(c, mix(0.5)) <= 1))


def test_without_lexical_matches_dense_decides():
    c = cands([0.2, 0.6], [0.0, 0.0], [0, 1])
    assert rank(c, mix(0.2), 2)[0].article == 1


def test_rank_returns_one_hit_per_article_with_its_best_chunk():
    # article 0 has two chunks: one strong lexically, one strong densely
    c = cands([0.8, 0.2, 0.5], [0.0, 9.0, 3.0], [0, 0, 1])
    ranked = rank(c, mix(0.5), 5)
    assert [r.article for r in ranked] == [0, 1]
    assert ranked[0].dense == np.float32(0.8) and ranked[0].lexical == 9.0
    assert ranked[0].score >= ranked[1].score


def test_answer_probability_is_monotonic_in_evidence():
    cal = Calibration()
    weak = answer_features(rank(cands([0.1], [0.5], [0]), mix(0.5), 2), coverage=0.1)
    strong = answer_features(rank(cands([0.8], [9.0], [0]), mix(0.5), 2), coverage=1.0)
    assert cal.answer_probability(strong) > cal.answer_probability(weak)


def test_calibration_round_trips_and_ignores_unknown_keys():
    cal = Calibration(fusion={"en": mix(0.3)}, answer_threshold=0.7)
    assert Calibration.from_dict({**cal.to_dict(), "future": 1}) == cal
    assert cal.weights("zh")["dense"] == 0.2  # default for a language the fit did not see


def test_dense_differences_keep_the_weight_the_mix_gives_them():
    # Cosines of candidates sit in a narrow band, BM25 spans from 0: with a weight above one
    # half on dense, the best dense match must win over the best lexical one.
    c = cands([0.62, 0.55], [0.0, 9.0], [0, 1])
    assert fuse(c, mix(0.6)).argmax() == 0
    assert fuse(c, mix(0.4)).argmax() == 1
    single = cands([0.4], [3.0], [0])
    assert fuse(single, mix(0.5))[0] == 1.0  # a lone candidate with evidence gets full marks


def test_each_article_shows_its_best_fused_chunk_whatever_the_row_order():
    c = cands([0.3, 0.9, 0.7, 0.2, 0.6], [1.0, 0.0, 5.0, 4.0, 0.0], [7, 3, 7, 3, 5],
              rows=[10, 11, 12, 13, 14])
    ranked = rank(c, mix(0.5), 5)
    best = {r.article: r.row for r in ranked}
    assert best == {7: 12, 3: 11, 5: 14}
    assert {r.article: (r.dense, r.lexical) for r in ranked}[3] == (np.float32(0.9), 4.0)


def test_the_article_the_query_words_single_out_ranks_first_whatever_the_weights():
    # Article 2 is singled out by the query's rare word; dense (weighted 0.9) prefers 0 and 1.
    c = cands([0.9, 0.8, 0.3], [0.0, 0.0, 4.0], [0, 1, 2])
    c.holder = 2
    ranked = rank(c, mix(0.9), 3)
    assert [r.article for r in ranked] == [2, 0, 1]
    assert ranked[0].score == max(r.score for r in ranked)  # scores stay monotone
    c.holder = None  # no article singled out: fusion decides
    assert rank(c, mix(0.9), 3)[0].article == 0
    c.holder = 7  # one the query may not see is not among the candidates: nothing changes
    assert [r.article for r in rank(c, mix(0.9), 3)] == [0, 1, 2]


def test_a_replay_without_the_singled_out_article_ranks_by_fusion():
    c = cands([0.9, 0.8, 0.3], [0.0, 0.0, 4.0], [0, 1, 2])
    c.holder = 2
    assert c.without({2}).holder is None and c.without({0}).holder == 2
    assert [r.article for r in rank(c.without({2}), mix(0.9), 3)] == [0, 1]
