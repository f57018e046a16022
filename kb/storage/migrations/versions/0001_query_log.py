"""The query log as kb kept it before Alembic: queries and feedback.

A SQLite log made then (``PRAGMA user_version`` 1 or 2) is taken over in place: the tables are
there, and only the columns of its second step may be missing.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if inspector.has_table("queries"):
        columns = {c["name"] for c in inspector.get_columns("queries")}
        for name in ("resolved_by", "resolved_at"):
            if name not in columns:
                op.add_column("queries", sa.Column(name, sa.String))
        return
    op.create_table(
        "queries",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("ts", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("norm", sa.Text, nullable=False),
        sa.Column("lang", sa.String, nullable=False),
        sa.Column("filters", sa.Text, nullable=False),
        sa.Column("ticket_id", sa.String),
        sa.Column("answered", sa.Boolean, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("top_article", sa.String),
        sa.Column("top_score", sa.Float),
        sa.Column("neighbours", sa.Text, nullable=False),
        sa.Column("vector", sa.LargeBinary),
        sa.Column("index_version", sa.String),
        sa.Column("resolved_by", sa.String),
        sa.Column("resolved_at", sa.String),
    )
    op.create_index("queries_gap", "queries", ["answered", "ts"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("query_id", sa.String, sa.ForeignKey("queries.id"), nullable=False),
        sa.Column("article_id", sa.String, nullable=False),
        sa.Column("helpful", sa.Boolean, nullable=False),
        sa.Column("ts", sa.String, nullable=False),
    )
    op.create_index("feedback_article", "feedback", ["article_id"])
    op.create_index("feedback_query", "feedback", ["query_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("queries")
