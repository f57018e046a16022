"""Audiences, every result of a query, one vote per query and article, events, gap topic
decisions, API keys, and purging old query text.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE = sa.text("revoked IS NULL")


def upgrade() -> None:
    # Logs from before audiences came from agent-facing deployments: internal.
    op.add_column("queries", sa.Column("audience", sa.String, nullable=False,
                                       server_default="internal"))
    op.add_column("queries", sa.Column("results", sa.Text, nullable=False, server_default="[]"))
    op.add_column("queries", sa.Column("reported", sa.Boolean, nullable=False,
                                       server_default=sa.false()))
    op.add_column("queries", sa.Column("purged_at", sa.String))
    # What an older query returned beyond its top 3 was not kept: its top 3 is all we know.
    op.execute("UPDATE queries SET results = neighbours")
    op.create_index("queries_ts", "queries", ["ts"])

    # One vote per query and article: of repeated votes, the last one counts.
    op.execute("DELETE FROM feedback WHERE id NOT IN "
               "(SELECT MAX(id) FROM feedback GROUP BY query_id, article_id)")
    op.drop_index("feedback_query", table_name="feedback")
    op.create_index("feedback_vote", "feedback", ["query_id", "article_id"], unique=True)

    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("article_id", sa.String),
        sa.Column("query_id", sa.String),
        sa.Column("ts", sa.String, nullable=False),
    )
    op.create_index("events_article", "events", ["article_id", "kind"])
    op.create_index("events_query", "events", ["query_id"])

    op.create_table(
        "gap_topics",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("article_id", sa.String),
        sa.Column("updated", sa.String, nullable=False),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("role", sa.String, nullable=False),
        sa.Column("audience", sa.String, nullable=False),
        sa.Column("created", sa.String, nullable=False),
        sa.Column("revoked", sa.String),
        sa.Column("secret_hash", sa.String, nullable=False, unique=True),
    )
    # A revoked key's name may be given to a new key; two live keys never share one.
    op.create_index("api_keys_live_name", "api_keys", ["name"], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_table("gap_topics")
    op.drop_table("events")
    op.drop_index("feedback_vote", table_name="feedback")
    op.create_index("feedback_query", "feedback", ["query_id"])
    op.drop_index("queries_ts", table_name="queries")
    with op.batch_alter_table("queries") as batch:
        for name in ("purged_at", "reported", "results", "audience"):
            batch.drop_column(name)
