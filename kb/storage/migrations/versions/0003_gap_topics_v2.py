"""Gap topics v2: a writer's decision follows the topic's phrasings, article edits (a "not
helpful" topic resolves once its article is edited and then found helpful), the article a
query's filters kept out of its results, and an arrival order readable by any database.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gap_topics", sa.Column("norms", sa.Text, nullable=False,
                                          server_default="[]"))
    op.add_column("queries", sa.Column("outside_filters", sa.String))
    op.create_index("queries_resolved", "queries", ["resolved_at"])
    op.create_table(
        "article_edits",
        sa.Column("article_id", sa.String, primary_key=True),
        sa.Column("version", sa.String, primary_key=True),
        sa.Column("ts", sa.String, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The order of arrival: a sequence fills it (for the rows there too). SQLite has its
        # rowid and leaves the column empty.
        op.execute("CREATE SEQUENCE queries_arrival")
        op.execute("ALTER TABLE queries ADD COLUMN seq BIGINT DEFAULT nextval('queries_arrival')")
        op.create_index("queries_seq", "queries", ["seq"])
    else:
        op.add_column("queries", sa.Column("seq", sa.BigInteger))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.drop_index("queries_seq", table_name="queries")
    op.drop_table("article_edits")
    op.drop_index("queries_resolved", table_name="queries")
    with op.batch_alter_table("queries") as batch:
        batch.drop_column("outside_filters")
        batch.drop_column("seq")
    if postgres:
        op.execute("DROP SEQUENCE queries_arrival")
    with op.batch_alter_table("gap_topics") as batch:
        batch.drop_column("norms")
