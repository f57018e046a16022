"""The query log moved to kb.storage; these names stay for code written against them."""

from __future__ import annotations

from pathlib import Path

from kb.storage.base import LoggedQuery
from kb.storage.sql import SqlStore
from kb.storage.sql import normalized as _norm

__all__ = ["GapLog", "LoggedQuery", "_norm"]


def GapLog(path: Path) -> SqlStore:  # noqa: N802 - the class it replaces
    """The SQLite store in ``path``."""
    return SqlStore(f"sqlite:///{path}")
