"""Where kb keeps what happens: queries, feedback, events, gap topic decisions and API keys.

``open_store`` picks the database from the settings: ``KB_DATABASE_URL`` (``postgresql://…``
or ``sqlite:///PATH``), else the SQLite file ``KB_GAP_DB``, else ``gaps.sqlite3`` in the index
folder.
"""

from __future__ import annotations

from pathlib import Path

from kb.config import Settings
from kb.storage.base import ArticleHealth, LoggedQuery, Store, TopicStatus
from kb.storage.sql import SqlStore, shown_url, sqlite_path

__all__ = ["ArticleHealth", "LoggedQuery", "SqlStore", "Store", "TopicStatus", "database_url",
           "exists", "open_existing", "open_store", "shown_url", "sqlite_url", "where"]


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
    path = sqlite_path(database_url(settings))
    return path is None or path.exists()


def open_existing(settings: Settings) -> SqlStore | None:
    """The store, if there is one: a command that only reads must not leave an empty
    database behind (nor its folder) where there was none."""
    return open_store(settings) if exists(settings) else None


def where(settings: Settings) -> str:
    """The database as messages name it: the SQLite file, or the server without password."""
    url = database_url(settings)
    return str(sqlite_path(url) or shown_url(url))
