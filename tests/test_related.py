""""Related documents" sections are links between articles, not content; the section shown is
the one that holds the query's specific terms."""

from __future__ import annotations

import pytest

from kb.articles import is_related_heading, load_articles
from kb.build import build_index
from kb.chunking import chunk_article
from kb.evaluation import read_queries
from kb.search import Searcher
from kb.store import load_index
from tests.conftest import GOLDEN, ROOT


def write(folder, name, title, body, lang="zh"):
    (folder / f"{name}.md").write_text(
        f"---\nid: {name}\ntitle: {title}\ntype: faq\nlang: {lang}\n---\n# {title}\n\n{body}\n",
        encoding="utf-8")


@pytest.fixture
def linked(tmp_path):
    kb = tmp_path / "articles"
    kb.mkdir()
    write(kb, "vpn-slow", "VPN 連線後網路很慢", "## 處理方法\n\n1. 改用有線網路\n2. 關閉影音串流\n")
    write(kb, "vpn-809", "VPN error 809", "## Steps\n\n1. Use GlobalProtect.\n2. Try a hotspot.\n\n"
          "## Related documents\n\n- vpn 連線後網路很慢\n- Printer setup (printer-setup)\n"
          "- Something not in this knowledge base\n", "en")
    write(kb, "printer-setup", "打印机安装", "## 步骤\n\n安装驱动。\n\n## 相關文件\n\n"
          "- VPN error 809（vpn-809）\n\n## 另见\n\n- [慢](vpn-slow.md)\n- [809](../x/vpn-809.md#steps)\n")
    return kb


def test_related_sections_become_links_resolved_by_id_or_title(linked):
    articles = {a.id: a for a in load_articles(linked)}
    assert articles["vpn-809"].related == [
        {"title": "VPN 連線後網路很慢", "id": "vpn-slow"},  # by title, folded
        {"title": "打印机安装", "id": "printer-setup"},  # by the id in parentheses
        {"title": "Something not in this knowledge base", "id": None},
    ]
    # A section that is nothing but links counts too, whatever its heading; links dedupe.
    assert articles["printer-setup"].related == [{"title": "VPN error 809", "id": "vpn-809"},
                                                 {"title": "VPN 連線後網路很慢", "id": "vpn-slow"}]
    assert articles["vpn-slow"].related == []


def test_related_sections_are_never_chunks_nor_evidence(linked, tmp_path, fake_embedder):
    for article in load_articles(linked):
        sections = {c.section for c in chunk_article(article)}
        assert not any(is_related_heading(s) for s in sections), sections
        assert "另见" not in sections
    root = tmp_path / "index"
    build_index(linked, root, lambda: fake_embedder, "fake")
    index = load_index(root)
    assert index.articles["vpn-809"]["related"][0]["id"] == "vpn-slow"  # in the record
    # "Printer setup" is written only in vpn-809's related list: no evidence for vpn-809.
    outcome = Searcher(index, fake_embedder).search("Something not in this knowledge base")
    assert all(h.id != "vpn-809" or h.score == 0 for h in outcome.hits)


def test_a_list_of_steps_is_content():
    from kb.articles import parse_sections

    sections = parse_sections("## Steps\n\n- open the app\n- [the portal](https://x.y)\n", "T", 1)
    assert sections[0].links is None


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from tests.conftest import FakeEmbedder

    embedder = FakeEmbedder()
    root = tmp_path_factory.mktemp("sample")
    build_index(ROOT / "articles", root, lambda: embedder, "fake")
    return Searcher(load_index(root), embedder)


def test_no_top5_result_of_the_golden_sets_is_shown_by_a_related_section(sample):
    shown = 0
    for queries, qrels in (("queries.jsonl", "qrels.tsv"),
                           ("crosslang.jsonl", "crosslang-qrels.tsv")):
        for q in read_queries(GOLDEN / queries, GOLDEN / qrels):
            for hit in sample.search(q.query, k=5).hits:
                shown += 1
                assert not is_related_heading(hit.section.split(" > ")[-1]), (q.query, hit)
    assert shown > 1000


def test_the_section_shown_holds_the_querys_error_code(sample):
    hit = sample.search("outlok 0x8004010F").hits[0]
    assert hit.id == "it-outlook-send-receive-errors"
    assert hit.section.startswith("0x8004010F") and hit.anchor.startswith("0x8004010f")
    hit = sample.search("outlook 0x800CCC0E").hits[0]
    assert hit.section.startswith("0x800CCC0E")
