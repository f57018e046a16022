"""Building versions: what is embedded, tokenized and parsed again, and what is reused."""

import json
import logging

import pytest

import kb.build
import kb.store
from kb.build import build_index
from kb.errors import ArticleError
from kb.ranking import Calibration
from kb.store import current_version, load_index, publish_calibration, read_status


def build(articles, root, embedder, **kw):
    return build_index(articles, root, lambda: embedder, embedder.name, **kw).report


def chunk_count(root):
    return len(load_index(root).chunks)


def test_build_publishes_a_self_describing_version(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    report = build(kb_copy, root, fake_embedder)
    index = load_index(root, model="fake")
    assert report.published and report.articles == len(list(kb_copy.glob("*.md")))
    assert report.embedded == report.chunks == len(index.chunks) and report.reused == 0
    assert index.version == report.version == current_version(root)
    manifest = index.manifest
    assert manifest["model"] == "fake" and manifest["dim"] == fake_embedder.dim
    assert manifest["chunks"] == len(index.chunks) == index.vectors.size == index.lexical.size
    assert set(manifest["article_hashes"]) == set(index.articles)
    assert manifest["fingerprint"] == kb.store.fingerprint("fake", 600)


def test_incremental_build_embeds_only_what_changed(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    first = build(kb_copy, root, fake_embedder)
    before = {c.id: c for c in load_index(root).chunks if c.article_id == "wifi-8021x"}
    path = kb_copy / "wifi-8021x.md"
    path.write_text(path.read_text() + "\n## Note\n\nUse the guest network for visitors.\n")
    (kb_copy / "vpn-error-809.md").unlink()
    fake_embedder.texts = 0
    second = build(kb_copy, root, fake_embedder)
    index = load_index(root)
    after = [c for c in index.chunks if c.article_id == "wifi-8021x"]
    new = [c for c in after if c.hash not in {b.hash for b in before.values()}]
    assert second.version != first.version
    assert second.changed == ["wifi-8021x"] and second.removed == ["vpn-error-809"]
    assert len(new) == second.embedded == fake_embedder.texts >= 1  # the new section only
    assert second.reused == second.chunks - second.embedded
    assert "vpn-error-809" not in index.articles
    assert all(c.article_id != "vpn-error-809" for c in index.chunks)


def test_reused_vectors_are_the_ones_a_fresh_build_computes(kb_copy, tmp_path, fake_embedder,
                                                           monkeypatch):
    build(kb_copy, tmp_path / "kept", fake_embedder)
    path = kb_copy / "wifi-8021x.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nZebracorn certificate.\n",
                    encoding="utf-8")
    (kb_copy / "vpn-error-809.md").unlink()
    incremental = build_index(kb_copy, tmp_path / "kept", lambda: fake_embedder, "fake")
    # The other way to build: BM25 after the model, not beside it.
    monkeypatch.setattr(kb.build, "OVERLAP_TEXTS", -1)
    build(kb_copy, tmp_path / "fresh", fake_embedder)
    kept, fresh = load_index(tmp_path / "kept"), load_index(tmp_path / "fresh")
    for name in ["chunks.jsonl", "articles.json", "calibration.json", "lexical/tokens.txt"]:
        assert (kept.path / name).read_bytes() == (fresh.path / name).read_bytes()
    assert (kept.vectors.reconstruct_all() == fresh.vectors.reconstruct_all()).all()
    probe = ["zebracorn", "vpn", "809", "退款", "打印机"]
    assert (kept.lexical.scores(probe) == fresh.lexical.scores(probe)).all()
    # What the build hands back is what load_index reads from disk.
    index = incremental.index
    assert (index.version, index.path, index.manifest) == (kept.version, kept.path, kept.manifest)
    assert index.articles == kept.articles and index.chunks == kept.chunks
    assert (index.vectors.reconstruct_all() == kept.vectors.reconstruct_all()).all()
    assert (index.lexical.scores(probe) == kept.lexical.scores(probe)).all()


def test_a_rebuild_through_the_dictionary_cache_equals_a_full_build(kb_copy, tmp_path,
                                                                    fake_embedder, monkeypatch):
    from kb.bridge import cedict
    from kb.search import Searcher

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    build(kb_copy, tmp_path / "kept", fake_embedder)  # writes the cache
    path = kb_copy / "refund-timeline-zh.md"
    path.write_text(path.read_text(encoding="utf-8") + "\n打印机退款密码 zebracorn refund.\n",
                    encoding="utf-8")
    build(kb_copy, tmp_path / "kept", fake_embedder)  # reads it, and reuses tokens
    assert list((tmp_path / "cache" / "kb" / "dictionary").glob("cedict-*.sqlite3"))
    # The other way: a fresh build that hands build_lexicon the whole parsed dictionary.
    monkeypatch.setattr(kb.build, "translations_into", lambda vocabulary: cedict())
    build(kb_copy, tmp_path / "fresh", fake_embedder)
    kept, fresh = load_index(tmp_path / "kept"), load_index(tmp_path / "fresh")
    for name in ["lexicon.json", "lexical/tokens.txt", "chunks.jsonl"]:
        assert (kept.path / name).read_bytes() == (fresh.path / name).read_bytes()
    assert kept.lexicon == fresh.lexicon and kept.lexicon.bridge.zh_en
    searches = [Searcher(index, fake_embedder) for index in (kept, fresh)]
    for query in ["退款", "refund", "打印机", "printer offline", "password", "密码", "zebracorn"]:
        outcomes = [s.search(query, k=5) for s in searches]
        assert [(h.id, h.score, h.snippet) for h in outcomes[0].hits] == [
            (h.id, h.score, h.snippet) for h in outcomes[1].hits]
        assert outcomes[0].confidence == outcomes[1].confidence


def test_unchanged_articles_publish_nothing_and_load_no_model(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    first = build(kb_copy, root, fake_embedder)

    def no_model():
        raise AssertionError("the model must not be loaded when nothing needs embedding")

    again = build_index(kb_copy, root, no_model, "fake").report
    assert not again.published and current_version(root) == first.version
    assert read_status(root)["ok"] and not read_status(root)["published"]


def test_a_new_dictionary_or_lexicon_code_rebuilds_the_lexicon(kb_copy, tmp_path,
                                                               fake_embedder, monkeypatch):
    root = tmp_path / "index"
    first = build(kb_copy, root, fake_embedder)
    monkeypatch.setattr(kb.build, "lexicon_key", lambda: "another dictionary")
    again = build_index(kb_copy, root, lambda: fake_embedder, "fake").report
    assert again.published and again.version != first.version
    assert again.reused == again.chunks  # the vectors are the articles': kept


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
    # The failure is recorded for the service to show, one path:line: message per problem.
    status = read_status(root)
    assert not status["ok"] and status["time"]
    assert status["problems"] == [f"{kb_copy / 'wifi-8021x.md'}:2: duplicate id 'wifi-8021x' "
                                  f"(also in {kb_copy / 'broken.md'})"]
    (kb_copy / "broken.md").unlink()
    build(kb_copy, root, fake_embedder)
    assert read_status(root)["ok"] and read_status(root)["problems"] == []


@pytest.mark.parametrize("change", ["model", "tokenizer", "parser", "chunking", "max_chars"])
def test_a_fingerprint_change_rebuilds_vectors_and_tokens(change, kb_copy, tmp_path,
                                                          fake_embedder, monkeypatch, caplog):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    tokenized = []
    real_tokenize = kb.build.tokenize
    monkeypatch.setattr(kb.build, "tokenize",
                        lambda text: tokenized.append(text) or real_tokenize(text))
    model, max_chars = "fake", 600
    if change == "model":
        model = "fake-2"
    elif change == "tokenizer":
        monkeypatch.setattr(kb.store, "TOKENIZER", "kb-test-bump")
    elif change == "parser":
        monkeypatch.setattr(kb.store, "PARSER_VERSION", 999)
    elif change == "chunking":
        monkeypatch.setattr(kb.store, "CHUNKING_VERSION", 999)
    else:
        max_chars = 500
    caplog.set_level(logging.WARNING, logger="kb.build")
    report = build_index(kb_copy, root, lambda: fake_embedder, model,
                         max_chunk_chars=max_chars).report
    assert report.published and report.reused == 0 and report.embedded == report.chunks
    assert len(tokenized) == report.chunks  # every chunk's tokens made afresh
    assert "not reusing version" in caplog.text
    assert load_index(root).manifest["fingerprint"] == kb.store.fingerprint(model, max_chars)


def test_an_index_from_older_code_is_rebuilt_not_reused(kb_copy, tmp_path, fake_embedder, caplog):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    manifest_path = load_index(root).path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["fingerprint"]
    manifest_path.write_text(json.dumps(manifest))
    caplog.set_level(logging.WARNING, logger="kb.build")
    report = build(kb_copy, root, fake_embedder)
    assert report.published and report.reused == 0
    assert "no fingerprint" in caplog.text


def test_a_failed_reuse_says_why_and_builds_everything(kb_copy, tmp_path, fake_embedder, caplog):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    tokens = load_index(root).path / "lexical" / "tokens.txt"
    tokens.write_text("".join(tokens.read_text().splitlines(keepends=True)[:-1]))
    (kb_copy / "extra.md").write_text("---\nid: extra\ntitle: Extra\ntype: faq\n---\nText\n")
    caplog.set_level(logging.WARNING, logger="kb.build")
    report = build(kb_copy, root, fake_embedder)
    assert report.published and report.reused == 0 and report.added == ["extra"]
    assert "files disagree" in caplog.text


def test_old_versions_are_pruned(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    for n in range(4):
        (kb_copy / "extra.md").write_text(f"---\nid: extra\ntitle: E{n}\ntype: faq\n---\nText {n}\n")
        build(kb_copy, root, fake_embedder, keep_versions=2)
    assert len(list((root / "versions").iterdir())) == 2
    assert current_version(root) in {p.name for p in (root / "versions").iterdir()}


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
    (kb_copy / "extra.md").write_text("---\nid: extra\ntitle: Extra\ntype: faq\n---\nText\n")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("kb.lexical.LexicalIndex.save", boom)
    with pytest.raises(OSError):
        build(kb_copy, root, fake_embedder)
    assert current_version(root) == first.version
    assert [p.name for p in (root / "versions").iterdir()] == [first.version]
    assert read_status(root)["problems"] == ["error: disk full"]


def test_a_build_killed_midway_is_cleaned_up_by_the_next(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    # What a build killed outright leaves: a fresh staging folder and a half-written CURRENT.
    stale = root / "versions" / ".staging-20261202T000000000000-abcdef"
    (stale / "lexical").mkdir(parents=True)
    (stale / "vectors.faiss").write_bytes(b"half")
    (root / ".CURRENT.1234abcd").write_text("2026")
    build(kb_copy, root, fake_embedder)  # nothing changed: still, the leftovers go
    assert not stale.exists() and not (root / ".CURRENT.1234abcd").exists()


def test_rebuild_parses_and_tokenizes_only_what_changed(kb_copy, tmp_path, fake_embedder,
                                                       monkeypatch):
    import kb.articles

    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    parsed, tokenized = [], []
    real_parse, real_tokenize = kb.articles.parse_article, kb.build.tokenize
    monkeypatch.setattr(kb.articles, "parse_article",
                        lambda path, display=None: parsed.append(path.name) or real_parse(path, display))
    monkeypatch.setattr(kb.build, "tokenize",
                        lambda text: tokenized.append(text) or real_tokenize(text))
    path = kb_copy / "wifi-8021x.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nZebracorn certificate.\n", encoding="utf-8")
    assert build(kb_copy, root, fake_embedder).changed == ["wifi-8021x"]
    assert parsed == ["wifi-8021x.md"]
    edited = {c.lexical_text for c in load_index(root).chunks if c.article_id == "wifi-8021x"}
    assert tokenized and set(tokenized) <= edited


def test_a_corrupt_parse_cache_is_ignored(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    (root / kb.store.PARSE_CACHE).write_text('{"parser": 1, "files": {"x": [1]')
    (kb_copy / "extra.md").write_text("---\nid: extra\ntitle: Extra\ntype: faq\n---\nText\n")
    assert build(kb_copy, root, fake_embedder).added == ["extra"]


def test_a_parse_cache_of_another_parser_is_not_used(kb_copy, tmp_path, fake_embedder,
                                                     monkeypatch):
    import kb.articles

    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    parsed = []
    real_parse = kb.articles.parse_article
    monkeypatch.setattr(kb.articles, "parse_article",
                        lambda path, display=None: parsed.append(path.name) or real_parse(path, display))
    monkeypatch.setattr(kb.store, "PARSER_VERSION", 999)
    build(kb_copy, root, fake_embedder)
    assert sorted(parsed) == sorted(p.name for p in kb_copy.glob("*.md"))


def test_a_file_older_checks_accepted_is_checked_again_and_the_index_still_reused(
        kb_copy, tmp_path, fake_embedder, monkeypatch):
    import yaml.constructor

    import kb.yamlfile

    root = tmp_path / "index"
    path = kb_copy / "wifi-8021x.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\ntype:", "\ntype: faq\ntype:", 1), encoding="utf-8")
    with monkeypatch.context() as before:  # kb before it refused a key set twice
        before.setattr(kb.store, "CHECKS_VERSION", 0)
        before.setitem(kb.yamlfile.Loader.yaml_constructors, "tag:yaml.org,2002:map",
                       yaml.constructor.SafeConstructor.construct_yaml_map)
        build(kb_copy, root, fake_embedder)
    # The file is unchanged, but the parse cache of the older checks is not trusted with it.
    with pytest.raises(ArticleError) as err:
        build(kb_copy, root, fake_embedder)
    assert f"{path}:5: invalid YAML front matter: duplicate key 'type'" in str(err.value)
    # Fixed as the older checks read it: nothing to publish, nothing embedded again.
    path.write_text(text, encoding="utf-8")
    report = build(kb_copy, root, fake_embedder)
    assert not report.published and report.embedded == 0


def test_build_progress_reports_every_text_and_changes_no_vector(kb_copy, tmp_path,
                                                                 fake_embedder, monkeypatch):
    monkeypatch.setattr(kb.build, "EMBED_SLICE", 7)  # several slices from a small knowledge base
    steps = []
    build(kb_copy, tmp_path / "a", fake_embedder, progress=lambda done, total: steps.append(
        (done, total)))
    build(kb_copy, tmp_path / "b", fake_embedder)
    total = steps[0][1]
    assert steps[0] == (0, total) and steps[-1] == (total, total) and total > 14
    assert [d for d, _ in steps] == list(range(0, total, 7)) + [total]
    vectors = [load_index(tmp_path / n).vectors.reconstruct_all() for n in "ab"]
    assert (vectors[0] == vectors[1]).all()


def test_builds_of_one_folder_take_turns(kb_copy, tmp_path, fake_embedder):
    import threading

    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    (kb_copy / "extra.md").write_text("---\nid: extra\ntitle: Extra\ntype: faq\n---\nText\n")
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(build(kb_copy, root, fake_embedder)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # One published the new article; the others found it published and had nothing to do.
    assert sorted(r.published for r in reports) == [False, False, True]


def test_the_model_is_needed_only_for_text_to_embed(kb_copy, tmp_path, fake_embedder):
    from kb.errors import ModelError

    root = tmp_path / "index"
    build(kb_copy, root, fake_embedder)
    path = kb_copy / "wifi-8021x.md"
    path.write_text(path.read_text(encoding="utf-8").replace("tags: [", "tags: [extra-tag, "),
                    encoding="utf-8")

    def broken_model():
        raise ModelError("no model here")

    # A changed file loads the model in advance; a change that needs no new vector does not
    # need it, so its failure does not fail the build.
    report = build_index(kb_copy, root, broken_model, "fake").report
    assert report.changed == ["wifi-8021x"] and report.embedded == 0
    assert "extra-tag" in load_index(root).articles["wifi-8021x"]["tags"]
    path.write_text(path.read_text(encoding="utf-8") + "\nA new line to embed.\n",
                    encoding="utf-8")
    with pytest.raises(ModelError, match="no model here"):
        build_index(kb_copy, root, broken_model, "fake")
