"""Canister families: the children a canister created (actor classes) and whether they run a
class module the parent embeds.

Motoko embeds each actor class's module in the module of the actor that imports it, and
``await Node(...)`` installs those exact bytes on the new canister; so a child runs "the class
module of its parent" when its module's bytes are found inside the parent's module. Upgrading the
parent does not upgrade its children: :func:`children_report` says, for each child, whether the old
and the new parent module embed the module it runs, so that the children can be upgraded too (from
the parent, or by a pipeline that selects them with ``children_of``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from persist.api import list_canisters
from persist.session import Store
from persist.store import db, schema

__all__ = ["ChildReport", "children_report", "module_bytes"]


@dataclass
class ChildReport:
    """One child of an upgraded canister."""

    name: str
    principal: str
    module_hash: str | None
    in_old_parent: bool  # the parent's previous module embeds the module the child runs
    in_new_parent: bool  # the parent's new module embeds it too

    def describe(self) -> str:
        """One line for people."""
        module = f"module {self.module_hash[:16]}…" if self.module_hash else "no module"
        if self.module_hash is None:
            verdict = "empty"
        elif self.in_new_parent:
            verdict = "the class module the new parent embeds too: nothing to do"
        elif self.in_old_parent:
            verdict = ("the class module of the old parent; the new one embeds another version: upgrade this child "
                       "too (from the parent, or a pipeline with children_of)")
        else:
            verdict = "not a class module of the parent"
        return f"child {self.name} ({self.principal}): {module}, {verdict}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def module_bytes(store: Store, module_hash: str | None) -> bytes | None:
    """A stored module's bytes."""
    if module_hash is None:
        return None
    with db.read_transaction(store.engine) as conn:
        wasm = conn.execute(sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == module_hash)).scalar()
    return bytes(wasm) if wasm is not None else None


def children_report(store: Store, name: str, old_parent: bytes | None, new_parent: bytes | None) -> list[ChildReport]:
    """Every canister ``name`` created, and whether ``old_parent`` / ``new_parent`` (module bytes)
    embed the module it runs."""
    out = []
    for child in list_canisters(store, parent=name):
        wasm = module_bytes(store, child.module_hash)
        out.append(ChildReport(
            name=child.name, principal=child.principal, module_hash=child.module_hash,
            in_old_parent=bool(wasm and old_parent and wasm in old_parent),
            in_new_parent=bool(wasm and new_parent and wasm in new_parent)))
    return out
