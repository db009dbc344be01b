"""The SQL schema of a graphcopy store, as SQLAlchemy Core tables.

This module describes the schema at the newest Alembic revision; the revisions in
``migrations/versions`` create it (they are hand-written and do not import this module), and
``tests/test_store.py`` checks that both agree on SQLite and PostgreSQL.

Conventions:

* sizes, counters and nanosecond timestamps are ``BIGINT``;
* blobs are ``LargeBinary`` (``BLOB`` on SQLite, ``bytea`` on PostgreSQL; the page ``data`` columns
  use ``STORAGE EXTERNAL`` on PostgreSQL, see the migration);
* JSON documents are stored as ``TEXT`` and (de)serialised by the caller;
* ids of tables that grow without bound are ``BIGINT`` on PostgreSQL and ``INTEGER PRIMARY KEY
  AUTOINCREMENT`` on SQLite (a rowid alias, never reused after a delete);
* every child of ``canisters`` is deleted with it (``ON DELETE CASCADE``; SQLite enforces it
  because ``persist.store.db`` turns ``PRAGMA foreign_keys`` on).
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "NAMING_CONVENTION",
    "metadata",
    "settings",
    "modules",
    "module_sections",
    "canisters",
    "heap_pages",
    "stable_pages",
    "logs",
    "history",
    "ingress",
    "call_contexts",
    "messages",
    "page_table",
    "page_blobs",
    "snapshots",
    "snapshot_pages",
    "pipeline_locks",
    "wasm_chunks",
    "stop_waiters",
    "DEFAULT_CYCLES",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# BIGINT on PostgreSQL (BIGSERIAL for ids); INTEGER on SQLite so that an id column stays a rowid alias.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_ZERO = sa.text("0")

#: The notional cycle balance of a canister nobody attached cycles to (100T; see
#: ``persist.host.system_api.cycles``). The column default, so older rows get it too.
DEFAULT_CYCLES = 100_000_000_000_000


def _canister_fk() -> sa.ForeignKey:
    return sa.ForeignKey("canisters.id", ondelete="CASCADE")


settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

modules = sa.Table(
    "modules",
    metadata,
    sa.Column("hash", sa.Text, primary_key=True),  # sha256 hex of the wasm bytes
    sa.Column("wasm", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
)

module_sections = sa.Table(
    "module_sections",
    metadata,
    sa.Column(
        "module_hash",
        sa.Text,
        sa.ForeignKey("modules.hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

canisters = sa.Table(
    "canisters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("principal", sa.Text, nullable=False, unique=True),
    sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'running'")),
    sa.Column("module_hash", sa.Text, sa.ForeignKey("modules.hash"), nullable=True),
    sa.Column("controllers", sa.Text, nullable=False),  # JSON list of principal texts
    sa.Column("heap_pages", sa.BigInteger, nullable=False, server_default=_ZERO),
    sa.Column("stable_pages", sa.BigInteger, nullable=False, server_default=_ZERO),
    sa.Column("globals", sa.Text, nullable=True),  # JSON
    sa.Column("timer_ns", sa.BigInteger, nullable=False, server_default=_ZERO),
    sa.Column("version", sa.BigInteger, nullable=False, server_default=_ZERO),
    sa.Column("time_ns", sa.BigInteger, nullable=False, server_default=_ZERO),
    sa.Column("certified_data", sa.LargeBinary, nullable=True),
    sa.Column("migration", sa.Text, nullable=True),  # JSON
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ns", sa.BigInteger, nullable=False),
    # Revision 0004: the status of the "on low wasm memory" hook an imported IC snapshot carried
    # (condition_not_satisfied | ready | executed; NULL: unknown). graphcopy runs no such hook.
    sa.Column("on_low_wasm_memory_hook_status", sa.Text, nullable=True),
    # Revision 0005 (the management canister): the canister that created this one (principal text;
    # NULL for canisters a user created), the settings of canister_settings as JSON (only those set),
    # the environment variables as a JSON list of [name, value] sorted by name, the cycle balance.
    sa.Column("parent", sa.Text, nullable=True),
    sa.Column("settings", sa.Text, nullable=True),
    sa.Column("environment_variables", sa.Text, nullable=True),
    sa.Column("cycles", sa.BigInteger, nullable=False, server_default=sa.text(str(DEFAULT_CYCLES))),
    sa.Index("ix_canisters_parent", "parent"),
    sqlite_autoincrement=True,
)


def _page_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("canister_id", sa.Integer, _canister_fk(), primary_key=True),
        sa.Column("page_no", sa.BigInteger, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        # Revision 0008: the sha256 hex of data, written with every page (``persist.store.pages``), so
        # a snapshot maps pages to ``page_blobs`` without reading them. Nullable only because SQLite
        # cannot add a NOT NULL column without a default; no writer leaves it NULL.
        sa.Column("hash", sa.Text, nullable=True),
        # Covering: a snapshot reads (page_no, hash) from this index; on SQLite the column, appended
        # after the 64 KiB blob, would otherwise be reached by walking the blob's overflow pages.
        sa.Index(f"ix_{name}_canister_id_page_no_hash", "canister_id", "page_no", "hash"),
    )


heap_pages = _page_table("heap_pages")
stable_pages = _page_table("stable_pages")

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("canister_id", sa.Integer, _canister_fk(), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("time_ns", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),  # 'print' | 'trap'
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_logs_canister_id_seq", "canister_id", "seq"),
    sqlite_autoincrement=True,
)

history = sa.Table(
    "history",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("canister_id", sa.Integer, _canister_fk(), nullable=False),
    sa.Column("time_ns", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("module_hash", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),  # JSON
    # Revision 0005: who made the change (JSON: {"user": text} or {"canister": text, "version": n})
    # and the canister's version after it, for canister_info.
    sa.Column("origin", sa.Text, nullable=True),
    sa.Column("canister_version", sa.BigInteger, nullable=True),
    sa.Index("ix_history_canister_id", "canister_id"),
    sqlite_autoincrement=True,
)

ingress = sa.Table(
    "ingress",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("canister_id", sa.Integer, _canister_fk(), nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("caller", sa.Text, nullable=False),
    sa.Column("arg", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # 'pending' | 'replied' | 'rejected'
    sa.Column("reply", sa.LargeBinary, nullable=True),
    sa.Column("reject_code", sa.Integer, nullable=True),
    sa.Column("reject_message", sa.Text, nullable=True),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Index("ix_ingress_canister_id", "canister_id"),
    sqlite_autoincrement=True,
)

call_contexts = sa.Table(
    "call_contexts",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("canister_id", sa.Integer, _canister_fk(), nullable=False),
    sa.Column("origin", sa.Text, nullable=False),  # JSON: ingress id, or caller canister + callback
    sa.Column("replied", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("outstanding", sa.Integer, nullable=False, server_default=_ZERO),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_call_contexts_canister_id", "canister_id"),
    sqlite_autoincrement=True,
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("canister_id", sa.Integer, _canister_fk(), nullable=False),  # the target
    sa.Column("kind", sa.Text, nullable=False),  # 'request' | 'response'
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Column("data", sa.LargeBinary, nullable=True),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Index("ix_messages_canister_id_id", "canister_id", "id"),
    sqlite_autoincrement=True,
)

# Snapshots (revision 0002): content-addressed pages shared by every snapshot that holds them.
page_blobs = sa.Table(
    "page_blobs",
    metadata,
    sa.Column("hash", sa.Text, primary_key=True),  # sha256 hex of data
    sa.Column("data", sa.LargeBinary, nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("canister_id", sa.Integer, _canister_fk(), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("module_hash", sa.Text, sa.ForeignKey("modules.hash"), nullable=True),
    sa.Column("metadata", sa.Text, nullable=False),  # JSON
    sa.Column("heap_pages", sa.BigInteger, nullable=False),
    sa.Column("stable_pages", sa.BigInteger, nullable=False),
    sa.Column("bytes_new", sa.BigInteger, nullable=False, server_default=_ZERO),
    # Revision 0007: for a snapshot taken before an upgrade or a reinstall, whether that change
    # committed ("pending" until the change's own commit transaction sets "committed"); NULL for
    # snapshots taken for no change (``persist.store.snapshots``).
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Index("ix_snapshots_canister_id", "canister_id"),
    sqlite_autoincrement=True,
)

snapshot_pages = sa.Table(
    "snapshot_pages",
    metadata,
    sa.Column("snapshot_id", _BigId, sa.ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),  # 'heap' | 'stable' | 'chunk' (the Wasm chunk store, revision 0005)
    sa.Column("page_no", sa.BigInteger, primary_key=True),
    sa.Column("blob_hash", sa.Text, sa.ForeignKey("page_blobs.hash"), nullable=False),
    sa.Index("ix_snapshot_pages_blob_hash", "blob_hash"),
)

# Migration pipelines (revision 0003): which worker migrates which canister (see migrate.pipeline).
pipeline_locks = sa.Table(
    "pipeline_locks",
    metadata,
    sa.Column("pipeline", sa.Text, primary_key=True),
    sa.Column("canister", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),  # pending | running | done | failed | rolled-back
    sa.Column("owner", sa.Text, nullable=True),  # host:pid
    sa.Column("heartbeat_ns", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),  # JSON
    sa.Column("updated_at_ns", sa.BigInteger, nullable=False),
    sa.Index("ix_pipeline_locks_canister", "canister"),
)

# The Wasm chunk store of each canister (revision 0004; persist.store.chunks): chunks of at most
# 1 MiB keyed by their sha256 (hex), as the management canister's upload_chunk stores them and
# install_chunked_code reads them; snapshot import puts a snapshot directory's chunks in by hash.
wasm_chunks = sa.Table(
    "wasm_chunks",
    metadata,
    sa.Column("canister_id", sa.Integer, _canister_fk(), primary_key=True),
    sa.Column("hash", sa.Text, primary_key=True),  # sha256 hex of data
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
)

# stop_canister calls waiting for their canister to stop (no open call contexts left): answered
# when it does, rejected if it is started again first.
stop_waiters = sa.Table(
    "stop_waiters",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("canister_id", sa.Integer, _canister_fk(), nullable=False),
    sa.Column("origin", sa.Text, nullable=False),  # JSON, as routing.deliver takes it
    sa.Column("created_at_ns", sa.BigInteger, nullable=False),
    sa.Index("ix_stop_waiters_canister_id", "canister_id"),
    sqlite_autoincrement=True,
)


def page_table(kind: str) -> sa.Table:
    """The table holding the pages of ``kind`` (``"heap"`` or ``"stable"``)."""
    if kind == "heap":
        return heap_pages
    if kind == "stable":
        return stable_pages
    raise ValueError(f"unknown page kind {kind!r}; expected 'heap' or 'stable'")
