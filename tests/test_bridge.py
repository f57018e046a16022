"""The CC-CEDICT bridge: parsing, the packaged dictionary, and weights that keep noise down."""

from __future__ import annotations

import numpy as np

from kb.bridge import Dictionary, cedict, parse
from kb.build import build_index
from kb.expansion import Lexicon, build_lexicon, expand, expanded_scores
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
        scores, _, _ = searcher.lexical(tokens, Filters(),
                                        expansions=searcher.expansions("退款", tokens), lang="zh")
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
