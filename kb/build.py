"""Build an index version from the articles folder: parse, chunk, embed what changed, publish.

A build runs in the process that asked for it (``kb index``, a test, the benchmark). It reuses
the published version's vectors (by chunk content hash) and BM25 tokens (by chunk text) when
that version's fingerprint matches this build's, and publishes through kb.store; a running
service notices the new version by itself. The outcome of every build, published or failed,
is recorded in the index folder (see kb.store.write_status).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb import store
from kb.articles import Article, load_articles
from kb.chunking import Chunk, chunk_article
from kb.config import Settings
from kb.dictcache import lexicon_key, translations_into
from kb.embedding import Embedder
from kb.errors import ArticleError, KBError
from kb.expansion import build_lexicon, read_glossary, write_lexicon
from kb.glossary import Glossary, load_glossary
from kb.lexical import LexicalIndex, new_vocabulary
from kb.ranking import Calibration
from kb.store import Index
from kb.text import tokenize
from kb.vectors import VectorIndex

log = logging.getLogger("kb.build")

ARTICLE_FIELDS = ("id", "title", "type", "path", "lang", "audience", "tags", "product",
                  "updated", "review_by", "questions", "related")
Progress = Callable[[int, int], None]  # (texts embedded so far, texts to embed)
EMBED_SLICE = 256  # texts per embedder call when progress is reported
OVERLAP_TEXTS = 64  # at most this many texts to embed: BM25 indexes meanwhile, on a thread

# Made once: json.dumps with a non-default option builds a new encoder on every call, and a
# build encodes every chunk and article.
_JSON = json.JSONEncoder(ensure_ascii=False)
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


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
class Built:
    report: BuildReport
    index: Index | None  # the version published, as load_index would return it; None if none


@dataclass
class _Prepared:
    """An article cut into chunks, with what a version stores of it."""

    article: Article
    chunks: list[Chunk]
    hash: str
    record: dict
    record_json: str
    chunks_jsonl: str


@dataclass
class _Reusable:
    """What a build may take from the published version: same fingerprint, files readable."""

    chunks: list[Chunk]
    vectors: VectorIndex
    tokens: list[str]


def build_index(articles_dir: Path, root: Path, embedder_factory: Callable[[], Embedder],
                model: str, *, max_chunk_chars: int = 600, calibration: Calibration | None = None,
                keep_versions: int = 3, progress: Progress | None = None,
                shown_as: str | None = None, max_article_bytes: int | None = None) -> Built:
    """Parse, chunk, embed what changed, and publish a new version (or nothing when
    unchanged); prune old versions. Raises ArticleError, listing every problem, before
    anything is published. The embedder is made when an article file changed (on a thread, while
    the rest is read), else only if something needs embedding; a failure to make it counts only
    if something does."""
    started = time.perf_counter()
    with store.build_lock(root):
        removed = store.clean_staging(root)
        if removed:
            log.info("removed %d staging folder(s) left by interrupted builds", len(removed))
        try:
            built = _build(articles_dir, root, embedder_factory, model, max_chunk_chars,
                           calibration, progress, shown_as, started, max_article_bytes)
        except Exception as exc:
            store.write_status(root, _status(started, ok=False, problems=_problems(exc)))
            raise
        if built.index is not None:
            store.prune(root, keep_versions, protect=built.index.version)
        store.write_status(root, _status(started, ok=True, report=built.report))
    return built


def index_articles(cfg: Settings, embedder_factory: Callable[[], Embedder],
                   progress: Progress | None = None) -> Built:
    """What ``kb index`` does: build and publish a version as the settings say."""
    return build_index(cfg.articles, cfg.index, embedder_factory, cfg.model,
                       max_chunk_chars=cfg.max_chunk_chars, calibration=first_calibration(cfg),
                       keep_versions=cfg.keep_versions, progress=progress,
                       max_article_bytes=cfg.max_article_bytes)


def first_calibration(cfg: Settings) -> Calibration | None:
    """A knowledge base may carry its own fit (articles/calibration.json); a first build uses
    it. Later builds carry the published version's forward."""
    source = cfg.calibration or cfg.articles / "calibration.json"
    if store.current_version(cfg.index) is not None or (
            cfg.calibration is None and not source.exists()):
        return None
    return Calibration.load(source)


def _problems(exc: Exception) -> list[str]:
    """The problems of a failed build, one line each: ``path:line: message`` for articles."""
    if isinstance(exc, ArticleError):
        return [str(p) for p in exc.problems]
    if isinstance(exc, KBError):
        return [exc.message]
    return [f"error: {exc}"]


def _status(started: float, *, ok: bool, report: BuildReport | None = None,
            problems: list[str] | None = None) -> dict:
    status: dict = {"ok": ok, "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "seconds": round(time.perf_counter() - started, 3), "problems": problems or []}
    if report is not None:
        status.update(version=report.version, published=report.published,
                      articles=report.articles, chunks=report.chunks,
                      embedded=report.embedded, reused=report.reused)
    return status


def _build(articles_dir: Path, root: Path, embedder_factory: Callable[[], Embedder], model: str,
           max_chunk_chars: int, calibration: Calibration | None, progress: Progress | None,
           shown_as: str | None, started: float, max_article_bytes: int | None) -> Built:
    cache = store.read_parse_cache(root)
    cached = _cache_state(cache)
    parsed = load_articles(articles_dir, cache, shown_as=shown_as, max_bytes=max_article_bytes)
    glossary = load_glossary(articles_dir, shown_as)
    files_changed = _cache_state(cache) != cached
    # A file changed: the model will most likely be needed, so it loads meanwhile.
    loader = _ModelLoader(embedder_factory) if files_changed else None
    try:
        built = _build_parsed(root, parsed, loader.get if loader else embedder_factory, model,
                              max_chunk_chars, calibration, progress, started, glossary)
    finally:
        if loader is not None:
            loader.wait()
    if files_changed:
        store.write_parse_cache(root, cache)
    return built


class _ModelLoader:
    """Makes the embedder on a thread of its own (the model's runtime loads outside the GIL)."""

    def __init__(self, factory: Callable[[], Embedder]) -> None:
        self._embedder: Embedder | None = None
        self._error: BaseException | None = None

        def load() -> None:
            try:
                self._embedder = factory()
            except BaseException as exc:  # raised where the embedder is asked for, if it is
                self._error = exc

        self._thread = threading.Thread(target=load, name="kb-model-load", daemon=True)
        self._thread.start()

    def get(self) -> Embedder:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._embedder is not None
        return self._embedder

    def wait(self) -> None:
        self._thread.join()


def _build_parsed(root: Path, parsed: list[Article], embedder_factory: Callable[[], Embedder],
                  model: str, max_chunk_chars: int, calibration: Calibration | None,
                  progress: Progress | None, started: float,
                  glossary: Glossary | None = None) -> Built:
    glossary = glossary or Glossary()
    articles = [_prepare(a, max_chunk_chars) for a in parsed]
    chunks = [c for p in articles for c in p.chunks]
    hashes = {p.article.id: p.hash for p in articles}
    fingerprint = store.fingerprint(model, max_chunk_chars)
    lexicon_made_by = lexicon_key()

    published = _published(root)
    old_hashes = published[2]["article_hashes"] if published else {}
    report = BuildReport(
        version=published[0] if published else "", articles=len(articles), chunks=len(chunks),
        embedded=0, reused=0,
        added=sorted(set(hashes) - set(old_hashes)),
        changed=sorted(a for a in hashes if a in old_hashes and hashes[a] != old_hashes[a]),
        removed=sorted(set(old_hashes) - set(hashes)),
    )
    reusable = _reusable(published, fingerprint) if published else None
    if calibration is None:
        calibration = _carried_calibration(published, model)
    if (reusable is not None and hashes == old_hashes and published is not None
            and _carried_calibration(published, model) == calibration
            and published[2].get("lexicon") == lexicon_made_by
            and read_glossary(store.versions_dir(root) / published[0]) == glossary.to_list()):
        report.published = False
        report.reused = len(chunks)
        report.seconds = time.perf_counter() - started
        return Built(report, None)

    known, missing = _known_vectors(chunks, reusable)
    staging, version = store.new_staging(root)
    try:
        with ThreadPoolExecutor(1) as worker:
            # A few texts to embed: BM25, pure Python, indexes meanwhile, as the model lets go
            # of the GIL. Many: the model keeps every core busy, and a thread beside it would
            # slow it down by more than it saves.
            lexical_job = (worker.submit(_lexical, articles, reusable)
                           if len(missing) <= OVERLAP_TEXTS else None)
            vectors = _vectors(chunks, known, missing, embedder_factory, progress, report,
                               reusable.vectors if reusable else None)
            lexical, tokens = (lexical_job.result() if lexical_job is not None
                               else _lexical(articles, reusable))
        manifest = {
            "format": store.FORMAT,
            "version": version,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "model": model,
            "dim": vectors.dim,
            "articles": len(articles),
            "chunks": len(chunks),
            "fingerprint": fingerprint,
            "vectors": vectors.describe(),
            "article_hashes": hashes,
            "lexicon": lexicon_made_by,
        }
        store.write_version(
            staging, manifest=manifest,
            # One JSON list, as json.dumps writes it without indent.
            articles_json="[" + ", ".join(p.record_json for p in articles) + "]",
            chunks_jsonl="".join(p.chunks_jsonl for p in articles),
            vectors=vectors, lexical=lexical, tokens=tokens, calibration=calibration)
        vocabulary = lexical.vocabulary()
        lexicon = build_lexicon(glossary, vocabulary, translations_into(vocabulary))
        write_lexicon(staging, lexicon)
        store.publish(root, staging, version)
    except BaseException:
        store.clean_staging(root)
        raise
    report.version = version
    report.seconds = time.perf_counter() - started
    records = {p.article.id: p.record for p in articles}
    index = Index(version, store.versions_dir(root) / version, manifest, records, chunks,
                  vectors, lexical, calibration, lexicon)
    return Built(report, index)


def _cache_state(cache: dict) -> dict[str, tuple]:
    return {path: (p.stat, p.hashed_at, p.digest) for path, p in cache.items()}


def _prepare(article: Article, max_chunk_chars: int) -> _Prepared:
    chunks = chunk_article(article, max_chunk_chars)
    # Not asdict(): it deep-copies every section, which is slow on a large knowledge base.
    record = {k: list(v) if isinstance(v := getattr(article, k), list) else v
              for k in ARTICLE_FIELDS}
    text = _CANONICAL.encode([record, [c.hash for c in chunks]])
    return _Prepared(article, chunks, hashlib.sha256(text.encode("utf-8")).hexdigest(), record,
                     _JSON.encode(record),
                     "".join(_JSON.encode(c.to_dict()) + "\n" for c in chunks))


def _published(root: Path) -> tuple[str, Path, dict] | None:
    """Name, folder and manifest of the published version, if it can be read at all."""
    if store.current_version(root) is None:
        return None
    try:
        return store.open_version(root)
    except (KBError, OSError, ValueError) as exc:
        log.warning("cannot read the published version (%s): building everything afresh",
                    getattr(exc, "message", exc))
        return None


def _reusable(published: tuple[str, Path, dict], fingerprint: dict) -> _Reusable | None:
    """The published version's vectors, chunks and tokens, if this build may reuse them; else
    None, with the reason logged."""
    name, path, manifest = published
    reason = store.fingerprint_difference(manifest, fingerprint)
    if reason is None:
        try:
            chunks = store.read_chunks(path)
            vectors = store.read_vectors(path)
            tokens = store.read_tokens(path)
            if vectors.size != len(chunks) or len(tokens) != len(chunks):
                reason = (f"its files disagree ({len(chunks)} chunks, {vectors.size} vectors, "
                          f"{len(tokens)} token lines)")
            else:
                return _Reusable(chunks, vectors, tokens)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            reason = f"cannot read it: {exc}"
    log.warning("not reusing version %s (%s): embedding and tokenizing every chunk", name, reason)
    return None


def _carried_calibration(published: tuple[str, Path, dict] | None, model: str) -> Calibration:
    """The published version's calibration, carried forward while the model stays the same."""
    if published is None or published[2].get("model") != model:
        return Calibration()
    try:
        return store.read_calibration(published[1])
    except (KBError, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read the calibration of version %s (%s): using the defaults",
                    published[0], getattr(exc, "message", exc))
        return Calibration()


def _known_vectors(chunks: list[Chunk], reusable: _Reusable | None
                   ) -> tuple[tuple[np.ndarray, dict[str, int]] | None, dict[str, str]]:
    """The reusable vectors (and their rows by chunk hash), if any, and the texts of the chunks
    they lack, by hash."""
    if reusable is None:
        return None, {c.hash: c.embed_text for c in chunks}
    row = {c.hash: i for i, c in enumerate(reusable.chunks)}
    return ((reusable.vectors.reconstruct_all(), row),
            {c.hash: c.embed_text for c in chunks if c.hash not in row})


def _vectors(chunks: list[Chunk], known: tuple[np.ndarray, dict[str, int]] | None,
             missing: dict[str, str], embedder_factory: Callable[[], Embedder],
             progress: Progress | None, report: BuildReport,
             previous: VectorIndex | None = None) -> VectorIndex:
    """The version's vectors: those known for unchanged chunks, the rest embedded. An IVF
    index keeps the previous version's centroids and unchanged rows' lists (kb.vectors)."""
    matrix, row = known or (np.zeros((0, 0), np.float32), {})
    reused = len(matrix)
    if missing or known is None:
        fresh = _embed(embedder_factory(), list(missing.values()), progress)
        row = {**row, **{h: len(matrix) + i for i, h in enumerate(missing)}}
        matrix = np.concatenate([matrix.reshape(-1, fresh.shape[1]), fresh])
    report.embedded = len(missing)
    report.reused = sum(1 for c in chunks if c.hash not in missing)
    source = np.array([row[c.hash] for c in chunks], dtype=np.int64)
    return VectorIndex.build(matrix[source], matrix.shape[1], previous,
                             np.where(source < reused, source, -1))


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


def _lexical(articles: list[_Prepared], reusable: _Reusable | None) -> tuple[LexicalIndex, str]:
    """The version's BM25 index and its tokens file. Segmenting Chinese text is most of the
    work of a re-index, so a chunk whose text the reusable version holds takes its tokens.

    A token never holds whitespace (kb.text cuts at it), so a line of them needs no quoting.
    """
    stored: dict[str, str] = {}
    if reusable is not None:
        stored = {c.lexical_text: line
                  for c, line in zip(reusable.chunks, reusable.tokens, strict=True)}
    lines = [stored.get(c.lexical_text) or " ".join(tokenize(c.lexical_text)) + "\n"
             for p in articles for c in p.chunks]
    vocabulary = new_vocabulary()
    ids = [[vocabulary.setdefault(t, len(vocabulary)) for t in line.split()] for line in lines]
    return LexicalIndex.build(ids, vocabulary), "".join(lines)
