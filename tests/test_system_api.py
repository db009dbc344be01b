"""The ic0 System API as canisters see it, with the IC's semantics, on SQLite and PostgreSQL.

Two hand-written canisters speak raw little-endian bytes, so each test controls exactly what
reaches the host: ``canisters/system_api.wat`` (a 64-bit memory, like moc output) and
``canisters/system_api32.wat`` (a 32-bit memory: the deprecated 32-bit stable memory API, the
stable64 API on a 32-bit heap, availability traps, call construction misuse).

The 34 ic0 functions moc canisters rely on are exercised here (``COVERED``): 26 served by Python
(``persist.host.system_api``) and the 8 stable memory functions served by the Wasm helper
(``persist.host.stable_helper.STABLE_IMPORTS``); ``test_every_import_is_exercised`` keeps that true.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from persist import call, install, list_canisters, logs, open_store, run_pending, status
from persist.errors import CanisterRejectError, CanisterTrapError, InvalidModuleError
from persist.host.limits import Limits
from persist.host.memory import PAGE
from persist.host.module import parse_module
from persist.host.stable_helper import STABLE_IMPORTS
from persist.host.system_api import AVAILABLE
from persist.principal import Principal
from persist.session import Store

# The host and durability suites run under both heap dirty-tracking mechanisms (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("dirty_tracking")

CANISTERS = Path(__file__).resolve().parent / "canisters"
U64 = 2**64
FAR_FUTURE_NS = 4_000_000_000_000_000_000  # year 2096
# A user other than the store's (a self-authenticating id: only users send ingress messages).
OTHER_PRINCIPAL = Principal.self_authenticating(b"another user's public key").to_text()


@functools.cache
def wasm(name: str) -> bytes:
    return bytes(wasmtime.wat2wasm((CANISTERS / name).read_text()))


def i32(v: int) -> bytes:
    return struct.pack("<i", v) if v < 2**31 else struct.pack("<I", v)


def i64(v: int) -> bytes:
    """An i64 argument; values in [2^63, 2^64) are passed as their unsigned bit pattern."""
    return struct.pack("<q", v) if v < 2**63 else struct.pack("<Q", v)


def s64(data: bytes, index: int = 0) -> int:
    return int(struct.unpack_from("<q", data, 8 * index)[0])


def reply(store: Store, name: str, method: str, arg: bytes = b"") -> bytes:
    return call(store, name, method, arg).reply


def trap_of(store: Store, name: str, method: str, arg: bytes = b"") -> str:
    with pytest.raises(CanisterTrapError) as info:
        call(store, name, method, arg)
    assert info.value.canister == name
    assert info.value.method == method
    return str(info.value)


def open_with(url: str, **limits: int | float) -> Store:
    return open_store(url, limits=Limits(**limits))  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = open_store(db_url, limits=Limits())
    install(st, "sys", wasm("system_api.wat"), arg=b"init-arg")
    yield st
    st.close()


# --------------------------------------------------------------------------- coverage of the imports


# The ic0 functions this module covers: the 30 that moc-generated canisters import, and the
# deprecated 32-bit stable memory API.
COVERED = {
    "msg_arg_data_size", "msg_arg_data_copy", "msg_caller_size", "msg_caller_copy",
    "msg_reject_code", "msg_reject_msg_size", "msg_reject_msg_copy",
    "msg_reply_data_append", "msg_reply", "msg_reject", "msg_cycles_refunded128",
    "canister_self_size", "canister_self_copy", "canister_status", "is_controller",
    "call_new", "call_on_cleanup", "call_data_append", "call_cycles_add128",
    "call_with_best_effort_response", "call_perform",
    "global_timer_set", "time", "performance_counter", "debug_print", "trap",
    "stable64_size", "stable64_grow", "stable64_read", "stable64_write",
    "stable_size", "stable_grow", "stable_read", "stable_write",
}


def test_every_import_is_exercised() -> None:
    """The two test canisters together import exactly the covered functions, and the host
    provides every one of them (from Python or from the stable memory helper)."""
    imported = {fld for name in ("system_api.wat", "system_api32.wat")
                for mod, fld in parse_module(wasm(name)).imports if mod == "ic0"}
    assert imported == COVERED
    assert len(COVERED) == 34
    assert set(STABLE_IMPORTS) <= COVERED
    assert COVERED <= set(AVAILABLE) | set(STABLE_IMPORTS)


# --------------------------------------------------------------------------- arguments and callers


def test_msg_arg_data(store: Store) -> None:
    # The install argument reaches canister_init (which stored its size).
    assert s64(reply(store, "sys", "init_arg_size")) == len(b"init-arg")
    assert [(line.kind, line.message) for line in logs(store, "sys")] == [("print", "initialised")]
    # An update gets its argument, byte for byte, and can send it back.
    payload = bytes(range(256)) * 40
    assert reply(store, "sys", "echo", payload) == payload
    assert reply(store, "sys", "echo", b"") == b""
    # Copying more than the argument holds traps.
    text = trap_of(store, "sys", "arg_out_of_bounds", b"abc")
    assert "msg_arg_data_copy" in text and "out of bounds" in text
    # Copying to the last byte of the heap is fine (no reply: CANISTER_ERROR); one more byte traps.
    with pytest.raises(CanisterRejectError) as rej:
        call(store, "sys", "copy_beyond_heap", b"x")
    assert rej.value.code == 5 and "did not reply" in rej.value.reject_message
    assert "heap out of bounds" in trap_of(store, "sys", "copy_beyond_heap", b"xy")
    # A wasm32 canister reads its argument with i32 addresses.
    install(store, "c32", wasm("system_api32.wat"))
    assert reply(store, "c32", "echo", b"thirty-two") == b"thirty-two"


def test_msg_caller(db_url: str) -> None:
    st = open_store(db_url, limits=Limits())
    install(st, "sys", wasm("system_api.wat"))
    install(st, "c32", wasm("system_api32.wat"))
    assert reply(st, "sys", "caller") == st.identity.raw
    assert len(st.identity.raw) == 29 and st.identity.raw[-1] == 0x02  # self-authenticating form
    assert reply(st, "c32", "caller") == st.identity.raw
    st.close()

    anon = open_store(db_url, caller="anonymous")
    assert reply(anon, "sys", "caller") == b"\x04"
    assert Principal(reply(anon, "sys", "caller")).to_text() == "2vxsx-fae"
    anon.close()

    other = open_store(db_url, caller=OTHER_PRINCIPAL)
    assert reply(other, "sys", "caller") == Principal.from_text(OTHER_PRINCIPAL).raw
    assert reply(other, "c32", "caller") == Principal.from_text(OTHER_PRINCIPAL).raw
    other.close()


# --------------------------------------------------------------------------- replies and rejects


def test_reply_reject_and_no_reply(store: Store) -> None:
    assert reply(store, "sys", "echo", b"pong") == b"pong"
    # A second msg_reply traps, and the trap discards the first reply.
    assert "already replied" in trap_of(store, "sys", "double_reply")
    # msg_reject: CANISTER_REJECT (4) with the canister's text.
    with pytest.raises(CanisterRejectError) as rej:
        call(store, "sys", "reject", b"not today")
    assert rej.value.code == 4
    assert rej.value.reject_message == "not today"
    # Ending without a reply: CANISTER_ERROR (5) "did not reply".
    with pytest.raises(CanisterRejectError) as rej:
        call(store, "sys", "noreply")
    assert rej.value.code == 5
    assert "did not reply" in rej.value.reject_message
    assert status(store, "sys").principal in rej.value.reject_message


# --------------------------------------------------------------------------- calls


def test_self_calls_replies_rejects_and_callbacks(store: Store) -> None:
    principal = status(store, "sys").principal
    # 0: echo replies; the reply callback gets the callee's reply (refunds: test_refunded_cycles).
    out = reply(store, "sys", "selfcall", i64(0) + b"ping")
    assert out[8:] == b"ping"
    # 1: the callee traps; the reject callback sees CANISTER_ERROR and the callee's trap.
    out = reply(store, "sys", "selfcall", i64(1) + b"ping")
    assert s64(out) == 5
    # The replica's text (dfinity/ic HypervisorError::CalledTrap, into_user_error; the same as
    # Motoko's test/run-drun/ok/error-codes.drun-run.ok shows a canister receiving it).
    assert out[8:].decode() == (
        f"IC0503: Error from Canister {principal}: Canister called `ic0.trap` with message: 'boom'.\n"
        "Consider gracefully handling failures from this canister or altering the canister to handle exceptions. "
        "See documentation: https://internetcomputer.org/docs/current/references/execution-errors#trapped-explicitly")
    # 2: no such method: CANISTER_ERROR, HypervisorError::MethodNotFound (IC0536).
    out = reply(store, "sys", "selfcall", i64(2) + b"ping")
    assert s64(out) == 5
    assert out[8:].decode().startswith(f"IC0536: Error from Canister {principal}: Canister has no update method")
    assert "no_such" in out[8:].decode()
    # The cleanup callback runs only when a callback traps.
    assert s64(reply(store, "sys", "peek", i64(0x408))) == 0
    st = status(store, "sys")
    assert (st.pending_messages, st.open_call_contexts) == (0, 0)
    version = st.version

    # The reply callback traps: the ingress fails, the callback's changes are rolled back (marker
    # 0x400 stays 0) and the cleanup callback runs and commits (marker 0x408 = its env, 44).
    with pytest.raises(CanisterTrapError) as info:
        call(store, "sys", "selfcall_trapping_callback", i64(0) + b"ping")
    assert "unreachable" in str(info.value)
    assert s64(reply(store, "sys", "peek", i64(0x400))) == 0
    assert s64(reply(store, "sys", "peek", i64(0x408))) == 44
    st = status(store, "sys")
    assert (st.pending_messages, st.open_call_contexts) == (0, 0)
    assert st.version > version

    # call_new is not available in a query.
    assert '"ic0.call_new" cannot be executed in query mode' in trap_of(store, "sys", "call_in_query")


def test_refunded_cycles(store: Store) -> None:
    """The callee accepts no cycles (graphcopy provides no msg_cycles_accept), so the 5 cycles the
    caller attached with call_cycles_add128 come back in full: msg_cycles_refunded128 is 5 in the
    reply callback, whether the callee replied from its update method or not."""
    out = reply(store, "sys", "selfcall", i64(0) + b"ping")
    assert out[8:] == b"ping"
    assert s64(out) == 5


def test_call_construction_on_wasm32(store: Store) -> None:
    install(store, "c32", wasm("system_api32.wat"))
    # A complete call: msg_reject_code is 0 in a reply callback; the callee's reply comes through.
    out = reply(store, "c32", "call_misuse", i32(4))
    assert s64(out) == 0
    assert out[8:] == b"wasm32!"
    # Misuse traps, as on the IC.
    assert "no call is under construction" in trap_of(store, "c32", "call_misuse", i32(0))
    assert "call_on_cleanup" in trap_of(store, "c32", "call_misuse", i32(1))
    assert "already set" in trap_of(store, "c32", "call_misuse", i32(1))
    assert "call_with_best_effort_response" in trap_of(store, "c32", "call_misuse", i32(2))
    text = trap_of(store, "c32", "call_misuse", i32(3))
    assert "call_perform" in text and "no call is under construction" in text
    st = status(store, "c32")
    assert (st.pending_messages, st.open_call_contexts) == (0, 0)


def test_availability_per_message_kind(store: Store) -> None:
    install(store, "c32", wasm("system_api32.wat"))
    assert '"ic0.msg_reject_code" cannot be executed in update mode' in trap_of(
        store, "c32", "reject_code_in_update")
    assert '"ic0.msg_cycles_refunded128" cannot be executed in update mode' in trap_of(
        store, "c32", "refunded_in_update")
    assert '"ic0.global_timer_set" cannot be executed in query mode' in trap_of(
        store, "c32", "timer_in_query")


# --------------------------------------------------------------------------- the canister itself


def test_canister_self_status_and_controllers(db_url: str) -> None:
    st = open_store(db_url, limits=Limits())
    install(st, "sys", wasm("system_api.wat"))
    install(st, "c32", wasm("system_api32.wat"))
    sys_id = reply(st, "sys", "self")
    assert sys_id == Principal.from_text(status(st, "sys").principal).raw
    assert reply(st, "c32", "self") == Principal.from_text(status(st, "c32").principal).raw
    assert sys_id != reply(st, "c32", "self")
    assert s64(reply(st, "sys", "status")) == 1  # running
    # The store's identity created the canister, so it controls it.
    assert s64(reply(st, "sys", "caller_is_controller")) == 1
    assert status(st, "sys").controllers == [st.identity.to_text()]
    # is_controller rejects a blob longer than a principal can be.
    assert "is_controller" in trap_of(st, "sys", "is_controller_too_long")
    st.close()
    for caller in ("anonymous", OTHER_PRINCIPAL):
        other = open_store(db_url, caller=caller)
        assert s64(reply(other, "sys", "caller_is_controller")) == 0
        other.close()


# --------------------------------------------------------------------------- the global timer


def test_global_timer(store: Store) -> None:
    assert s64(reply(store, "sys", "timer_count")) == 0
    # global_timer_set returns the previous value.
    assert s64(reply(store, "sys", "set_timer", i64(FAR_FUTURE_NS))) == 0
    assert status(store, "sys").timer_ns == FAR_FUTURE_NS
    assert run_pending(store) == 0  # not due
    assert s64(reply(store, "sys", "timer_count")) == 0
    assert s64(reply(store, "sys", "set_timer", i64(FAR_FUTURE_NS + 1))) == FAR_FUTURE_NS
    # A timer in the past is due at once; run_pending runs it (the call may already have).
    assert s64(reply(store, "sys", "set_timer", i64(1))) == FAR_FUTURE_NS + 1
    run_pending(store)
    assert s64(reply(store, "sys", "timer_count")) == 1
    # It fired once and was deactivated.
    assert status(store, "sys").timer_ns == 0
    assert run_pending(store) == 0
    assert s64(reply(store, "sys", "timer_count")) == 1
    # 0 deactivates; the previous value (0 after firing) comes back.
    assert s64(reply(store, "sys", "set_timer", i64(0))) == 0


# --------------------------------------------------------------------------- time, counters, prints, traps


def test_time(store: Store) -> None:
    before = time.time_ns()
    times = [s64(reply(store, "sys", "time")) for _ in range(5)]
    assert times[0] > 0
    assert times[0] >= before  # IC time is nanoseconds since the epoch
    assert times == sorted(times)


def test_performance_counter(db_url: str) -> None:
    st = open_store(db_url, limits=Limits())
    install(st, "sys", wasm("system_api.wat"))
    install(st, "c32", wasm("system_api32.wat"))
    plain = s64(reply(st, "sys", "perf"))
    assert plain > 1000  # the method loops 1000 times before reading it
    small, large = reply(st, "c32", "perf_twice", i32(10)), reply(st, "c32", "perf_twice", i32(100_000))
    assert 0 < s64(small, 0) < s64(small, 1)
    assert s64(large, 0) == s64(small, 0)  # same work before the first reading
    assert s64(large, 1) - s64(large, 0) > 100_000 > 100 * (s64(small, 1) - s64(small, 0))
    assert "unknown counter type" in trap_of(st, "c32", "perf_bad_type")
    st.close()

    scaled = open_store(db_url, limits=Limits(performance_counter_scale=10))
    ten_x = s64(reply(scaled, "sys", "perf"))
    assert abs(ten_x - 10 * plain) <= 10
    scaled.close()


def test_debug_print_and_trap(store: Store) -> None:
    res = call(store, "sys", "print", b"hello log")
    assert res.logs == ["hello log"]
    assert ("print", "hello log") in [(line.kind, line.message) for line in logs(store, "sys")]
    version = status(store, "sys").version

    text = trap_of(store, "sys", "print_then_trap")
    assert "Canister called `ic0.trap` with message: 'boom'" in text
    tail = [(line.kind, line.message) for line in logs(store, "sys", tail=2)]
    assert tail == [("print", "hello"), ("trap", "Canister called `ic0.trap` with message: 'boom'")]
    assert status(store, "sys").version == version  # the trapped message changed nothing

    install(store, "c32", wasm("system_api32.wat"))
    assert call(store, "c32", "echo", b"x").logs == ["wasm32!"]


# --------------------------------------------------------------------------- stable memory (64-bit API)


def test_stable64(db_url: str) -> None:
    st = open_with(db_url, stable_memory_max_bytes=8 * PAGE)
    install(st, "sys", wasm("system_api.wat"))
    assert s64(reply(st, "sys", "stable_size")) == 0
    # Nothing grows implicitly: a write past the end traps and the size stays 0.
    assert "stable memory out of bounds" in trap_of(st, "sys", "stable_write", i64(0) + b"x")
    assert s64(reply(st, "sys", "stable_size")) == 0
    assert reply(st, "sys", "stable_read", i64(0) + i64(0)) == b""  # empty access at the end is fine

    # grow returns the previous size; beyond the limit it returns -1 and changes nothing.
    assert s64(reply(st, "sys", "stable_grow", i64(2))) == 0
    assert s64(reply(st, "sys", "stable_grow", i64(0))) == 2
    assert s64(reply(st, "sys", "stable_grow", i64(7))) == -1
    assert s64(reply(st, "sys", "stable_size")) == 2
    assert s64(reply(st, "sys", "stable_grow", i64(U64 - 1))) == -1
    assert s64(reply(st, "sys", "stable_grow", i64(6))) == 2
    assert s64(reply(st, "sys", "stable_grow", i64(1))) == -1
    assert s64(reply(st, "sys", "stable_size")) == 8
    assert status(st, "sys").stable_bytes == 8 * PAGE

    # A write across a page boundary reads back, whole and in parts; fresh memory reads as zero.
    reply(st, "sys", "stable_write", i64(PAGE - 6) + b"hello world")
    assert reply(st, "sys", "stable_read", i64(PAGE - 6) + i64(11)) == b"hello world"
    assert reply(st, "sys", "stable_read", i64(PAGE) + i64(5)) == b"world"
    assert reply(st, "sys", "stable_read", i64(3 * PAGE) + i64(4)) == bytes(4)
    end = 8 * PAGE
    reply(st, "sys", "stable_write", i64(end - 3) + b"end")
    assert reply(st, "sys", "stable_read", i64(end - 3) + i64(3)) == b"end"

    # Out of bounds: past the end, and offsets that overflow 2^64.
    for off, size in ((end - 2, 3), (end, 1), (U64 - 1, 2), (U64 - PAGE, PAGE + 1)):
        assert "stable memory out of bounds" in trap_of(st, "sys", "stable_read", i64(off) + i64(size))
    assert "stable memory out of bounds" in trap_of(st, "sys", "stable_write", i64(end - 2) + b"abc")
    assert "stable memory out of bounds" in trap_of(
        st, "sys", "stable_write_raw", i64(U64 - 1) + i64(0) + i64(2))
    # Heap out of bounds (the heap is 4 pages): source or destination past the end, or overflowing.
    heap_end = 4 * PAGE
    for raw in ("stable_write_raw", "stable_read_raw"):
        args = [(0, heap_end - 1, 2), (0, U64 - 1, 2)] if raw == "stable_write_raw" else [
            (heap_end - 1, 0, 2), (U64 - 1, 0, 2)]
        for a, b, c in args:
            assert "heap out of bounds" in trap_of(st, "sys", raw, i64(a) + i64(b) + i64(c))
    # ... and exactly up to the end of the heap is fine.
    assert reply(st, "sys", "stable_read_raw", i64(heap_end - 2) + i64(PAGE - 6) + i64(2)) == b""
    # None of the traps changed the memory.
    assert reply(st, "sys", "stable_read", i64(PAGE - 6) + i64(11)) == b"hello world"
    assert s64(reply(st, "sys", "stable_size")) == 8
    st.close()

    # What was committed is in the database: a fresh store sees it.
    fresh = open_with(db_url, stable_memory_max_bytes=8 * PAGE)
    assert reply(fresh, "sys", "stable_read", i64(PAGE - 6) + i64(11)) == b"hello world"
    assert reply(fresh, "sys", "stable_read", i64(end - 3) + i64(3)) == b"end"
    assert status(fresh, "sys").stored_stable_pages == 3
    fresh.close()


def test_stable64_write_then_trap_rolls_back(db_url: str) -> None:
    """A message that writes stable memory and traps leaves the committed bytes in place, in the
    store that installed the canister too, and does not commit zeros over them later."""
    st = open_store(db_url, limits=Limits())
    install(st, "sys", wasm("system_api.wat"))
    assert s64(reply(st, "sys", "stable_grow", i64(2))) == 0
    reply(st, "sys", "stable_write", i64(PAGE - 6) + b"hello world")
    version = status(st, "sys").version

    assert "unreachable" in trap_of(st, "sys", "write_then_trap", i64(PAGE - 3) + b"XYZXYZ")
    assert status(st, "sys").version == version
    assert s64(reply(st, "sys", "counter")) == 0  # the global it bumped
    assert s64(reply(st, "sys", "peek", i64(0x500))) == 0  # the heap word it wrote
    assert s64(reply(st, "sys", "stable_size")) == 2
    assert reply(st, "sys", "stable_read", i64(PAGE - 6) + i64(11)) == b"hello world"
    # A later write elsewhere on the same pages must not commit anything but the real contents.
    reply(st, "sys", "stable_write", i64(100) + b"!")
    reply(st, "sys", "stable_write", i64(PAGE + 100) + b"!")
    st.close()
    fresh = open_store(db_url, limits=Limits())
    assert reply(fresh, "sys", "stable_read", i64(PAGE - 6) + i64(11)) == b"hello world"
    fresh.close()


# --------------------------------------------------------------------------- stable memory (32-bit API)


def test_stable32_api_and_wasm32_heap(db_url: str) -> None:
    st = open_with(db_url, stable_memory_max_bytes=16 * PAGE)
    install(st, "c32", wasm("system_api32.wat"))
    assert s64(reply(st, "c32", "heap_pages")) == 2
    assert s64(reply(st, "c32", "s32_size")) == 0
    assert "stable memory out of bounds" in trap_of(st, "c32", "s32_write", i32(0) + b"x")
    assert s64(reply(st, "c32", "s32_size")) == 0

    assert s64(reply(st, "c32", "s32_grow", i32(2))) == 0
    assert s64(reply(st, "c32", "s32_grow", i32(0))) == 2
    assert s64(reply(st, "c32", "s32_grow", i32(15))) == -1  # over the store's limit
    assert s64(reply(st, "c32", "s32_size")) == 2
    reply(st, "c32", "s32_write", i32(PAGE - 6) + b"hello world")
    assert reply(st, "c32", "s32_read", i32(PAGE - 6) + i32(11)) == b"hello world"
    # The stable64 API works on a 32-bit heap, on the same memory.
    assert reply(st, "c32", "s64_read", i64(PAGE - 6) + i64(11)) == b"hello world"
    assert s64(reply(st, "c32", "s64_grow", i64(1))) == 2
    assert s64(reply(st, "c32", "s32_size")) == 3
    assert s64(reply(st, "c32", "s64_size")) == 3
    reply(st, "c32", "s64_write", i64(3 * PAGE - 3) + b"abc")
    assert reply(st, "c32", "s32_read", i32(3 * PAGE - 3) + i32(3)) == b"abc"

    # Stable bounds, including offsets near 2^32 (no wrap-around in the 32-bit API).
    for off, size in ((3 * PAGE - 2, 3), (3 * PAGE, 1), (2**32 - 1, 2)):
        assert "stable memory out of bounds" in trap_of(st, "c32", "s32_read", i32(off) + i32(size))
    assert "stable memory out of bounds" in trap_of(st, "c32", "s64_read", i64(U64 - 1) + i64(2))
    # Heap bounds: the heap is 2 pages; i64 addresses beyond 4 GiB must not wrap onto the heap.
    heap_end = 2 * PAGE
    assert "heap out of bounds" in trap_of(st, "c32", "s32_read_raw", i32(heap_end - 1) + i32(0) + i32(2))
    assert "heap out of bounds" in trap_of(st, "c32", "s32_write_raw", i32(0) + i32(heap_end - 1) + i32(2))
    for dst in (heap_end - 1, 2**32 + 0x8000, U64 - 1):
        assert "heap out of bounds" in trap_of(st, "c32", "s64_read_raw", i64(dst) + i64(0) + i64(2))
    reply(st, "c32", "s32_read_raw", i32(heap_end - 2) + i32(PAGE - 6) + i32(2))  # exactly to the end

    # A message that grows and writes, then traps: size and contents roll back.
    assert "unreachable" in trap_of(st, "c32", "s32_grow_write_trap", i32(2))
    assert s64(reply(st, "c32", "s32_size")) == 3
    assert "stable memory out of bounds" in trap_of(st, "c32", "s32_read", i32(3 * PAGE) + i32(1))
    assert s64(reply(st, "c32", "s32_grow", i32(1))) == 3
    assert reply(st, "c32", "s32_read", i32(3 * PAGE) + i32(7)) == bytes(7)
    st.close()

    fresh = open_with(db_url, stable_memory_max_bytes=16 * PAGE)
    assert reply(fresh, "c32", "s32_read", i32(PAGE - 6) + i32(11)) == b"hello world"
    assert reply(fresh, "c32", "s64_read", i64(3 * PAGE - 3) + i64(3)) == b"abc"
    assert s64(reply(fresh, "c32", "s32_size")) == 4
    fresh.close()


def test_stable32_api_is_limited_to_4gib(db_url: str) -> None:
    st = open_store(db_url, limits=Limits())
    install(st, "a", wasm("system_api32.wat"))
    # Exactly 4 GiB is the most the 32-bit API can reach (the store would allow more).
    assert s64(reply(st, "a", "s32_grow", i32(65536))) == 0
    assert s64(reply(st, "a", "s32_grow", i32(1))) == -1
    assert s64(reply(st, "a", "s32_size")) == 65536
    # Past 4 GiB (grown with the 64-bit API, in one step) every 32-bit function traps.
    install(st, "b", wasm("system_api32.wat"))
    assert s64(reply(st, "b", "s64_grow", i64(65537))) == 0
    for method, arg in (("s32_size", b""), ("s32_grow", i32(0)), ("s32_read", i32(0) + i32(1)),
                        ("s32_write", i32(0) + b"x")):
        text = trap_of(st, "b", method, arg)
        assert "32-bit stable memory api used on a stable memory larger than 4GiB" in text
    assert s64(reply(st, "b", "s64_size")) == 65537
    st.close()


# --------------------------------------------------------------------------- instruction limits


def test_instruction_limits(db_url: str) -> None:
    st = open_with(db_url, update_instructions=10_000_000, query_instructions=10_000_000,
                   install_instructions=10_000_000)
    install(st, "sys", wasm("system_api.wat"))
    install(st, "c32", wasm("system_api32.wat"))
    version = status(st, "sys").version
    # The replica's text (HypervisorError::InstructionLimitExceeded), naming the limit.
    limit_text = "Canister exceeded the limit of 10000000 instructions for single message execution."
    assert limit_text in trap_of(st, "sys", "spin")
    assert limit_text in trap_of(st, "c32", "spin_query")
    assert status(st, "sys").version == version
    assert logs(st, "sys", tail=1)[0].kind == "trap"
    assert logs(st, "sys", tail=1)[0].message == limit_text
    # The canister still works after running out of instructions.
    assert s64(reply(st, "sys", "bump")) == 1
    # A canister_init that never ends fails the install; nothing is created.
    spin_init = wasmtime.wat2wasm('(module (memory i64 1) (func (export "canister_init") (loop $l (br $l))))')
    with pytest.raises(CanisterTrapError) as info:
        install(st, "spinner", bytes(spin_init))
    assert "instructions for single message execution" in str(info.value)
    assert [c.name for c in list_canisters(st)] == ["sys", "c32"]
    st.close()


def test_unknown_ic0_import_is_refused(store: Store) -> None:
    module = wasmtime.wat2wasm(
        '(module (import "ic0" "mint_cycles" (func (param i64) (result i64))) (memory 1))')
    with pytest.raises(InvalidModuleError) as info:
        install(store, "minter", bytes(module))
    assert "ic0.mint_cycles" in str(info.value)
