"""Conversion between descriptors and stable signatures, and equivalence of descriptors.

``descriptor_to_signature`` reads a persistence descriptor as a :mod:`migrate.stable_types` signature,
``signature_to_descriptor`` re-implements what moc registers for a signature, and
``descriptor_mismatch`` compares two tables as the runtime does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from migrate.descriptor.decoder import decode_descriptor
from migrate.descriptor.format import (
    ANY,
    NAT32,
    NONE,
    NULL,
    PRIMITIVE_NAMES,
    AliasEntry,
    DescriptorTable,
    Entry,
    FuncEntry,
    OptEntry,
    RecordEntry,
    ServiceEntry,
    TupleEntry,
    TypeRef,
    VariantEntry,
    VecEntry,
    WeakEntry,
    entry_children,
    hashed_label,
)
from migrate.errors import DescriptorError, StableTypeError
from migrate.stable_types import ANY as ANY_TYPE
from migrate.stable_types import NONE as NONE_TYPE
from migrate.stable_types import UNIT as UNIT
from migrate.stable_types import (
    ActorType,
    AnyType,
    ArrayType,
    ConType,
    Field,
    FuncSort,
    FuncType,
    NoneType,
    OptType,
    Prim,
    RecordType,
    StableField,
    StableSignature,
    StableType,
    Tag,
    TupleType,
    TypeDef,
    VariantType,
    WeakType,
    label_hash,
    unfold,
)

__all__ = ["descriptor_mismatch", "descriptor_to_signature", "signature_to_descriptor"]


# --------------------------------------------------------------------------- to the signature model

#: How a descriptor primitive code reads back as a model type. Ambiguous codes read as the first
#: of their pair: -7 as ``Nat32`` (never ``Char``) and -1 as ``Null`` -- except as a variant
#: payload, where it reads as ``()`` (``#tag`` is ``#tag : ()``, by far the common case).
_MODEL_PRIMS: dict[int, StableType] = {code: Prim(name) for code, name in PRIMITIVE_NAMES.items()
                                       if name not in ("Any", "None")}
_MODEL_PRIMS[ANY] = ANY_TYPE
_MODEL_PRIMS[NONE] = NONE_TYPE
#: Above this many type nodes, an entry that is used more than once becomes a named ``TypeDef``
#: instead of being written out at every use (a DAG of tuples can otherwise expand exponentially).
_INLINE_LIMIT = 64
#: Types nested deeper than this are cut into ``TypeDef`` s, so converting (and printing) a deep
#: chain such as ``?????...Nat`` from a corrupt or odd descriptor cannot exhaust Python's stack.
_DEPTH_LIMIT = 32


def descriptor_to_signature(table: DescriptorTable) -> StableSignature:
    """The stable signature a persistence descriptor describes, in the :mod:`migrate.stable_types` model.

    Entry 0 is the actor's stable *memory record*; each of its fields is ``?T`` for a stable
    variable of type ``T`` (moc wraps every one in an option), and the ``?`` is removed here. What the
    descriptor does not carry comes back as follows:

    * labels (stable variables, record fields, variant tags) are hashes only: they are named
      ``_<hash>_`` (:func:`hashed_label`), so ``label_hash`` of the name is the hash; actor
      reference methods keep their real names;
    * whether a stable variable was declared ``var`` is erased: every field has ``mutable=False``;
    * type names and type parameters are gone: types are structural. Only entries that are
      recursive, large and shared, or nested very deep become ``TypeDef`` s, named ``T<entry index>``;
    * code -7 is ``Nat32`` or ``Char``, and code -1 is ``Null`` or ``()``. They read as ``Nat32``
      and ``Null``, except that -1 reads as ``()`` as a variant payload. A decoded ``Nat32`` or
      ``Null`` therefore means "either of the two". Compare with :func:`descriptor_mismatch`
      (after :func:`signature_to_descriptor`), which treats each pair as one type, as the RTS does;
    * a record field that is an alias entry reads as a ``var`` field of the alias's target, so
      ``f : [var T]`` (encoded exactly like ``var f : [T]``) reads as ``var f : [T]``.

    The signature has version ``1.0.0`` and no pre list. Raises :class:`DescriptorError` when the
    table is not a persistence descriptor (main type not entry 0, entry 0 not a record of options,
    an alias that marks neither a field nor a mutable array).
    """
    if table.main_types != (0,):
        raise DescriptorError(
            f"not a persistence descriptor: main types are {list(table.main_types)}, expected [0] (the actor record)")
    actor = table.entry(0)
    if not isinstance(actor, RecordEntry):
        raise DescriptorError("not a persistence descriptor: entry 0 (the actor's stable record) is not a record")
    fields: list[tuple[int, TypeRef]] = []
    for h, ref in actor.fields:
        inner = table.entries[ref] if ref >= 0 else None
        if not isinstance(inner, OptEntry):
            raise DescriptorError(
                f"not a persistence descriptor: stable variable {hashed_label(h)} has type "
                f"{table.describe(ref)}, but moc wraps every stable variable in an option")
        fields.append((h, inner.inner))
    named = _named_entries(table, [t for _, t in fields])
    conv = _Converter(table, named)
    post = tuple(StableField(hashed_label(h), conv.type(t)) for h, t in fields)
    return StableSignature(version="1.0.0", types=conv.typedefs(), post=post)


def _type_children(table: DescriptorTable, i: int) -> list[TypeRef]:
    """The references entry ``i`` depends on when read as a type (field aliases see through)."""
    e = table.entries[i]
    if isinstance(e, RecordEntry):
        out = []
        for _, t in e.fields:
            target = table.entries[t] if t >= 0 else None
            out.append(target.target if isinstance(target, AliasEntry) else t)
        return out
    if isinstance(e, AliasEntry):
        return [_mutable_array_element(table, i)]
    if isinstance(e, ServiceEntry | FuncEntry | TupleEntry | VariantEntry | OptEntry | VecEntry | WeakEntry):
        return list(entry_children(e))
    raise AssertionError(e)  # pragma: no cover - Entry is closed


def _mutable_array_element(table: DescriptorTable, i: int) -> TypeRef:
    """The element type of ``[var T]``, which moc writes as an alias of the ``[T]`` vec entry."""
    e = table.entries[i]
    assert isinstance(e, AliasEntry)
    target = table.entries[e.target] if e.target >= 0 else None
    if not isinstance(target, VecEntry):
        raise DescriptorError(
            f"corrupt stable type descriptor: entry {i} is an alias outside a record field, so it must mark "
            f"a mutable array, but it points at {table.describe(e.target)}")
    return target.element


def _named_entries(table: DescriptorTable, roots: Sequence[TypeRef]) -> set[int]:
    """Entries to turn into ``TypeDef`` s: targets of back edges (recursion), and big shared ones.

    A depth-first walk from the stable variables' types; an entry reached again while it is still
    on the walk's stack is recursive. Entry 0, the actor record, must not be reachable at all.
    """
    named: set[int] = set()
    state: dict[int, int] = {}  # 1 = on the stack, 2 = done
    order: list[int] = []  # post-order
    uses: dict[int, int] = {}
    for root in roots:
        if root < 0:
            continue
        uses[root] = uses.get(root, 0) + 1
        if root in state:
            continue
        stack: list[tuple[int, Iterator[TypeRef]]] = [(root, iter(_type_children(table, root)))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                state[node] = 2
                order.append(node)
                continue
            if child < 0:
                continue
            if child == 0:
                raise DescriptorError("corrupt stable type descriptor: a type refers back to the actor's stable record")
            uses[child] = uses.get(child, 0) + 1
            seen = state.get(child)
            if seen == 1:
                named.add(child)
            elif seen is None:
                state[child] = 1
                stack.append((child, iter(_type_children(table, child))))
    # Post-order: children are sized before their parents (back edges are named, so count 1).
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    for node in order:
        kids = [c for c in _type_children(table, node) if c >= 0 and c not in named]
        total = 1 + sum(size.get(c, 1) for c in kids) + sum(1 for c in _type_children(table, node) if c not in kids)
        deepest = 1 + max((depth.get(c, 1) for c in kids), default=0)
        if (total > _INLINE_LIMIT and uses.get(node, 0) > 1) or deepest > _DEPTH_LIMIT:
            named.add(node)
            total = deepest = 1
        size[node] = total
        depth[node] = deepest
    return named


class _Converter:
    """Builds model types from table entries, with ``ConType`` references for named entries."""

    def __init__(self, table: DescriptorTable, named: set[int]) -> None:
        self.table = table
        self.named = named
        self.defs: dict[int, TypeDef] = {}
        self.memo: dict[int, StableType] = {}

    def typedefs(self) -> tuple[TypeDef, ...]:
        # Bodies may name further entries; convert until every named entry has its definition.
        while missing := sorted(self.named - set(self.defs)):
            for i in missing:
                self.defs[i] = TypeDef(self.name(i), (), self.body(i))
        return tuple(self.defs[i] for i in sorted(self.defs))

    @staticmethod
    def name(i: int) -> str:
        return f"T{i}"

    def type(self, ref: TypeRef, *, variant_payload: bool = False) -> StableType:
        if ref < 0:
            if ref == NULL and variant_payload:
                return UNIT
            return _MODEL_PRIMS[ref]
        if ref in self.named:
            return ConType(self.name(ref))
        t = self.memo.get(ref)
        if t is None:
            t = self.memo[ref] = self.body(ref)
        return t

    def body(self, i: int) -> StableType:
        table = self.table
        e = table.entries[i]
        if isinstance(e, OptEntry):
            return OptType(self.type(e.inner))
        if isinstance(e, VecEntry):
            return ArrayType(self.type(e.element))
        if isinstance(e, WeakEntry):
            return WeakType(self.type(e.inner))
        if isinstance(e, TupleEntry):
            return TupleType(tuple(self.type(t) for t in e.components))
        if isinstance(e, AliasEntry):
            return ArrayType(self.type(_mutable_array_element(table, i)), mutable=True)
        if isinstance(e, VariantEntry):
            return VariantType(tuple(Tag(hashed_label(h), self.type(t, variant_payload=True)) for h, t in e.fields))
        if isinstance(e, RecordEntry):
            fields = []
            for h, t in e.fields:
                target = table.entries[t] if t >= 0 else None
                if isinstance(target, AliasEntry):
                    fields.append(Field(hashed_label(h), self.type(target.target), mutable=True))
                else:
                    fields.append(Field(hashed_label(h), self.type(t)))
            return RecordType(tuple(fields))
        if isinstance(e, FuncEntry):
            sort: FuncSort = "shared"
            if 1 in e.annotations:
                sort = "query"
            elif 3 in e.annotations:
                sort = "composite"
            return FuncType(sort, tuple(self.type(t) for t in e.args), tuple(self.type(t) for t in e.results),
                            is_async=2 not in e.annotations)
        assert isinstance(e, ServiceEntry)
        return ActorType(tuple(Field(name, self.type(t)) for name, t in e.methods))


# --------------------------------------------------------------------------- from the signature model

_PRIM_CODES: dict[str, int] = {name: code for code, name in PRIMITIVE_NAMES.items() if name not in ("Any", "None")}
_PRIM_CODES["Char"] = NAT32  # moc's to_idl_prim: Char shares Nat32's code


@dataclass(frozen=True)
class _Mut:
    """The type of a ``var`` field, ``Mut T`` in moc: its own table entry (an alias)."""

    inner: StableType


def signature_to_descriptor(sig: StableSignature, *, pre: bool = False) -> DescriptorTable:
    """The persistence descriptor moc registers for a signature's stable variables.

    A re-implementation of ``Serialization.type_desc`` (persistence mode) over the model: the
    memory record of the ``post`` fields (``pre=True``: the ``upgrade_fields`` a migration reads),
    each wrapped in ``?``, then entries numbered in depth-first pre-order, one per distinct type
    after expanding type definitions at the head. On a signature moc printed, the result is usually
    byte-identical to the descriptor in the canister's heap; it is always equivalent under
    :func:`descriptor_mismatch`. Raises :class:`DescriptorError` for a type that is not stable (a
    local function, an unbound type parameter, ``Error``).
    """
    fields = sig.upgrade_fields if pre else sig.post
    env = sig.env
    index: dict[object, int] = {}
    types: list[object] = []

    def norm(t: StableType) -> StableType:
        try:
            return unfold(t, env)
        except StableTypeError as exc:
            raise DescriptorError(f"cannot encode the signature: {exc}") from None

    def prim_code(t: StableType) -> int | None:
        if isinstance(t, Prim):
            code = _PRIM_CODES.get(t.name)
            if code is None:
                raise DescriptorError(f"cannot encode the signature: {t.name} is not a stable type")
            return code
        if isinstance(t, TupleType) and not t.items:
            return NULL
        if isinstance(t, AnyType):
            return ANY
        if isinstance(t, NoneType):
            return NONE
        return None

    def visit(t: object) -> None:
        # Iterative pre-order numbering: each new type gets the next index, then its children.
        work: list[object] = [t]
        while work:
            cur = work.pop()
            if not isinstance(cur, _Mut | _MemoryRecord):
                cur = norm(cur)  # type: ignore[arg-type]
                if prim_code(cur) is not None or cur in index:
                    continue
            elif cur in index:
                continue
            index[cur] = len(types)
            types.append(cur)
            work.extend(reversed(_encode_children(cur)))

    memory = _MemoryRecord(tuple(sorted(((f.name, OptType(f.typ)) for f in fields), key=lambda f: f[0].encode())))
    visit(memory)

    def ref(t: object) -> TypeRef:
        if not isinstance(t, _Mut | _MemoryRecord):
            t = norm(t)  # type: ignore[arg-type]
            code = prim_code(t)
            if code is not None:
                return code
        return index[t]

    entries = [_encode_model_entry(t, ref) for t in types]
    out = DescriptorTable(tuple(entries), (0,), ())
    data = out.encode()
    return decode_descriptor(data)  # computes the offsets, and checks what was built


@dataclass(frozen=True)
class _MemoryRecord:
    """moc's ``Obj(Memory, ...)``: the actor's stable variables as ``?T`` fields, sorted by name."""

    fields: tuple[tuple[str, StableType], ...]


def _encode_children(t: object) -> list[object]:
    """The component types moc's ``type_desc`` walks, in its order."""
    if isinstance(t, _MemoryRecord):
        return [typ for _, typ in t.fields]
    if isinstance(t, _Mut):
        return [t.inner]
    if isinstance(t, ArrayType):
        return [ArrayType(t.elem)] if t.mutable else [t.elem]
    if isinstance(t, RecordType):
        return [_Mut(f.typ) if f.mutable else f.typ for f in t.fields]
    if isinstance(t, VariantType):
        return [g.typ for g in t.tags]
    if isinstance(t, FuncType):
        return [*t.params, *t.results]
    if isinstance(t, ActorType):
        return [m.typ for m in t.methods]
    if isinstance(t, TupleType):
        return list(t.items)
    if isinstance(t, OptType | WeakType):
        return [t.inner]
    raise DescriptorError(f"cannot encode the signature: {type(t).__name__} is not a stable type")


def _encode_model_entry(t: object, ref: Callable[[object], TypeRef]) -> Entry:
    if isinstance(t, _MemoryRecord):
        return RecordEntry(tuple(sorted((label_hash(name), ref(typ)) for name, typ in t.fields)))
    if isinstance(t, _Mut):
        return AliasEntry(ref(t.inner))
    if isinstance(t, ArrayType):
        return AliasEntry(ref(ArrayType(t.elem))) if t.mutable else VecEntry(ref(t.elem))
    if isinstance(t, RecordType):
        return RecordEntry(tuple(sorted((label_hash(f.name), ref(_Mut(f.typ) if f.mutable else f.typ))
                                        for f in t.fields)))
    if isinstance(t, VariantType):
        return VariantEntry(tuple(sorted((label_hash(g.name), ref(g.typ)) for g in t.tags)))
    if isinstance(t, FuncType):
        if t.sort == "local" or t.type_params:
            raise DescriptorError("cannot encode the signature: a local or generic function type is not stable")
        # moc tests one-way first: a `shared T -> ()` is annotated oneway whatever its sort.
        annotations = (2,) if not t.is_async else {"shared": (), "query": (1,), "composite": (3,)}[t.sort]
        return FuncEntry(tuple(ref(p) for p in t.params), tuple(ref(r) for r in t.results), annotations)
    if isinstance(t, ActorType):
        return ServiceEntry(tuple(sorted(((m.name, ref(m.typ)) for m in t.methods), key=lambda m: m[0].encode())))
    if isinstance(t, TupleType):
        return TupleEntry(tuple(ref(i) for i in t.items))
    if isinstance(t, OptType):
        return OptEntry(ref(t.inner))
    if isinstance(t, WeakType):
        return WeakEntry(ref(t.inner))
    raise DescriptorError(f"cannot encode the signature: {type(t).__name__} is not a stable type")


# --------------------------------------------------------------------------- equivalence


def descriptor_mismatch(
    a: DescriptorTable, b: DescriptorTable, ref_a: TypeRef | None = None, ref_b: TypeRef | None = None
) -> str | None:
    """Where two descriptors describe different types, or None if they describe the same one.

    Compares the types at ``ref_a``/``ref_b`` (default: each table's first main type) structurally
    and coinductively (recursive types are equal if no finite path tells them apart), so the table
    layout (entry order, duplicated entries) does not matter. This is equality *as the descriptor
    sees it*: labels by hash, Char = Nat32, () = Null, ``var f : [T]`` = ``f : [var T]``. The
    answer is a one-line path to the first difference, e.g. ``field _120_: ?Nat vs Int``.
    """
    ra = ref_a if ref_a is not None else (a.main_types[0] if a.main_types else 0)
    rb = ref_b if ref_b is not None else (b.main_types[0] if b.main_types else 0)
    seen: set[tuple[int, int]] = set()
    work: list[tuple[TypeRef, TypeRef, str]] = [(ra, rb, "")]
    while work:
        x, y, path = work.pop()
        if (x, y) in seen:
            continue
        if x >= 0 and y >= 0:
            seen.add((x, y))
        where = path or "the type"

        def differ(what: str, where: str = where, x: TypeRef = x, y: TypeRef = y) -> str:
            return f"{where}: {what} ({a.describe(x)} vs {b.describe(y)})"

        if x < 0 or y < 0:
            if x != y:
                return differ("different types")
            continue
        ex, ey = a.entries[x], b.entries[y]
        if type(ex) is not type(ey):
            return differ("different kinds of type")
        pairs: list[tuple[TypeRef, TypeRef, str]]
        if isinstance(ex, RecordEntry | VariantEntry):
            assert isinstance(ey, RecordEntry | VariantEntry)
            la, lb = [h for h, _ in ex.fields], [h for h, _ in ey.fields]
            if la != lb:
                only = sorted(set(la) ^ set(lb))
                return differ(f"labels differ ({', '.join(hashed_label(h) for h in only[:3])})")
            kind = "field" if isinstance(ex, RecordEntry) else "tag"
            pairs = [(ta, tb, f"{path} {kind} {hashed_label(h)}".strip())
                     for (h, ta), (_, tb) in zip(ex.fields, ey.fields, strict=True)]
        elif isinstance(ex, ServiceEntry):
            assert isinstance(ey, ServiceEntry)
            if [n for n, _ in ex.methods] != [n for n, _ in ey.methods]:
                return differ("methods differ")
            pairs = [(ta, tb, f"{path} method {n}".strip())
                     for (n, ta), (_, tb) in zip(ex.methods, ey.methods, strict=True)]
        elif isinstance(ex, FuncEntry):
            assert isinstance(ey, FuncEntry)
            if ex.annotations != ey.annotations:
                return differ("function modes differ")
            if len(ex.args) != len(ey.args) or len(ex.results) != len(ey.results):
                return differ("function arities differ")
            pairs = [(ta, tb, f"{path} argument {k}".strip())
                     for k, (ta, tb) in enumerate(zip(ex.args, ey.args, strict=True))]
            pairs += [(ta, tb, f"{path} result {k}".strip())
                      for k, (ta, tb) in enumerate(zip(ex.results, ey.results, strict=True))]
        elif isinstance(ex, TupleEntry):
            assert isinstance(ey, TupleEntry)
            if len(ex.components) != len(ey.components):
                return differ("tuple lengths differ")
            pairs = [(ta, tb, f"{path} component {k}".strip())
                     for k, (ta, tb) in enumerate(zip(ex.components, ey.components, strict=True))]
        else:
            pairs = [(next(iter(entry_children(ex))), next(iter(entry_children(ey))), path)]
        work.extend(reversed(pairs))
    return None
