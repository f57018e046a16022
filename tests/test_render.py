"""Article rendering: the sections and anchors the index knows, markdown without raw HTML,
related documents linked, reply templates and FAQ answers as plain text to copy."""

from pathlib import Path

import pytest

from kb.articles import parse_article
from kb.render import Titles, plain_text, render_article
from tests.conftest import FIXTURE_KB, ROOT

WEB = Path(__file__).parent / "fixtures" / "web"
ALL = sorted([*ROOT.joinpath("articles").rglob("*.md"), *FIXTURE_KB.glob("*.md"), *WEB.glob("*.md")])


@pytest.fixture(scope="module")
def titles() -> Titles:
    records = {}
    for path in ALL:
        article, _ = parse_article(path)
        if article is not None:
            records[article.id] = {"title": article.title, "audience": article.audience}
    return Titles(records)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_sections_and_anchors_are_the_indexed_ones(path, titles):
    article, _ = parse_article(path)
    rendered = render_article(path, titles)
    assert [(tuple(s.heading_path), s.anchor) for s in rendered.sections] == [
        (s.heading_path, s.anchor) for s in article.sections]


def test_raw_html_in_an_article_is_text(titles):
    rendered = render_article(WEB / "web-hostile.md", titles)
    html = "".join(s.html for s in rendered.sections)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;window.__xss = 2&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert rendered.article.title.startswith('Quotes "double"')


def test_tables_lists_and_code(titles):
    rendered = render_article(WEB / "web-printer-toner.md", titles)
    steps = next(s for s in rendered.sections if s.anchor == "resolution-steps")
    assert "<ol>" in steps.html and "<pre><code>Menu &gt; Reports" in steps.html
    assert '<div class="table-wrap"><table>' in steps.html and "<td>CF259A</td>" in steps.html
    assert "1. Remove the cartridge" in steps.text and "M404n\tCF259A" in steps.text
    assert "<strong>toner low</strong>" in rendered.sections[0].html


def test_related_documents_link_to_articles(titles):
    rendered = render_article(WEB / "web-printer-toner.md", titles)
    related = next(s for s in rendered.sections if s.anchor == "related-documents")
    assert '<a href="/a/password-reset-en">How to reset your account password</a>' in related.html
    assert '<a href="/a/vpn-error-809">' in related.html
    assert ('<a href="/a/complaint-escalation-sop" class="internal">《客户投诉升级处理流程》</a>'
            in related.html)
    assert {r["id"] for r in rendered.related} == {
        "password-reset-en", "vpn-error-809", "complaint-escalation-sop"}


def test_a_public_reader_does_not_see_internal_articles_named(titles):
    rendered = render_article(WEB / "web-printer-toner.md", titles, public=True)
    text = "".join(s.html + s.text for s in rendered.sections)
    assert "客户投诉升级处理流程" not in text and "complaint-escalation-sop" not in text
    assert {r["id"] for r in rendered.related} == {"password-reset-en", "vpn-error-809"}
    # A 《mention》 inside running text is withheld, not dropped silently.
    zh = render_article(ROOT / "articles/refunds/rfd-refund-timeline-zh.md", titles, public=True)
    assert any('<a href="/a/rfd-bank-transfer-refund">' in s.html for s in zh.sections)


def test_reply_templates_and_faq_answers_are_copied_as_plain_text(titles):
    toner = render_article(WEB / "web-printer-toner.md", titles)
    kinds = {s.anchor: s.copy for s in toner.sections}
    assert kinds["reply-template"] == "reply" and kinds["symptom"] is None
    reply = next(s for s in toner.sections if s.copy == "reply")
    assert reply.text == ("Please remove the cartridge, pull off the orange tab and put it back "
                          "until it clicks.")
    faq = render_article(FIXTURE_KB / "password-reset-en.md", titles)
    assert [s.copy for s in faq.sections] == ["answer", None]
    assert faq.sections[0].text.startswith('Open the sign-in page, choose "Forgot password"')
    zh = render_article(ROOT / "articles/refunds/rfd-refund-timeline-zh.md", titles)
    assert [s.copy for s in zh.sections] == ["answer", None, "reply"]
    assert zh.sections[2].text.startswith("您的退款 299 元")  # without its quotation marks
    hant = render_article(FIXTURE_KB / "printer-offline-hant.md", titles)
    assert all(s.copy is None for s in hant.sections)  # a case without a reply template


def test_plain_text_of_nested_lists():
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse("1. one\n   - a\n   - b\n2. two\n\nafter\n")
    assert plain_text(tokens) == "1. one\n  - a\n  - b\n2. two\n\nafter"


def test_a_list_of_links_to_article_files_points_at_the_article_view(titles, tmp_path):
    page = tmp_path / "links.md"
    page.write_text("---\nid: links-en\ntitle: Printer links\ntype: faq\n---\n\n"
                    "Check the toner first.\n\n## Also read\n\n"
                    "- [Reset a password](../it/password-reset-en.md)\n"
                    "- [Escalation](../sop/complaint-escalation-sop.md)\n", encoding="utf-8")
    also = next(s for s in render_article(page, titles).sections if s.anchor == "also-read")
    assert '<a href="/a/password-reset-en">Reset a password</a>' in also.html
    assert '<a href="/a/complaint-escalation-sop" class="internal">Escalation</a>' in also.html
    public = render_article(page, titles, public=True)
    text = "".join(s.html + s.text for s in public.sections)
    assert "complaint-escalation-sop" not in text and "Escalation" not in text
    assert '<a href="/a/password-reset-en">' in text
