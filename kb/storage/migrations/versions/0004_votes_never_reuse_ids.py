"""Vote ids are never reused: a changed vote is stored as a new row, and the gap report reads
votes past the last id it saw. SQLite hands out a deleted last row's id again unless the table
is AUTOINCREMENT; PostgreSQL's sequences never do.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _autoincrement(on: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("feedback", recreate="always",
                                  table_kwargs={"sqlite_autoincrement": on}):
            pass


def upgrade() -> None:
    _autoincrement(True)


def downgrade() -> None:
    _autoincrement(False)
