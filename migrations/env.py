"""Alembic environment: targets ``search.catalog.Base.metadata``.

``render_as_batch`` lets migrations alter SQLite tables (copy-and-move).
A connection passed in ``config.attributes`` (by ``search.database``) is
used as is, so the app migrates inside its own transaction.
"""
from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from search.catalog import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return os.environ.get("LOOKALIKE_DATABASE_URL") or config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
