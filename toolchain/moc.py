"""The pinned Motoko compiler, driven from Python.

moc is the npm package ``motoko`` (pinned in ``package.json``, installed by ``npm ci`` into
``node_modules/``): the Motoko compiler compiled to JavaScript. Each request runs ONE node process
(``toolchain/moc_driver.js``) that reads a JSON request on stdin and writes JSON on stdout; the Wasm
travels as base64. One process per compile is also what makes builds reproducible: moc keeps
internal state between compilations in the same process, and only the first compile in a fresh
process is byte-identical from run to run.

Compiled results are cached on disk under ``<repo>/.cache/moc/<key>/`` (in a checkout; an installed
graphcopy uses ``$XDG_CACHE_HOME/graphcopy/moc``) where ``key`` is the SHA-256 of (the source files'
names and texts, the compiler's identity, mode and flags), so repeated runs do not pay the ~2 s
compile again.

Where the compiler is found: ``GRAPHCOPY_MOTOKO_DIR`` if set (any version: the user chose it),
else ``node_modules/motoko`` in the working directory or one of its parents (a project that ran
``npm install motoko@4.10.0``), else the checkout's own ``node_modules`` (``npm ci``). A compiler of
another version than the pinned one is refused with the command that installs the right one.

Environment overrides: ``GRAPHCOPY_NODE`` (the node executable), ``GRAPHCOPY_MOTOKO_DIR`` (the
``motoko`` npm package directory), ``GRAPHCOPY_MOC_CACHE`` (the cache directory).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CompiledCanister",
    "Diagnostic",
    "MocError",
    "MocUnavailable",
    "compile_motoko",
    "custom_sections",
    "in_ci",
    "moc_available",
    "moc_unavailable_reason",
    "moc_version",
    "require_moc",
    "stable_compatibility",
    "stable_compatible",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVER = Path(__file__).resolve().with_name("moc_driver.js")
#: The npm package ``motoko`` graphcopy is tested with (``package.json`` pins the same).
PINNED_MOTOKO = "4.10.0"
DRIVER_TIMEOUT_S = 600.0
_CACHE_FORMAT = 1  # bump when the layout of a cache entry changes

_SEVERITIES = {1: "error", 2: "warning", 3: "info", 4: "hint"}


class MocUnavailable(Exception):
    """node or the pinned ``motoko`` npm package is missing: run ``npm ci`` in the repository root."""


class MocError(Exception):
    """moc reported errors (``diagnostics`` holds them), or the driver itself failed."""

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.diagnostics: list[Diagnostic] = list(diagnostics)


@dataclass(frozen=True)
class Diagnostic:
    """One compiler message. ``line``/``column`` are 1-based, as moc prints them (0 when unknown)."""

    severity: str  # "error" | "warning" | "info" | "hint"
    message: str
    source: str = ""
    code: str = ""
    category: str = ""
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = self.source or "moc"
        if self.line:
            where += f":{self.line}.{self.column}"
            if self.end_line:
                where += f"-{self.end_line}.{self.end_column}"
        kind = f"{self.category} {self.severity}".strip()
        code = f" [{self.code}]" if self.code else ""
        return f"{where}: {kind}{code}, {self.message}"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Diagnostic:
        rng = d.get("range") or {}
        start = rng.get("start") or {}
        end = rng.get("end") or {}
        # moc reports file-less diagnostics (e.g. from stableCompatible) at 0:0-0:0: no position.
        has_pos = bool(rng) and (
            bool(d.get("source"))
            or any((start.get("line"), end.get("line"), start.get("character"), end.get("character")))
        )
        return cls(
            severity=_SEVERITIES.get(int(d.get("severity") or 1), "error"),
            message=str(d.get("message", "")),
            source=str(d.get("source", "")),
            code=str(d.get("code", "")),
            category=str(d.get("category", "")),
            line=int(start.get("line", 0)) + 1 if has_pos else 0,
            column=int(start.get("character", 0)) + 1 if has_pos else 0,
            end_line=int(end.get("line", 0)) + 1 if has_pos else 0,
            end_column=int(end.get("character", 0)) + 1 if has_pos else 0,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "message": self.message,
            "source": self.source,
            "code": self.code,
            "category": self.category,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }


@dataclass(frozen=True)
class CompiledCanister:
    """What moc produced for one actor: the module, its Candid interface and stable signature."""

    name: str
    wasm: bytes
    candid: str  # the service's Candid (.did) text
    most: str  # the stable signature (.most text), as in the `motoko:stable-types` custom section
    moc_version: str
    flags: tuple[str, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()
    cache_key: str = ""
    from_cache: bool = field(default=False, compare=False)

    @property
    def did(self) -> str:
        return self.candid

    @property
    def stable_types(self) -> str:
        return self.most

    @property
    def wasm_sha256(self) -> str:
        return hashlib.sha256(self.wasm).hexdigest()

    def write(self, directory: str | Path, stem: str | None = None) -> dict[str, Path]:
        """Write ``<stem>.wasm``, ``<stem>.did`` and ``<stem>.most`` into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        stem = stem or self.name
        paths = {"wasm": d / f"{stem}.wasm", "did": d / f"{stem}.did", "most": d / f"{stem}.most"}
        paths["wasm"].write_bytes(self.wasm)
        paths["did"].write_text(self.candid, encoding="utf-8", newline="\n")
        paths["most"].write_text(self.most, encoding="utf-8", newline="\n")
        return paths


# ---------------------------------------------------------------------------------------------
# Locating node and the compiler


def _in_checkout() -> bool:
    return (REPO_ROOT / "package.json").is_file() and (REPO_ROOT / "toolchain" / "moc.py").is_file()


def _motoko_dir() -> Path:
    env = os.environ.get("GRAPHCOPY_MOTOKO_DIR")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        candidate = d / "node_modules" / "motoko"
        if (candidate / "package.json").is_file():
            return candidate
    return REPO_ROOT / "node_modules" / "motoko"


def _cache_dir() -> Path:
    env = os.environ.get("GRAPHCOPY_MOC_CACHE")
    if env:
        return Path(env)
    if _in_checkout():
        return REPO_ROOT / ".cache" / "moc"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "graphcopy" / "moc"


def _install_hint() -> str:
    if os.environ.get("GRAPHCOPY_MOTOKO_DIR"):
        return ("GRAPHCOPY_MOTOKO_DIR must name the directory of the npm package `motoko` "
                f"(`npm install motoko@{PINNED_MOTOKO}` makes node_modules/motoko)"
                + (f", or unset it and run `npm ci` in {REPO_ROOT}" if _in_checkout() else ""))
    if _in_checkout():
        return f"run `npm ci` in {REPO_ROOT}"
    return (f"run `npm install motoko@{PINNED_MOTOKO}` in your project (or set GRAPHCOPY_MOTOKO_DIR to a "
            "`motoko` npm package directory)")


def _node() -> str | None:
    env = os.environ.get("GRAPHCOPY_NODE")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    return shutil.which("node")


def moc_unavailable_reason() -> str | None:
    """Why moc cannot run here (``None`` when it can)."""
    if _node() is None:
        return ("node is not installed (or GRAPHCOPY_NODE is wrong): install Node.js >= 18, then "
                + _install_hint().removeprefix("run "))
    mdir = _motoko_dir()
    if not (mdir / "package.json").is_file() or not (mdir / "versions" / "latest" / "moc.min.js").is_file():
        return f"the pinned Motoko compiler (npm motoko {PINNED_MOTOKO}) is missing ({mdir}): {_install_hint()}"
    if not os.environ.get("GRAPHCOPY_MOTOKO_DIR"):
        try:
            found = json.loads((mdir / "package.json").read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError):
            found = None
        if found != PINNED_MOTOKO:
            return (f"{mdir} holds motoko {found}, not the pinned {PINNED_MOTOKO}: "
                    f"run `npm install motoko@{PINNED_MOTOKO}` (or set GRAPHCOPY_MOTOKO_DIR to use it anyway)")
    if not DRIVER.is_file():
        return f"the moc driver is missing ({DRIVER}): reinstall graphcopy"
    return None


def moc_available() -> bool:
    return moc_unavailable_reason() is None


def _require() -> str:
    reason = moc_unavailable_reason()
    if reason is not None:
        raise MocUnavailable(reason)
    node = _node()
    assert node is not None
    return node


def in_ci() -> bool:
    """True when the env var ``CI`` is set (to anything but an explicit false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_moc() -> None:
    """For tests: return if moc can run; otherwise skip the test, or FAIL it when ``CI`` is set.

    A skipped toolchain test in CI would hide a broken build, so there a missing compiler is an
    error. Use it from a fixture::

        @pytest.fixture(scope="session")
        def moc() -> None:
            require_moc()
    """
    reason = moc_unavailable_reason()
    if reason is None:
        return
    import pytest

    if in_ci():
        pytest.fail(f"moc unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"moc unavailable: {reason}")


_fingerprint_memo: dict[tuple[str, int, int], str] = {}


def _fingerprint() -> str:
    """Identity of the pinned compiler without starting node: npm version + hash of moc.min.js."""
    mdir = _motoko_dir()
    js = mdir / "versions" / "latest" / "moc.min.js"
    try:
        st = js.stat()
        memo_key = (str(js), st.st_mtime_ns, st.st_size)
        if memo_key in _fingerprint_memo:
            return _fingerprint_memo[memo_key]
        pkg_version = json.loads((mdir / "package.json").read_text(encoding="utf-8"))["version"]
        digest = hashlib.sha256(js.read_bytes()).hexdigest()
    except (OSError, KeyError, ValueError) as e:
        raise MocUnavailable(f"cannot read the pinned Motoko compiler in {mdir}: {e}; run `npm ci`") from e
    fp = f"motoko@{pkg_version} moc.min.js:sha256:{digest}"
    _fingerprint_memo[memo_key] = fp
    return fp


# ---------------------------------------------------------------------------------------------
# The driver


def _run_driver(request: Mapping[str, Any]) -> dict[str, Any]:
    node = _require()
    env = dict(os.environ)
    env["GRAPHCOPY_MOTOKO_DIR"] = str(_motoko_dir())
    try:
        proc = subprocess.run(
            [node, str(DRIVER)],
            input=json.dumps(request).encode("utf-8"),
            capture_output=True,
            timeout=DRIVER_TIMEOUT_S,
            env=env,
            check=False,
        )
    except FileNotFoundError as e:
        raise MocUnavailable(f"cannot start node: {e}; install Node.js, then run `npm ci`") from e
    except subprocess.TimeoutExpired as e:
        raise MocError(f"moc driver timed out after {DRIVER_TIMEOUT_S:.0f} s") from e
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    try:
        response = json.loads(proc.stdout.decode("utf-8"))
    except ValueError:
        raise MocError(
            f"moc driver exited with {proc.returncode} without a JSON answer: {stderr[-2000:]}"
        ) from None
    if not isinstance(response, dict) or not response.get("ok"):
        error = response.get("error") if isinstance(response, dict) else response
        raise MocError(f"moc driver failed: {error}")
    return response


_version_memo: dict[str, str] = {}


def moc_version() -> str:
    """The pinned compiler: ``"motoko <npm version> (moc <compiler version>)"``."""
    fp = _fingerprint()
    if fp in _version_memo:
        return _version_memo[fp]
    key = hashlib.sha256(f"version\0{fp}".encode()).hexdigest()
    path = _cache_dir() / f"version-{key}.json"
    try:
        version = str(json.loads(path.read_text(encoding="utf-8"))["version"])
    except (OSError, KeyError, ValueError):
        r = _run_driver({"op": "version"})
        version = f"motoko {r['package_version']}"
        if r.get("compiler_version"):
            version += f" (moc {r['compiler_version']})"
        _atomic_write(path, json.dumps({"version": version}).encode())
    _version_memo[fp] = version
    return version


# ---------------------------------------------------------------------------------------------
# Sources

# `import Name "path";`, `import { a; b } "path";` (and the old `import Name = "path";`)
_IMPORT_RE = re.compile(r'\bimport\s+(?:[A-Za-z_][A-Za-z0-9_]*|\{[^}]*\})\s*=?\s*"([^"]+)"')
_COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _local_imports(path: Path, text: str) -> Iterable[Path]:
    for target in _IMPORT_RE.findall(_COMMENT_RE.sub("", text)):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target):  # mo:, ic:, canister:, blob:file: ...
            continue
        base = (path.parent / target).resolve()
        for cand in ([base] if target.endswith(".mo") else []) + [
            base.with_name(base.name + ".mo"),
            base / "lib.mo",
        ]:
            if cand.is_file():
                yield cand
                break


def _gather_sources(main: Path, extra: Sequence[Path] = (), extra_dirs: Sequence[Path] = ()) -> tuple[
    str, dict[str, str], Path
]:
    """The main file, the ``extra`` files and, transitively, the local files they import, keyed by
    virtual path (relative to the common root of them all and of ``extra_dirs``), and that root."""
    main = main.resolve()
    todo = [main, *(p.resolve() for p in extra)]
    texts: dict[Path, str] = {}
    while todo:
        p = todo.pop()
        if p in texts:
            continue
        texts[p] = _read_text(p)
        todo.extend(_local_imports(p, texts[p]))
    dirs = [str(p.parent) for p in texts] + [str(d.resolve()) for d in extra_dirs]
    root = Path(os.path.commonpath(dirs))
    files = {p.relative_to(root).as_posix(): t for p, t in texts.items()}
    return main.relative_to(root).as_posix(), files, root


# The migration modules of a chain: `YYYYMMDD_HHMMSS_Name.mo` by convention (moc takes every `.mo`
# file of the directory, in name order).
MIGRATIONS_FLAG = "--enhanced-migration"
VIRTUAL_MIGRATIONS_DIR = "migrations"


def _split_migration_flag(flags: Sequence[str]) -> tuple[list[str], str | None]:
    """``flags`` without ``--enhanced-migration DIR`` / ``--enhanced-migration=DIR``, and DIR."""
    rest: list[str] = []
    found: str | None = None
    it = iter(flags)
    for f in it:
        if f == MIGRATIONS_FLAG:
            found = next(it, None)
            if found is None:
                raise MocError(f"{MIGRATIONS_FLAG} needs a directory")
        elif f.startswith(MIGRATIONS_FLAG + "="):
            found = f.split("=", 1)[1]
        else:
            rest.append(f)
    return rest, found


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise MocError(f"cannot read Motoko source {path}: {e}") from e


def _migration_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise MocError(f"the migration chain directory {directory} does not exist")
    return sorted(p for p in directory.iterdir() if p.suffix == ".mo" and p.is_file())


# ---------------------------------------------------------------------------------------------
# Cache


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cache_load(key: str) -> dict[str, Any] | None:
    d = _cache_dir() / key
    try:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        wasm = (d / "canister.wasm").read_bytes()
        if meta.get("format") != _CACHE_FORMAT or hashlib.sha256(wasm).hexdigest() != meta["wasm_sha256"]:
            return None
        meta["wasm"] = wasm
        meta["candid"] = (d / "canister.did").read_text(encoding="utf-8")
        meta["most"] = (d / "canister.most").read_text(encoding="utf-8")
        return meta
    except (OSError, KeyError, ValueError):
        return None


def _cache_store(key: str, meta: Mapping[str, Any], wasm: bytes, candid: str, most: str) -> None:
    root = _cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    except OSError:
        return  # a read-only checkout still compiles, it just does not cache
    try:
        (tmp / "canister.wasm").write_bytes(wasm)
        (tmp / "canister.did").write_text(candid, encoding="utf-8", newline="\n")
        (tmp / "canister.most").write_text(most, encoding="utf-8", newline="\n")
        (tmp / "meta.json").write_text(json.dumps(dict(meta), indent=1), encoding="utf-8")
        final = root / key
        if final.exists():
            if _cache_load(key) is not None:
                return  # a concurrent compile stored the same result first
            shutil.rmtree(final, ignore_errors=True)  # a corrupt or outdated entry
        os.replace(tmp, final)
    except OSError:
        pass  # a concurrent writer won the race; its entry is equivalent
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Public API


def compile_motoko(
    source: str | Path,
    *,
    name: str | None = None,
    flags: Sequence[str] = (),
    migrations: str | Path | Mapping[str, str] | Sequence[str | Path] | None = None,
    use_cache: bool = True,
) -> CompiledCanister:
    """Compile a Motoko actor to an IC Wasm module (memory64, enhanced orthogonal persistence).

    ``source`` is either Motoko source text (a ``str``) or the ``Path`` of a ``.mo`` file; for a
    file, local files it imports (``import M "lib/m"``) are compiled with it. ``name`` labels the
    result and, for source text, names the file moc sees (``<name>.mo``; it shows in trap messages
    such as ``assertion failed at main.mo:3.5``); it defaults to ``main`` for text and to the file's
    stem for a path. ``flags`` are extra moc flags (``Motoko.setExtraFlags``); the JavaScript moc
    accepts the diagnostics flags: ``-A M0199`` (allow), ``-W``, ``-E``, ``-Werror``,
    ``--hide-warnings``, ``--error-detail n``, ... (an unknown flag raises ``MocError``), and
    ``--enhanced-migration DIR``, which is the same as ``migrations=DIR``.

    ``migrations`` compiles an enhanced migration chain (moc's ``--enhanced-migration``): a
    directory (``str`` or ``Path``, relative to the current directory) whose ``*.mo`` files are the
    chain's modules, in name order, each ``module { public func migration(old : {...}) : {...} }``
    (their local imports come along); a list of module files (as mops stages its ``chain`` files
    plus the ``next`` one); or a mapping ``{file name: source text}``. Listed files and texts must
    be self-contained (no local imports): moc sees them in a directory ``migrations/`` next to the
    main file (a directory keeps its own path relative to the sources), so trap messages name
    ``migrations/<file>``.

    Raises ``MocError`` (with ``.diagnostics``) when moc reports errors, ``MocUnavailable`` when
    node or the pinned compiler is missing.
    """
    flag_list, flag_dir = _split_migration_flag([str(f) for f in flags])
    if flag_dir is not None:
        if migrations is not None:
            raise MocError(f"give the migration chain once: {MIGRATIONS_FLAG} in flags, or migrations=")
        migrations = flag_dir
    chain_dir: Path | None = None
    chain_texts: dict[str, str] = {}
    if isinstance(migrations, str | Path):
        chain_dir = Path(migrations).resolve()
        if not isinstance(source, Path):
            # Text sources have no directory: the chain's modules are taken as self-contained texts.
            chain_texts = {p.name: _read_text(p) for p in _migration_files(chain_dir)}
            chain_dir = None
    elif isinstance(migrations, Mapping):
        chain_texts = {str(k): str(v) for k, v in migrations.items()}
    elif migrations is not None:
        listed = [Path(m) for m in migrations]
        chain_texts = {p.name: _read_text(p) for p in listed}
        if len(chain_texts) != len(listed):
            raise MocError("two migration modules of the chain have the same file name")
    bad = [k for k in chain_texts if not k.endswith(".mo") or "/" in k or "\\" in k]
    if bad:
        raise MocError(f"migration module names must be plain `.mo` file names, not {', '.join(bad)}")
    if isinstance(source, Path):
        chain_files = _migration_files(chain_dir) if chain_dir is not None else []
        main, files, root = _gather_sources(source, chain_files, [chain_dir] if chain_dir is not None else [])
        name = name or source.stem
        main_dir = Path(main).parent.as_posix()
        if chain_dir is not None:
            if not chain_files:
                raise MocError(f"the migration chain directory {chain_dir} holds no .mo files")
            virtual_dir: str | None = chain_dir.relative_to(root).as_posix()
        elif chain_texts:
            virtual_dir = VIRTUAL_MIGRATIONS_DIR if main_dir in ("", ".") else f"{main_dir}/{VIRTUAL_MIGRATIONS_DIR}"
        else:
            virtual_dir = None
    else:
        name = name or "main"
        main, files = f"{name}.mo", {f"{name}.mo": source}
        virtual_dir = VIRTUAL_MIGRATIONS_DIR if chain_texts else None
    if chain_texts:
        assert virtual_dir is not None
        for file_name, text in chain_texts.items():
            files[f"{virtual_dir}/{file_name}"] = text
    if virtual_dir is not None:
        flag_list += [MIGRATIONS_FLAG, virtual_dir]
    _require()
    fp = _fingerprint()
    mode = "ic"
    key_material = json.dumps(
        {"moc": fp, "mode": mode, "flags": flag_list, "main": main, "files": sorted(files.items())},
        sort_keys=True,
        ensure_ascii=False,
    )
    key = hashlib.sha256(key_material.encode("utf-8")).hexdigest()

    if use_cache:
        hit = _cache_load(key)
        if hit is not None:
            return CompiledCanister(
                name=name,
                wasm=hit["wasm"],
                candid=hit["candid"],
                most=hit["most"],
                moc_version=str(hit["moc_version"]),
                flags=tuple(flag_list),
                warnings=tuple(Diagnostic(**w) for w in hit.get("warnings", [])),
                cache_key=key,
                from_cache=True,
            )

    r = _run_driver({"op": "compile", "mode": mode, "main": main, "files": files, "flags": flag_list})
    diags = [Diagnostic.from_json(d) for d in r.get("diagnostics") or []]
    errors = [d for d in diags if d.is_error]
    if errors or r.get("wasm") is None:
        shown = errors or diags
        lines = "\n".join(str(d) for d in shown) or "(no diagnostics)"
        raise MocError(f"moc: {len(errors)} error(s) compiling {main}:\n{lines}", shown)

    wasm = base64.b64decode(r["wasm"])
    version = f"motoko {r['package_version']}"
    if r.get("compiler_version"):
        version += f" (moc {r['compiler_version']})"
    warnings = tuple(d for d in diags if not d.is_error)
    candid = str(r.get("candid") or "")
    most = str(r.get("stable") or "")
    meta = {
        "format": _CACHE_FORMAT,
        "main": main,
        "files": sorted(files),
        "flags": flag_list,
        "moc": fp,
        "moc_version": version,
        "wasm_sha256": hashlib.sha256(wasm).hexdigest(),
        "warnings": [w.to_json() for w in warnings],
    }
    _cache_store(key, meta, wasm, candid, most)
    return CompiledCanister(
        name=name,
        wasm=wasm,
        candid=candid,
        most=most,
        moc_version=version,
        flags=tuple(flag_list),
        warnings=warnings,
        cache_key=key,
        from_cache=False,
    )


def stable_compatibility(old_most: str, new_most: str) -> list[Diagnostic]:
    """All of moc's diagnostics for upgrading stable signature ``old_most`` to ``new_most``."""
    _require()
    fp = _fingerprint()
    key_material = json.dumps(["stable-compatible", _CACHE_FORMAT, fp, old_most, new_most])
    key = hashlib.sha256(key_material.encode()).hexdigest()
    path = _cache_dir() / f"compat-{key}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [Diagnostic(**d) for d in raw]
    except (OSError, ValueError, TypeError):
        pass
    r = _run_driver({"op": "stable_compatible", "old": old_most, "new": new_most})
    diags = [Diagnostic.from_json(d) for d in r.get("diagnostics") or []]
    try:
        _atomic_write(path, json.dumps([d.to_json() for d in diags]).encode())
    except OSError:
        pass
    return diags


def stable_compatible(old_most: str, new_most: str) -> list[str]:
    """Error messages from ``Motoko.stableCompatible``: empty means the upgrade is compatible.

    Warnings (e.g. a dropped stable variable, where moc allows it) are not included; see
    ``stable_compatibility`` for every diagnostic.
    """
    return [d.message for d in stable_compatibility(old_most, new_most) if d.is_error]


def custom_sections(wasm: bytes) -> dict[str, bytes]:
    """The custom sections of a Wasm module by name (e.g. ``icp:private candid:service``)."""

    def leb(i: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            b = wasm[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result, i

    if wasm[:4] != b"\0asm":
        raise ValueError("not a Wasm module")
    out: dict[str, bytes] = {}
    i = 8
    while i < len(wasm):
        section_id = wasm[i]
        size, i = leb(i + 1)
        if section_id == 0:
            name_len, j = leb(i)
            out[wasm[j : j + name_len].decode("utf-8")] = wasm[j + name_len : i + size]
        i += size
    return out
