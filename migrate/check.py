"""``check``: is an upgrade from OLD to NEW safe for the data? Answered before anything is touched.

OLD and NEW are each a module (``.wasm``/``.wasm.gz``: its ``motoko:stable-types`` section), a
``.most`` stable signature file, or the name of an installed canister (the stable type its heap
registered, read from the persisted descriptor and named from its module's section, and the
migrations of its chain it has applied). The answer lists every incompatibility
(``migrate.compat``), not only the first, and for a migration chain what the upgrade will run
(``migrate.chain``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.compat import CompatReport, check_compatibility
from migrate.plan import canister_side
from migrate.stable_types import StableSignature, format_signature, parse_signature
from persist.errors import GraphcopyError
from persist.host.module import parse_module
from persist.session import Store


class NoSignatureError(GraphcopyError):
    """The input has no stable signature (not a Motoko module, or an unreadable file)."""

    exit_code = 2


@dataclass
class CheckResult:
    """The verdict of ``check`` with both signatures and where they came from."""

    old_source: str
    new_source: str
    old: StableSignature
    new: StableSignature
    report: CompatReport
    warnings: list[str] = field(default_factory=list)

    @property
    def compatible(self) -> bool:
        return self.report.compatible

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the report's own dict plus the inputs)."""
        return {"compatible": self.compatible, "old": {"source": self.old_source, "stable_types":
                                                       format_signature(self.old)},
                "new": {"source": self.new_source, "stable_types": format_signature(self.new)},
                "warnings": self.warnings, **self.report.to_dict()}

    def format_text(self) -> str:
        """For people: the inputs, then the report (every issue with path, types, rule and hint)."""
        head = [f"old: {self.old_source}", f"new: {self.new_source}"]
        head += [f"warning: {w}" for w in self.warnings]
        return "\n".join(head) + "\n" + self.report.format_text()


FILE_SUFFIXES = (".wasm", ".gz", ".most", ".mo", ".did")


def names_a_file(source: str) -> bool:
    """Whether ``source`` is meant as a file rather than a canister name: it exists as one, or it
    looks like a path (a ``/`` or a module or signature suffix; canister names have neither)."""
    return Path(source).is_file() or "/" in source or Path(source).suffix in FILE_SUFFIXES


def load_signature(source: str, store: Store | None) -> tuple[StableSignature, str, list[str]]:
    """The stable signature named by ``source`` (a file, or a canister of ``store``), a description
    of where it came from, and warnings. A path that does not exist is "no such file" (exit 2)."""
    sig, where, warnings, _ = _load(source, store)
    return sig, where, warnings


def _load(source: str, store: Store | None) -> tuple[StableSignature, str, list[str], list[str] | None]:
    """``load_signature`` and, for a canister, the chain migrations its heap records as applied."""
    path = Path(source)
    if names_a_file(source) and not path.is_file():
        raise NoSignatureError(f"no such file: {source}" if not path.exists() else f"{source} is not a file")
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NoSignatureError(f"cannot read {source}: {exc.strerror}") from exc
        if path.suffix == ".most":
            return parse_signature(data, source=source), f"{source} (stable signature file)", [], None
        info = parse_module(data)
        text = info.stable_types
        if text is None:
            raise NoSignatureError(f"{source} has no stable signature (no motoko:stable-types section): "
                                   "it is not a Motoko canister module")
        return (parse_signature(text, source=f"{source} (its motoko:stable-types section)"),
                f"{source} (module section)", [], None)
    if store is None:
        raise NoSignatureError(f"{source} is neither a file nor, without a store, a canister name")
    warnings: list[str] = []
    side = canister_side(store, source, warnings)
    if side.signature is None:
        raise NoSignatureError(f"canister {source!r} has no stable signature (not a Motoko canister)")
    return side.signature, f"canister {source} ({side.signature_source})", warnings, side.applied_migrations


def check(old: str, new: str, *, store: Store | None = None) -> CheckResult:
    """Compare the stable signatures of ``old`` and ``new`` (files or canister names). When OLD is
    an installed canister, the chain migrations its heap has applied decide what a migration chain
    in NEW will run."""
    old_sig, old_src, w1, applied = _load(old, store)
    new_sig, new_src, w2, _ = _load(new, store)
    report = check_compatibility(old_sig, new_sig, applied=applied)
    return CheckResult(old_src, new_src, old_sig, new_sig, report, w1 + w2)
