"""A pipeline's ``import`` and ``export`` steps: a fleet's downloaded IC snapshots in, migrated states out.

With ``snapshots = ["downloads/*"]`` (directories in the dfx / icp-cli layout, glob patterns relative
to the pipeline file) and the ``import`` step, every directory becomes a canister named after it
before any canister is claimed; the pipeline then migrates those canisters like any other. A rerun
of the same pipeline finds them imported already (by the import's recorded metadata hash) and
leaves them alone; a canister of that name that was not imported from that directory fails. With
``export_dir`` and the ``export`` step, every canister that passed its verify step is written to
``export_dir/<canister>``, ready for ``dfx canister snapshot upload --dir``.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from pathlib import Path

from persist.api.canisters import check_name
from persist.api.snapshot_transfer import ExportResult, export_snapshot, import_snapshot, imported_from
from persist.errors import CanisterNotFoundError, GraphcopyError
from persist.session import Store
from persist.snapshot_dir.reader import open_snapshot_dir

__all__ = ["export_migrated", "import_snapshot_dirs", "snapshot_dirs"]

EmitFn = Callable[[str, str, str], None]  # (canister, event, message)


def snapshot_dirs(base: Path, patterns: list[str]) -> list[Path]:
    """The directories the patterns (globs, relative to ``base``) match, in name order."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        for hit in glob.glob(str(base / pattern)):
            path = Path(hit)
            if path.is_dir():
                found[str(path.resolve())] = path.resolve()
    return sorted(found.values(), key=lambda p: (p.name, str(p)))


def import_snapshot_dirs(store: Store, directories: list[Path], emit: EmitFn) -> dict[str, str]:
    """Import each directory as the canister named after it (unless a previous run did); returns
    ``{canister: error}`` for those that could not be imported."""
    failed: dict[str, str] = {}
    for path in directories:
        name = path.name
        try:
            check_name(name)
            snap = open_snapshot_dir(path)
            try:
                detail = imported_from(store, name)
            except CanisterNotFoundError:
                detail = None
            else:
                if detail is None or detail.get("metadata_sha256") != snap.metadata_sha256:
                    raise GraphcopyError(f"canister {name!r} exists and was not imported from {path}")
                emit(name, "import", f"imported from {path} by an earlier run")
                continue
            res = import_snapshot(store, name, path)
            emit(name, "import", f"imported from {path}: heap {res.heap_bytes:,} bytes, stable {res.stable_bytes:,}")
        except GraphcopyError as exc:
            failed[name] = str(exc)
            emit(name, "failed", str(exc))
    return failed


def export_migrated(store: Store, export_dir: Path, name: str) -> ExportResult:
    """Write the canister's migrated state to ``export_dir/<name>`` (new or empty)."""
    return export_snapshot(store, name, export_dir / name)
