"""The index folder on disk: versions, publishing, loading, pruning, build status.

An index folder holds immutable versions under ``versions/`` and a ``CURRENT`` file naming the
published one. A version is written in a staging folder beside the others, then renamed into
place and named in ``CURRENT`` atomically, so a reader sees the old index or the new one, never
a half-written one. Every file is readable by the folder's owner only.

Each version's manifest carries a fingerprint of what produced its contents (format, model,
tokenizer, parser, chunking); a build reuses vectors and tokens only from a version with the
same fingerprint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from kb.articles import CHECKS_VERSION, PARSER_VERSION, Article, Parsed, Section
from kb.chunking import CHUNKING_VERSION, Chunk
from kb.errors import IndexMismatch, IndexNotFound
from kb.expansion import Lexicon, read_lexicon
from kb.lexical import LexicalIndex
from kb.ranking import Calibration
from kb.text import TOKENIZER
from kb.vectors import VectorIndex

FORMAT = 1
CURRENT = "CURRENT"
VERSIONS = "versions"
STAGING = ".staging-"
BUILD_LOCK = ".lock"
SERVING_LOCK = ".serving"  # held (shared) by every service serving this folder
STATUS = "build-status.json"  # the outcome of the last build
PARSE_CACHE = "parse-cache.json"  # articles as parsed, by file, for the next build
TOKENS = "tokens.txt"  # BM25 tokens of each chunk, one line per chunk, in the lexical folder
DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass
class Index:
    """A loaded index version: everything a search needs, in memory."""

    version: str
    path: Path
    manifest: dict
    articles: dict[str, dict]
    chunks: list[Chunk]
    vectors: VectorIndex
    lexical: LexicalIndex
    calibration: Calibration
    lexicon: Lexicon = field(default_factory=Lexicon)  # glossary and dictionary bridge
    chunk_article: np.ndarray = field(init=False)  # row -> article ordinal
    article_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.article_ids = list(self.articles)
        ordinal = {a: i for i, a in enumerate(self.article_ids)}
        self.chunk_article = np.array([ordinal[c.article_id] for c in self.chunks], dtype=np.int64)


def fingerprint(model: str, max_chunk_chars: int) -> dict[str, Any]:
    """What the contents of a version depend on besides the articles themselves."""
    return {"format": FORMAT, "model": model, "tokenizer": TOKENIZER, "parser": PARSER_VERSION,
            "chunking": {"version": CHUNKING_VERSION, "max_chunk_chars": max_chunk_chars}}


def fingerprint_difference(manifest: dict, expected: dict[str, Any]) -> str | None:
    """Why a version's contents cannot be reused under ``expected``; None if they can."""
    found = manifest.get("fingerprint")
    if not isinstance(found, dict):
        return "it has no fingerprint (built by an older kb)"
    changed = sorted(k for k in expected.keys() | found.keys() if found.get(k) != expected.get(k))
    if not changed:
        return None
    return "; ".join(f"{k} {found.get(k)!r} -> {expected.get(k)!r}" for k in changed)


# ---- the folder ------------------------------------------------------------------------------

def versions_dir(root: Path) -> Path:
    return root / VERSIONS


def ensure_root(root: Path) -> None:
    """The index folder, created if need be, open to its owner only."""
    root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(PermissionError):  # a folder someone else owns keeps its mode
        os.chmod(root, DIR_MODE)


def current_version(root: Path) -> str | None:
    try:
        name = (root / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def _lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)


@contextlib.contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Builds of one folder take turns, whichever process runs them."""
    ensure_root(root)
    fd = _lock_file(root / BUILD_LOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class ServingLock:
    """Held by a service while it serves a folder, so ``kb index`` knows whether anyone will
    notice its version (and re-check the gap log) or it must do that itself."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fd: int | None = None

    def acquire(self) -> None:
        ensure_root(self.root)
        self._fd = _lock_file(self.root / SERVING_LOCK)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_served(root: Path) -> bool:
    """Whether a running service holds this folder's serving lock."""
    try:
        fd = os.open(root / SERVING_LOCK, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class RecheckTurn:
    """Of the processes that serve this folder and share one query database (the workers of
    one service), one re-checks the gap log against each version; the others find it done.
    Held from ``take`` to ``release``; ``done`` records that the version was re-checked."""

    def __init__(self, root: Path, database: str) -> None:
        key = hashlib.sha256(database.encode("utf-8")).hexdigest()[:16]
        self.path = root / f".recheck-{key}"
        self._fd: int | None = None

    def take(self, version: str, stop: Callable[[], bool], poll: float = 0.05) -> bool:
        """Wait for the turn (until ``stop`` says so); False if ``version`` was re-checked
        already, or the wait was stopped."""
        fd = _lock_file(self.path)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop():
                    os.close(fd)
                    return False
                time.sleep(poll)
        if os.pread(fd, 256, 0).decode("utf-8", "replace").strip() == version:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def done(self, version: str) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, version.encode("utf-8"), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ---- writing ---------------------------------------------------------------------------------

def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only the owner may read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: Path, payload: object) -> None:
    write_private(path, json.dumps(payload, ensure_ascii=False, indent=1))


def _replace_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        write_private(tmp, text)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def new_staging(root: Path) -> tuple[Path, str]:
    """A fresh folder to write a version in, and the version's name."""
    version = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + secrets.token_hex(3)
    ensure_root(root)
    versions_dir(root).mkdir(exist_ok=True, mode=DIR_MODE)
    staging = versions_dir(root) / f"{STAGING}{version}"
    staging.mkdir(mode=DIR_MODE)
    return staging, version


def clean_staging(root: Path) -> list[str]:
    """Remove what interrupted builds left behind; call under the build lock, when no build
    can be writing one. Returns the names removed."""
    removed = []
    if versions_dir(root).is_dir():
        for stale in versions_dir(root).glob(f"{STAGING}*"):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale.name)
    for stale in root.glob(f".{CURRENT}.*"):
        stale.unlink(missing_ok=True)
    return removed


def _seal(staging: Path) -> None:
    """Make the staging folder's files private and durable before it is published."""
    for path in [staging, *staging.rglob("*")]:
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def publish(root: Path, staging: Path, version: str) -> None:
    """Move a fully written staging folder into place and point CURRENT at it."""
    _seal(staging)
    os.rename(staging, versions_dir(root) / version)
    _replace_atomically(root / CURRENT, version + "\n")


def write_version(staging: Path, *, manifest: dict, articles_json: str, chunks_jsonl: str,
                  vectors: VectorIndex, lexical: LexicalIndex, tokens: str,
                  calibration: Calibration) -> None:
    """Write every file of a version into ``staging``."""
    vectors.save(staging / "vectors.faiss")
    write_private(staging / "articles.json", articles_json)
    write_private(staging / "chunks.jsonl", chunks_jsonl)
    folder = staging / "lexical"
    folder.mkdir(mode=DIR_MODE)
    lexical.save(folder)
    write_private(folder / TOKENS, tokens)
    write_json(staging / "calibration.json", calibration.to_dict())
    write_json(staging / "manifest.json", manifest)


def prune(root: Path, keep: int, protect: str) -> None:
    """Remove all but the newest ``keep`` versions (never ``protect``)."""
    if not versions_dir(root).is_dir():
        return
    versions = sorted(p for p in versions_dir(root).iterdir() if not p.name.startswith("."))
    for old in versions[:-keep]:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)


def publish_calibration(root: Path, calibration: Calibration, keep_versions: int = 3) -> str:
    """Publish a copy of the current version carrying ``calibration``; returns the new version."""
    with build_lock(root):
        clean_staging(root)
        current = load_index(root)
        staging, version = new_staging(root)
        staging.rmdir()
        try:
            # Hard links: versions are immutable, so the big files can be shared, not copied.
            shutil.copytree(current.path, staging, copy_function=os.link)
            for name in ("calibration.json", "manifest.json"):
                (staging / name).unlink()
            write_json(staging / "calibration.json", calibration.to_dict())
            write_json(staging / "manifest.json", {**current.manifest, "version": version})
            publish(root, staging, version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        prune(root, keep_versions, protect=version)
    return version


# ---- reading ---------------------------------------------------------------------------------

def open_version(root: Path, model: str | None = None,
                 version: str | None = None) -> tuple[str, Path, dict]:
    """Name, folder and manifest of a version this code can read, built with ``model``."""
    name = version or current_version(root)
    if name is None:
        raise IndexNotFound(f"no index published in {root}: run 'kb index' first")
    path = versions_dir(root) / name
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexNotFound(f"index version {name} is missing from {root}") from exc
    if manifest.get("format") != FORMAT:
        raise IndexMismatch(f"index {path} has format {manifest.get('format')}, expected {FORMAT}")
    if model is not None and manifest["model"] != model:
        raise IndexMismatch(
            f"index {path} was built with model {manifest['model']!r} but {model!r} is "
            f"configured: rebuild with 'kb index' or set KB_MODEL={manifest['model']}"
        )
    return name, path, manifest


def read_chunks(path: Path) -> list[Chunk]:
    with open(path / "chunks.jsonl", encoding="utf-8") as handle:
        return [Chunk(**json.loads(line)) for line in handle]


def read_articles(path: Path) -> dict[str, dict]:
    return {a["id"]: a for a in json.loads((path / "articles.json").read_text("utf-8"))}


def read_vectors(path: Path) -> VectorIndex:
    return VectorIndex.load(path / "vectors.faiss")


def read_tokens(path: Path) -> list[str]:
    """The BM25 tokens of each chunk, one line (with its newline) per chunk."""
    with open(path / "lexical" / TOKENS, encoding="utf-8") as handle:
        return handle.readlines()


def read_calibration(path: Path) -> Calibration:
    return Calibration.load(path / "calibration.json")


def load_index(root: Path, model: str | None = None, version: str | None = None) -> Index:
    """Load the published version (or ``version``); with ``model``, refuse another model's index."""
    name, path, manifest = open_version(root, model, version)
    try:
        articles = read_articles(path)
        chunks = read_chunks(path)
        vectors = read_vectors(path)
        lexical = LexicalIndex.load(path / "lexical")
        calibration = read_calibration(path)
    except (OSError, RuntimeError) as exc:  # RuntimeError: FAISS's way to say it
        if path.exists():
            raise
        # Pruned, or removed by hand, while it was read.
        raise IndexNotFound(f"index version {name} is missing from {root}") from exc
    if vectors.size != len(chunks) or lexical.size != len(chunks) or (
        vectors.dim != manifest["dim"] and len(chunks)
    ):
        raise IndexMismatch(f"index {path} is inconsistent with its manifest: rebuild it")
    return Index(name, path, manifest, articles, chunks, vectors, lexical, calibration,
                 read_lexicon(path))


# ---- build status ----------------------------------------------------------------------------

def write_status(root: Path, status: dict[str, Any]) -> None:
    """Record the outcome of a build (see kb.build) for the service to show."""
    ensure_root(root)
    _replace_atomically(root / STATUS, json.dumps(status, ensure_ascii=False, indent=1))


def read_status(root: Path) -> dict[str, Any] | None:
    """The outcome of the last build, if one was recorded and can be read."""
    try:
        status = json.loads((root / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


# ---- parse cache -----------------------------------------------------------------------------

def read_parse_cache(root: Path) -> dict[str, Parsed]:
    """What the last build parsed, by file: a build reparses only files whose bytes changed.
    Anything unreadable, or written by another parser or checks version, is an empty cache."""
    try:
        data = json.loads((root / PARSE_CACHE).read_text(encoding="utf-8"))
        if data.get("parser") != PARSER_VERSION or data.get("checks") != CHECKS_VERSION:
            return {}
        return {path: _parsed_from_json(entry) for path, entry in data["files"].items()}
    except Exception:  # missing, truncated, or from other code: parse everything again
        return {}


def write_parse_cache(root: Path, cache: dict[str, Parsed]) -> None:
    files = {path: _parsed_to_json(p) for path, p in cache.items() if p.article is not None}
    _replace_atomically(root / PARSE_CACHE, json.dumps(
        {"parser": PARSER_VERSION, "checks": CHECKS_VERSION, "files": files},
        ensure_ascii=False, separators=(",", ":")))


_ARTICLE_FIELDS = [f.name for f in fields(Article) if f.name != "sections"]


def _parsed_to_json(parsed: Parsed) -> list:
    article = parsed.article
    assert article is not None
    # Not asdict(): it deep-copies every section, which is slow on a large knowledge base.
    record: dict[str, Any] = {name: getattr(article, name) for name in _ARTICLE_FIELDS}
    record["sections"] = [[list(s.heading_path), s.anchor, s.text, s.line,
                           None if s.links is None else list(s.links)]
                          for s in article.sections]
    return [list(parsed.stat), parsed.hashed_at, parsed.digest, record]


def _parsed_from_json(entry: list) -> Parsed:
    stat, hashed_at, digest, article = entry
    sections = [Section(tuple(path), anchor, text, line,
                        None if links is None else tuple(links))
                for path, anchor, text, line, links in article.pop("sections")]
    return Parsed(tuple(stat), hashed_at, digest, Article(**article, sections=sections))
