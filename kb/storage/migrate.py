"""Schema migrations: one Alembic chain for SQLite and PostgreSQL, applied on start and by
``kb db upgrade``.

Several processes may start at once on one database (``kb serve --workers N``, replicas): the
first to take the lock migrates, the others wait for it and then find nothing left to do. On
PostgreSQL the lock is an advisory lock held by the migrating transaction; on SQLite it is the
write lock of that transaction (``BEGIN IMMEDIATE``), so DDL and version stamp commit together.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_ID = 0x6B62  # "kb": the advisory lock every kb process takes to migrate


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@cache
def head() -> str:
    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None
    return head


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision it is at afterwards."""
    if revision == "head" and current(engine) == head():
        return head()  # the common case, without loading every migration script
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        command.upgrade(config(conn), revision)
        return MigrationContext.configure(conn).get_current_revision()


def downgrade(engine: Engine, revision: str) -> str | None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
        command.downgrade(config(conn), revision)
        return MigrationContext.configure(conn).get_current_revision()
