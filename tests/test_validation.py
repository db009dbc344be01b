"""The replica's install-time validation (``persist.host.validation``): every rule refuses in one
line that names it, before anything is compiled or allocated, and changes nothing; a gzip bomb
is refused without being inflated; what moc compiles passes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import wasmtime
from typer.testing import CliRunner

from cli.main import app
from persist import api
from persist.errors import InvalidModuleError
from persist.host.module import parse_module
from persist.host.validation import IC_LIMITS, check_module
from persist.host.wasm_binary import WASM_MAX_SIZE, encode_name, encode_section, normalize_wasm
from persist.session import Store

COUNTER = Path(__file__).parent.parent / "examples" / "counter" / "counter.wasm"


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def with_custom(module: bytes, *sections: tuple[str, bytes]) -> bytes:
    return module + b"".join(encode_section(0, encode_name(name) + body) for name, body in sections)


GLOBALS = " ".join("(global i32 (i32.const 0))" for _ in range(IC_LIMITS.max_globals + 1))
FUNCS = " ".join(f'(func (export "canister_update m{i}"))' for i in range(IC_LIMITS.max_exported_functions + 1))
LONG = " ".join(f'(func (export "canister_update {"x" * 1000}{i}"))' for i in range(21))

REFUSED = [
    ('(module (import "ic0" "msg_reply" (func (param i32))) (memory 1))',
     "(the IC's System API imports): it imports ic0.msg_reply with type (i32) -> (), but the System API declares "
     "() -> ()"),
    ('(module (memory 1) (func (export "canister_update f") (param i32) (result i32) local.get 0))',
     "(the IC's exported method types): Wasm module has an invalid function signature. Expected input params [] "
     "for 'canister_update f', got [I32]."),
    ('(module (memory 1) (func (export "canister_query q") (result i64) i64.const 0))',
     "Expected return type [] for 'canister_query q', got [I64]."),
    ('(module (memory 1) (func (export "canister_init") (param i64)))',
     "Expected input params [] for 'canister_init', got [I64]."),
    ('(module (memory i64 1000000000))',
     "(the IC's MAX_WASM64_MEMORY_IN_BYTES): Wasm module declares a 64-bit memory of at least 1000000000 pages "
     "(59.6 TiB), but a canister's heap holds at most 98304 pages (6 GiB)."),
    ('(module (memory i64 204800))', "of at least 204800 pages (12.5 GiB)"),
    ('(module (memory 1 70000))', "a 32-bit memory may declare at most 65536 pages"),
    ('(module (memory 1) (func (export "canister_start")))',
     "(the IC's RESERVED_SYMBOLS): Wasm module has an invalid export section. Exporting reserved symbol "
     "canister_start not allowed."),
    ('(module (memory 1) (global (export "canister counter_instructions") i64 (i64.const 0)))',
     "Exporting reserved symbol canister counter_instructions not allowed."),
    ('(module (memory 1) (func (export "canister_foo")))',
     "Exporting reserved function 'canister_foo' with \"canister_\" prefix"),
    ('(module (memory 1) (func $f) (export "canister_update a" (func $f)) (export "canister_query a" (func $f)))',
     "Duplicate function 'a' exported multiple times with different call types: update, query, or "
     "composite_query."),
    (f"(module (memory 1) {GLOBALS})",
     "(the IC's MAX_GLOBALS): Wasm module defined 1001 globals which exceeds the maximum number allowed 1000."),
    (f"(module (memory 1) {FUNCS})",
     "(the IC's MAX_NUMBER_EXPORTED_FUNCTIONS): The number of exported functions called `canister_update <name>`, "
     "`canister_query <name>`, or `canister_composite_query <name>` is 1001 which exceeds 1000."),
    (f"(module (memory 1) {LONG})", "is 21032 which exceeds the allowed limit of 20000."),
    ('(module (global i32 (i32.const 0)) (memory 1) (data (global.get 0) "x"))',
     "(the IC's data segment rules): Wasm module has an invalid data section. Invalid offset expression in data "
     "segment"),
    ('(module (memory 1) (table 2000000 funcref))',
     "(the IC's MAX_STORE_TABLE_ELEMENTS): Wasm module declares a table of at least 2000000 elements"),
    ('(module (memory 1) (global v128 (v128.const i64x2 0 0)))',
     "(the IC's global types): Wasm module has an invalid global section. Unsupported global type: V128"),
]


@pytest.mark.parametrize(("text", "expected"), REFUSED, ids=[f"rule{i}" for i in range(len(REFUSED))])
def test_a_module_the_replica_refuses_is_refused_in_one_line(sstore: Store, text: str, expected: str) -> None:
    with pytest.raises(InvalidModuleError) as info:
        api.install(sstore, "bad", wat(text))
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert message.startswith(("invalid canister module (the IC's ", "not a valid Wasm module"))
    assert api.list_canisters(sstore) == []


def test_custom_sections(sstore: Store) -> None:
    base = wat("(module (memory 1))")
    cases = [
        (with_custom(base, ("icp:public", b"x")), "'icp:' section names must have a space after the public/private"),
        (with_custom(base, ("icp:secret x", b"x")), "Custom section 'icp:secret x' has no public/private scope"),
        (with_custom(base, ("icp:public a", b"x"), ("icp:private a", b"y")), "name a already exists"),
        (with_custom(base, *((f"icp:public s{i}", b"") for i in range(17))),
         "(the IC's MAX_CUSTOM_SECTIONS): Wasm module defined 17 custom sections which exceeds the maximum"),
        (with_custom(base, ("icp:private big", b"\0" * IC_LIMITS.max_custom_sections_size)),
         "(the IC's MAX_CUSTOM_SECTIONS_SIZE): Wasm module has an invalid custom section. Invalid custom sections: "
         "total size of the custom sections exceeds the maximum allowed: size 1048579 bytes, allowed 1048576 bytes"),
    ]
    for module, expected in cases:
        with pytest.raises(InvalidModuleError) as info:
            api.install(sstore, "bad", module)
        assert expected in str(info.value)
    # Sections outside icp: are not the replica's business; 16 icp: sections are allowed.
    api.install(sstore, "ok", with_custom(base, ("name", b"\0" * 2_000_000),
                                          *((f"icp:public s{i}", b"") for i in range(16))))


def test_code_section_size() -> None:
    module = wat("(module (memory 1))")
    limit = IC_LIMITS.max_code_section_size
    too_big = module + encode_section(10, bytes(limit + 1))
    with pytest.raises(InvalidModuleError, match="MAX_CODE_SECTION_SIZE_IN_BYTES.*code section size of 10485761 "
                                                 "exceeds the maximum allowed size of 10485760"):
        check_module(too_big, parse_module(too_big))


def test_a_gzip_bomb_is_refused_without_inflating_it(sstore: Store) -> None:
    module = wat("(module (memory 1))")
    bomb = gzip.compress(module + bytes(256 << 20), compresslevel=9)
    assert len(bomb) < 300_000
    with pytest.raises(InvalidModuleError) as info:
        api.install(sstore, "bomb", bomb)
    size = len(module) + (256 << 20)
    assert str(info.value) == (f"invalid canister module (the IC's WASM_MAX_SIZE): Wasm module size of {size} "
                               f"exceeds the maximum allowed size of {WASM_MAX_SIZE}.")
    # The footer alone decides: a stream that is garbage after its header is refused the same way,
    # so nothing was inflated.
    garbage = bomb[:10] + b"\xff" * 1000 + bomb[-8:]
    with pytest.raises(InvalidModuleError, match="WASM_MAX_SIZE"):
        normalize_wasm(garbage)
    # A footer that lies: inflating stops at the announced size.
    liar = bomb[:-4] + (1000).to_bytes(4, "little")
    with pytest.raises(InvalidModuleError, match="the gzip footer announces 1000 bytes, the stream holds more"):
        normalize_wasm(liar)
    with pytest.raises(InvalidModuleError, match="gzip stream is too short"):
        normalize_wasm(b"\x1f\x8b\x08\x00")
    with pytest.raises(InvalidModuleError, match="corrupt gzip data"):
        normalize_wasm(gzip.compress(module)[:10] + b"garbage!" + gzip.compress(module)[-8:])
    assert api.list_canisters(sstore) == []
    # A real gzipped module is fine.
    api.install(sstore, "counter", gzip.compress(COUNTER.read_bytes()))


def test_an_uncompressed_module_over_the_limit_is_refused() -> None:
    module = wat("(module (memory 1))") + encode_section(0, encode_name("pad") + bytes(WASM_MAX_SIZE))
    with pytest.raises(InvalidModuleError, match="WASM_MAX_SIZE.*exceeds the maximum allowed size of 104857600"):
        normalize_wasm(module)


def test_the_cli_prints_the_rule(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.wasm"
    path.write_bytes(wat('(module (memory i64 204800))'))
    res = CliRunner().invoke(app, ["--db", sqlite_url, "install", "bad", str(path)])
    assert res.exit_code == 2
    assert "MAX_WASM64_MEMORY_IN_BYTES" in res.output and "Traceback" not in res.output


def test_validation_is_done_at_install_only(sqlite_url: str) -> None:
    """A canister whose module an older graphcopy installed keeps running, as on the IC, even if the
    module breaks a rule checked now; installing that module anew is refused."""
    import sqlalchemy as sa

    from persist.session import open_store
    from persist.store import db, schema
    from persist.store.canisters import store_module

    ok = wat('(module (import "ic0" "msg_reply" (func $reply)) (memory 1) '
             '(func (export "canister_update f") (call $reply)))')
    legacy = wat('(module (import "ic0" "msg_reply" (func $reply)) (memory 1) '
                 '(func (export "canister_update f") (call $reply)) (func (export "canister_foo")))')
    with open_store(sqlite_url) as st:
        api.install(st, "old", ok)
        info = parse_module(legacy)
        with db.transaction(st.engine) as conn:
            store_module(conn, legacy, info.hash, info.custom_sections)
            conn.execute(schema.canisters.update().where(schema.canisters.c.name == "old")
                         .values(module_hash=info.hash, version=schema.canisters.c.version + 1))
    with open_store(sqlite_url) as st:
        assert api.call(st, "old", "f").reply == b""
        assert api.status(st, "old").module_hash == info.hash
        with pytest.raises(InvalidModuleError, match="Exporting reserved function 'canister_foo'"):
            api.install(st, "new", legacy)
        with st.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.canisters)).scalar() == 1
