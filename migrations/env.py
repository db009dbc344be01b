"""Alembic environment of graphcopy.

graphcopy runs Alembic programmatically (``persist.store.db.upgrade_schema``), without an ``alembic.ini``:
the caller opens a transaction and passes its connection in ``config.attributes["connection"]``,
so every revision runs inside that one transaction. Without a connection (for example a ``Config``
that only sets the ``sqlalchemy.url`` main option, or none: then ``persist.store.db.resolve_url`` picks the
database), an engine is built with ``persist.store.db.create_engine_for`` so the same SQLite settings
(transactional DDL) apply, and all pending revisions again run in one transaction.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from persist.store.schema import metadata as target_metadata

config = context.config


def _configure_and_run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    from persist.store.db import resolve_url

    return resolve_url(config.get_main_option("sqlalchemy.url") or None)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from persist.store.db import create_engine_for

    engine = create_engine_for(_url())
    try:
        with engine.begin() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
