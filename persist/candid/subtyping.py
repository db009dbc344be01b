"""Candid subtyping (``t1 <: t2``) and the rules for ``opt``, ``null`` and ``reserved`` shared by the codec.

:func:`defaults_to_null` says which values may be omitted (a missing record field or trailing argument),
:func:`needs_some` when a present ``opt`` value is wrapped in :class:`persist.candid.values.Some`.
"""

from __future__ import annotations

from persist.candid.types import CType, Field, Func, Opt, Prim, Record, Ref, Service, Variant, Vec, resolve


def needs_some(inner: CType) -> bool:
    """Whether a present ``opt inner`` value is wrapped in :class:`Some` (see :mod:`persist.candid`)."""
    r = resolve(inner)
    return isinstance(r, Opt) or (isinstance(r, Prim) and r.name in ("null", "reserved"))


def defaults_to_null(t: CType) -> bool:
    """Types whose value may be omitted (a missing record field or trailing argument)."""
    r = resolve(t)
    return isinstance(r, Opt) or (isinstance(r, Prim) and r.name in ("null", "reserved"))


def is_subtype(t1: CType, t2: CType, gamma: set[tuple[CType, CType]] | None = None) -> bool:
    """Candid subtyping ``t1 <: t2`` (spec "Upgrading and subtyping"; candid ``types/subtype.rs``).

    Used where decoding needs a type-level answer: for func and service references.
    """
    if t1 == t2:
        return True
    if gamma is None:
        gamma = set()
    if isinstance(t1, Ref) or isinstance(t2, Ref):
        if (t1, t2) in gamma:
            return True
        gamma.add((t1, t2))
        ok = is_subtype(resolve(t1), resolve(t2), gamma)
        if not ok:
            gamma.discard((t1, t2))
        return ok
    if isinstance(t2, Prim) and t2.name == "reserved":
        return True
    if isinstance(t1, Prim) and t1.name == "empty":
        return True
    if isinstance(t1, Prim) and isinstance(t2, Prim):
        return t1.name == t2.name or (t1.name, t2.name) == ("nat", "int")
    if isinstance(t1, Service) and isinstance(t2, Prim):
        return t2.name == "principal"
    if isinstance(t2, Opt):
        return True  # null, opt and the "special opt rule": every type is a subtype of an opt
    if isinstance(t1, Vec) and isinstance(t2, Vec):
        return is_subtype(t1.inner, t2.inner, gamma)
    if isinstance(t1, Record) and isinstance(t2, Record):
        have = {f.id: f.type for f in t1.fields}
        for f in t2.fields:
            if f.id in have:
                if not is_subtype(have[f.id], f.type, gamma):
                    return False
            elif not defaults_to_null(f.type):
                return False
        return True
    if isinstance(t1, Variant) and isinstance(t2, Variant):
        accept = {f.id: f.type for f in t2.fields}
        return all(f.id in accept and is_subtype(f.type, accept[f.id], gamma) for f in t1.fields)
    if isinstance(t1, Service) and isinstance(t2, Service):
        have_m = dict(t1.methods)
        return all(name in have_m and is_subtype(have_m[name], ft, gamma) for name, ft in t2.methods)
    if isinstance(t1, Func) and isinstance(t2, Func):
        def tup(ts: tuple[CType, ...]) -> Record:
            return Record(tuple(Field(i, t) for i, t in enumerate(ts)))

        return (
            t1.modes == t2.modes
            and is_subtype(tup(t2.args), tup(t1.args), gamma)
            and is_subtype(tup(t1.rets), tup(t2.rets), gamma)
        )
    return False
