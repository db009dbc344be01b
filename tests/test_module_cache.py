"""The disk cache of compiled modules: used only when it is this user's and intact, with real wasmtime.

Every damaged or untrustworthy entry must be ignored (the module is compiled again and the entry
rewritten); a good entry must be used without compiling. "Used" is shown by planting, under a
module's key, the compiled code of *another* module: only a cache hit returns its exports.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from persist.host.module_cache import MAGIC, ModuleCache, cache_root, clear_module_cache, module_cache_info
from persist.host.runtime import ENGINE_SETTINGS, Runtime, engine_identity

ROOT = Path(__file__).resolve().parent.parent
COUNTER = (ROOT / "examples" / "counter" / "counter.wasm").read_bytes()
# Any valid module will do as "other code": its export names tell it apart from the real one.
OTHER_WAT = '(module (func (export "planted") (result i32) i32.const 7))'


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.cwasm"))


def _runtime(directory: Path, **kw: int) -> Runtime:
    return Runtime(cache=ModuleCache(directory, **kw))


def _exports(module: wasmtime.Module) -> set[str]:
    return {e.name for e in module.exports}


def _entry_bytes(payload: bytes) -> bytes:
    import hashlib

    return MAGIC + hashlib.sha256(payload).digest() + payload


def _plant(path: Path, payload: bytes) -> None:
    path.write_bytes(_entry_bytes(payload))
    os.chmod(path, 0o600)


def _other_payload(settings: dict[str, bool] | None = None) -> bytes:
    cfg = wasmtime.Config()
    for name, value in (settings or ENGINE_SETTINGS).items():
        setattr(cfg, name, value)
    return bytes(wasmtime.Module(wasmtime.Engine(cfg), OTHER_WAT).serialize())


def test_second_runtime_loads_from_the_cache_and_directories_are_private(tmp_path: Path) -> None:
    root = tmp_path / "gc"
    rt = _runtime(root / "modules")
    info, module = rt.load_module(COUNTER)
    rt.helper_module(True)
    files = _entries(root / "modules")
    assert len(files) == 2  # the canister and the stable-memory helper
    for d in (root, root / "modules"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
        assert f.read_bytes().startswith(MAGIC)
    # A hit: plant other code under the counter's key; a fresh runtime must return it as it is.
    key = rt.cache.key(engine_identity(), _instrumented(COUNTER))
    target = root / "modules" / f"{key}.cwasm"
    assert target in files
    _plant(target, _other_payload())
    _, got = _runtime(root / "modules").load_module(COUNTER)
    assert _exports(got) == {"planted"}
    assert "canister_query get" in _exports(module) and info.hash


def _instrumented(wasm: bytes) -> bytes:
    from persist.host.instrument import instrument
    from persist.host.module import parse_module

    return instrument(wasm, parse_module(wasm))


def _key_path(directory: Path) -> Path:
    return directory / f"{ModuleCache.key(engine_identity(), _instrumented(COUNTER))}.cwasm"


def _assert_rebuilt(directory: Path) -> None:
    """A fresh runtime compiles the real counter (not what was planted) and rewrites a good entry."""
    _, module = _runtime(directory).load_module(COUNTER)
    assert "canister_query get" in _exports(module) and "planted" not in _exports(module)
    entry = ModuleCache(directory).read(_key_path(directory).name.removesuffix(".cwasm"))
    assert entry is not None
    assert "canister_query get" in _exports(wasmtime.Module.deserialize(Runtime(ModuleCache(None)).engine, entry))


def _seed(tmp_path: Path) -> Path:
    directory = tmp_path / "modules"
    _runtime(directory).load_module(COUNTER)
    assert _key_path(directory).is_file()
    return directory


def test_corrupt_entry_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    directory = _seed(tmp_path)
    path = _key_path(directory)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the payload: the digest no longer matches
    path.write_bytes(bytes(data))
    assert ModuleCache(directory).read(path.stem) is None
    _assert_rebuilt(directory)


def test_truncated_entry_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    directory = _seed(tmp_path)
    path = _key_path(directory)
    path.write_bytes(path.read_bytes()[: len(MAGIC) + 40])
    assert ModuleCache(directory).read(path.stem) is None
    _assert_rebuilt(directory)
    path.write_bytes(b"")  # empty too
    _assert_rebuilt(directory)


def test_foreign_format_and_foreign_engine_entries_are_ignored(tmp_path: Path) -> None:
    directory = _seed(tmp_path)
    path = _key_path(directory)
    # Another cache format (the magic of a future graphcopy), though intact.
    path.write_bytes(path.read_bytes().replace(MAGIC, b"graphcopy-module-cache 9\n", 1))
    _assert_rebuilt(directory)
    # Intact, this format, but compiled by an engine with other settings (as another graphcopy
    # or wasmtime would): wasmtime refuses it, and it is rebuilt.
    _plant(path, _other_payload({**ENGINE_SETTINGS, "consume_fuel": False}))
    assert ModuleCache(directory).read(path.stem) is not None  # the digest is fine...
    assert ModuleCache(directory).load(Runtime(ModuleCache(None)).engine, path.stem) is None  # ...wasmtime is not
    _assert_rebuilt(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_entry_of_another_user_is_ignored(tmp_path: Path) -> None:
    directory = _seed(tmp_path)
    path = _key_path(directory)
    _plant(path, _other_payload())
    os.chown(path, 12345, 12345)
    assert ModuleCache(directory).read(path.stem) is None
    _assert_rebuilt(directory)
    assert os.stat(path).st_uid == os.geteuid()  # the rewritten entry is ours


def test_writable_by_others_or_symlinked_entries_are_ignored(tmp_path: Path) -> None:
    directory = _seed(tmp_path)
    path = _key_path(directory)
    _plant(path, _other_payload())
    os.chmod(path, 0o622)
    assert ModuleCache(directory).read(path.stem) is None
    _assert_rebuilt(directory)
    elsewhere = tmp_path / "elsewhere.cwasm"
    _plant(elsewhere, _other_payload())
    path.unlink()
    path.symlink_to(elsewhere)
    assert ModuleCache(directory).read(path.stem) is None
    _assert_rebuilt(directory)
    assert not path.is_symlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_directory_of_another_user_is_not_used(tmp_path: Path) -> None:
    directory = _seed(tmp_path)
    _plant(_key_path(directory), _other_payload())
    os.chown(directory, 12345, 12345)
    cache = ModuleCache(directory)
    _, module = Runtime(cache=cache).load_module(COUNTER)
    assert "planted" not in _exports(module)
    assert cache.info().enabled is False and "owned by uid 12345" in (cache.info().reason or "")


def test_loose_directory_of_ours_is_made_private(tmp_path: Path) -> None:
    directory = tmp_path / "modules"
    directory.mkdir(mode=0o777)
    os.chmod(directory, 0o777)
    _runtime(directory).load_module(COUNTER)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700 and _key_path(directory).is_file()


def test_size_bound_evicts_the_least_recently_used(tmp_path: Path) -> None:
    directory = tmp_path / "modules"
    rt = _runtime(directory)
    rt.load_module(COUNTER)
    first = _key_path(directory)
    size = first.stat().st_size
    os.utime(first, (1, 1))  # long ago
    # Room for about one more entry of the counter's size: a second module pushes the first out.
    cache = ModuleCache(directory, max_bytes=size + size // 2)
    Runtime(cache=cache).load_module((ROOT / "examples" / "counter" / "counter_v2.wasm").read_bytes())
    left = _entries(directory)
    assert first not in left and len(left) >= 1
    assert sum(p.stat().st_size for p in left) <= size + size // 2
    # An entry larger than the whole bound is not written at all.
    tiny = tmp_path / "tiny"
    Runtime(cache=ModuleCache(tiny, max_bytes=1000)).load_module(COUNTER)
    assert _entries(tiny) == []


def test_turned_off_and_where_it_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_root({"GRAPHCOPY_CACHE_DIR": "", "HOME": "/home/u"}) is None
    assert cache_root({"GRAPHCOPY_CACHE_DIR": "/x/y", "XDG_CACHE_HOME": "/c"}) == Path("/x/y")
    assert cache_root({"XDG_CACHE_HOME": "/c", "HOME": "/home/u"}) == Path("/c/graphcopy")
    assert cache_root({"XDG_CACHE_HOME": "relative", "HOME": "/home/u"}) == Path("/home/u/.cache/graphcopy")
    assert cache_root({}) is None
    off = ModuleCache.from_env({"GRAPHCOPY_CACHE_DIR": ""})
    assert off.directory is None and off.info().enabled is False and "turned off" in (off.info().reason or "")
    Runtime(cache=off).load_module(COUNTER)  # still runs, writes nothing
    capped = ModuleCache.from_env({"GRAPHCOPY_CACHE_DIR": str(tmp_path), "GRAPHCOPY_CACHE_MAX_MB": "2"})
    assert capped.directory == tmp_path / "modules" and capped.max_bytes == 2 * 1024 * 1024
    monkeypatch.setenv("GRAPHCOPY_CACHE_DIR", str(tmp_path / "env"))
    Runtime().load_module(COUNTER)
    info = module_cache_info()
    assert info.enabled and info.entries == 1 and info.directory == str(tmp_path / "env" / "modules")
    assert clear_module_cache() == 1 and module_cache_info().entries == 0


def test_cli_cache_info_and_clear(tmp_path: Path) -> None:
    env = {**os.environ, "GRAPHCOPY_CACHE_DIR": str(tmp_path / "c")}
    db = f"sqlite:///{tmp_path / 'g.db'}"

    def gc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", "--db", db, *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=False)

    assert gc("install", "counter", str(ROOT / "examples" / "counter" / "counter.wasm")).returncode == 0
    res = gc("call", "counter", "get")
    assert res.returncode == 0 and res.stdout.strip() == "(0 : nat)"
    doc = json.loads(gc("cache", "info", "--json").stdout)
    assert doc["enabled"] is True and doc["entries"] == 2 and doc["directory"] == str(tmp_path / "c" / "modules")
    res = gc("cache", "clear")
    assert res.returncode == 0 and "removed 2 compiled module(s)" in res.stdout
    assert json.loads(gc("cache", "info", "--json").stdout)["entries"] == 0
    res = gc("call", "counter", "get")  # compiles again, and works
    assert res.returncode == 0 and res.stdout.strip() == "(0 : nat)"
    off = subprocess.run([sys.executable, "-m", "cli.main", "cache", "info"], env={**env, "GRAPHCOPY_CACHE_DIR": ""},
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert off.returncode == 0 and "module cache off" in off.stdout
