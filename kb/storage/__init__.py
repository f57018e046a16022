"""Where kb keeps what happens: queries, feedback, events, gap topic decisions and API keys.

``open_store`` picks the database from the settings: ``KB_DATABASE_URL`` (``postgresql://…``
or ``sqlite:///PATH``), else the SQLite file ``KB_GAP_DB``, else ``gaps.sqlite3`` in the index
folder.
"""

from __future__ import annotations

from pathlib import Path

from kb.config import Settings
from kb.storage.base import ArticleHealth, LoggedQuery, Store, TopicStatus
from kb.storage.sql import SqlStore, shown_url

__all__ = ["ArticleHealth", "LoggedQuery", "SqlStore", "Store", "TopicStatus", "database_url",
           "open_store", "shown_url", "sqlite_url"]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def database_url(settings: Settings) -> str:
    return settings.database_url or sqlite_url(settings.gap_path)


def open_store(settings: Settings, *, upgrade: bool = True) -> SqlStore:
    """The store the settings name, its schema brought up to date (unless ``upgrade`` is
    False: ``kb db`` looks at a database before it changes it)."""
    return SqlStore(database_url(settings), timeout=settings.db_timeout, upgrade=upgrade)


def exists(settings: Settings) -> bool:
    """Whether there is a database to read: a server always counts; a SQLite file only once
    it has been made."""
    return settings.database_url is not None or settings.gap_path.exists()
