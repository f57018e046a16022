"""The CC-CEDICT bridge: parsing, the packaged dictionary, and weights that keep noise down."""

from __future__ import annotations

import numpy as np
import pytest

from kb.bridge import Dictionary, cedict, parse
from kb.build import build_index
from kb.expansion import (
    CROSS_BRIDGE_WEIGHT,
    Alternative,
    Expansion,
    Lexicon,
    build_lexicon,
    expand,
    expanded_scores,
)
from kb.glossary import Glossary
from kb.search import Filters, Searcher
from kb.store import load_index
from kb.text import analyze, normalize

LINES = [
    "# CC-CEDICT",
    "方便 方便 [fang1 bian4] /convenient/suitable/to facilitate/(euphemism) to relieve oneself/"
    "toilet/",
    "退款 退款 [tui4 kuan3] /refund/",
    "打印機 打印机 [da3 yin4 ji1] /printer/CL:台[tai2]/",
    "王 王 [Wang2] /surname Wang/",
    "證書 证书 [zheng4 shu1] /credentials/certificate/a long explanation of what paper proves "
    "that someone is qualified/",
]


def test_short_glosses_translate_both_ways_main_sense_first():
    d = parse(LINES)
    assert d.translate("退款") == (("refund", 1.0),)
    assert d.translate("打印机")[0] == ("printer", 1.0)  # the measure word is no translation
    senses = dict(d.translate("方便"))
    assert senses["conveni"] == 1.0 and senses["toilet"] < 0.5
    assert "wang" not in dict(d.translate("王"))  # surnames are no translation
    assert "qualifi" not in dict(d.translate("证书"))  # nor are explanations
    assert dict(d.translate("refund")) == {"退款": 1.0}


def test_near_synonyms_of_one_sense_share_its_rank():
    d = parse(["說 说 [shuo1] /to speak; to talk; to say/to explain; to comment/"])
    senses = dict(d.translate("说"))
    assert senses["speak"] == senses["talk"] == senses["say"] == 1.0
    assert senses["explain"] == senses["comment"] < 1.0


def test_the_packaged_dictionary_is_cc_cedict():
    d = cedict()
    assert ("refund", 1.0) in d.translate("退款")
    assert "printer" in dict(d.translate("打印机"))
    assert "退款" in dict(d.translate("refund"))
    assert "密码" in dict(d.translate("password"))


def test_the_lexicon_keeps_only_translations_into_the_index_vocabulary():
    lexicon = build_lexicon(Glossary(), ["refund", "printer", "打印机"], parse(LINES))
    assert lexicon.bridge.translate("退款") == (("refund", 1.0),)
    assert lexicon.bridge.translate("方便") == ()  # no sense of it is in this index
    assert lexicon.bridge.translate("printer") == (("打印机", 1.0),)
    assert Lexicon.from_dict(lexicon.to_dict()) == lexicon


def write(folder, name, title, body, lang):
    (folder / f"{name}.md").write_text(
        f"---\nid: {name}\ntitle: {title}\ntype: faq\nlang: {lang}\n---\n# {title}\n\n{body}\n",
        encoding="utf-8")


def small_kb(tmp_path, fake_embedder, dictionary):
    """A Chinese article with the query's own word, an English one with a noisy sense of it,
    an English one with its main sense; indexed, and searched with ``dictionary``."""
    kb = tmp_path / "articles"
    kb.mkdir(parents=True)
    write(kb, "zh-convenient", "自助服务方便快捷", "在线办理很方便，无需排队。", "zh")
    write(kb, "en-toilet", "Where is the toilet", "The toilet is on the second floor.", "en")
    write(kb, "en-refund", "Refund policy", "A refund takes five days.", "en")
    root = tmp_path / "index"
    build_index(kb, root, lambda: fake_embedder, "fake")
    index = load_index(root)
    lexicon = build_lexicon(Glossary(), index.lexical.vocabulary(), dictionary)
    index.lexicon = lexicon
    return Searcher(index, fake_embedder)


def test_a_noisy_sense_cannot_outrank_an_exact_match(tmp_path, fake_embedder):
    noisy = Dictionary({"方便": (("toilet", 1.0),)}, {})  # the worst case: noise as main sense
    searcher = small_kb(tmp_path, fake_embedder, noisy)
    tokens, _ = analyze("方便")
    expansions = searcher.expansions("方便", tokens)
    assert [a.text for e in expansions for a in e.alternatives] == ["toilet"]
    base = searcher.index.lexical.scores(tokens)
    other = searcher._article_lang[searcher.index.chunk_article] != "zh"
    scores = expanded_scores(searcher.index.lexical, base, expansions, None, other)
    exact = max(scores[r] for r, c in enumerate(searcher.index.chunks)
                if c.article_id == "zh-convenient")
    noise = max(scores[r] for r, c in enumerate(searcher.index.chunks)
                if c.article_id == "en-toilet")
    assert 0 < noise <= exact
    assert searcher.search("方便").hits[0].id == "zh-convenient"


def test_a_translation_finds_the_other_languages_article(tmp_path, fake_embedder):
    def refund_evidence(searcher: Searcher) -> float:
        tokens, _ = analyze("退款")
        scores = searcher.lexical(tokens, Filters(), expansions=searcher.expansions(
            "退款", tokens), lang="zh").scores
        return max(scores[r] for r, c in enumerate(searcher.index.chunks)
                   if c.article_id == "en-refund")

    searcher = small_kb(tmp_path, fake_embedder, parse(LINES))
    assert refund_evidence(searcher) > 0
    assert searcher.search("退款").hits[0].id == "en-refund"
    plain = small_kb(tmp_path / "none", fake_embedder, Dictionary({}, {}))
    assert refund_evidence(plain) == 0


def test_expansion_adds_nothing_to_a_query_without_translations():
    lexicon = Lexicon()
    tokens, _ = analyze("vpn 809")
    assert expand(lexicon, normalize("vpn 809"), tokens) == []
    base = np.array([1.0, 0.0], dtype=np.float32)
    assert expanded_scores(None, base, [], None) is base  # type: ignore[arg-type]


def article_scores(searcher: Searcher, scores: np.ndarray) -> dict[str, float]:
    """Each article's best chunk score."""
    best: dict[str, float] = {}
    for row, chunk in enumerate(searcher.index.chunks):
        best[chunk.article_id] = max(best.get(chunk.article_id, 0.0), float(scores[row]))
    return best


def generic_kb(tmp_path, fake_embedder) -> Searcher:
    """Chinese articles, two of five on 客户 (a common word), and one English refund article."""
    kb = tmp_path / "articles"
    kb.mkdir(parents=True)
    for n, topic in enumerate(["营业时间", "联系方式", "会员等级", "发票抬头", "收货地址"]):
        who = "客户" if n < 2 else "用户"
        write(kb, f"zh-{n}", f"{who}{topic}", f"{who}可以在工作日查询{topic}。", "zh")
    write(kb, "en-refund", "Refund policy", "A refund takes five days.", "en")
    root = tmp_path / "index"
    build_index(kb, root, lambda: fake_embedder, "fake")
    index = load_index(root)
    index.lexicon = build_lexicon(Glossary(), index.lexical.vocabulary(),
                                  Dictionary({"退款": (("refund", 1.0),)}, {}))
    return Searcher(index, fake_embedder)


def test_a_translation_carries_the_weight_of_the_term_in_the_query(tmp_path, fake_embedder):
    """客户退款: the English article holds the translation of the query's specific term, the
    Chinese ones only its common word. A Chinese word counts in BM25 as itself and its bigram,
    a translation once; rescaled to the term's weight in the query, the translation wins."""
    searcher = generic_kb(tmp_path, fake_embedder)
    tokens, _ = analyze("客户退款")
    scores = searcher.lexical(tokens, Filters(), expansions=searcher.expansions(
        "客户退款", tokens), lang="zh").scores
    best = article_scores(searcher, scores)
    assert best["en-refund"] > max(v for a, v in best.items() if a.startswith("zh-"))
    # the translation's own BM25, as it was added before, is below the common word's
    raw = article_scores(searcher, searcher.index.lexical.term_scores("refund"))["en-refund"]
    assert raw < best["zh-0"]
    assert searcher.search("客户退款").hits[0].id == "en-refund"


def test_a_dictionary_sense_weighs_below_the_term_in_its_best_chunk(tmp_path, fake_embedder):
    searcher = small_kb(tmp_path, fake_embedder, Dictionary({"方便": (("toilet", 1.0),)}, {}))
    lexical = searcher.index.lexical
    tokens, _ = analyze("方便")
    (expansion,) = searcher.expansions("方便", tokens)
    other = searcher._article_lang[searcher.index.chunk_article] != "zh"
    added = expanded_scores(lexical, np.zeros(lexical.size, dtype=np.float32), [expansion], None,
                            other)
    own = np.sum([lexical.term_scores(t) for t in expansion.weighed], axis=0)
    assert 0 < added.max() <= CROSS_BRIDGE_WEIGHT * own.max() * (1 + 1e-6) < own.max()


def test_terms_nested_in_one_another_count_once_in_the_other_language(tmp_path,
                                                                      fake_embedder):
    """账号 and 注销账号 are one stretch of the query: an English chunk with "account" is evidence
    for it once, by the better of the two, not once for each."""
    searcher = small_kb(tmp_path, fake_embedder, Dictionary({}, {}))
    lexical = searcher.index.lexical
    other = searcher._article_lang[searcher.index.chunk_article] != "zh"
    zero = np.zeros(lexical.size, dtype=np.float32)
    word = Expansion(("账号",), "账号", (Alternative(("refund",), 0.7, "refund", 1.0),),
                     ("账号", "账号"))
    phrase = Expansion(("注销", "账号"), "注销账号",
                       (Alternative(("refund", "polici"), 0.7, "refund policy", 1.0),),
                       ("注销", "账号", "注销", "销账", "账号"))
    apart = [expanded_scores(lexical, zero, [e], None, other) for e in (word, phrase)]
    together = expanded_scores(lexical, zero, [word, phrase], None, other)
    assert together.max() > 0
    np.testing.assert_allclose(together, np.maximum(*apart), rtol=1e-6)


def test_a_repeated_term_carries_its_weight_once_in_the_other_language(tmp_path, fake_embedder):
    """A ticket that says 退款 three times is no more about the English refund article than one
    that says it once: its translation is evidence for the term, not for each repetition."""
    searcher = generic_kb(tmp_path, fake_embedder)

    def refund_article(query: str) -> float:
        tokens, _ = analyze(query)
        scores = searcher.lexical(tokens, Filters(), expansions=searcher.expansions(
            query, tokens), lang="zh").scores
        return article_scores(searcher, scores)["en-refund"]

    once = refund_article("客户退款")
    assert once > 0
    assert refund_article("客户退款 退款 退款") == pytest.approx(once)
