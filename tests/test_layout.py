"""The layout rules of ARCHITECTURE.md, checked on the source (``ast``, nothing imported).

* no source file passes 1,000 lines;
* no module imports another in a circle (module-level and function-level imports alike, and the
  package ``__init__`` an import runs);
* private names (``_x``) are not imported from another module;
* the layers: ``persist`` never imports ``migrate`` or ``cli``; the store never imports the host,
  execution, Candid, the API or the session; the host never imports the store, execution, Candid,
  the API or the session; Candid imports nothing of graphcopy but ``persist.errors`` and
  ``persist.principal``; the snapshot directory format (``persist.snapshot_dir``) imports neither
  the store nor anything that runs canisters; identities (``persist.identity``) import no store and
  nothing that runs canisters.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("persist", "migrate", "cli", "migrations", "toolchain", "bench", "examples")
MAX_LINES = 1000


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


SOURCES = _sources()


def _is_module(name: str) -> bool:
    return name in SOURCES


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, [a.name for a in node.names], node.lineno))
    return out


def _targets(importer: str, module: str, names: list[str]) -> set[str]:
    """The project modules an import runs: the module, its packages, and submodules taken by name.
    The importer's own packages are being imported already, so they do not count."""
    found: set[str] = set()
    parts = module.split(".")
    own = {importer.rsplit(".", i)[0] for i in range(1, importer.count(".") + 1)}
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if _is_module(prefix) and prefix not in own:
            found.add(prefix)
    for n in names:
        if _is_module(f"{module}.{n}"):
            found.add(f"{module}.{n}")
    return found


GRAPH: dict[str, set[str]] = {}
PRIVATE: list[str] = []
TESTS = {f"tests.{p.stem}": p for p in sorted((ROOT / "tests").glob("*.py"))}
for _mod, _path in {**SOURCES, **TESTS}.items():
    edges: set[str] = set()
    for imported, names, line in _imports(_mod, _path):
        edges |= _targets(_mod, imported, names)
        if _is_module(imported) and imported != _mod:
            PRIVATE.extend(f"{_path.relative_to(ROOT)}:{line} imports {n} from {imported}"
                           for n in names if n.startswith("_") and not n.startswith("__"))
    edges.discard(_mod)
    if _mod in SOURCES:
        GRAPH[_mod] = edges


def test_no_source_file_passes_1000_lines() -> None:
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in [*SOURCES.values(), *(ROOT / "tests").rglob("*.py")]
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert long == []


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components; any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []


def test_private_names_are_not_imported_across_modules() -> None:
    assert PRIVATE == []


def _reaches(prefixes: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for mod, edges in GRAPH.items():
        if not mod.startswith(prefixes):
            continue
        for e in sorted(edges):
            if any(e == f or e.startswith(f + ".") for f in forbidden):
                bad.append(f"{mod} imports {e}")
    return bad


@pytest.mark.parametrize(("layer", "forbidden"), [
    (("persist",), ("migrate", "cli")),
    (("persist.store",), ("persist.host", "persist.execution", "persist.candid", "persist.api", "persist.session")),
    (("persist.host",), ("persist.store", "persist.execution", "persist.candid", "persist.api", "persist.session")),
    (("persist.candid",), ("persist.store", "persist.host", "persist.execution", "persist.api", "persist.session",
                           "migrate", "cli")),
    # Identities belong to a user, not to a store: no SQL, nothing that runs canisters.
    (("persist.identity",), ("persist.store", "persist.host", "persist.execution", "persist.api", "persist.session",
                             "persist.candid", "migrate", "cli")),
    # The snapshot directory format needs the module parser, nothing that runs canisters or SQL.
    (("persist.snapshot_dir",), ("persist.store", "persist.execution", "persist.api", "persist.session",
                                 "persist.candid", "persist.host.live", "persist.host.runtime")),
])
def test_layers(layer: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert _reaches(layer, forbidden) == []


def test_candid_imports_only_errors_and_principal() -> None:
    outside = {e for mod, edges in GRAPH.items() if mod.startswith("persist.candid")
               for e in edges if not e.startswith("persist.candid")}
    assert outside <= {"persist", "persist.errors", "persist.principal"}


def test_the_rules_see_the_code() -> None:
    # The checks above would pass vacuously if the scan found nothing.
    assert {"persist.host.live", "persist.store.db", "persist.candid.decode", "cli.main"} <= set(SOURCES)
    assert "persist.host.memory" in GRAPH["persist.host.live"]
    assert "persist.store.db" in GRAPH["persist.execution.messages"]
