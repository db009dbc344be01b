"""Every ic0 function of the current interface spec: the README's table is the code's, the newer
functions behave as the spec says (environment variables, caller info, the subnet, the root key,
costs, cycles), and a module importing what the IC would refuse is refused at install, named."""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from persist import api, call, install, open_store, status
from persist.candid import encode_args
from persist.errors import CanisterTrapError, InvalidModuleError
from persist.host.system_api import AREA_OF, AVAILABLE, SPEC
from persist.host.system_api.context import CLEANUP, QUERY, REPLICATED_QUERY, START, TIMER
from persist.host.system_api.costs import CREATE_CANISTER_FEE, call_cost, http_request_cost
from persist.host.system_api.spec import markdown_table
from persist.host.system_api.subnet import SUBNET_ID
from persist.session import Store

ROOT = Path(__file__).resolve().parent.parent
CANISTERS = ROOT / "tests" / "canisters"


@functools.cache
def wasm(name: str) -> bytes:
    return bytes(wasmtime.wat2wasm((CANISTERS / name).read_text()))


def u128s(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 16], "little") for i in range(0, len(data), 16)]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as st:
        install(st, "env", wasm("system_api_env.wat"))
        yield st


def test_the_readme_table_is_generated_from_the_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- ic0-table:start -->", "<!-- ic0-table:end -->"
    table = readme[readme.index(start) + len(start):readme.index(end)].strip()
    assert table == markdown_table(SPEC, AREA_OF), "regenerate it: python -m persist.host.system_api"


def test_availability_follows_the_spec_letters() -> None:
    assert len(SPEC) == 74
    assert CLEANUP in AVAILABLE["msg_reject_code"]  # "Ry Rt CRy CRt C"
    assert START in AVAILABLE["cost_call"] and START not in AVAILABLE["env_var_count"]  # "* s" / "*"
    assert QUERY not in AVAILABLE["root_key_size"] and REPLICATED_QUERY in AVAILABLE["root_key_size"]
    assert TIMER in AVAILABLE["call_new"] and QUERY not in AVAILABLE["call_new"]
    assert {SPEC[n].i32_only for n in ("stable_read", "msg_cycles_accept", "call_cycles_add")} == {True}


def test_environment_variables(store: Store) -> None:
    assert struct.unpack("<q", call(store, "env", "env_count").reply)[0] == 0
    me = status(store, "env").principal
    args = encode_args(f'(record {{ canister_id = principal "{me}"; settings = record {{ environment_variables = '
                       'opt vec { record { name = "b"; value = "two" }; record { name = "a"; value = "one" } } } })',
                       api.interface(store, "aaaaa-aa").methods["update_settings"].args)  # type: ignore[union-attr]
    call(store, "aaaaa-aa", "update_settings", args)
    assert struct.unpack("<q", call(store, "env", "env_count").reply)[0] == 2
    assert call(store, "env", "env_name", struct.pack("<q", 0)).reply == b"a"  # sorted by name
    assert call(store, "env", "env_value", b"b").reply == b"two"
    assert call(store, "env", "env_exists", b"a").reply == struct.pack("<q", 1)
    assert call(store, "env", "env_exists", b"z").reply == struct.pack("<q", 0)
    with pytest.raises(CanisterTrapError) as info:
        call(store, "env", "env_value", b"z")
    assert "Environment variable z not found." in str(info.value)
    with pytest.raises(CanisterTrapError) as info:
        call(store, "env", "env_name", struct.pack("<q", 5))
    assert "Environment variable index 5 is out of bounds. The number of environment variables is 2." in str(info.value)


def test_caller_info_subnet_root_key_and_costs(store: Store) -> None:
    assert call(store, "env", "caller_info").reply == struct.pack("<q", 0)
    assert call(store, "env", "subnet").reply == SUBNET_ID.raw
    assert call(store, "env", "root_key").reply == struct.pack("<q", 0)
    with pytest.raises(CanisterTrapError, match='"ic0.root_key_size" cannot be executed in query mode'):
        call(store, "env", "root_key_in_query")
    assert u128s(call(store, "env", "costs").reply) == [call_cost(4, 100), CREATE_CANISTER_FEE,
                                                          http_request_cost(100, 2_000_000)]
    assert call_cost(4, 100) == 260_000 + 1_000 * 104 + 1_000 * 2 * 1024 * 1024 + 5_000_000 + 16_000_000_000
    # No threshold keys here: a valid curve names an unknown key (2), another curve is invalid (1).
    assert struct.unpack("<qq", call(store, "env", "cost_ecdsa").reply) == (2, 1)


def test_burning_cycles(store: Store) -> None:
    before = status(store, "env").cycles
    balance, liquid, burned, after = u128s(call(store, "env", "burn", struct.pack("<q", 1_000)).reply)
    assert (balance, liquid, burned, after) == (before, before, 1_000, before - 1_000)
    assert status(store, "env").cycles == before - 1_000  # committed with the message


@pytest.mark.parametrize(("imports", "text"), [
    ('(import "ic0" "mint_cycles" (func (param i64) (result i64)))',
     "it imports ic0.mint_cycles, which is not a function of the IC's System API"),
    ('(import "ic0" "stable_size" (func (result i32)))',
     "it imports ic0.stable_size, which the System API offers only to modules with a 32-bit memory"),
    ('(import "ic0" "msg_reply_data_append" (func (param i32 i32)))',
     "it imports ic0.msg_reply_data_append with type (i32, i32) -> (), but the System API declares "
     "(i64, i64) -> ()"),
])
def test_imports_the_ic_would_refuse_are_refused_at_install(sqlite_url: str, imports: str, text: str) -> None:
    module = bytes(wasmtime.wat2wasm(f"(module {imports} (memory i64 1))"))
    with open_store(sqlite_url) as st:
        with pytest.raises(InvalidModuleError) as info:
            install(st, "bad", module)
        assert text in str(info.value)
        assert api.list_canisters(st) == []
