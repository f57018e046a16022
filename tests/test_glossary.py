"""The writers' glossary: validation with path:line, publication with the index, expansion."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kb.build import build_index
from kb.cli import app
from kb.errors import ArticleError
from kb.expansion import GLOSSARY_WEIGHT, Lexicon, expand
from kb.glossary import load_glossary
from kb.search import Searcher
from kb.store import load_index
from kb.text import analyze, normalize
from tests.conftest import ROOT


def write(folder, text):
    (folder / "glossary.yml").write_text(text, encoding="utf-8")


def problems(folder) -> list[str]:
    with pytest.raises(ArticleError) as caught:
        load_glossary(folder, "articles")
    return [str(p) for p in caught.value.problems]


def test_a_glossary_folds_its_terms_as_queries_are(tmp_path):
    write(tmp_path, "# refunds\n- [退款, 退錢, Refund, money back]\n- [VPN, 虚拟专用网]\n")
    glossary = load_glossary(tmp_path)
    assert glossary.to_list() == [["退款", "退钱", "refund", "money back"], ["vpn", "虚拟专用网"]]
    assert load_glossary(tmp_path / "missing").groups == ()


def test_mistakes_are_reported_with_their_lines(tmp_path):
    write(tmp_path, "- [退款, refund]\n- [alone]\n- just a string\n- [打印机, 印表機]\n"
                    "- [退款, 退钱]\n- [的, ok]\n")
    assert problems(tmp_path) == [
        "articles/glossary.yml:2: a group needs at least two equivalent terms",
        "articles/glossary.yml:3: a group must be a list of terms, e.g. [退款, 退钱, refund]",
        "articles/glossary.yml:4: term '印表機' is already listed as '打印机', once folded (line 4);"
        " a term belongs to one group",
        "articles/glossary.yml:5: term '退款' is already listed (line 1); a term belongs to one "
        "group",
        "articles/glossary.yml:6: term '的' has no searchable words (only stop words or "
        "punctuation)",
    ]


def test_bad_yaml_and_a_wrong_shape_name_the_line(tmp_path):
    # An unclosed bracket is reported on its own line, not on the line after, where YAML noticed.
    write(tmp_path, "- [退款, refund]\n- [unclosed\n")
    assert problems(tmp_path)[0].startswith("articles/glossary.yml:2: invalid YAML")
    write(tmp_path, "- [退款, refund]\n- [信用卡, credit card\n- [VPN, 虚拟专用网]\n")
    assert problems(tmp_path) == ["articles/glossary.yml:2: invalid YAML: while parsing a flow "
                                  "sequence: did not find expected ',' or ']' (line 3)"]
    write(tmp_path, "refund: 退款\n")
    assert problems(tmp_path) == ["articles/glossary.yml:1: the glossary must be a list of "
                                  "groups, each a list of equivalent terms, e.g. - [退款, 退钱, "
                                  "refund]"]


def test_a_byte_order_mark_is_accepted_and_other_encodings_named_by_line(tmp_path):
    (tmp_path / "glossary.yml").write_bytes(b"\xef\xbb\xbf- [refund, money back]\n")
    assert load_glossary(tmp_path).to_list() == [["refund", "money back"]]
    (tmp_path / "glossary.yml").write_bytes("- [refund, money back]\n- [退款, 退钱]\n".encode("gbk"))
    assert problems(tmp_path) == ["articles/glossary.yml:2: not UTF-8: save the file as UTF-8"]


def test_kb_index_refuses_a_broken_glossary_and_publishes_nothing(kb_copy, tmp_path,
                                                                 monkeypatch):
    write(kb_copy, "- [退款]\n")
    monkeypatch.setenv("KB_ARTICLES", str(kb_copy))
    monkeypatch.setenv("KB_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("KB_MODEL", "fake")
    result = CliRunner().invoke(app, ["index", "--local"])
    assert result.exit_code == 2
    assert f"{kb_copy}/glossary.yml:1: a group needs at least two equivalent terms" in result.output
    # The summary names the file: the glossary is no article.
    assert result.output.splitlines()[-1] == (f"error: 1 problem(s) in {kb_copy}/glossary.yml; "
                                              "nothing was published")
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_the_glossary_is_published_with_the_index_and_a_change_publishes(kb_copy, tmp_path,
                                                                        fake_embedder):
    root = tmp_path / "index"
    build_index(kb_copy, root, lambda: fake_embedder, "fake")
    assert load_index(root).lexicon.glossary.groups == ()
    write(kb_copy, "- [食堂, canteen]\n")
    fake_embedder.texts = 0
    report = build_index(kb_copy, root, lambda: fake_embedder, "fake").report
    assert report.published and fake_embedder.texts == 0  # nothing to embed again
    assert load_index(root).lexicon.glossary.to_list() == [["食堂", "canteen"]]
    again = build_index(kb_copy, root, lambda: fake_embedder, "fake").report
    assert not again.published


def test_a_glossary_term_finds_the_article_that_uses_its_equivalent(kb_copy, tmp_path,
                                                                   fake_embedder):
    """Team jargon no article uses ("corpnet") finds the article on its equivalent."""
    root = tmp_path / "index"
    query = "corpnet keeps saying access denied"
    build_index(kb_copy, root, lambda: fake_embedder, "fake")
    assert Searcher(load_index(root), fake_embedder).search(query).hits[0].id != "wifi-8021x"
    write(kb_copy, "- [corpnet, corp-secure]\n")
    build_index(kb_copy, root, lambda: fake_embedder, "fake")
    assert Searcher(load_index(root), fake_embedder).search(query).hits[0].id == "wifi-8021x"


def test_equivalents_weigh_less_than_the_term_itself():
    lexicon = Lexicon.from_dict({"glossary": [["退款", "refund"]]})
    tokens, _ = analyze("退款多久")
    (expansion,) = expand(lexicon, normalize("退款多久"), tokens)
    assert expansion.text == "退款"
    (alt,) = expansion.alternatives
    assert alt.tokens == ("refund",) and alt.weight == GLOSSARY_WEIGHT < 1.0


def test_the_sample_glossary_is_valid():
    glossary = load_glossary(ROOT / "articles")
    assert len(glossary.groups) >= 50
    assert any({"退款", "refund"} <= {t.text for t in g} for g in glossary.groups)


def test_a_one_character_term_is_named_only_as_a_word_of_its_own():
    """件 (a parcel) inside 邮件 (e-mail) is another morpheme; 少了件 names it."""
    lexicon = Lexicon.from_dict({"glossary": [["件", "parcel"]]})
    for query, named in (("收不到邮件", False), ("快递少了件", True)):
        tokens, _ = analyze(query)
        assert bool(expand(lexicon, normalize(query), tokens)) is named, query
