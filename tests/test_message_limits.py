"""The IC's message limits (``persist.host.limits.Limits``): ingress arguments, replies (larger for
query calls), calls between canisters, reject texts, with the replica's codes and texts; and the
canister log capped as the replica caps it. Canister: ``canisters/limits.wat``."""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import wasmtime
from typer.testing import CliRunner

from cli.main import app
from persist import api, call, install, logs, open_store
from persist.errors import CanisterRejectError, CanisterTrapError, MessageTooLargeError
from persist.execution.rejects import trap_reject
from persist.host.limits import Limits
from persist.session import Store
from persist.store import schema

CANISTERS = Path(__file__).parent / "canisters"
MIB = 1024 * 1024


@functools.cache
def limits_wasm() -> bytes:
    return bytes(wasmtime.wat2wasm((CANISTERS / "limits.wat").read_text()))


def i64(*values: int) -> bytes:
    return b"".join(struct.pack("<q", v) for v in values)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as st:
        install(st, "lim", limits_wasm())
        yield st


def stored_log_bytes(store: Store) -> int:
    with store.engine.connect() as conn:
        texts = conn.execute(sa.select(schema.logs.c.message)).scalars().all()
    return sum(40 + len(t.encode()) for t in texts)


def test_ingress_arguments(store: Store) -> None:
    header = len("size")
    assert struct.unpack("<q", call(store, "lim", "size", b"x" * (2 * MIB - header)).reply)[0] == 2 * MIB - header
    with pytest.raises(MessageTooLargeError) as info:
        call(store, "lim", "size", b"x" * (2 * MIB - header + 1))
    assert str(info.value).startswith(f"Request to lim.size is too large. Message byte size {2 * MIB + 1} is larger "
                                      f"than the max allowed {2 * MIB}.")
    assert info.value.exit_code == 2
    # The argument of a query call, of a call to the management canister, and of an install too.
    with pytest.raises(MessageTooLargeError):
        call(store, "lim", "reply_query", bytes(3 * MIB))
    with pytest.raises(MessageTooLargeError):
        call(store, "aaaaa-aa", "canister_status", bytes(3 * MIB))
    with pytest.raises(MessageTooLargeError, match="Request to other.canister_init is too large"):
        install(store, "other", limits_wasm(), arg=bytes(3 * MIB))
    assert [c.name for c in api.list_canisters(store)] == ["lim"]


def test_replies(store: Store) -> None:
    assert len(call(store, "lim", "reply", i64(2 * MIB)).reply) == 2 * MIB
    with pytest.raises(CanisterTrapError) as info:
        call(store, "lim", "reply", i64(2 * MIB + 1))
    assert info.value.trap == (f"ic0.msg_reply_data_append: application payload size ({2 * MIB + 1}) cannot be "
                               f"larger than {2 * MIB}.")
    # A query call's reply may be larger (MAX_NON_REPLICATED_QUERY_REPLY_SIZE).
    assert len(call(store, "lim", "reply_query", i64(3 * MIB)).reply) == 3 * MIB
    with pytest.raises(CanisterTrapError, match=f"application payload size \\({3 * MIB + 1}\\)"):
        call(store, "lim", "reply_query", i64(3 * MIB + 1))
    # A canister's reply too large for its caller: the caller gets the replica's reject.
    with pytest.raises(CanisterRejectError) as rej:
        call(store, "lim", "forward", i64(2 * MIB + 1))
    principal = api.status(store, "lim").principal
    assert rej.value.reject_message == (
        f"IC0504: Error from Canister {principal}: Canister violated contract: ic0.msg_reply_data_append: "
        f"application payload size ({2 * MIB + 1}) cannot be larger than {2 * MIB}.")


def test_calls_between_canisters(store: Store) -> None:
    principal = api.status(store, "lim").principal
    limit = store.limits.max_request_bytes
    assert limit == 10 * MIB  # 2 MiB, times 5 on the canister's own subnet
    name = len("size")
    assert struct.unpack("<q", call(store, "lim", "call_self", i64(limit - name)).reply)[0] == limit - name
    with pytest.raises(CanisterTrapError) as info:
        call(store, "lim", "call_self", i64(limit - name + 1))
    assert info.value.trap == (f"Request to {principal}:size has a payload size of {limit + 1}, which exceeds the "
                               f"allowed limit of {limit}.")
    # What a caller would receive: a user contract violation (IC0504) with the replica's suggestion.
    _, _, code, text = trap_reject(principal, info.value.trap or "")
    assert code == 5 and text == (
        f"IC0504: Error from Canister {principal}: Canister violated contract: Request to {principal}:size has a "
        f"payload size of {limit + 1}, which exceeds the allowed limit of {limit}..\nCheck the canister for errors or "
        "redesign the target API to allow shorter messages See documentation: "
        "https://internetcomputer.org/docs/current/references/execution-errors#canister-made-a-call-with-too-large-"
        "payload")


def test_reject_messages_are_shortened_as_the_replica_shortens_them(store: Store) -> None:
    with pytest.raises(CanisterRejectError) as info:
        call(store, "lim", "reject", i64(10_000))
    text = info.value.reject_message
    assert len(text.encode()) == 8 * 1024
    assert text.startswith("x" * 6000) and "..." in text and text.endswith("x" * 1000)


def test_limits_are_configurable(sqlite_url: str) -> None:
    with open_store(sqlite_url, limits=Limits(max_ingress_bytes=100, max_response_bytes=10)) as st:
        install(st, "lim", limits_wasm())
        with pytest.raises(MessageTooLargeError, match="larger than the max allowed 100"):
            call(st, "lim", "size", bytes(100))
        with pytest.raises(CanisterTrapError, match="cannot be larger than 10"):
            call(st, "lim", "reply", i64(11))


def test_the_log_keeps_the_newest_records_that_fit(store: Store) -> None:
    # One 16 MiB print: cut to what fits.
    call(store, "lim", "print", i64(1, 16 * MIB))
    [line] = logs(store, "lim")
    assert len(line.message) == 4096 - 40 and line.message.startswith("a")
    assert stored_log_bytes(store) == 4096
    # 100,000 prints in one message: only the newest ones that fit in 4 KiB are stored.
    res = call(store, "lim", "print", i64(100_000, 20))
    assert struct.unpack("<q", res.reply)[0] == 100_000
    assert 2 * MIB // 60 <= len(res.logs) <= 2 * 2 * MIB // 60  # one message's log: the newest 2 MiB
    kept = logs(store, "lim")
    assert len(kept) == 4096 // 60 and stored_log_bytes(store) <= 4096
    # The newest print is the last one (it starts with the print count's letter, 99,999 mod 26).
    assert kept[-1].message[0] == chr(97 + 99_999 % 26) and kept[-2].message[0] == chr(97 + 99_998 % 26)
    seqs = [line.seq for line in kept]
    assert seqs == sorted(seqs) and seqs[0] > 1  # sequence numbers never repeat
    # A trap's text is a record too.
    with pytest.raises(CanisterTrapError):
        call(store, "lim", "reply", i64(2 * MIB + 1))
    assert logs(store, "lim")[-1].kind == "trap" and stored_log_bytes(store) <= 4096


def test_the_log_limit_is_configurable(sqlite_url: str) -> None:
    with open_store(sqlite_url, limits=Limits(log_memory_limit=2 * MIB)) as st:
        install(st, "lim", limits_wasm())
        call(st, "lim", "print", i64(1000, 100))
        assert len(logs(st, "lim")) == 1000
        call(st, "lim", "print", i64(1, 16 * MIB))
        assert len(logs(st, "lim")[-1].message) == 2 * MIB - 40  # also the most one message logs


def test_the_cli_reports_a_too_large_argument(sqlite_url: str, tmp_path: Path) -> None:
    with open_store(sqlite_url) as st:
        install(st, "lim", limits_wasm())
    res = CliRunner().invoke(app, ["--db", sqlite_url, "call", "lim", "size", "(blob \"" + "x" * (3 * MIB) + "\")"])
    assert res.exit_code == 2, res.output
    assert "is too large" in res.output and "Traceback" not in res.output
