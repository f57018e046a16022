"""Alembic's entry point. kb.storage.migrate hands it an open connection (in a transaction
that holds the migration lock); nothing here reads alembic.ini or the environment."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
