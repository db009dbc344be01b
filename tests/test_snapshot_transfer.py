"""Importing and exporting IC canister snapshot directories (``persist.api.snapshot_transfer``).

* the hand-made directories of ``tests/fixtures/snapshot_dirs`` (gzipped module, chunk store,
  nulls and missing optional fields) import with every global, heap byte, stable byte, timer,
  certified datum and chunk in place, and export back to the same bytes (metadata.json included);
* the metadata spelling: serde_json's float layout, externally tagged enums, Nat, serde_bytes;
* the globals order of the IC (own global exports first, then unexported mutable globals);
* real moc canisters (counter, the ledger with data, a canister upgraded through a migration
  function) round-trip: export -> import into a fresh store -> the same query replies -> export
  again gives identical files; ``--into`` (a graphcopy snapshot first) and ``--canister-id``;
* every kind of bad input is one line, exit 2, and changes nothing; an interrupted import leaves
  nothing; memories stream through ``SEEK_DATA`` with a tested fallback.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import wasmtime
from typer.testing import CliRunner

from cli.main import app
from migrate import plan_upgrade, upgrade
from persist import api
from persist.api import snapshots as snaps
from persist.api.snapshot_transfer import export_snapshot, import_snapshot, imported_from
from persist.errors import CanisterExistsError, SnapshotDirError
from persist.host.module import parse_module
from persist.session import Store, open_store
from persist.snapshot_dir import reader
from persist.snapshot_dir.format import SnapshotGlobal, parse_metadata, serde_float
from persist.snapshot_dir.globals import snapshot_layout
from persist.store import chunks, db, pages, schema
from persist.store.canisters import canister_row
from tests.upgrade_helpers import call
from toolchain.moc import compile_motoko

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "snapshot_dirs"
COUNTER = (ROOT / "examples" / "counter" / "counter.wasm").read_bytes()
LEDGER = (ROOT / "examples" / "ledger" / "ledger.wasm").read_bytes()
TRANSFER = ROOT / "tests" / "canisters" / "transfer"
runner = CliRunner()


def fresh(tmp_path: Path, label: str) -> Store:
    return open_store(f"sqlite:///{tmp_path / (label + '.db')}")


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file of a directory tree, by relative path, with its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def fixture_state(store: Store, name: str) -> tuple[Any, ...]:
    """The fixture canister's ``state`` reply: counter, hidden, ratio, scale, version, heap 0x100,
    heap 0x200..0x205, stable word 0."""
    return struct.unpack("<iqdfiq5sq", api.call(store, name, "state", b"").reply)


def row_of(store: Store, name: str) -> Any:
    with db.read_transaction(store.engine) as conn:
        return canister_row(conn, name)


def store_contents(store: Store) -> dict[str, Any]:
    """Everything an import could change, for checking that a failed one changed nothing."""
    with db.read_transaction(store.engine) as conn:
        out: dict[str, Any] = {}
        for table in (schema.canisters, schema.heap_pages, schema.stable_pages, schema.modules, schema.history,
                      schema.wasm_chunks, schema.snapshots, schema.settings):
            out[table.name] = sorted(tuple(str(v) for v in r) for r in conn.execute(sa.select(table)))
    return out


# --------------------------------------------------------------------------------- the format


def test_serde_float_spelling() -> None:
    # ryu's layout as serde_json writes f64 / f32 (ryu src/pretty/mod.rs: format64, format32).
    cases = [(1.0, 64, "1.0"), (0.1, 64, "0.1"), (-2.5, 64, "-2.5"), (1e21, 64, "1e21"), (1e16, 64, "1e16"),
             (1e15, 64, "1000000000000000.0"), (1.5e-7, 64, "1.5e-7"), (0.0001, 64, "0.0001"),
             (1e-5, 64, "0.00001"), (1e-6, 64, "1e-6"), (-0.0, 64, "-0.0"), (5e-324, 64, "5e-324"),
             (1.7976931348623157e308, 64, "1.7976931348623157e308"), (123456.789, 64, "123456.789"),
             (0.10000000149011612, 32, "0.1"), (9999999827968.0, 32, "1e13"), (999999995904.0, 32, "1000000000000.0"),
             (9.999999974752427e-07, 32, "0.000001"), (3.4028234663852886e38, 32, "3.4028235e38")]
    assert [serde_float(v, b) for v, b, _ in cases] == [want for _, _, want in cases]
    with pytest.raises(ValueError):
        serde_float(float("nan"), 64)


def test_metadata_spellings_serde_accepts() -> None:
    # Unit variants also come as {"case": null}; Nat as an integer, a string or its u32 digits;
    # optional fields may be missing; Reserved (the source payload) ignores whatever it holds.
    text = json.dumps({
        "source": {"metadata_upload": {"anything": 1}}, "taken_at_timestamp": 1, "wasm_module_size": 8,
        "globals": [{"v128": [1, 2]}, {"v128": "5"}, {"v128": 7}, None, {"f32": 1}], "wasm_memory_size": 0,
        "stable_memory_size": 0, "wasm_chunk_store": [], "canister_version": 0, "certified_data": [],
        "global_timer": {"inactive": None}})
    meta = parse_metadata(text)
    assert meta.source == "metadata_upload" and meta.global_timer == "inactive"
    assert meta.on_low_wasm_memory_hook_status is None
    assert meta.globals == [SnapshotGlobal("v128", 1 + (2 << 32)), SnapshotGlobal("v128", 5),
                            SnapshotGlobal("v128", 7), None, SnapshotGlobal("f32", 1.0)]
    assert json.loads(meta.to_json_text())["globals"][0] == {"v128": [1, 2]}


@pytest.mark.parametrize(("edit", "message"), [
    ({"taken_at_timestamp": -1}, "`taken_at_timestamp` must be an unsigned 64-bit integer"),
    ({"wasm_module_size": True}, "`wasm_module_size` must be an unsigned 64-bit integer"),
    ({"certified_data": "00ff"}, "`certified_data` must be an array of byte values"),
    ({"certified_data": list(range(33))}, "has 33 bytes; at most 32"),
    ({"globals": [{"i33": 1}]}, "`globals[0]` must be one of"),
    ({"globals": [{"i32": 2**31}]}, "`globals[0]` must be an i32 value"),
    ({"global_timer": {"active": "soon"}}, "`global_timer.active` must be an unsigned 64-bit integer"),
    ({"global_timer": "paused"}, "`global_timer` must be one of"),
    ({"source": "taken_from_canister"}, "`source` must be"),
    ({"on_low_wasm_memory_hook_status": "done"}, "`on_low_wasm_memory_hook_status` must be one of"),
    ({"wasm_chunk_store": [{"hash": [1, 2]}]}, "a chunk hash is a 32-byte sha256"),
    ({"wasm_chunk_store": [{"hash": [0] * 32, "size": 3}]}, "`wasm_chunk_store[0]` must be"),
])
def test_metadata_field_errors_name_the_field(edit: dict[str, Any], message: str) -> None:
    doc = json.loads((FIXTURES / "plain" / "metadata.json").read_text())
    doc.update(edit)
    with pytest.raises(SnapshotDirError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_metadata(json.dumps(doc), "m.json")


def test_duplicate_keys_and_non_numbers_are_refused() -> None:
    text = (FIXTURES / "plain" / "metadata.json").read_text()
    with pytest.raises(SnapshotDirError, match="duplicate field `canister_version`"):
        parse_metadata(text.replace('"canister_version": 3,', '"canister_version": 3, "canister_version": 4,'))
    with pytest.raises(SnapshotDirError, match="NaN is not a JSON number"):
        parse_metadata(text.replace('"f64": 2.5', '"f64": NaN'))


def test_globals_are_listed_in_the_replicas_order() -> None:
    # The module's own global exports in export order (mutable or not), then its unexported mutable
    # globals by index, as __persistent_mutable_global_<index>; an immutable unexported one is not
    # listed (dfinity/ic rs/embedders/src/wasm_utils/instrumentation.rs, export_mutable_globals;
    # rs/execution_environment/tests/canister_snapshots.rs, ..._roundtrip_one_global).
    info = parse_module((FIXTURES / "plain" / "wasm_module.bin").read_bytes())
    layout = snapshot_layout(info)
    assert [(s.export, s.index, s.valtype, s.mutable) for s in layout] == [
        ("counter_global", 0, "i32", True), ("version_global", 2, "i32", False),
        ("__persistent_mutable_global_1", 1, "i64", True), ("__persistent_mutable_global_3", 3, "f64", True),
        ("__persistent_mutable_global_4", 4, "f32", True)]
    assert layout[1].init == 7
    motoko = snapshot_layout(parse_module(COUNTER))  # moc exports no global: 32 hidden mutable i64s
    assert len(motoko) == 32 and {s.valtype for s in motoko} == {"i64"}
    assert all(s.export == f"__persistent_mutable_global_{s.index}" for s in motoko)
    assert [s.index for s in motoko] == sorted(s.index for s in motoko)


# --------------------------------------------------------------------------------- the fixtures


def test_fixture_with_gzip_module_and_chunk_store_round_trips_byte_for_byte(store: Store, tmp_path: Path) -> None:
    # The fixture's metadata.json is written as serde_json::to_string_pretty writes
    # ReadCanisterSnapshotMetadataResult (dfinity/ic packages/ic-management-canister-types/src/lib.rs):
    # `source: Option<SnapshotSource>` with `#[serde(rename = "taken_from_canister")] TakenFromCanister(Reserved)`
    # (Reserved serializes as none: dfinity/candid rust/candid/src/types/reserved.rs), `globals:
    # Vec<Option<SnapshotMetadataGlobal>>` (`#[serde(rename = "i32")] I32(i32)`, ...), `wasm_chunk_store:
    # Vec<ChunkHash>` and `certified_data` with `#[serde(with = "serde_bytes")]` (arrays of byte values),
    # `global_timer: Option<CanisterTimer>` (`#[serde(rename = "active")] Active(u64)`),
    # `on_low_wasm_memory_hook_status: Option<OnLowWasmMemoryHookStatus>`; dfx saves it with
    # save_json_file (dfinity/sdk src/dfx-core/src/json/mod.rs), icp-cli with icp::fs::json::save.
    src = FIXTURES / "gzip_chunks"
    assert (src / "wasm_module.bin").read_bytes()[:3] == b"\x1f\x8b\x08"
    res = import_snapshot(store, "fx", src)
    assert res.created and res.chunks == 1 and res.globals == 5 and res.canister_version == 17
    assert (res.stored_heap_pages, res.stored_stable_pages) == (1, 1)
    # Every global in its slot, the heap at its own addresses (not the data segment's "hello").
    assert fixture_state(store, "fx") == (41, -9007199254740993, -1.5e-7, pytest.approx(0.1), 7, 1000, b"HELLO",
                                          0x1122334455667788)
    row = row_of(store, "fx")
    assert (int(row.timer_ns), bytes(row.certified_data), int(row.version)) == (4102444800000000000,
                                                                                 b"\xde\xad\xbe\xef", 17)
    assert row.on_low_wasm_memory_hook_status == "condition_not_satisfied"
    assert int(row.time_ns) == 1764547200000000000
    with db.read_transaction(store.engine) as conn:
        assert chunks.all_chunks(conn, row.id) == [(hashlib.sha256(b"a chunk of the Wasm chunk store\n").digest(),
                                                     b"a chunk of the Wasm chunk store\n")]
    assert imported_from(store, "fx")["metadata_sha256"] == res.metadata_sha256  # type: ignore[index]
    out = export_snapshot(store, "fx", tmp_path / "out")
    assert files_of(tmp_path / "out") == files_of(src)  # metadata.json included, in serde's spelling
    assert out.chunks == 1 and out.files["metadata.json"] == (src / "metadata.json").stat().st_size


def test_fixture_with_nulls_and_missing_fields(sstore: Store, tmp_path: Path) -> None:
    src = FIXTURES / "plain"
    res = import_snapshot(sstore, "fx", src)
    assert res.source is None and res.hook_status is None and res.timer_ns == 0 and res.stable_bytes == 0
    assert fixture_state(sstore, "fx") == (5, 12, 2.5, 9999999827968.0, 7, 7, b"WORLD", 0)
    export_snapshot(sstore, "fx", tmp_path / "a")
    exported = files_of(tmp_path / "a")
    assert set(exported) == {"metadata.json", "wasm_module.bin", "wasm_memory.bin"}  # no empty stable file
    assert exported["wasm_module.bin"] == (src / "wasm_module.bin").read_bytes()
    assert exported["wasm_memory.bin"] == (src / "wasm_memory.bin").read_bytes()
    meta = json.loads(exported["metadata.json"])
    assert meta["source"] == {"taken_from_canister": None} and meta["on_low_wasm_memory_hook_status"] is None
    assert meta["global_timer"] == "inactive" and meta["globals"][4] == {"f32": 1e13}
    original = parse_metadata((src / "metadata.json").read_bytes())
    assert parse_metadata(exported["metadata.json"]) == dataclasses.replace(original, source="taken_from_canister")
    with fresh(tmp_path, "again") as other:
        import_snapshot(other, "fx", tmp_path / "a")
        export_snapshot(other, "fx", tmp_path / "b")
    assert files_of(tmp_path / "b") == exported


def test_icp_cli_leftovers_are_tolerated(sstore: Store, tmp_path: Path) -> None:
    # icp-cli writes an empty stable_memory.bin, always creates wasm_chunk_store/, keeps a .lock;
    # dfx leaves <snapshot id>.json upload progress files.
    d = tmp_path / "icp"
    shutil.copytree(FIXTURES / "plain", d)
    (d / "stable_memory.bin").write_bytes(b"")
    (d / "wasm_chunk_store").mkdir()
    (d / ".lock").write_text("")
    (d / "0000000000000000ffffffffff9000010101.json").write_text("{}")
    (d / "wasm_chunk_store" / "stray.bin").write_bytes(b"x")
    res = import_snapshot(sstore, "fx", d)
    assert res.stable_bytes == 0 and any("not listed in metadata.json" in w for w in res.warnings)
    assert fixture_state(sstore, "fx")[6] == b"WORLD"


# --------------------------------------------------------------------------------- real moc canisters


def ledger_state(store: Store, name: str) -> list[str]:
    return [call(store, name, "digest"), call(store, name, "stats"), call(store, name, "get", "(7 : nat)"),
            call(store, name, "range", "(1_500 : nat, 3 : nat)")]


def round_trip(store: Store, name: str, tmp_path: Path, observe: Callable[[Store, str], Any]) -> dict[str, bytes]:
    """Export, import into a fresh store, compare the queries, export again: identical files."""
    before = observe(store, name)
    export_snapshot(store, name, tmp_path / "first")
    with fresh(tmp_path, "second") as other:
        import_snapshot(other, name, tmp_path / "first")
        assert observe(other, name) == before
        export_snapshot(other, name, tmp_path / "second")
    first = files_of(tmp_path / "first")
    assert files_of(tmp_path / "second") == first
    return first


def test_counter_round_trip(store: Store, tmp_path: Path) -> None:
    api.install(store, "counter", COUNTER)
    call(store, "counter", "add", "(41 : nat)")
    call(store, "counter", "inc")
    files = round_trip(store, "counter", tmp_path, lambda s, n: (call(s, n, "get"), call(s, n, "stats")))
    meta = json.loads(files["metadata.json"])
    assert meta["wasm_memory_size"] == len(files["wasm_memory.bin"]) and "stable_memory.bin" not in files
    assert len(meta["globals"]) == 32 and meta["source"] == {"taken_from_canister": None}


def test_ledger_with_data_round_trip(store: Store, tmp_path: Path) -> None:
    api.install(store, "ledger", LEDGER)
    for seed in (1, 2):
        call(store, "ledger", "load", f"(1_500 : nat, {seed} : nat)")
    call(store, "ledger", "apply", "(7 : nat, -25 : int)")
    files = round_trip(store, "ledger", tmp_path, ledger_state)
    heap = files["wasm_memory.bin"]
    assert len(heap) > 10 * 2**20 and heap.count(bytes(65536)) < len(heap) // 65536  # a real, mostly used heap
    with fresh(tmp_path, "third") as third:  # and the imported ledger keeps working: updates commit
        import_snapshot(third, "ledger", tmp_path / "first")
        call(third, "ledger", "load", "(10 : nat, 9 : nat)")
        assert call(third, "ledger", "stats") != ledger_state(store, "ledger")[1]


def test_migrated_chain_canister_round_trip(sstore: Store, tmp_path: Path, moc: None) -> None:
    v1 = compile_motoko(TRANSFER / "chain_v1.mo").wasm
    v2 = compile_motoko(TRANSFER / "chain_v2.mo").wasm
    api.install(sstore, "chain", v1)
    for i in range(40):
        call(sstore, "chain", "add", f'("e{i}", {i * 3} : nat)')
    out = upgrade(sstore, "chain", v2)  # the migration function turns total into balance
    assert out.path == "keep"
    call(sstore, "chain", "withdraw", "(100 : nat)")
    observe = lambda s, n: (call(s, n, "summary"), call(s, n, "entry", "(3 : nat)"))  # noqa: E731
    want = "(record { balance = 2_240 : int; count = 40 : nat; upgrades = 1 : nat })"
    assert call(sstore, "chain", "summary") == want
    round_trip(sstore, "chain", tmp_path, observe)
    with fresh(tmp_path, "more") as other:  # the imported canister takes updates and plans upgrades
        import_snapshot(other, "chain", tmp_path / "first")
        assert call(other, "chain", "withdraw", "(40 : nat)") == "(2_200 : int)"
        assert call(other, "chain", "entry", "(39 : nat)").startswith("(opt record")
        # v2 again would run its migration a second time, from a `total` that no longer exists
        assert plan_upgrade(other, "chain", v2).path == "refuse"


def test_export_of_a_graphcopy_snapshot(sstore: Store, tmp_path: Path) -> None:
    api.install(sstore, "counter", COUNTER)
    call(sstore, "counter", "add", "(5 : nat)")
    snap = snaps.take_snapshot(sstore, "counter")
    call(sstore, "counter", "add", "(10 : nat)")
    res = export_snapshot(sstore, "counter", tmp_path / "old", snap.id)
    assert res.snapshot_id == snap.id and res.taken_at_timestamp == snap.created_at_ns
    with fresh(tmp_path, "x") as other:
        import_snapshot(other, "c", tmp_path / "old")
        assert call(other, "c", "get") == "(5 : nat)"


def test_import_into_an_existing_canister_takes_a_snapshot_first(store: Store) -> None:
    api.install(store, "counter", COUNTER)
    call(store, "counter", "add", "(3 : nat)")
    before = row_of(store, "counter")
    res = import_snapshot(store, "counter", FIXTURES / "gzip_chunks", into=True)
    assert not res.created and res.snapshot_id is not None and res.principal == before.principal
    assert fixture_state(store, "counter")[0] == 41
    after = row_of(store, "counter")
    assert int(after.version) == int(before.version) + 1 and after.controllers == before.controllers
    assert int(after.time_ns) >= int(before.time_ns)
    snaps.load_snapshot(store, "counter", res.snapshot_id)  # the way back
    assert call(store, "counter", "get") == "(3 : nat)"
    with db.read_transaction(store.engine) as conn:  # the snapshot restores the chunk store too: empty
        assert chunks.chunk_hashes(conn, after.id) == []


def test_export_of_a_graphcopy_snapshot_writes_its_own_chunk_store(store: Store, tmp_path: Path) -> None:
    res = import_snapshot(store, "fx", FIXTURES / "gzip_chunks")
    snap = snaps.take_snapshot(store, "fx")
    with db.transaction(store.engine) as conn:  # the live chunk store changes after the snapshot
        chunks.clear_chunks(conn, row_of(store, "fx").id)
    export_snapshot(store, "fx", tmp_path / "snap", snap.id)
    def chunk_files(d: Path) -> list[str]:
        return sorted(p.name for p in (d / "wasm_chunk_store").glob("*.bin"))

    assert res.chunks == 1 and chunk_files(tmp_path / "snap") == chunk_files(FIXTURES / "gzip_chunks") != []
    export_snapshot(store, "fx", tmp_path / "now")
    assert chunk_files(tmp_path / "now") == []


def test_canister_id_is_kept_and_skipped_by_later_installs(sstore: Store) -> None:
    ic_id = "rwlgt-iiaaa-aaaaa-aaaaa-cai"  # index 0: what graphcopy would hand out next
    assert import_snapshot(sstore, "fx", FIXTURES / "plain", canister_id=ic_id).principal == ic_id
    assert api.install(sstore, "counter", COUNTER).principal != ic_id
    with pytest.raises(CanisterExistsError, match=f"canister id {ic_id} is canister 'fx'"):
        import_snapshot(sstore, "fx2", FIXTURES / "plain", canister_id=ic_id)


# --------------------------------------------------------------------------------- bad input


def _meta_edit(**changes: Any) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        doc = json.loads((d / "metadata.json").read_text())
        doc.update(changes)
        (d / "metadata.json").write_text(json.dumps(doc, indent=2))
    return edit


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


def _not_a_canister(d: Path) -> None:
    wasm = bytes(wasmtime.wat2wasm('(module (import "env" "f" (func)) (memory 2))'))
    (d / "wasm_module.bin").write_bytes(wasm)
    _meta_edit(wasm_module_size=len(wasm))(d)


def _drop_global(d: Path) -> None:
    doc = json.loads((d / "metadata.json").read_text())
    _meta_edit(globals=doc["globals"][:-1])(d)


def _retype_global(d: Path) -> None:
    doc = json.loads((d / "metadata.json").read_text())
    _meta_edit(globals=[{"i64": 41}, *doc["globals"][1:]])(d)


BAD_INPUTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing file": (lambda d: (d / "stable_memory.bin").unlink(), "missing file .*stable_memory.bin"),
    "missing chunk": (lambda d: shutil.rmtree(d / "wasm_chunk_store"), "missing file .*wasm_chunk_store/1ab5b7e5"),
    "size disagrees": (_meta_edit(wasm_memory_size=3 * 65536),
                       "wasm_memory.bin has 131,072 bytes but metadata.json says .* has 196,608"),
    "not whole pages": (_meta_edit(stable_memory_size=65536 + 12), "is not a whole number of 64 KiB Wasm pages"),
    "truncated memory": (lambda d: os.truncate(d / "wasm_memory.bin", 100_000),
                         "truncated: .*wasm_memory.bin has 100,000 bytes"),
    "module size": (_write("wasm_module.bin", b"\x1f\x8b\x08" + bytes(10)), "wasm_module.bin has 13 bytes"),
    "unparsable JSON": (_write("metadata.json", b'{"source": '), "metadata.json is not valid JSON"),
    "not an object": (_write("metadata.json", b"[]"), "metadata.json must hold a JSON object"),
    "not a canister": (_not_a_canister, "wasm_module.bin: not a canister module: it imports from 'env'"),
    "globals count": (_drop_global, "`globals` has 4 entries but the module has 5 .* do not fit the module"),
    "globals type": (_retype_global, r"`globals\[0\]` is i64 but the module's global 0 \(counter_global\) is i32"),
    "null global": (_meta_edit(globals=[None] * 5), r"`globals\[0\]` is null"),
    "upload-only field": (_meta_edit(replace_snapshot=None), "`replace_snapshot` is an argument of "
                                                              "upload_canister_snapshot_metadata"),
    "canister_id field": (_meta_edit(canister_id="aaaaa-aa"), "`canister_id` is an argument"),
    "unknown field": (_meta_edit(total_size=3), "unknown field `total_size`"),
    "missing field": (lambda d: _strip_field(d, "canister_version"), "missing field `canister_version`"),
    "corrupt chunk": (lambda d: next((d / "wasm_chunk_store").iterdir()).write_bytes(b"other"),
                      "does not hash to its name"),
    "unfinished download": (_write(".download_progress.json", b"{}"), "did not finish"),
    "not a snapshot": (lambda d: (d / "metadata.json").unlink(), "is not a canister snapshot: it has no metadata.json"),
}


def _strip_field(d: Path, name: str) -> None:
    doc = json.loads((d / "metadata.json").read_text())
    del doc[name]
    (d / "metadata.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(sqlite_url: str, tmp_path: Path, case: str) -> None:
    edit, message = BAD_INPUTS[case]
    d = tmp_path / "snap"
    shutil.copytree(FIXTURES / "gzip_chunks", d)
    edit(d)
    with open_store(sqlite_url) as st:
        api.install(st, "counter", COUNTER)
        before = store_contents(st)
    for args in (["snapshot", "import", "fx", str(d)], ["snapshot", "import", "counter", str(d), "--into"]):
        res = runner.invoke(app, ["--db", sqlite_url, *args])
        assert res.exit_code == 2, (case, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
        assert re.search(message, lines[0]), (message, lines[0])
    with open_store(sqlite_url) as st:
        assert store_contents(st) == before


def test_a_heap_smaller_than_the_modules_memory_is_refused(sstore: Store, tmp_path: Path) -> None:
    d = tmp_path / "snap"
    shutil.copytree(FIXTURES / "plain", d)
    os.truncate(d / "wasm_memory.bin", 65536)
    _meta_edit(wasm_memory_size=65536)(d)
    with pytest.raises(SnapshotDirError, match="the heap has 1 pages but the module's memory starts at 2"):
        import_snapshot(sstore, "fx", d)


def test_paths_that_are_not_snapshot_directories(sstore: Store, tmp_path: Path) -> None:
    with pytest.raises(SnapshotDirError, match="does not exist"):
        import_snapshot(sstore, "x", tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SnapshotDirError, match="is not a directory"):
        import_snapshot(sstore, "x", tmp_path / "file")


def test_an_interrupted_import_leaves_nothing(db_url: str, tmp_path: Path) -> None:
    with open_store(db_url) as st:
        api.install(st, "ledger", LEDGER)
        call(st, "ledger", "load", "(500 : nat, 1 : nat)")
        export_snapshot(st, "ledger", tmp_path / "big")
        api.install(st, "counter", COUNTER)
        call(st, "counter", "add", "(2 : nat)")
        before = store_contents(st)

        def interrupt(file: str, done: int, total: int) -> None:
            if done > total // 2:
                raise KeyboardInterrupt

        for kwargs in ({}, {"into": True}):
            with pytest.raises(KeyboardInterrupt):
                import_snapshot(st, "counter" if kwargs else "new", tmp_path / "big", on_progress=interrupt, **kwargs)
            assert store_contents(st) == before  # no canister, no pages, no safety snapshot left
        assert call(st, "counter", "get") == "(2 : nat)"


def test_export_refuses_a_full_directory_and_cleans_up_after_a_failure(sstore: Store, tmp_path: Path) -> None:
    api.install(sstore, "counter", COUNTER)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(SnapshotDirError, match="is not empty"):
        export_snapshot(sstore, "counter", tmp_path / "full")

    def fail(file: str, done: int, total: int) -> None:
        if done:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        export_snapshot(sstore, "counter", tmp_path / "new", on_progress=fail)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError):
        export_snapshot(sstore, "counter", tmp_path / "empty", on_progress=fail)
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


# --------------------------------------------------------------------------------- streaming


def _sparse_file(path: Path, pages_: dict[int, bytes], size: int) -> None:
    with path.open("wb") as f:
        for no, data in pages_.items():
            f.seek(no * 65536)
            f.write(data)
        f.truncate(size)


def test_memory_pages_skip_holes_and_the_fallback_reads_the_same(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    size = 4096 * 65536  # 256 MiB, nearly all holes
    want = {3: b"\x01" * 65536, 700: bytes(65535) + b"\x02", 4095: b"\x03" * 65536}
    path = tmp_path / "mem.bin"
    _sparse_file(path, {**want, 1000: bytes(65536)}, size)  # an explicitly written zero page is skipped too
    seen: list[int] = []
    got = dict(reader.memory_pages(path, size, seen.append))
    assert got == want and sum(seen) == size
    fd = os.open(path, os.O_RDONLY)
    try:
        extents = list(reader.data_extents(fd, size))
    finally:
        os.close(fd)
    if reader.USE_SEEK_DATA:  # the kernel reports where the data is: far less than the file
        assert sum(e - s for s, e in extents) < size // 8
    monkeypatch.setattr(reader, "USE_SEEK_DATA", False)
    assert dict(reader.memory_pages(path, size)) == want


def test_a_memory_file_shortened_while_it_is_read_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "mem.bin"
    _sparse_file(path, {0: b"\x01" * 65536, 9: b"\x02" * 65536}, 10 * 65536)
    pages_ = reader.memory_pages(path, 10 * 65536)
    assert next(pages_)[0] == 0
    os.truncate(path, 5 * 65536)
    with pytest.raises(SnapshotDirError, match="truncated while it was read"):
        list(pages_)


def test_pages_go_through_the_page_store(sstore: Store) -> None:
    res = import_snapshot(sstore, "fx", FIXTURES / "gzip_chunks")
    with db.read_transaction(sstore.engine) as conn:
        row = canister_row(conn, "fx")
        heap = dict(pages.read_pages(conn, pages.HEAP, row.id))
        stable = dict(pages.read_pages(conn, pages.STABLE, row.id))
    assert list(heap) == [0] and list(stable) == [0] and res.stored_heap_pages == 1  # the zero page 1 is not stored
    assert heap[0][0x200:0x205] == b"HELLO"


# --------------------------------------------------------------------------------- the CLI


def test_cli_import_export_json_and_dir_option(sqlite_url: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["--db", sqlite_url, "snapshot", "import", "fx", "--dir", str(FIXTURES / "gzip_chunks"),
                              "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["name"] == "fx" and doc["created"] is True and doc["chunks"] == 1 and doc["canister_version"] == 17
    res = runner.invoke(app, ["--db", sqlite_url, "snapshot", "import", "fx", str(FIXTURES / "plain"), "--into"])
    assert res.exit_code == 0 and "loaded from" in res.stdout and "graphcopy snapshot 1 taken first" in res.stdout
    res = runner.invoke(app, ["--db", sqlite_url, "snapshot", "export", "fx", str(tmp_path / "now")])
    assert res.exit_code == 0 and "dfx canister snapshot upload" in res.stdout
    res = runner.invoke(app, ["--db", sqlite_url, "snapshot", "export", "fx", "1", str(tmp_path / "then"), "--json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["snapshot_id"] == 1
    then, fixture = files_of(tmp_path / "then"), files_of(FIXTURES / "gzip_chunks")
    for name in ("wasm_module.bin", "wasm_memory.bin", "stable_memory.bin"):  # the state before --into
        assert then[name] == fixture[name]
    meta = json.loads(then["metadata.json"])
    fixture_meta = json.loads(fixture["metadata.json"])  # the snapshot holds the chunk store of that state too
    assert meta["globals"] == fixture_meta["globals"] and meta["wasm_chunk_store"] == fixture_meta["wasm_chunk_store"]
    for args, text in ((["snapshot", "export", "fx"], "usage: graphcopy snapshot export NAME [ID] DIR"),
                       (["snapshot", "export", "fx", "x", str(tmp_path / "y")], "snapshot id 'x' is not a number"),
                       (["snapshot", "export", "fx", "9", str(tmp_path / "z")], "no snapshot 9 for canister fx"),
                       (["snapshot", "import", "y"], "give the snapshot directory once")):
        res = runner.invoke(app, ["--db", sqlite_url, *args])
        assert res.exit_code == 2 and text in res.stderr, (args, res.stderr)


def test_transfer_progress_bar_shows_file_percentage_and_bytes() -> None:
    import io

    from rich.console import Console

    from cli.progress import TransferProgress

    buf = io.StringIO()
    with TransferProgress(Console(file=buf, force_terminal=True, width=120)) as progress:
        progress("wasm_memory.bin", 0, 4 * 2**20)
        progress("wasm_memory.bin", 2 * 2**20, 4 * 2**20)
    text = buf.getvalue()
    assert "wasm_memory.bin" in text and "50%" in text and "4.0 MiB" in text
