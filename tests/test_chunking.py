from kb.articles import Article, Section
from kb.chunking import chunk_article


def article(text: str, questions: list[str] | None = None) -> Article:
    return Article(id="a", title="Title", type="faq", path="a.md", lang="en",
                   questions=questions or [],
                   sections=[Section(("Title", "Steps"), "steps", text, 5)])


def test_one_chunk_per_short_section_with_context():
    chunk, title = chunk_article(article("Click reset."))
    assert title.kind == "title" and title.embed_text == "Title" and title.anchor == "steps"
    assert chunk.section == "Steps" and chunk.anchor == "steps"
    assert chunk.embed_text.startswith("Title > Steps")
    assert chunk.lexical_text.count("Title") == 3  # the title is boosted


def test_long_sections_split_at_line_breaks():
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(30))
    chunks = [c for c in chunk_article(article(text), max_chars=300) if c.kind == "section"]
    assert len(chunks) > 1
    assert all(len(c.text) <= 300 for c in chunks)
    assert "\n".join(c.text for c in chunks) == text
    assert {c.anchor for c in chunks} == {"steps"}


def test_a_line_of_a_few_chunks_stays_whole_as_writers_wrote_it():
    line = "word " * 600  # 3,000 characters: a long paragraph, as real answers have
    [chunk] = [c for c in chunk_article(article(line.strip()), max_chars=300) if c.kind == "section"]
    assert chunk.text == line.strip()


def test_a_line_far_longer_than_a_chunk_is_cut_into_chunks():
    # A pasted log on one line would otherwise be one chunk of megabytes.
    line = "".join(f"第{i}行日志内容。" if i % 3 else f"entry {i}, status ok" for i in range(5000))
    chunks = [c for c in chunk_article(article(line), max_chars=300) if c.kind == "section"]
    assert len(chunks) > len(line) // 300
    assert all(len(c.text) <= 300 for c in chunks)
    assert "".join(c.text for c in chunks).replace("\n", "").replace(" ", "") == line.replace(" ", "")
    unbroken = "x" * 7000  # nowhere to break: cut at the limit
    assert [len(c.text) for c in chunk_article(article(unbroken), max_chars=300)
            if c.kind == "section"] == [300] * 23 + [100]


def test_alternative_questions_are_chunks_pointing_at_the_answer():
    chunks = chunk_article(article("Click reset.", ["forgot password", "cannot log in"]))
    questions = [c for c in chunks if c.kind == "question"]
    assert [c.embed_text for c in questions] == ["forgot password", "cannot log in"]
    assert all(c.anchor == "steps" and c.text == "Click reset." for c in questions)


def test_a_title_only_article_is_one_chunk():
    bare = Article(id="t", title="花呗怎么还款", type="faq", path="t.md", lang="zh",
                   sections=[Section(("花呗怎么还款",), "花呗怎么还款", "", 5)])
    [chunk] = chunk_article(bare)
    assert chunk.kind == "section" and chunk.embed_text == "花呗怎么还款"


def test_hash_changes_with_content_only():
    a = chunk_article(article("Click reset."))[0]
    b = chunk_article(article("Click reset."))[0]
    c = chunk_article(article("Click reset now."))[0]
    assert a.hash == b.hash != c.hash
