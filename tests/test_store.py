"""The index folder's format: versions, atomic publishing, loading, privacy, build status."""

import json
import os
import shutil
import stat

import numpy as np
import pytest

import kb.store
from kb.articles import load_articles
from kb.build import build_index
from kb.errors import IndexMismatch, IndexNotFound
from kb.store import (
    ServingLock,
    current_version,
    fingerprint,
    fingerprint_difference,
    is_served,
    load_index,
    read_parse_cache,
    write_parse_cache,
)

from .conftest import FIXTURE_KB


def test_no_index_yet(tmp_path):
    with pytest.raises(IndexNotFound, match="kb index"):
        load_index(tmp_path / "nothing")


def test_loading_with_another_model_fails_clearly(fake_index):
    with pytest.raises(IndexMismatch, match="built with model 'fake'"):
        load_index(fake_index, model="all-MiniLM-L6-v2")


def test_inconsistent_files_are_refused(fake_index):
    version = fake_index / "versions" / current_version(fake_index)
    lines = (version / "chunks.jsonl").read_text().splitlines()
    (version / "chunks.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IndexMismatch, match="inconsistent"):
        load_index(fake_index)


def test_a_version_removed_while_it_loads_is_index_not_found(fake_index, monkeypatch):
    real = kb.store.read_vectors

    def pruned_meanwhile(path):
        shutil.rmtree(path)
        return real(path)

    monkeypatch.setattr(kb.store, "read_vectors", pruned_meanwhile)
    with pytest.raises(IndexNotFound, match="missing"):
        load_index(fake_index)


def test_the_index_folder_is_private_to_its_owner(fake_index):
    assert stat.S_IMODE(fake_index.stat().st_mode) == 0o700
    for path in fake_index.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_the_index_folder_holds_no_pickles(fake_index):
    for path in fake_index.rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), path  # pickle's opening byte
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)


def test_the_parse_cache_gives_back_the_articles_parsed(tmp_path):
    cache = {}
    articles = load_articles(FIXTURE_KB, cache)
    write_parse_cache(tmp_path, cache)
    again = read_parse_cache(tmp_path)
    assert again.keys() == cache.keys()
    assert [p.article for p in again.values()] == [p.article for p in cache.values()]
    assert load_articles(FIXTURE_KB, again) == articles


def test_fingerprints_name_what_differs():
    same = fingerprint("m", 600)
    assert fingerprint_difference({"fingerprint": same}, same) is None
    assert "model 'm' -> 'n'" in fingerprint_difference({"fingerprint": same}, fingerprint("n", 600))
    assert "chunking" in fingerprint_difference({"fingerprint": same}, fingerprint("m", 400))
    assert "older kb" in fingerprint_difference({}, same)


def test_the_serving_lock_tells_whether_a_service_serves_the_folder(tmp_path):
    assert not is_served(tmp_path)
    one, two = ServingLock(tmp_path), ServingLock(tmp_path)
    one.acquire()
    two.acquire()  # several services may serve one folder
    assert is_served(tmp_path)
    one.release()
    assert is_served(tmp_path)
    two.release()
    assert not is_served(tmp_path)


def test_publishing_replaces_current_in_one_step(kb_copy, tmp_path, fake_embedder):
    root = tmp_path / "index"
    build_index(kb_copy, root, lambda: fake_embedder, "fake")
    first = current_version(root)
    (kb_copy / "extra.md").write_text("---\nid: extra\ntitle: Extra\ntype: faq\n---\nText\n")
    build_index(kb_copy, root, lambda: fake_embedder, "fake")
    assert current_version(root) != first
    assert sorted(os.listdir(root)) == sorted(
        ["CURRENT", "versions", ".lock", kb.store.STATUS, kb.store.PARSE_CACHE])
    status = json.loads((root / kb.store.STATUS).read_text())
    assert status["ok"] and status["version"] == current_version(root)


def test_one_of_the_processes_sharing_a_database_rechecks_each_version(tmp_path):
    from kb.store import RecheckTurn

    one, two = RecheckTurn(tmp_path, "sqlite:///a"), RecheckTurn(tmp_path, "sqlite:///a")
    assert one.take("v1", stop=lambda: False)
    assert not two.take("v1", stop=lambda: True)  # busy: given up when told to stop
    one.done("v1")
    one.release()
    assert not two.take("v1", stop=lambda: False)  # done already
    assert two.take("v2", stop=lambda: False)
    two.release()  # not done (stopped midway): the next process does it
    assert one.take("v2", stop=lambda: False)
    one.release()
    other = RecheckTurn(tmp_path, "postgresql://elsewhere")  # another database: its own turn
    assert other.take("v1", stop=lambda: False)
    other.release()
