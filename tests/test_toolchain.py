"""The pinned Motoko compiler (toolchain/moc.py), the committed examples and the test canisters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from examples.build import check_examples, find_examples
from toolchain import moc
from toolchain.moc import MocError, MocUnavailable, compile_motoko, custom_sections, stable_compatible

REPO = Path(__file__).resolve().parent.parent
TEST_CANISTERS = sorted((REPO / "tests" / "canisters").glob("*.mo"))

COUNTER = """
import Prim "mo:⛔";
persistent actor {
  var n : Nat = 0;
  public func inc() : async Nat { n += 1; Prim.debugPrint("n = " # debug_show n); n };
  public query func get() : async Nat { n };
};
"""

MOST_NAT = "// Version: 1.0.0\nactor {\n  stable var n : Nat\n};\n"
MOST_TEXT = "// Version: 1.0.0\nactor {\n  stable var n : Text\n};\n"
MOST_NAT_PLUS = "// Version: 1.0.0\nactor {\n  stable var n : Nat;\n  stable var m : [Text]\n};\n"


@pytest.fixture(scope="session")
def need_moc() -> None:
    moc.require_moc()  # skip on a laptop without node/npm ci; FAIL when CI is set


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "moc-cache"
    monkeypatch.setenv("GRAPHCOPY_MOC_CACHE", str(cache))
    return cache


def test_version(need_moc: None) -> None:
    v = moc.moc_version()
    assert v.startswith("motoko 4.10.0"), v


def test_compile_caches_and_is_deterministic(need_moc: None, fresh_cache: Path) -> None:
    first = compile_motoko(COUNTER, name="counter")
    assert not first.from_cache
    assert first.wasm[:4] == b"\0asm"
    assert "inc: () -> (nat);" in first.candid and "get: () -> (nat) query;" in first.candid
    assert "stable var n : Nat" in first.most
    assert (fresh_cache / first.cache_key / "canister.wasm").read_bytes() == first.wasm

    sections = custom_sections(first.wasm)
    assert sections["icp:private candid:service"].decode() == first.candid
    assert sections["icp:private motoko:stable-types"].decode() == first.most
    assert "icp:private enhanced-orthogonal-persistence" in sections

    t0 = time.monotonic()
    second = compile_motoko(COUNTER, name="counter")
    assert time.monotonic() - t0 < 1.0
    assert second.from_cache
    assert second == first  # same bytes, texts, version, key

    # moc is deterministic across processes: a fresh compile gives the same bytes (examples --check).
    again = compile_motoko(COUNTER, name="counter", use_cache=False)
    assert not again.from_cache
    assert again.wasm == first.wasm


def test_compile_error_raises_moc_error(need_moc: None, fresh_cache: Path) -> None:
    src = 'persistent actor {\n  public func f() : async Nat { "not a number" };\n};\n'
    with pytest.raises(MocError) as info:
        compile_motoko(src, name="broken")
    err = info.value
    assert "broken.mo:2." in str(err)
    assert "does not have expected type" in str(err)
    assert [d.code for d in err.diagnostics] == ["M0050"]
    assert err.diagnostics[0].line == 2 and err.diagnostics[0].severity == "error"
    assert not any(fresh_cache.glob("*/canister.wasm"))  # failures are not cached


def test_warnings_do_not_fail(need_moc: None) -> None:
    c = compile_motoko("persistent actor { public func f() : async Nat { let x = 1; 2 } };", name="warn")
    assert [w.code for w in c.warnings] == ["M0194"]  # unused identifier
    cached = compile_motoko("persistent actor { public func f() : async Nat { let x = 1; 2 } };", name="warn")
    assert cached.from_cache and cached.warnings == c.warnings  # warnings are kept in the cache


def test_local_imports_are_compiled_and_keyed(need_moc: None, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "util.mo").write_text("module { public func twice(n : Nat) : Nat { 2 * n } }\n")
    main = src / "app.mo"
    main.write_text(
        'import Util "lib/util";\n'
        "persistent actor { public query func f(n : Nat) : async Nat { Util.twice(n) } };\n"
    )
    a = compile_motoko(main)
    assert a.name == "app" and "f: (n: nat) -> (nat) query;" in a.candid
    (src / "lib" / "util.mo").write_text("module { public func twice(n : Nat) : Nat { n + n } }\n")
    b = compile_motoko(main)
    assert b.cache_key != a.cache_key  # the imported file is part of the key


def test_stable_compatible(need_moc: None) -> None:
    problems = stable_compatible(MOST_NAT, MOST_TEXT)
    assert len(problems) == 1 and "`n`" in problems[0]
    assert stable_compatible(MOST_NAT, MOST_NAT_PLUS) == []  # adding a variable is fine
    assert stable_compatible(MOST_NAT_PLUS, MOST_NAT) != []  # dropping one needs a migration
    assert stable_compatible(MOST_NAT, MOST_TEXT) == problems  # cached answer is the same

    counter = (REPO / "examples" / "counter" / "counter.most").read_text()
    counter_v2 = (REPO / "examples" / "counter" / "counter_v2.most").read_text()
    assert stable_compatible(counter, counter_v2) == []
    assert stable_compatible(counter_v2, counter) != []


def test_examples_match_a_fresh_build(need_moc: None) -> None:
    names = {e.name for e in find_examples()}
    assert {"counter", "ledger"} <= names
    assert check_examples() == []


@pytest.mark.parametrize("path", TEST_CANISTERS, ids=[p.name for p in TEST_CANISTERS])
def test_test_canister_compiles(need_moc: None, path: Path) -> None:
    c = compile_motoko(path)
    assert c.wasm[:4] == b"\0asm" and c.candid.strip() and c.most.strip()


def test_test_canisters_exist() -> None:
    names = {p.stem for p in TEST_CANISTERS}
    assert {"selfcall", "caller", "callee", "timer", "stablemem", "info"} <= names


def test_require_moc_skips_locally_and_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHCOPY_MOTOKO_DIR", str(tmp_path / "no-such-dir"))
    assert moc.moc_unavailable_reason() is not None
    assert "npm ci" in (moc.moc_unavailable_reason() or "")
    with pytest.raises(MocUnavailable, match="npm ci"):
        compile_motoko(COUNTER)

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        moc.require_moc()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        moc.require_moc()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        moc.require_moc()


CHAIN_MAIN = "persistent actor {\n  var count : Nat;\n  public query func get() : async Nat { count };\n};\n"
CHAIN_INIT = "module { public func migration(_ : {}) : { var count : Nat } { { var count = 1 } } };\n"


def test_migration_chains_compile_from_a_directory_files_texts_or_the_flag(need_moc: None, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "start.mo").write_text("module { public let start : Nat = 1 };\n")
    init = tmp_path / "migrations" / "20250101_000000_Init.mo"
    # A directory's modules may import local files; they come along.
    init.write_text('import S "../lib/start";\n'
                    "module { public func migration(_ : {}) : { var count : Nat } { { var count = S.start } } };\n")
    main = tmp_path / "main.mo"
    main.write_text(CHAIN_MAIN)
    from_dir = compile_motoko(main, migrations=tmp_path / "migrations")
    assert from_dir.most.startswith("// Version: 4.0.0\n{\n  \"20250101_000000_Init\" : {} -> {var count : Nat}")
    monkeypatch.chdir(tmp_path)
    assert compile_motoko(main, flags=["--enhanced-migration", "migrations"]).wasm == from_dir.wasm
    assert compile_motoko(main, flags=["--enhanced-migration=migrations"]).wasm == from_dir.wasm
    # Files and texts are self-contained and land in `migrations/` next to the main file.
    init.write_text(CHAIN_INIT)
    listed = compile_motoko(main, migrations=[init])
    texts = compile_motoko(main, migrations={"20250101_000000_Init.mo": CHAIN_INIT})
    assert listed.wasm == texts.wasm and listed.most == from_dir.most
    assert compile_motoko(CHAIN_MAIN, migrations={"20250101_000000_Init.mo": CHAIN_INIT}).most == from_dir.most


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"migrations": "no-such-dir"}, "does not exist"),
    ({"migrations": {"a/b.mo": CHAIN_INIT}}, "plain `.mo` file names"),
    ({"migrations": {"init.txt": CHAIN_INIT}}, "plain `.mo` file names"),
    ({"flags": ["--enhanced-migration"]}, "needs a directory"),
    ({"flags": ["--enhanced-migration", "x"], "migrations": {"a.mo": CHAIN_INIT}}, "give the migration chain once"),
], ids=["missing dir", "path name", "not .mo", "flag without dir", "twice"])
def test_migration_chain_errors(tmp_path: Path, kwargs: dict[str, object], message: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    main = tmp_path / "main.mo"
    main.write_text(CHAIN_MAIN)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MocError, match=message):
        compile_motoko(main, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(MocError, match="holds no .mo files"):
        compile_motoko(main, migrations=tmp_path / "empty")


def test_the_chain_example_is_built_with_its_mops_chain(need_moc: None) -> None:
    by_name = {e.name: e for e in find_examples()}
    assert by_name["tasks"].migrations() == REPO / "examples" / "tasks" / "migrations"
    v2 = by_name["tasks_v2"].migrations()
    assert isinstance(v2, list) and [p.parent.name for p in v2] == ["migrations", "migrations", "next-migration"]
    most = (REPO / "examples" / "tasks" / "tasks_v2.most").read_text()
    assert most.startswith("// Version: 4.0.0") and '"20250301_000000_AddPriority"' in most
