"""Build, publish and load index versions.

An index folder holds immutable versions under ``versions/`` and a ``CURRENT`` file naming the
published one. A build writes a whole version beside the others and then replaces ``CURRENT``
atomically, so a reader sees the old index or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import gc
import hashlib
import json
import os
import pickle
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.articles import Article, Parsed, load_articles
from kb.chunking import Chunk, chunk_article
from kb.embedding import Embedder
from kb.errors import IndexMismatch, IndexNotFound
from kb.lexical import LexicalIndex
from kb.ranking import Calibration
from kb.text import TOKENIZER, tokenize
from kb.vectors import VectorIndex

FORMAT = 1
# Parsed articles by path, with the stat and digest of their files, so a rebuild reads only the
# files whose stat changed and parses only those whose bytes changed.
PARSE_CACHE = "parsed-articles.pickle"
TOKENS_FILE = "tokens.txt"  # BM25 tokens of each chunk, one line per chunk
ARTICLE_FIELDS = ("id", "title", "type", "path", "lang", "audience", "tags", "product",
                  "updated", "review_by", "questions")


@dataclass
class BuildReport:
    version: str
    articles: int
    chunks: int
    embedded: int
    reused: int
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    published: bool = True
    seconds: float = 0.0

    def summary(self) -> str:
        state = f"published {self.version}" if self.published else "unchanged, nothing published"
        return (
            f"{state}: {self.articles} articles ({len(self.added)} added, {len(self.changed)} "
            f"changed, {len(self.removed)} removed), {self.chunks} chunks, {self.embedded} "
            f"embedded, {self.reused} reused, {self.seconds:.2f} s"
        )


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
    chunk_article: np.ndarray = field(init=False)  # row -> article ordinal
    article_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.article_ids = list(self.articles)
        ordinal = {a: i for i, a in enumerate(self.article_ids)}
        self.chunk_article = np.array([ordinal[c.article_id] for c in self.chunks], dtype=np.int64)


def _versions_dir(root: Path) -> Path:
    return root / "versions"


def current_version(root: Path) -> str | None:
    try:
        name = (root / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _article_record(article: Article) -> dict:
    # Not asdict(): it deep-copies every section, which costs seconds on a large knowledge base.
    return {k: list(v) if isinstance(v := getattr(article, k), list) else v
            for k in ARTICLE_FIELDS}


# Made once: json.dumps with a non-default option builds a new encoder on every call, and a
# build encodes every chunk and article.
_JSON = json.JSONEncoder(ensure_ascii=False)
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _digest(payload: object) -> str:
    text = _CANONICAL.encode(payload)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_json(path: Path, payload: object, *, indent: int | None = 1) -> None:
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=indent), encoding="utf-8")


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def publish(root: Path, staging: Path, version: str, keep: int) -> None:
    """Move a fully written staging folder into place and point CURRENT at it."""
    _fsync_tree(staging)
    final = _versions_dir(root) / version
    os.rename(staging, final)
    tmp = root / f".CURRENT.{secrets.token_hex(4)}"
    tmp.write_text(version + "\n")
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, root / "CURRENT")
    _prune(root, keep, protect=version)


def _prune(root: Path, keep: int, protect: str) -> None:
    versions = sorted(p for p in _versions_dir(root).iterdir() if not p.name.startswith("."))
    for old in versions[:-keep]:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)
    for stale in _versions_dir(root).glob(".staging-*"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)


def new_staging(root: Path) -> tuple[Path, str]:
    version = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + secrets.token_hex(3)
    staging = _versions_dir(root) / f".staging-{version}"
    staging.mkdir(parents=True)
    return staging, version


@dataclass
class _Previous:
    """What a build reuses from the published version: its chunks' vectors and tokens."""

    path: Path
    manifest: dict
    chunks: list[Chunk]
    vectors: np.ndarray
    calibration: Calibration


def _previous(root: Path, model: str) -> _Previous | None:
    try:
        _, path, manifest = _open_version(root, model)
        chunks = _read_chunks(path)
        vectors = VectorIndex.load(path / "vectors.faiss")
        if vectors.size != len(chunks):
            return None
        return _Previous(path, manifest, chunks, vectors.reconstruct_all(), _read_calibration(path))
    except (IndexNotFound, IndexMismatch, OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A build allocates hundreds of thousands of small objects that all live until it ends;
    the cyclic garbage collector would walk them again and again and find nothing to free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_collector_paused()
def build_index(
    articles_dir: Path,
    root: Path,
    embedder_factory: Callable[[], Embedder],
    model: str,
    *,
    max_chunk_chars: int = 600,
    calibration: Calibration | None = None,
    keep_versions: int = 3,
    progress: bool = True,
) -> BuildReport:
    """Parse, chunk, embed what changed, and publish a new version (or nothing when unchanged).

    Raises ArticleError, listing every problem, before anything is written.
    """
    started = time.perf_counter()
    parsed = _read_parse_cache(root)
    articles = load_articles(articles_dir, parsed)
    with _build_lock(root):
        # Valid whether or not this build publishes: entries describe the files as read.
        _write_parse_cache(root, parsed)
        previous = _previous(root, model)
        per_article = {a.id: chunk_article(a, max_chunk_chars) for a in articles}
        chunks = [c for a in articles for c in per_article[a.id]]
        records = {a.id: _article_record(a) for a in articles}
        hashes = {a.id: _digest([records[a.id], [c.hash for c in per_article[a.id]]])
                  for a in articles}
        old_hashes = previous.manifest["article_hashes"] if previous else {}
        report = BuildReport(
            version=previous.path.name if previous else "",
            articles=len(articles),
            chunks=len(chunks),
            embedded=0,
            reused=0,
            added=sorted(set(hashes) - set(old_hashes)),
            changed=sorted(a for a in hashes if a in old_hashes and hashes[a] != old_hashes[a]),
            removed=sorted(set(old_hashes) - set(hashes)),
        )
        if calibration is None:
            calibration = previous.calibration if previous else Calibration()
        if previous and hashes == old_hashes and previous.calibration == calibration:
            report.published = False
            report.reused = len(chunks)
            report.seconds = time.perf_counter() - started
            return report

        known: dict[str, np.ndarray] = {}
        if previous is not None:
            known = {c.hash: previous.vectors[i] for i, c in enumerate(previous.chunks)}
        missing = sorted({c.hash: c.embed_text for c in chunks if c.hash not in known}.items())
        dim = previous.vectors.shape[1] if previous else 0
        if missing or previous is None:
            embedder = embedder_factory()
            dim = embedder.dim
            texts = [text for _, text in missing]
            # One call: the embedder sorts by length and batches, so batches pad little.
            fresh = embedder.embed(texts, progress=progress)
            known.update({h: fresh[i] for i, (h, _) in enumerate(missing)})
        report.embedded = len(missing)
        fresh_hashes = {h for h, _ in missing}
        report.reused = sum(1 for c in chunks if c.hash not in fresh_hashes)
        matrix = (np.stack([known[c.hash] for c in chunks]) if chunks
                  else np.zeros((0, dim), dtype=np.float32))

        staging, version = new_staging(root)
        try:
            VectorIndex.build(matrix, dim).save(staging / "vectors.faiss")
            lexical_dir = staging / "lexical"
            lexical_dir.mkdir()
            tokens = _tokens(chunks, previous)
            LexicalIndex.build(tokens).save(lexical_dir)
            _write_tokens(lexical_dir / TOKENS_FILE, tokens)
            # No indent: the pretty-printer is pure Python and slow on thousands of articles.
            _write_json(staging / "articles.json", list(records.values()), indent=None)
            with open(staging / "chunks.jsonl", "w", encoding="utf-8") as out:
                for c in chunks:
                    out.write(_JSON.encode(c.to_dict()) + "\n")
            _write_json(staging / "calibration.json", calibration.to_dict())
            _write_json(staging / "manifest.json", {
                "format": FORMAT,
                "version": version,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "model": model,
                "dim": dim,
                "articles": len(articles),
                "chunks": len(chunks),
                "tokenizer": TOKENIZER,
                "article_hashes": hashes,
            })
            publish(root, staging, version, keep_versions)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    report.version = version
    report.seconds = time.perf_counter() - started
    return report


def _read_parse_cache(root: Path) -> dict[str, Parsed]:
    try:
        with open(root / PARSE_CACHE, "rb") as handle:
            cache = pickle.load(handle)
    except Exception:  # missing, truncated or from older code: parse everything again
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_parse_cache(root: Path, cache: dict[str, Parsed]) -> None:
    tmp = root / f"{PARSE_CACHE}.{secrets.token_hex(4)}.tmp"
    with open(tmp, "wb") as handle:
        pickle.dump(cache, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, root / PARSE_CACHE)


def _tokens(chunks: list[Chunk], previous: _Previous | None) -> list[list[str]]:
    """BM25 tokens per chunk; unchanged chunks reuse the previous version's (segmentation is
    most of the work of re-indexing a large knowledge base after a one-article edit)."""
    known: dict[str, list[str]] = {}
    stored = previous.path / "lexical" / TOKENS_FILE if previous else None
    if previous and stored and stored.exists() and previous.manifest.get("tokenizer") == TOKENIZER:
        with open(stored, encoding="utf-8") as handle:
            known = {c.lexical_text: line.split()
                     for c, line in zip(previous.chunks, handle, strict=True)}
    return [known[c.lexical_text] if c.lexical_text in known else tokenize(c.lexical_text)
            for c in chunks]


def _write_tokens(path: Path, tokens: list[list[str]]) -> None:
    # A token never holds whitespace (kb.text cuts at it), so a line of them needs no quoting;
    # JSON lines took several times as long to write and to read back.
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(" ".join(t) + "\n" for t in tokens)


def load_index(root: Path, model: str | None = None, version: str | None = None) -> Index:
    """Load the published version (or ``version``); with ``model``, refuse another model's index."""
    name, path, manifest = _open_version(root, model, version)
    articles = {a["id"]: a for a in json.loads((path / "articles.json").read_text("utf-8"))}
    chunks = _read_chunks(path)
    vectors = VectorIndex.load(path / "vectors.faiss")
    lexical = LexicalIndex.load(path / "lexical")
    if vectors.size != len(chunks) or lexical.size != len(chunks) or (
        vectors.dim != manifest["dim"] and len(chunks)
    ):
        raise IndexMismatch(f"index {path} is inconsistent with its manifest: rebuild it")
    return Index(name, path, manifest, articles, chunks, vectors, lexical, _read_calibration(path))


def _open_version(root: Path, model: str | None = None,
                  version: str | None = None) -> tuple[str, Path, dict]:
    """Name, folder and manifest of a version this code can read, built with ``model``."""
    name = version or current_version(root)
    if name is None:
        raise IndexNotFound(f"no index published in {root}: run 'kb index' first")
    path = _versions_dir(root) / name
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


def _read_chunks(path: Path) -> list[Chunk]:
    with open(path / "chunks.jsonl", encoding="utf-8") as handle:
        return [Chunk(**json.loads(line)) for line in handle]


def _read_calibration(path: Path) -> Calibration:
    return Calibration.from_dict(json.loads((path / "calibration.json").read_text(encoding="utf-8")))


def publish_calibration(root: Path, calibration: Calibration, keep_versions: int = 3) -> str:
    """Publish a copy of the current version carrying ``calibration``; returns the new version."""
    with _build_lock(root):
        current = load_index(root)
        staging, version = new_staging(root)
        staging.rmdir()
        try:
            # Hard links: versions are immutable, so the big files can be shared, not copied.
            shutil.copytree(current.path, staging, copy_function=os.link)
            for name in ("calibration.json", "manifest.json"):
                (staging / name).unlink()
            _write_json(staging / "calibration.json", calibration.to_dict())
            _write_json(staging / "manifest.json", {**current.manifest, "version": version})
            publish(root, staging, version, keep_versions)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return version
