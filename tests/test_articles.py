import os
import time
from pathlib import Path

import pytest

from kb.articles import load_articles, parse_article, slugify
from kb.errors import ArticleError

from .conftest import FIXTURE_KB

ARTICLE = "---\nid: {0}\ntitle: {0}\ntype: faq\n---\nText\n"


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sections_keep_heading_path_and_anchor():
    article, problems = parse_article(FIXTURE_KB / "printer-offline-hant.md")
    assert problems == [] and article is not None
    assert [s.heading_path[-1] for s in article.sections] == ["症狀", "原因", "解決步驟", "相關文件"]
    steps = article.sections[2]
    assert steps.heading_path == ("印表機顯示離線無法列印", "解決步驟")
    assert steps.anchor == "解決步驟"
    assert "連接埠" in steps.text
    assert article.lang == "zh" and article.audience == "public"


def test_faq_questions_and_dates(tmp_path):
    article, _ = parse_article(FIXTURE_KB / "refund-timeline-zh.md")
    assert article.questions == ["钱什么时候退回来", "退款一直没收到怎么办"]
    assert article.updated == "2026-09-01" and article.review_by == "2027-03-01"


def test_lang_detected_when_absent(tmp_path):
    path = write(tmp_path, "a.md", "---\nid: a\ntitle: Reset\ntype: faq\n---\n# Reset\n\nClick reset.\n")
    article, _ = parse_article(path)
    assert article.lang == "en"


def test_title_only_article_is_one_section(tmp_path):
    path = write(tmp_path, "t.md", "---\nid: t\ntitle: 花呗怎么还款\ntype: faq\n---\n# 花呗怎么还款\n")
    article, problems = parse_article(path)
    assert problems == [] and len(article.sections) == 1


def test_duplicate_headings_get_distinct_anchors(tmp_path):
    path = write(tmp_path, "d.md", "---\nid: d\ntitle: D\ntype: sop\n---\n# D\n## Steps\nx\n## Steps\ny\n")
    article, _ = parse_article(path)
    assert [s.anchor for s in article.sections] == ["steps", "steps-1"]


def test_slugify_keeps_cjk():
    assert slugify("处理 步骤（一）") == "处理-步骤一"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        # An unclosed bracket or quote is reported where it opens, not where YAML notices.
        ("---\nid: x\ntitle: [unclosed\ntype: faq\n---\nbody\n", 3, "invalid YAML"),
        ("---\nid: x\ntitle: \"unclosed\ntype: faq\ntags: [a]\n---\nbody\n", 3,
         "while scanning a quoted scalar: found unexpected end of stream (line 6)"),
        ("---\nid: x\n  title: T\n---\nbody\n", 3, "invalid YAML"),
        ("---\ntitle: T\ntype: faq\n---\nbody\n", 1, "missing required 'id'"),
        ("---\nid: x\ntype: faq\n---\nbody\n", 1, "missing required 'title'"),
        ("---\nid: x\ntitle: T\ntype: blog\n---\nbody\n", 4, "unknown type 'blog'"),
        ("---\nid: x\ntitle: T\ntype: faq\nupdated: someday\n---\nb\n", 5,
         "updated: someday is not a date (YYYY-MM-DD)"),
        ("---\nid: x\ntitle: T\ntype: faq\nupdated: 2026-13-45\n---\nb\n", 5,
         "updated: 2026-13-45 is not a date (YYYY-MM-DD)"),
        ("---\nid: x\ntitle: T\ntype: faq\n\nreview_by: 2026-02-30\n---\nb\n", 6,
         "review_by: 2026-02-30 is not a date (YYYY-MM-DD)"),
        ("---\nid: x\ntitle: T\ntype: case\ntype: faq\n---\nb\n", 5,
         "invalid YAML front matter: duplicate key 'type' (first set on line 4)"),
        ("---\nid: x\ntitle: T\ntype: faq\ntags:\n  - a\nquestions: [q]\ntags: [b]\n---\nb\n", 8,
         "duplicate key 'tags' (first set on line 5)"),
        ("---\nid: !!int abc\ntitle: T\ntype: faq\n---\nb\n", 2,
         "invalid YAML front matter: cannot read 'abc' as !!int"),
        ("---\nid: x\ntitle: T\x07\ntype: faq\n---\nb\n", 3, "unacceptable character #x0007"),
        ("---\nid: x\ntitle: T\ntype: faq\ntpye: faq\n---\nb\n", 5, "unknown front matter key"),
        ("no front matter\n", 1, "missing YAML front matter"),
        ("---\nid: x\ntitle: T\ntype: faq\n# T\n\nText\n", 1,
         "front matter not closed: no '---' line after line 1"),
        ("", 1, "file is empty"),
        ("\n  \n", 1, "file is empty"),
    ],
)
def test_invalid_article_reports_path_and_line(tmp_path, text, line, fragment):
    path = write(tmp_path, "bad.md", text)
    article, problems = parse_article(path)
    assert article is None
    assert problems[0].line == line, problems
    assert fragment in problems[0].message
    assert str(problems[0]).startswith(f"{path}:{line}: ")


def test_a_byte_order_mark_before_the_front_matter_is_accepted(tmp_path):
    text = "---\nid: bom\ntitle: T\ntype: faq\n---\n# T\n\n## Steps\n\nClick.\n"
    plain, _ = parse_article(write(tmp_path, "plain.md", text))
    path = tmp_path / "bom.md"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    article, problems = parse_article(path, str(tmp_path / "plain.md"))
    assert problems == [] and article == plain


def test_a_file_not_in_utf8_names_the_line_of_its_first_bad_byte(tmp_path):
    path = tmp_path / "gbk.md"
    path.write_bytes("---\nid: g\ntitle: T\ntype: faq\n---\n# T\n\n打印机离线\n".encode("gbk"))
    article, problems = parse_article(path)
    assert article is None
    assert [str(p) for p in problems] == [f"{path}:8: not UTF-8: save the file as UTF-8"]


def test_an_article_over_the_size_limit_is_refused_even_when_cached(tmp_path):
    write(tmp_path, "a.md", ARTICLE.format("a"))
    write(tmp_path, "big.md", ARTICLE.format("big") + "x" * 250_000 + "\n")
    cache: dict = {}
    assert len(load_articles(tmp_path, cache, max_bytes=300_000)) == 2
    for limit in (200_000, 250_001):  # the limit is checked on a cached file too
        with pytest.raises(ArticleError) as err:
            load_articles(tmp_path, cache, max_bytes=limit)
        assert [str(p) for p in err.value.problems] == [
            f"{tmp_path}/big.md:1: article is 0.3 MB, over the limit of {limit // 100_000 / 10:g}"
            " MB (KB_MAX_ARTICLE_BYTES)"]


def test_load_lists_every_problem_including_duplicates(tmp_path):
    write(tmp_path, "a.md", "---\nid: same\ntitle: A\ntype: faq\n---\nA\n")
    write(tmp_path, "b.md", "---\ntitle: B\n\nid: same\ntype: faq\n---\nB\n")
    write(tmp_path, "c.md", "---\nid: c\ntitle: C\ntype: manual\n---\nC\n")
    with pytest.raises(ArticleError) as err:
        load_articles(tmp_path)
    messages = [str(p) for p in err.value.problems]
    assert len(messages) == 2
    assert any("b.md:4: duplicate id 'same'" in m for m in messages)
    assert any("c.md:4: unknown type 'manual'" in m for m in messages)


def test_readme_files_are_not_articles(tmp_path):
    write(tmp_path, "README.md", "# How to write articles\n")
    write(tmp_path, "a.md", "---\nid: a\ntitle: A\ntype: faq\n---\nA\n")
    assert [a.id for a in load_articles(tmp_path)] == ["a"]


def test_hidden_folders_are_skipped_but_a_dotted_root_path_is_not(tmp_path, monkeypatch):
    (tmp_path / "kb" / ".git").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    write(tmp_path / "kb", "a.md", "---\nid: a\ntitle: A\ntype: faq\n---\nA\n")
    write(tmp_path / "kb" / ".git", "b.md", "---\nid: b\ntitle: B\ntype: faq\n---\nB\n")
    monkeypatch.chdir(tmp_path / "work")
    assert [a.id for a in load_articles(Path("../kb"))] == ["a"]


def test_articles_load_in_path_order_folder_by_folder(tmp_path):
    # Folder contents sort by path component ("guides/z.md" before "guides-old.md"), so the
    # first of two duplicates, and the index's row order, do not depend on punctuation.
    (tmp_path / "guides").mkdir()
    write(tmp_path / "guides", "z.md", "---\nid: z\ntitle: Z\ntype: faq\n---\nZ\n")
    write(tmp_path, "guides-old.md", "---\nid: old\ntitle: Old\ntype: faq\n---\nOld\n")
    write(tmp_path, "a.md", "---\nid: a\ntitle: A\ntype: faq\n---\nA\n")
    assert [a.id for a in load_articles(tmp_path)] == ["a", "z", "old"]


def test_parse_cache_trusts_an_unchanged_stat_and_rereads_anything_else(tmp_path, monkeypatch):
    import kb.articles

    old = write(tmp_path, "old.md", ARTICLE.format("Old"))
    new = write(tmp_path, "new.md", ARTICLE.format("New"))
    past = time.time_ns() - 60 * 10**9
    os.utime(old, ns=(past, past))
    cache: dict = {}
    load_articles(tmp_path, cache)
    first = dict(cache)
    parsed: list[str] = []
    real = kb.articles.parse_article
    monkeypatch.setattr(kb.articles, "parse_article",
                        lambda path, display=None: parsed.append(path.name) or real(path, display))

    assert [a.title for a in load_articles(tmp_path, cache)] == ["New", "Old"]
    assert parsed == []
    assert cache[str(old)] is first[str(old)]  # written long ago: trusted without reading
    # Written just now: hashed again (a same-size edit in the same clock tick keeps its stat),
    # found unchanged, not parsed again.
    assert cache[str(new)] is not first[str(new)]
    assert cache[str(new)].article is first[str(new)].article

    # Same size, modification time put back: the change time still gives the edit away.
    old.write_text(ARTICLE.format("Odd"), encoding="utf-8")
    os.utime(old, ns=(past, past))
    assert [a.title for a in load_articles(tmp_path, cache)] == ["New", "Odd"]
    assert parsed == ["old.md"]


def test_files_are_cached_by_where_they_are_and_named_as_shown(tmp_path, monkeypatch):
    import kb.articles

    folder = tmp_path / "articles"
    folder.mkdir()
    write(folder, "a.md", ARTICLE.format("a"))
    monkeypatch.chdir(tmp_path)
    cache: dict = {}
    assert [a.path for a in load_articles(Path("articles"), cache)] == ["articles/a.md"]
    assert list(cache) == [str(folder / "a.md")]
    parsed: list[str] = []
    real = kb.articles.parse_article
    monkeypatch.setattr(kb.articles, "parse_article",
                        lambda path, display=None: parsed.append(path.name) or real(path, display))
    # The same files built for a command run elsewhere: found in the cache, named as it names them.
    elsewhere = load_articles(folder, cache, shown_as="../kb/articles")
    assert [a.path for a in elsewhere] == ["../kb/articles/a.md"] and parsed == []
    write(folder, "bad.md", "no front matter\n")
    with pytest.raises(ArticleError) as err:
        load_articles(folder, cache, shown_as="../kb/articles")
    assert str(err.value.problems[0]).startswith("../kb/articles/bad.md:1:")
