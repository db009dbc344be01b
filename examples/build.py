"""Build the example canisters with the pinned Motoko compiler.

    python examples/build.py            # (re)write examples/<dir>/<name>.wasm, .did and .most
    python examples/build.py --check    # verify the committed files equal a fresh build (exit 1 if not)
    python examples/build.py --no-cache # do not reuse .cache/moc (by default a cached result is
                                        # used: it is keyed by the sources, flags and compiler)

Every ``examples/<dir>/*.mo`` file is an actor; the artifacts are written next to it. moc's output
is deterministic (one node process per compile), so ``--check`` compares bytes.

An example directory with a ``mops.toml`` is a mops project with enhanced migration chains: an
actor that ``[canisters.<name>]`` names as ``main`` and gives ``[canisters.<name>.migrations]`` is
compiled with its chain, as mops compiles it (moc ``--enhanced-migration``): every ``*.mo`` of
``chain`` in name order, then the one of ``next`` if any (it must sort after the chain).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
REPO_ROOT = EXAMPLES_DIR.parent
if str(REPO_ROOT) not in sys.path:  # `python examples/build.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from toolchain.moc import CompiledCanister, MocError, MocUnavailable, compile_motoko  # noqa: E402

ARTIFACT_SUFFIXES = (".wasm", ".did", ".most")


@dataclass(frozen=True)
class Example:
    source: Path

    @property
    def name(self) -> str:
        return self.source.stem

    def artifact(self, suffix: str) -> Path:
        return self.source.with_suffix(suffix)

    def relative(self) -> str:
        return self.source.relative_to(REPO_ROOT).as_posix()

    def migrations(self) -> Path | list[Path] | None:
        """The migration chain mops would compile this actor with (see the module docstring)."""
        config = self.source.parent / "mops.toml"
        if not config.is_file():
            return None
        try:
            canisters = tomllib.loads(config.read_text(encoding="utf-8")).get("canisters", {})
        except tomllib.TOMLDecodeError as e:
            raise MocError(f"{config}: {e}") from e
        for canister in canisters.values():
            chain = canister.get("migrations") if canister.get("main") == self.source.name else None
            if not chain:
                continue
            chain_dir = self.source.parent / chain["chain"]
            if "next" not in chain:
                return chain_dir
            files = sorted(chain_dir.glob("*.mo"))
            nxt = sorted((self.source.parent / chain["next"]).glob("*.mo"))
            if len(nxt) > 1 or (files and nxt and nxt[0].name <= files[-1].name):
                raise MocError(f"{config}: the next migration must be one file that sorts after the chain")
            return files + nxt
        return None


def find_examples(root: Path = EXAMPLES_DIR) -> list[Example]:
    """Every ``<root>/<dir>/*.mo`` (one level down: each directory holds one example's versions)."""
    return [Example(p) for p in sorted(root.glob("*/*.mo"))]


def _compile_all(examples: Sequence[Example], use_cache: bool) -> list[CompiledCanister]:
    # One node process per compile (determinism); run them side by side.
    with ThreadPoolExecutor(max_workers=min(4, max(1, len(examples)))) as pool:
        return list(pool.map(lambda e: compile_motoko(e.source, migrations=e.migrations(), use_cache=use_cache),
                             examples))


def build_examples(examples: Sequence[Example] | None = None, *, use_cache: bool = True) -> list[Path]:
    """Compile the examples and write their artifacts; returns the files that changed."""
    examples = find_examples() if examples is None else examples
    changed: list[Path] = []
    for example, compiled in zip(examples, _compile_all(examples, use_cache), strict=True):
        fresh = _artifacts(compiled)
        for suffix, data in fresh.items():
            path = example.artifact(suffix)
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
                changed.append(path)
    return changed


def check_examples(examples: Sequence[Example] | None = None, *, use_cache: bool = True) -> list[str]:
    """Problems found comparing the committed artifacts with a fresh build (empty: up to date)."""
    examples = find_examples() if examples is None else examples
    problems: list[str] = []
    for example, compiled in zip(examples, _compile_all(examples, use_cache), strict=True):
        for suffix, data in _artifacts(compiled).items():
            path = example.artifact(suffix)
            rel = path.relative_to(REPO_ROOT).as_posix()
            if not path.exists():
                problems.append(f"{rel} is missing: run `python examples/build.py`")
            elif path.read_bytes() != data:
                problems.append(
                    f"{rel} differs from a fresh build of {example.relative()}: "
                    "run `python examples/build.py`"
                )
    return problems


def _artifacts(c: CompiledCanister) -> dict[str, bytes]:
    return {".wasm": c.wasm, ".did": c.candid.encode("utf-8"), ".most": c.most.encode("utf-8")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify, do not write; exit 1 when stale")
    parser.add_argument("--no-cache", action="store_true", help="always run the compiler")
    args = parser.parse_args(argv)
    examples = find_examples()
    try:
        if args.check:
            problems = check_examples(examples, use_cache=not args.no_cache)
            for p in problems:
                print(p, file=sys.stderr)
            if not problems:
                print(f"{len(examples)} examples up to date")
            return 1 if problems else 0
        changed = build_examples(examples, use_cache=not args.no_cache)
    except (MocError, MocUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"wrote {path.relative_to(REPO_ROOT).as_posix()}")
    print(f"{len(examples)} examples built, {len(changed)} files changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
