"""Property-based fuzzing (Hypothesis) of everything that reads untrusted bytes or text: the Wasm
parser, validation and instrumenter, the Candid text parser and binary decoder, the ``.most``
parser, and the snapshot-directory reader. Random and mutated inputs (real modules, real Candid,
real signatures and snapshot directories with bytes flipped, cut, inserted or replaced); every
outcome must be a value or a typed graphcopy error (``GraphcopyError``), never another exception.

In CI the runs are derandomized (a fixed seed) with a bounded number of examples. For a longer,
random run set ``GRAPHCOPY_FUZZ_EXAMPLES`` (examples per property, e.g. 20000).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.stable_types import parse_signature
from persist.candid import decode_args, encode_args, parse_service
from persist.errors import GraphcopyError
from persist.host.instrument import instrument
from persist.host.module import parse_module
from persist.host.runtime import Runtime
from persist.host.validation import check_module
from persist.snapshot_dir.reader import memory_pages, open_snapshot_dir

ROOT = Path(__file__).resolve().parent.parent
CANISTERS = ROOT / "tests" / "canisters"
SNAPSHOT_DIRS = ROOT / "tests" / "fixtures" / "snapshot_dirs"

_LONG = os.environ.get("GRAPHCOPY_FUZZ_EXAMPLES", "").strip()
EXAMPLES = int(_LONG) if _LONG else 150
FUZZ = settings(max_examples=EXAMPLES, derandomize=not _LONG, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def typed_or_value(fn: Callable[[], Any]) -> None:
    """The property: ``fn`` returns, or raises a GraphcopyError; anything else fails the test."""
    try:
        fn()
    except GraphcopyError as exc:
        assert str(exc).strip(), "an error needs a message"


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with a few random edits: flips, replaced runs, insertions, deletions, cuts."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "dup"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            run = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(run)] = run
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "cut":
            del data[at:]
        elif kind == "dup":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


# ------------------------------------------------------------------------------------ Wasm modules


@functools.cache
def wasm_seeds() -> list[bytes]:
    return [bytes(wasmtime.wat2wasm((CANISTERS / f).read_text()))
            for f in ("limits.wat", "system_api.wat", "system_api32.wat", "durability.wat")]


@functools.cache
def runtime() -> Runtime:
    return Runtime()


def parse_validate_instrument(data: bytes) -> None:
    info = parse_module(data)
    check_module(data, info)
    instrument(data, info)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.binary(max_size=40).map(lambda b: b"\0asm\x01\0\0\0" + b),
                      mutated(wasm_seeds())))
def test_the_wasm_parser_validation_and_instrumenter(data: bytes) -> None:
    typed_or_value(lambda: parse_validate_instrument(data))


@settings(FUZZ, max_examples=max(EXAMPLES // 5, 20))
@given(data=mutated(wasm_seeds()))
def test_compiling_a_mutated_module(data: bytes) -> None:
    """What passes the checks is compiled too: wasmtime's refusal is a typed error as well."""
    typed_or_value(lambda: runtime().load_module(data))


# ------------------------------------------------------------------------------------------ Candid

CANDID_TOKENS = ["(", ")", "{", "}", ";", ",", "=", ":", "opt", "vec", "record", "variant", "null", "true",
                 "false", "blob", "principal", "service", "func", "nat", "int", "nat8", "int64", "float64",
                 "text", "reserved", "empty", "bool", "0", "1", "-1", "255", "1e10", "0x1f", "3.14", '"a"',
                 '"\\u{1F600}"', '"\\ff"', "x", "_1_", "#", "1_000", "\"principal\"", "aaaaa-aa",
                 "2vxsx-fae", "type", "->", "query", "oneway", "import", "/*", "*/", "//"]
TEXT_SEEDS = ['(record { a = 1; b = opt "x"; c = vec { 1; 2 } })', '(variant { ok = principal "aaaaa-aa" })',
              '(blob "\\00\\ff", 3.5 : float32, -7 : int8)', '(vec { record { 1; "two" } }, null, true)']
DID_SEEDS = ["type T = opt record { a : nat; b : vec T }; service : { f : (T) -> (text) query }",
             "service : (nat) -> { g : (variant { x; y : int }) -> () oneway; h : (func (nat) -> ()) -> () }"]


@st.composite
def candid_text(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return " ".join(draw(st.lists(st.sampled_from(CANDID_TOKENS), max_size=40)))
    seed = draw(st.sampled_from(TEXT_SEEDS + DID_SEEDS))
    return draw(mutated([seed.encode()])).decode("utf-8", errors="replace")


@FUZZ
@given(text=st.one_of(candid_text(), st.text(max_size=80)))
def test_the_candid_text_parser(text: str) -> None:
    typed_or_value(lambda: encode_args(text, None))
    typed_or_value(lambda: parse_service(text))


@functools.cache
def candid_seeds() -> list[bytes]:
    return [encode_args(t, None) for t in TEXT_SEEDS] + [b"DIDL\x00\x00", b"DIDL\x01\x6c\x00\x01\x00"]


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.binary(max_size=60).map(lambda b: b"DIDL" + b),
                      mutated(candid_seeds())))
def test_the_candid_binary_decoder(data: bytes) -> None:
    typed_or_value(lambda: decode_args(data, None))


# ------------------------------------------------------------------------------------------- .most

MOST_TOKENS = ["actor", "{", "}", "(", ")", "[", "]", "<", ">", ":", ";", ",", "?", "->", "var", "stable", "in",
               "type", "T", "=", "Nat", "Text", "Int", "async", "shared", "query", "weak", "#a", "#", "a", "b",
               "Any", "None", "<:", "and", "or", "\"m\"", "module", "object", "composite", "// Version: 4.0.0\n",
               "// Version: 3.0.0\n", "/*", "*/", "\"", "."]
MOST_SEEDS = [(ROOT / "examples" / "counter" / "counter_v2.most").read_text(),
              (ROOT / "examples" / "ledger" / "ledger.most").read_text(),
              '// Version: 4.0.0\n{ "m1" : (old : {var a : Nat}) -> {var b : Text} } actor { stable var b : Text };',
              "// Version: 3.0.0\nactor ({ in a : ?Nat }, { stable a : ?Nat; stable b : [var (Nat, Text)] });"]


@st.composite
def most_text(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return " ".join(draw(st.lists(st.sampled_from(MOST_TOKENS), max_size=50)))
    return draw(mutated([s.encode() for s in MOST_SEEDS])).decode("utf-8", errors="replace")


@FUZZ
@given(text=st.one_of(most_text(), st.binary(max_size=100)))
def test_the_most_parser(text: str | bytes) -> None:
    typed_or_value(lambda: parse_signature(text))


# ------------------------------------------------------------------------------- snapshot directories

SNAPSHOT_FILES = ["metadata.json", "wasm_module.bin", "wasm_memory.bin", "stable_memory.bin"]


@st.composite
def metadata_edit(draw: st.DrawFn) -> Any:
    """A JSON value to put under one metadata key (or a key to drop)."""
    return draw(st.recursive(
        st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=8))


def read_snapshot(path: Path) -> None:
    snap = open_snapshot_dir(path)
    snap.read_module()
    for _ in snap.read_chunks():
        pass
    for p, size in ((snap.heap_path, snap.metadata.wasm_memory_size),
                    (snap.stable_path, snap.metadata.stable_memory_size)):
        for _ in memory_pages(p, size):
            pass


@FUZZ
@given(fixture=st.sampled_from(["plain", "gzip_chunks"]), key=st.sampled_from([
    "source", "taken_at_timestamp", "wasm_module_size", "globals", "wasm_memory_size", "stable_memory_size",
    "wasm_chunk_store", "canister_version", "certified_data", "global_timer", "on_low_wasm_memory_hook_status",
    "unknown"]), value=metadata_edit(), drop=st.booleans(), raw=st.one_of(st.none(), mutated([b'{"a": 1}'])),
    target=st.sampled_from(SNAPSHOT_FILES), cut=st.one_of(st.none(), st.integers(0, 200_000)))
def test_the_snapshot_directory_reader(fixture: str, key: str, value: Any, drop: bool, raw: bytes | None,
                                       target: str, cut: int | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "snap"
        shutil.copytree(SNAPSHOT_DIRS / fixture, d)
        meta = json.loads((d / "metadata.json").read_text())
        if drop:
            meta.pop(key, None)
        else:
            meta[key] = value
        text = raw if raw is not None else json.dumps(meta, allow_nan=True).encode()
        (d / "metadata.json").write_bytes(text)
        victim = d / target
        if cut is not None and victim.exists():
            data = victim.read_bytes()
            victim.write_bytes(data[:cut] if cut < len(data) else data + bytes(cut - len(data)))
        typed_or_value(lambda: read_snapshot(d))
