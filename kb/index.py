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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.articles import Article, Parsed, load_articles
from kb.chunking import Chunk, chunk_article
from kb.embedding import Embedder
from kb.errors import IndexMismatch, IndexNotFound
from kb.expansion import Lexicon, build_lexicon, read_glossary, read_lexicon, write_lexicon
from kb.glossary import load_glossary
from kb.lexical import LexicalIndex, new_vocabulary
from kb.ranking import Calibration
from kb.text import TOKENIZER, tokenize
from kb.vectors import VectorIndex

FORMAT = 1
# Parsed articles by path, with the stat and digest of their files, so a rebuild reads only the
# files whose stat changed and parses only those whose bytes changed.
PARSE_CACHE = "parsed-articles.pickle"
TOKENS_FILE = "tokens.txt"  # BM25 tokens of each chunk, one line per chunk
ARTICLE_FIELDS = ("id", "title", "type", "path", "lang", "audience", "tags", "product",
                  "updated", "review_by", "questions", "related")


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
    lexicon: Lexicon = field(default_factory=Lexicon)  # glossary and dictionary bridge
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


def _write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")


def _fsync_tree(directory: Path) -> None:
    _fsync([path for path in directory.rglob("*") if path.is_file()])


def _fsync(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def publish(root: Path, staging: Path, version: str) -> None:
    """Move a fully written staging folder into place and point CURRENT at it."""
    _fsync_tree(staging)
    final = _versions_dir(root) / version
    os.rename(staging, final)
    tmp = root / f".CURRENT.{secrets.token_hex(4)}"
    tmp.write_text(version + "\n")
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, root / "CURRENT")


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
    vectors: VectorIndex
    calibration: Calibration


def _previous(root: Path, model: str) -> _Previous | None:
    try:
        _, path, manifest = _open_version(root, model)
        chunks = _read_chunks(path)
        vectors = VectorIndex.load(path / "vectors.faiss")
        if vectors.size != len(chunks):
            return None
        return _Previous(path, manifest, chunks, vectors, _read_calibration(path))
    except (IndexNotFound, IndexMismatch, OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class _Prepared:
    """An article cut into chunks, with what a version stores of it: its record and its
    chunks, as JSON too (encoding them is a tenth of a re-index), and its content hash."""

    article: Article
    max_chunk_chars: int
    chunks: list[Chunk]
    record: dict
    hash: str
    record_json: str
    chunks_jsonl: str
    token_lines: str | None = None  # BM25 tokens, one line per chunk, once a build needs them
    token_ids: list[list[int]] | None = None  # the same, as ids in the Builder's vocabulary


@dataclass
class Built:
    report: BuildReport
    index: Index | None  # the version published, as load_index would return it; None if none


Progress = Callable[[int, int], None]  # (texts embedded so far, texts to embed)
EMBED_SLICE = 256  # texts per embedder call when progress is reported
OVERLAP_TEXTS = 64  # at most this many texts to embed: BM25 indexes meanwhile
UNUSED_TERMS = 0.25  # share of the BM25 vocabulary no chunk holds at which a Builder renews it


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


class Builder:
    """Builds versions of one index folder for one model.

    Keeps what a build reads and makes for the next build: the parse cache, each article's
    chunks, JSON, tokens and hash, and the published version's chunks and vectors. A process
    that lives on (the service) so re-indexes a one-article edit without reading the index back.
    Kept state is checked, not trusted: a version published by anyone else (CURRENT moved) is
    read from disk, and articles are reused only while their files' stat says unchanged.
    One build at a time per Builder; builds of one folder by several processes take turns.
    """

    def __init__(self, root: Path, model: str) -> None:
        self.root = root
        self.model = model
        self._parsed: dict[str, Parsed] | None = None
        self._prepared: dict[str, _Prepared] = {}
        self._previous: _Previous | None = None
        self._vocabulary = new_vocabulary()  # BM25 token ids of the kept articles' tokens

    @_collector_paused()
    def build(self, articles_dir: Path, embedder_factory: Callable[[], Embedder], *,
              max_chunk_chars: int = 600, calibration: Calibration | None = None,
              progress: Progress | None = None, shown_as: str | None = None) -> Built:
        """Parse, chunk, embed what changed, and publish a new version (or nothing when
        unchanged). Raises ArticleError, listing every problem, before anything is written.
        Call ``tidy`` afterwards: it does what the published version does not wait for."""
        started = time.perf_counter()
        articles = self.prepare(articles_dir, max_chunk_chars, shown_as)
        glossary = load_glossary(articles_dir, shown_as)
        chunks = [c for p in articles for c in p.chunks]
        hashes = {p.article.id: p.hash for p in articles}
        with _build_lock(self.root):
            previous = self._published()
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
            if (previous and hashes == old_hashes and previous.calibration == calibration
                    and read_glossary(previous.path) == glossary.to_list()):
                report.published = False
                report.reused = len(chunks)
                report.seconds = time.perf_counter() - started
                return Built(report, None)

            known, missing = _known_vectors(chunks, previous)
            staging, version = new_staging(self.root)
            try:
                with ThreadPoolExecutor(1) as worker:
                    # A few texts to embed: BM25, pure Python, indexes meanwhile, as the model
                    # lets go of the GIL. Many: the model keeps every core busy, and a thread
                    # beside it would slow it down by more than it saves.
                    lexical = (worker.submit(self._write_lexical, staging, articles, previous)
                               if len(missing) <= OVERLAP_TEXTS else None)
                    vectors = _write_vectors(staging, chunks, known, missing, embedder_factory,
                                             progress, report)
                    # One JSON list, as json.dumps writes it without indent.
                    (staging / "articles.json").write_text(
                        "[" + ", ".join(p.record_json for p in articles) + "]", encoding="utf-8")
                    (staging / "chunks.jsonl").write_text(
                        "".join(p.chunks_jsonl for p in articles), encoding="utf-8")
                    # Flushed to disk while BM25 is still at work: publishing flushes the rest.
                    _fsync([staging / n for n in ("vectors.faiss", "articles.json", "chunks.jsonl")])
                    bm25 = (lexical.result() if lexical is not None
                            else self._write_lexical(staging, articles, previous))
                manifest = {
                    "format": FORMAT,
                    "version": version,
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "model": self.model,
                    "dim": vectors.dim,
                    "articles": len(articles),
                    "chunks": len(chunks),
                    "tokenizer": TOKENIZER,
                    "article_hashes": hashes,
                }
                lexicon = build_lexicon(glossary, bm25.vocabulary())
                write_lexicon(staging, lexicon)
                _write_json(staging / "calibration.json", calibration.to_dict())
                _write_json(staging / "manifest.json", manifest)
                publish(self.root, staging, version)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        path = _versions_dir(self.root) / version
        self._previous = _Previous(path, manifest, chunks, vectors, calibration)
        report.version = version
        report.seconds = time.perf_counter() - started
        records = {p.article.id: p.record for p in articles}
        return Built(report, Index(version, path, manifest, records, chunks, vectors, bm25,
                                   calibration, lexicon))

    def tidy(self, keep_versions: int = 3) -> None:
        """Prune all but the newest ``keep_versions`` versions and save the parse cache: nothing
        a published version needs."""
        _prune(self.root, keep_versions, protect=current_version(self.root) or "")
        if self._parsed is not None:
            _write_parse_cache(self.root, self._parsed)

    def warm(self, articles_dir: Path, max_chunk_chars: int = 600) -> None:
        """Read now what the next build would: the articles and the published version."""
        with _collector_paused():
            self.prepare(articles_dir, max_chunk_chars)
            self._published()

    def prepare(self, articles_dir: Path, max_chunk_chars: int,
                shown_as: str | None = None) -> list[_Prepared]:
        """The articles, parsed and chunked, each only if its file changed since last time."""
        if self._parsed is None:
            self._parsed = _read_parse_cache(self.root)
        articles = [self._prepare(a, max_chunk_chars)
                    for a in load_articles(articles_dir, self._parsed, shown_as=shown_as)]
        self._prepared = {p.article.id: p for p in articles}
        return articles

    def _prepare(self, article: Article, max_chunk_chars: int) -> _Prepared:
        kept = self._prepared.get(article.id)
        if kept is not None and kept.article is article and kept.max_chunk_chars == max_chunk_chars:
            return kept
        chunks = chunk_article(article, max_chunk_chars)
        record = _article_record(article)
        return _Prepared(article, max_chunk_chars, chunks, record,
                         _digest([record, [c.hash for c in chunks]]), _JSON.encode(record),
                         "".join(_JSON.encode(c.to_dict()) + "\n" for c in chunks))

    def _write_lexical(self, staging: Path, articles: list[_Prepared],
                       previous: _Previous | None) -> LexicalIndex:
        """The version's BM25 index and tokens. bm25s is given token ids: turning every
        chunk's tokens into ids again took a fifth of a one-article re-index."""
        _tokenize(articles, previous)
        vocabulary = self._vocabulary
        for p in articles:
            if p.token_ids is None:
                p.token_ids = [[vocabulary.setdefault(t, len(vocabulary)) for t in line.split()]
                               for line in p.token_lines.splitlines()]  # type: ignore[union-attr]
        lexical = LexicalIndex.build([ids for p in articles for ids in p.token_ids],  # type: ignore[union-attr]
                                     vocabulary)
        folder = staging / "lexical"
        folder.mkdir()
        lexical.save(folder)
        (folder / TOKENS_FILE).write_text("".join(p.token_lines for p in articles),  # type: ignore[misc]
                                          encoding="utf-8")
        if lexical.unused_terms() > UNUSED_TERMS * len(vocabulary):
            # Edits and removals leave tokens behind; they match nothing, but the index and
            # its vocabulary file would grow with every build. The next build starts afresh.
            self._vocabulary = new_vocabulary()
            for p in articles:
                p.token_ids = None
        return lexical

    def _published(self) -> _Previous | None:
        """The published version: the one kept from the last build, unless CURRENT moved."""
        if self._previous is None or self._previous.path.name != current_version(self.root):
            self._previous = _previous(self.root, self.model)
        return self._previous


def build_index(
    articles_dir: Path,
    root: Path,
    embedder_factory: Callable[[], Embedder],
    model: str,
    *,
    max_chunk_chars: int = 600,
    calibration: Calibration | None = None,
    keep_versions: int = 3,
    progress: Progress | None = None,
) -> BuildReport:
    """One build by a fresh Builder (see Builder.build)."""
    builder = Builder(root, model)
    built = builder.build(articles_dir, embedder_factory, max_chunk_chars=max_chunk_chars,
                          calibration=calibration, progress=progress)
    builder.tidy(keep_versions)
    return built.report


def _embed(embedder: Embedder, texts: list[str], progress: Progress | None) -> np.ndarray:
    if progress is None:
        # One call: the embedder sorts by length and batches, so batches pad little.
        return embedder.embed(texts)
    # Slices of texts of like length pad as little as one call does.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    progress(0, len(texts))
    for start in range(0, len(texts), EMBED_SLICE):
        rows = order[start:start + EMBED_SLICE]
        out[rows] = embedder.embed([texts[i] for i in rows])
        progress(start + len(rows), len(texts))
    return out


def _read_parse_cache(root: Path) -> dict[str, Parsed]:
    try:
        with open(root / PARSE_CACHE, "rb") as handle:
            cache = pickle.load(handle)
    except Exception:  # missing, truncated or from older code: parse everything again
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_parse_cache(root: Path, cache: dict[str, Parsed]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{PARSE_CACHE}.{secrets.token_hex(4)}.tmp"
    with open(tmp, "wb") as handle:
        pickle.dump(cache, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, root / PARSE_CACHE)


def _known_vectors(chunks: list[Chunk], previous: _Previous | None
                   ) -> tuple[tuple[np.ndarray, dict[str, int]] | None, dict[str, str]]:
    """The previous version's vectors (and their rows by chunk hash), if any, and the texts of
    the chunks they lack, by hash."""
    if previous is None:
        return None, {c.hash: c.embed_text for c in chunks}
    row = {c.hash: i for i, c in enumerate(previous.chunks)}
    return ((previous.vectors.reconstruct_all(), row),
            {c.hash: c.embed_text for c in chunks if c.hash not in row})


def _write_vectors(staging: Path, chunks: list[Chunk],
                   known: tuple[np.ndarray, dict[str, int]] | None, missing: dict[str, str],
                   embedder_factory: Callable[[], Embedder], progress: Progress | None,
                   report: BuildReport) -> VectorIndex:
    """The version's vectors: those known for unchanged chunks, the rest embedded."""
    matrix, row = known or (np.zeros((0, 0), np.float32), {})
    if missing or known is None:
        fresh = _embed(embedder_factory(), list(missing.values()), progress)
        row = {**row, **{h: len(matrix) + i for i, h in enumerate(missing)}}
        matrix = np.concatenate([matrix.reshape(-1, fresh.shape[1]), fresh])
    report.embedded = len(missing)
    report.reused = sum(1 for c in chunks if c.hash not in missing)
    vectors = VectorIndex.build(matrix[[row[c.hash] for c in chunks]], matrix.shape[1])
    vectors.save(staging / "vectors.faiss")
    return vectors


def _tokenize(articles: list[_Prepared], previous: _Previous | None) -> None:
    """Give each article without them its chunks' BM25 tokens. Segmentation is most of the
    work of re-indexing a large knowledge base after a one-article edit: a Builder keeps the
    tokens of articles it has seen, and a fresh one reads the published version's tokens file.

    A token never holds whitespace (kb.text cuts at it), so a line of them needs no quoting;
    JSON lines took several times as long to write and to read back.
    """
    todo = [p for p in articles if p.token_lines is None]
    stored: dict[str, str] = {}
    if (len(todo) == len(articles) and previous
            and previous.manifest.get("tokenizer") == TOKENIZER):
        try:
            with open(previous.path / "lexical" / TOKENS_FILE, encoding="utf-8") as handle:
                lines = handle.readlines()
        except OSError:
            lines = []
        if len(lines) == len(previous.chunks):
            stored = {c.lexical_text: line for c, line in zip(previous.chunks, lines, strict=True)}
    for p in todo:
        p.token_lines = "".join(stored.get(c.lexical_text) or " ".join(tokenize(c.lexical_text))
                                + "\n" for c in p.chunks)


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
    return Index(name, path, manifest, articles, chunks, vectors, lexical, _read_calibration(path),
                 read_lexicon(path))


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
    return Calibration.load(path / "calibration.json")


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
            publish(root, staging, version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    _prune(root, keep_versions, protect=version)
    return version
