"""The tables as the code reads and writes them (the migrations create them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

queries = Table(
    "queries", metadata,
    Column("id", String, primary_key=True),
    Column("ts", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("audience", String, nullable=False),
    Column("query", Text, nullable=False),  # '' once purged
    Column("norm", Text, nullable=False),
    Column("lang", String, nullable=False),
    Column("filters", Text, nullable=False),  # JSON
    Column("ticket_id", String),
    Column("answered", Boolean, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("top_article", String),
    Column("top_score", Float),
    Column("neighbours", Text, nullable=False),  # JSON: the top 3 result ids
    Column("results", Text, nullable=False),  # JSON: every result id returned
    Column("vector", LargeBinary),
    Column("index_version", String),
    Column("resolved_by", String),
    Column("resolved_at", String),
    Column("reported", Boolean, nullable=False),
    Column("purged_at", String),
    Column("outside_filters", String),  # the article the filters kept out, for a gap query
    # Order of arrival on PostgreSQL (a sequence fills it); SQLite reads its rowid instead.
    Column("seq", BigInteger),
)

feedback = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("query_id", String, ForeignKey("queries.id"), nullable=False),
    Column("article_id", String, nullable=False),
    Column("helpful", Boolean, nullable=False),
    Column("ts", String, nullable=False),
    sqlite_autoincrement=True,  # a changed vote is a new row, with an id never handed out
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String, nullable=False),
    Column("article_id", String),
    Column("query_id", String),
    Column("ts", String, nullable=False),
)

gap_topics = Table(
    "gap_topics", metadata,
    Column("id", String, primary_key=True),
    Column("status", String, nullable=False),
    Column("article_id", String),
    Column("updated", String, nullable=False),
    Column("norms", Text, nullable=False),  # JSON: the topic's phrasings at the decision
)

article_edits = Table(
    "article_edits", metadata,
    Column("article_id", String, primary_key=True),
    Column("version", String, primary_key=True),
    Column("ts", String, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("role", String, nullable=False),
    Column("audience", String, nullable=False),
    Column("created", String, nullable=False),
    Column("revoked", String),
    Column("secret_hash", String, nullable=False, unique=True),
)
