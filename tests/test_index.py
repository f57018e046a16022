import json
import shutil

import pytest

from kb.errors import ArticleError, IndexMismatch, IndexNotFound
from kb.index import Builder, build_index, current_version, load_index, publish_calibration
from kb.ranking import Calibration


def build(articles, root, embedder, **kw):
    return build_index(articles, root, lambda: embedder, embedder.name, **kw)


def test_build_publishes_a_self_describing_version(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    report = build(kb_copy, root, fake_embedder)
    assert report.published and report.articles == 8
    assert report.embedded == report.chunks > report.articles and report.reused == 0
    index = load_index(root, model="fake")
    assert index.version == report.version == current_version(root)
    manifest = index.manifest
    assert manifest["model"] == "fake" and manifest["dim"] == fake_embedder.dim
    assert manifest["chunks"] == len(index.chunks) == index.vectors.size == index.lexical.size
    assert set(manifest["article_hashes"]) == set(index.articles)


def test_incremental_build_embeds_only_what_changed(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    first = build(kb_copy, root, fake_embedder)
    path = kb_copy / "wifi-8021x.md"
    path.write_text(path.read_text() + "\n## Note\n\nUse the guest network for visitors.\n")
    (kb_copy / "vpn-error-809.md").unlink()
    fake_embedder.texts = 0
    second = build(kb_copy, root, fake_embedder)
    assert second.version != first.version
    assert second.changed == ["wifi-8021x"] and second.removed == ["vpn-error-809"]
    assert second.embedded == 1 == fake_embedder.texts  # only the new section
    assert second.reused == second.chunks - 1
    index = load_index(root)
    assert "vpn-error-809" not in index.articles
    assert all(c.article_id != "vpn-error-809" for c in index.chunks)


def test_unchanged_articles_publish_nothing_and_load_no_model(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    first = build(kb_copy, root, fake_embedder)

    def no_model():
        raise AssertionError("the model must not be loaded when nothing needs embedding")

    again = build_index(kb_copy, root, no_model, "fake")
    assert not again.published and current_version(root) == first.version


def test_invalid_articles_leave_the_published_index_untouched(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    first = build(kb_copy, root, fake_embedder)
    before = sorted(p.name for p in (root / "versions").iterdir())
    (kb_copy / "broken.md").write_text("---\nid: wifi-8021x\ntitle: dup\ntype: faq\n---\nx\n")
    with pytest.raises(ArticleError) as err:
        build(kb_copy, root, fake_embedder)
    assert "duplicate id 'wifi-8021x'" in str(err.value)
    assert current_version(root) == first.version
    assert sorted(p.name for p in (root / "versions").iterdir()) == before


def test_loading_with_another_model_fails_clearly(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    with pytest.raises(IndexMismatch, match="built with model 'fake'"):
        load_index(root, model="all-MiniLM-L6-v2")


def test_a_model_change_rebuilds_every_vector(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    other = type(fake_embedder)()
    other.name = "fake-2"
    report = build_index(kb_copy, root, lambda: other, "fake-2")
    assert report.reused == 0 and report.embedded > 0
    assert load_index(root).manifest["model"] == "fake-2"


def test_no_index_yet(tmp_path):
    with pytest.raises(IndexNotFound, match="kb index"):
        load_index(tmp_path / "nothing")


def test_inconsistent_files_are_refused(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    version = root / "versions" / current_version(root)
    lines = (version / "chunks.jsonl").read_text().splitlines()
    (version / "chunks.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IndexMismatch, match="inconsistent"):
        load_index(root)


def test_old_versions_are_pruned(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    for n in range(4):
        (kb_copy / "extra.md").write_text(f"---\nid: extra\ntitle: E{n}\ntype: faq\n---\nText {n}\n")
        build(kb_copy, root, fake_embedder, keep_versions=2)
    assert len(list((root / "versions").iterdir())) == 2


def test_calibration_is_published_as_a_new_version_and_carried_forward(
    kb_copy, tmp_path, fake_embedder
):
    root = tmp_path / "index"
    first = build(kb_copy, root, fake_embedder)
    cal = Calibration(fusion={"en": {"dense": 0.7, "lexical": 0.3}}, answer_threshold=0.42)
    version = publish_calibration(root, cal)
    assert version != first.version
    assert load_index(root).calibration == cal
    # the old version's files are untouched (they were hard-linked, not rewritten)
    old = json.loads((root / "versions" / first.version / "calibration.json").read_text())
    assert old["answer_threshold"] != 0.42
    (kb_copy / "extra.md").write_text("---\nid: extra\ntitle: E\ntype: faq\n---\nText\n")
    build(kb_copy, root, fake_embedder)
    assert load_index(root).calibration == cal


def test_empty_knowledge_base(tmp_path, fake_embedder):
    articles = tmp_path / "empty"
    articles.mkdir()
    report = build(articles, tmp_path / "index", fake_embedder)
    assert report.articles == 0 and load_index(tmp_path / "index").chunks == []


def test_interrupted_build_leaves_no_half_version(kb_copy, tmp_path, fake_embedder, monkeypatch):
    root = tmp_path / "index"
    first = build(kb_copy, root, fake_embedder)
    shutil.copy(kb_copy / "wifi-8021x.md", kb_copy / "wifi-copy.md")
    (kb_copy / "wifi-copy.md").write_text(
        (kb_copy / "wifi-copy.md").read_text().replace("id: wifi-8021x", "id: wifi-copy"))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("kb.index.LexicalIndex.save", boom)
    with pytest.raises(OSError):
        build(kb_copy, root, fake_embedder)
    assert current_version(root) == first.version
    assert [p.name for p in (root / "versions").iterdir()] == [first.version]


def test_rebuild_parses_and_tokenizes_only_what_changed(kb_copy, tmp_path, fake_embedder, monkeypatch):
    import kb.articles
    import kb.index

    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    first = load_index(root)
    parsed, tokenized = [], []
    real_parse, real_tokenize = kb.articles.parse_article, kb.index.tokenize
    monkeypatch.setattr(kb.articles, "parse_article",
                        lambda path, display=None: parsed.append(path.name) or real_parse(path, display))
    monkeypatch.setattr(kb.index, "tokenize", lambda text: tokenized.append(text) or real_tokenize(text))
    path = kb_copy / "wifi-8021x.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nZebracorn certificate.\n", encoding="utf-8")
    assert build(kb_copy, root, fake_embedder).changed == ["wifi-8021x"]
    assert parsed == ["wifi-8021x.md"]
    assert tokenized and all("wifi" in t.casefold() or "Wi-Fi" in t for t in tokenized)
    second = load_index(root)
    # Reused tokens give the same BM25 index a fresh build would.
    assert second.lexical.scores(["zebracorn"]).argmax() in {
        i for i, c in enumerate(second.chunks) if c.article_id == "wifi-8021x"}
    assert len(second.chunks) == len(first.chunks)
    shutil.rmtree(root)
    build(kb_copy, root, fake_embedder)
    fresh = load_index(root)
    probe = ["vpn", "809", "退款", "打印机"]
    assert (fresh.lexical.scores(probe) == second.lexical.scores(probe)).all()


def test_a_corrupt_parse_cache_is_ignored(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    (root / "parsed-articles.pickle").write_bytes(b"not a pickle")
    (kb_copy / "extra.md").write_text("---\nid: extra\ntitle: Extra\ntype: faq\n---\nText\n")
    assert build(kb_copy, root, fake_embedder).added == ["extra"]


def _files(root):
    version = root / "versions" / current_version(root)
    names = ["chunks.jsonl", "articles.json", "calibration.json", "lexical/tokens.txt"]
    return {n: (version / n).read_text(encoding="utf-8") for n in names}


def test_a_builder_that_lives_on_builds_what_a_fresh_one_would(kb_copy, tmp_path, fake_embedder,
                                                               monkeypatch):
    import kb.index

    kept, fresh = tmp_path / "kept", tmp_path / "fresh"
    builder = Builder(kept, fake_embedder.name)
    builder.build(kb_copy, lambda: fake_embedder)
    builder.tidy()
    path = kb_copy / "wifi-8021x.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nZebracorn certificate.\n",
                    encoding="utf-8")
    (kb_copy / "vpn-error-809.md").unlink()

    def no_reading(*args, **kwargs):
        raise AssertionError("the previous version was read back from disk")

    monkeypatch.setattr(kb.index, "_previous", no_reading)
    monkeypatch.setattr(kb.index, "_read_parse_cache", no_reading)
    built = builder.build(kb_copy, lambda: fake_embedder)
    monkeypatch.undo()
    assert built.report.changed == ["wifi-8021x"] and built.report.removed == ["vpn-error-809"]
    # Also the other way to build: BM25 after the model, not beside it.
    monkeypatch.setattr(kb.index, "OVERLAP_TEXTS", 0)
    build(kb_copy, fresh, fake_embedder)
    monkeypatch.undo()
    assert _files(kept) == _files(fresh)
    assert (load_index(kept).lexical.scores(["wifi"]) == load_index(fresh).lexical.scores(["wifi"])).all()

    # What the build hands over is what load_index would read from disk.
    loaded = load_index(kept)
    index = built.index
    assert (index.version, index.path, index.manifest) == (loaded.version, loaded.path,
                                                           loaded.manifest)
    assert index.articles == loaded.articles and index.chunks == loaded.chunks
    assert index.calibration == loaded.calibration
    assert (index.vectors.reconstruct_all() == loaded.vectors.reconstruct_all()).all()
    probe = ["zebracorn", "vpn", "退款", "打印机"]
    assert (index.lexical.scores(probe) == loaded.lexical.scores(probe)).all()
    # A token only the removed article held matches nothing, though the vocabulary kept it.
    assert not index.lexical.scores(["809"]).any()


def test_a_builder_that_lives_on_does_not_hoard_tokens(kb_copy, tmp_path, fake_embedder,
                                                       monkeypatch):
    monkeypatch.setattr("kb.index.UNUSED_TERMS", 0.02)
    builder = Builder(tmp_path / "index", fake_embedder.name)
    fresh = builder.build(kb_copy, lambda: fake_embedder).index.lexical.terms
    path = kb_copy / "wifi-8021x.md"
    original = path.read_text(encoding="utf-8")
    sizes = []
    for n in range(40):  # each edit leaves a word behind that no chunk holds any more
        path.write_text(original + f"\nZebracorn{n} certificate.\n", encoding="utf-8")
        lexical = builder.build(kb_copy, lambda: fake_embedder).index.lexical
        assert lexical.scores([f"zebracorn{n}"]).any()
        assert n == 0 or not lexical.scores([f"zebracorn{n - 1}"]).any()
        sizes.append(lexical.terms)
    assert max(sizes) <= fresh * 1.02 + 2 and sizes.count(fresh + 1) > 1


def test_a_builder_reads_a_version_published_by_someone_else(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    builder = Builder(root, fake_embedder.name)
    builder.build(kb_copy, lambda: fake_embedder)
    one, two = kb_copy / "wifi-8021x.md", kb_copy / "printer-offline-hant.md"
    one.write_text(one.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    assert build(kb_copy, root, fake_embedder).changed == ["wifi-8021x"]  # another process
    two.write_text(two.read_text(encoding="utf-8") + "\n再加一行。\n", encoding="utf-8")
    # Measured against what is published now, not against what this builder last published.
    assert builder.build(kb_copy, lambda: fake_embedder).report.changed == ["printer-offline-hant"]


def test_build_progress_reports_every_text_and_changes_no_vector(kb_copy, tmp_path,
                                                                 fake_embedder, monkeypatch):
    monkeypatch.setattr("kb.index.EMBED_SLICE", 7)  # several slices from a small knowledge base
    steps = []
    build(kb_copy, tmp_path / "a", fake_embedder, progress=lambda done, total: steps.append(
        (done, total)))
    build(kb_copy, tmp_path / "b", fake_embedder)
    total = steps[0][1]
    assert steps[0] == (0, total) and steps[-1] == (total, total) and total > 14
    assert [d for d, _ in steps] == list(range(0, total, 7)) + [total]
    vectors = [load_index(tmp_path / n).vectors.reconstruct_all() for n in "ab"]
    assert (vectors[0] == vectors[1]).all()
