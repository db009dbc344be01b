"""Database URLs: what a store URL may be, and one-line errors with a hint for the ones it may not.

:func:`parse_url` turns a URL into a SQLAlchemy ``URL`` or a :class:`StoreError` that says what is
wrong and how to write it: a PostgreSQL port that is not a number, an unbalanced IPv6 bracket, a
PostgreSQL URL without a database name (the server would silently pick the database named after
the user, usually ``postgres``), an in-memory SQLite database where the store must outlive the
command. :func:`sqlite_path_hint` and :func:`missing_database_hint` add the hint to errors the
drivers raise later (a relative SQLite path written with three slashes, a database that does not
exist yet).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlsplit

import sqlalchemy as sa

from persist.errors import StoreError

__all__ = ["is_in_memory", "missing_database_hint", "parse_url", "sqlite_path_hint"]


def parse_url(url: str, *, allow_in_memory: bool = False) -> sa.URL:
    """The SQLAlchemy URL of ``url``, or StoreError with what is wrong and how to write it."""
    _check_authority(url)
    try:
        u = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"invalid database URL {_redacted(url)}: {exc}; write sqlite:///path/to/file.db or "
                         "postgresql://user@host:5432/database") from exc
    backend = u.get_backend_name()
    if backend == "postgresql" and not u.database:
        raise StoreError(f"the PostgreSQL URL {_redacted(url)} names no database: add one, e.g. "
                         "postgresql://postgres@127.0.0.1:5432/graphcopy (create it with `createdb graphcopy`); "
                         "without it the server would use the database named after the user")
    if backend == "sqlite" and is_in_memory(u) and not allow_in_memory:
        raise StoreError(f"{_redacted(url)} is an in-memory SQLite database: what graphcopy stores in it is gone when "
                         "the command ends; give a file instead (sqlite:///graphcopy.db)")
    return u


def is_in_memory(u: sa.URL) -> bool:
    """Whether a SQLite URL names an in-memory database (``sqlite://``, ``sqlite:///:memory:``,
    ``file::memory:``, ``mode=memory``)."""
    db = u.database or ""
    return db in ("", ":memory:") or db.startswith("file::memory:") or "mode=memory" in db or \
        u.query.get("mode") == "memory"


def _check_authority(url: str) -> None:
    """Refuse, with the rule, host and port parts that the URL parser would crash on."""
    if "://" not in url:
        return
    scheme, rest = url.split("://", 1)
    if scheme.startswith("sqlite"):
        return
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    hostport = authority.rsplit("@", 1)[-1]
    where = _redacted(url)
    if hostport.count("[") != hostport.count("]") or (hostport.startswith("[") and "]" not in hostport):
        raise StoreError(f"invalid database URL {where}: unbalanced '[' in the host; write an IPv6 address in "
                         "brackets, e.g. postgresql://postgres@[::1]:5432/graphcopy")
    port = hostport.rsplit("]", 1)[-1] if hostport.startswith("[") else hostport
    if ":" in port:
        digits = port.rsplit(":", 1)[1]
        if digits and not digits.isdigit():
            raise StoreError(f"invalid database URL {where}: the port {digits!r} is not a number "
                             "(e.g. postgresql://postgres@127.0.0.1:5432/graphcopy)")
        if digits and not 0 < int(digits) < 65536:
            raise StoreError(f"invalid database URL {where}: the port {digits} is out of range (1-65535)")


def _redacted(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return url


def sqlite_path_hint(u: sa.URL) -> str:
    """For a SQLite file that cannot be opened: how to write an absolute path, if the URL's path
    is relative (``sqlite:///tmp/x.db`` is ``tmp/x.db``; ``sqlite:////tmp/x.db`` is ``/tmp/x.db``)."""
    db = u.database or ""
    if not db or PurePosixPath(db).is_absolute():
        return ""
    return (f"; sqlite:///{db} names the path {db} relative to the working directory (three slashes), "
            f"for the absolute path /{db} write four: sqlite:////{db}")


def missing_database_hint(u: sa.URL) -> str:
    """The ``createdb`` command for a PostgreSQL database that does not exist."""
    parts = ["createdb"]
    if u.host:
        parts += ["-h", u.host]
    if u.port:
        parts += ["-p", str(u.port)]
    if u.username:
        parts += ["-U", u.username]
    parts.append(u.database or "graphcopy")
    return f"; create it first: {' '.join(parts)}"
