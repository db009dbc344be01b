"""Careless and hostile input that must end in one line: deep nesting (``.most``, Candid text,
types and binary values, descriptors), store URLs and files (foreign, truncated, in-memory,
PostgreSQL without a database), canister names (undecodable bytes, principal texts)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from migrate.descriptor.convert import descriptor_to_signature
from migrate.descriptor.format import DescriptorTable, OptEntry, RecordEntry
from migrate.errors import StableTypeError
from migrate.stable_types import parse_signature
from persist import api, open_store
from persist.candid import decode_args, encode_args, parse_service
from persist.errors import CandidError, CanisterNotFoundError, GraphcopyError, StoreError
from persist.store import db
from persist.store.ownership import OWNER_KEY

COUNTER = Path(__file__).parent.parent / "examples" / "counter" / "counter.wasm"
runner = CliRunner()


def one_line(res: object) -> str:
    output: str = res.output  # type: ignore[attr-defined]
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


# --------------------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("text", ["[" * 200 + "Nat" + "]" * 200, "?" * 5000 + "Nat", "{a : " * 300 + "Nat" + "}" * 300,
                                  "(Nat, " * 300 + "Nat" + ")" * 300, "weak " * 3000 + "Nat"])
def test_deep_stable_types_are_one_error(text: str, tmp_path: Path) -> None:
    most = f"actor {{ stable x : {text} }};"
    with pytest.raises(StableTypeError, match="type nested more than 64 levels deep"):
        parse_signature(most)
    path = tmp_path / "deep.most"
    path.write_text(most)
    res = runner.invoke(app, ["--db", f"sqlite:///{tmp_path / 's.db'}", "check", str(path), str(path)])
    assert res.exit_code == 2
    assert "nested more than 64 levels deep" in one_line(res)


def test_stable_types_at_the_nesting_bound_go_through_everything() -> None:
    from migrate.compat import check_compatibility
    from migrate.descriptor.convert import signature_to_descriptor
    from migrate.stable_types.printer import format_signature

    for t in ("[" * 63 + "Nat" + "]" * 63, "?" * 63 + "Nat", "[var " * 63 + "Nat" + "]" * 63,
              "{#a : " * 63 + "Nat" + "}" * 63):
        sig = parse_signature(f"actor {{ stable x : {t} }}")
        assert parse_signature(format_signature(sig)) == sig
        back = descriptor_to_signature(signature_to_descriptor(sig))
        assert check_compatibility(sig, sig).compatible and check_compatibility(sig, back).compatible


def test_a_deep_descriptor_is_converted_without_recursion() -> None:
    n = 5000
    entries = [RecordEntry(((1, 1),)), *(OptEntry(i + 2) for i in range(n - 1)), OptEntry(-4)]
    sig = descriptor_to_signature(DescriptorTable(tuple(entries), (0,), tuple(range(len(entries)))))
    assert sig.types  # the chain is cut into named definitions


def test_deep_candid_is_one_error() -> None:
    with pytest.raises(CandidError, match="nested"):
        encode_args("(" + "opt " * 5000 + "1)", None)
    with pytest.raises(CandidError, match="nested"):
        parse_service("service : { f : (" + "opt " * 5000 + "nat) -> () }")
    with pytest.raises(CandidError, match="nested"):
        decode_args(b"DIDL\x01\x6e\x00\x01\x00" + b"\x01" * 5000 + b"\x00", None)


# ---------------------------------------------------------------------------------- store URLs


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://127.0.0.1:abc/test", "the port 'abc' is not a number"),
    ("postgresql://postgres@[::1/test", "unbalanced '[' in the host"),
    ("postgresql://postgres@127.0.0.1:99999/test", "the port 99999 is out of range"),
    ("postgresql://postgres@127.0.0.1:5432", "names no database: add one"),
    ("postgresql://postgres@127.0.0.1:5432/", "names no database: add one"),
    ("sqlite://", "is an in-memory SQLite database"),
    ("sqlite:///:memory:", "is an in-memory SQLite database"),
])
def test_store_urls_that_cannot_work_are_one_line(url: str, expected: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert expected in str(info.value) and "\n" not in str(info.value)
    res = runner.invoke(app, ["--db", url, "list"])
    assert res.exit_code == 3 and expected in one_line(res)


def test_in_memory_sqlite_is_for_the_api_only() -> None:
    with open_store("sqlite://", allow_in_memory=True) as st:
        api.install(st, "counter", COUNTER.read_bytes())
        assert [c.name for c in api.list_canisters(st)] == ["counter"]


def test_a_relative_sqlite_path_gets_the_four_slash_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="sqlite:///no/such/dir.db names the path no/such/dir.db relative to the "
                                         "working directory .* write four: sqlite:////no/such/dir.db"):
        open_store("sqlite:///no/such/dir.db")


def test_a_missing_postgresql_database_gets_the_createdb_hint(pg_url: str) -> None:
    url = sa.make_url(pg_url).set(database="graphcopy_no_such_db")
    with pytest.raises(StoreError, match="create it first: createdb -h 127.0.0.1 -p 5432 .*graphcopy_no_such_db"):
        open_store(url.render_as_string(hide_password=False))


# ------------------------------------------------------------------------------- store contents


def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="is not a graphcopy store: it holds 1 table\\(s\\) \\(users\\) and no "
                                         "graphcopy schema"):
        open_store(f"sqlite:///{path}")
    res = runner.invoke(app, ["--db", f"sqlite:///{path}", "list"])
    assert res.exit_code == 3 and "not a graphcopy store" in one_line(res)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["app.db"]  # not even WAL


def test_another_applications_alembic_schema_is_refused(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('ae1027a6acf')"))
        conn.execute(sa.text("CREATE TABLE orders (id INTEGER)"))
    engine.dispose()
    with pytest.raises(StoreError, match="an Alembic schema of another application \\(revision ae1027a6acf\\)"):
        open_store(db_url)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == {"alembic_version", "orders"}
    engine.dispose()


def test_a_store_is_marked_as_graphcopys_and_older_stores_get_the_mark(db_url: str) -> None:
    engine = db.create_engine_for(db_url)
    db.upgrade_schema(engine, revision="0005_management_canister")  # a store made before the mark
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT value FROM settings WHERE key = '{OWNER_KEY}'")).scalar() is None
    engine.dispose()
    with open_store(db_url) as st:
        api.install(st, "counter", COUNTER.read_bytes())
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT value FROM settings WHERE key = '{OWNER_KEY}'")).scalar() == "graphcopy"
    engine.dispose()


def test_a_truncated_sqlite_file_says_so_and_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "graphcopy.db"
    with open_store(f"sqlite:///{path}") as st:
        api.install(st, "counter", COUNTER.read_bytes())
    data = path.read_bytes()
    for cut in (len(data) // 2, 60):
        for leftover in tmp_path.glob("graphcopy.db-*"):
            leftover.unlink()
        path.write_bytes(data[:cut])
        with pytest.raises(StoreError, match="is truncated") as info:
            open_store(f"sqlite:///{path}")
        assert "restore it from a backup" in str(info.value)
        res = runner.invoke(app, ["--db", f"sqlite:///{path}", "status", "counter"])
        assert res.exit_code == 3 and "is truncated" in one_line(res)
        assert path.read_bytes() == data[:cut] and not list(tmp_path.glob("graphcopy.db-*"))
    path.write_bytes(b"\0" * 4096)
    with pytest.raises(StoreError, match="is not a SQLite database"):
        open_store(f"sqlite:///{path}")
    path.write_bytes(b"")  # an empty file is a new database
    with open_store(f"sqlite:///{path}") as st:
        assert api.list_canisters(st) == []


# ---------------------------------------------------------------------------------------- names


def test_names_that_are_not_text_are_one_line(sstore: object, sqlite_url: str, tmp_path: Path) -> None:
    bad = "caf\udce9"  # what Python makes of the byte 0xe9 in a command line under a UTF-8 locale
    with pytest.raises(GraphcopyError, match="is not valid text"):
        api.install(sstore, bad, COUNTER.read_bytes())  # type: ignore[arg-type]
    with pytest.raises(CanisterNotFoundError, match="is not valid text"):
        api.status(sstore, bad)  # type: ignore[arg-type]
    wasm = tmp_path / "counter.wasm"
    wasm.write_bytes(COUNTER.read_bytes())
    for args in (["install", bad, str(wasm)], ["status", bad], ["call", bad, "get"], ["snapshot", "list", bad]):
        res = runner.invoke(app, ["--db", sqlite_url, *args])
        assert res.exit_code == 2, (args, res.output)
        assert "not valid text" in one_line(res)


def test_a_new_canister_may_not_be_named_like_a_principal(sstore: object) -> None:
    first = api.install(sstore, "counter", COUNTER.read_bytes())  # type: ignore[arg-type]
    for name in (first.principal, first.principal.upper(), "aaaaa-aa", "2vxsx-fae"):
        with pytest.raises(GraphcopyError, match="is a principal's text form"):
            api.install(sstore, name, COUNTER.read_bytes())  # type: ignore[arg-type]
    assert [c.name for c in api.list_canisters(sstore)] == ["counter"]  # type: ignore[arg-type]
    assert api.status(sstore, first.principal).name == "counter"  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ unexpected errors

_FORCED_BUG = """
import sys
import cli.main
import persist.api
from persist.api import canisters

def boom(*args, **kwargs):
    raise RuntimeError("forced\\nfailure for the test")

persist.api.list_canisters = boom
canisters.list_canisters = boom
sys.argv = ["graphcopy", *sys.argv[1:]]
cli.main.main()
"""


@pytest.mark.parametrize("debug", ["", "1"])
def test_an_unexpected_error_is_one_line_with_a_bug_report_hint(tmp_path: Path, debug: str) -> None:
    # A real process: the bug is forced by replacing a public function with one that raises.
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHCOPY_")}
    env.update(PYTHONPATH=str(Path(__file__).parent.parent), GRAPHCOPY_DEBUG=debug)
    res = subprocess.run([sys.executable, "-c", _FORCED_BUG, "list", "--db", f"sqlite:///{tmp_path / 'x.db'}"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 70, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: internal error: RuntimeError: forced failure for the test (a bug in graphcopy")
    assert "report it" in last
    if debug:
        assert "Traceback (most recent call last)" in res.stderr and "in boom" in res.stderr
        assert "the stack is above" in last
    else:
        assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
        assert "GRAPHCOPY_DEBUG=1" in last


def test_an_unexpected_error_with_json_is_reported_as_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from persist.api import canisters

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyError("nope")

    monkeypatch.setattr(canisters, "list_canisters", boom)
    monkeypatch.setattr(api, "list_canisters", boom)
    res = runner.invoke(app, ["list", "--json", "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert res.exit_code == 70
    import json

    doc = json.loads(res.stdout)
    assert doc["code"] == 70 and doc["error"].startswith("internal error: KeyError: 'nope'")
    assert "Traceback" not in res.output
