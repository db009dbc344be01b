"""Stable types of Motoko canisters: a typed model, a parser and a printer for stable signatures.

A *stable signature* is what ``moc`` writes into the ``icp:private motoko:stable-types`` custom
section and into ``.most`` files: the type definitions the stable variables use, then the stable
variables of the actor. Three versions exist:

* ``// Version: 1.0.0``: one field list, ``actor { stable var x : Nat; stable y : Text };``
* ``// Version: 2.0.0`` and ``// Version: 3.0.0``: the canister has a migration function, so the
  signature has a *pre* list (what the upgrade reads: the migration function's inputs plus the
  untouched stable variables) and a *post* list (what the program keeps), printed
  ``actor ({ pre... }, { post... });`` (older moc: ``}) ;``). In 3.0.0 the migration inputs are
  printed with ``in`` instead of ``stable`` (``required=True`` here): an upgrade from a version
  that lacks them fails.
* ``// Version: 4.0.0``: the canister is compiled with an enhanced migration chain
  (``--enhanced-migration DIR``): after the type definitions, the chain as a map from migration
  name to the type of its ``migration`` function, ``{ "20250101_000000_Init" : {} -> {count :
  Nat}; ... }``, then ``actor  { ... }`` with the stable fields (``chain`` here, a tuple of
  ``Migration``; ``chain_boundaries``/``upgrade_fields_after`` give the state the chain expects
  before each step, as moc's ``pres``).

The model (frozen dataclasses, so values hash and compare structurally):

* types: ``Prim`` (``Nat``, ``Text``, ``Blob``, ``Principal``, ``Region``, ...), ``AnyType``,
  ``NoneType``, ``OptType`` (``?T``), ``ArrayType`` (``[T]``, ``[var T]`` with ``mutable=True``),
  ``TupleType`` (``()`` is the empty tuple), ``RecordType`` of ``Field``\\ s (``var`` fields have
  ``mutable=True``), ``VariantType`` of ``Tag``\\ s (a tag without payload has ``typ=UNIT``),
  ``FuncType`` (``sort`` is ``"shared"``, ``"query"``, ``"composite"`` or ``"local"``;
  ``is_async=False`` for a one-way ``shared T -> ()``), ``ActorType`` of ``Field``\\ s (the
  methods), ``WeakType`` (``weak T``), ``NamedType`` (a named tuple item ``(amount : Nat)``;
  transparent for typing), ``ConType`` (a reference ``List<Nat>`` to a ``TypeDef``) and
  ``VarType`` (a type parameter inside a ``TypeDef`` body);
* ``TypeDef(name, params, body)``: ``type List<T> = ?(T, List<T>)``; recursion goes through
  ``ConType`` references, so every value here is finite;
* ``StableField(name, typ, mutable, required)``: one stable variable;
* ``StableSignature(version, types, post, pre, chain)``: ``pre is None`` for 1.0.0 and 4.0.0,
  ``chain is None`` but for 4.0.0; ``Migration(name, typ)`` is one chain step.

How to build a signature programmatically (e.g. from the binary EOP type descriptor, which
carries label *hashes* only: name such a label ``_<hash>_``, the Candid escape for a numeric
label, and ``label_hash`` gives the hash back, so comparisons by hash still line up)::

    from migrate.stable_types import *
    node = TypeDef("Node", (), RecordType((Field("value", NAT), Field("next", OptType(ConType("Node"))))))
    sig = StableSignature(
        version="1.0.0",
        types=(node,),
        post=(StableField("head", OptType(ConType("Node")), mutable=True),
              StableField("_4846783_", Prim("Text"))),
    )
    text = format_signature(sig)          # the .most text
    assert parse_signature(text) == sig

Field, tag and method lists are kept in the order given (moc prints them sorted by name);
``StableSignature.env`` resolves ``ConType`` references, ``unfold`` expands one.

The package holds three modules, each importing only the ones before it:

* ``model``: the type classes, ``TypeDef``, ``StableField``, ``StableSignature``, the constants
  and the type helpers (``substitute``, ``unfold``, ``children``, ``label_hash``);
* ``parser``: the tokenizer and parser of moc's grammar (``parse_signature``, ``parse_type``);
* ``printer``: a re-implementation of OCaml's ``Format`` layout and moc's box structure
  (``format_type``, ``format_signature``), so that ``format_signature(parse_signature(t)) == t``
  for text the pinned moc wrote.

A signature decoded from the binary descriptor cannot tell ``Char`` from ``Nat32`` or ``()``
from ``Null`` (they share a descriptor code); prefer the old module's ``.most`` section for those.
"""

from __future__ import annotations

from migrate.errors import StableTypeError
from migrate.stable_types.model import (
    ANY,
    BLOB,
    BOOL,
    CHAR,
    FLOAT,
    INT,
    NAT,
    NONE,
    NULL,
    PRIM_NAMES,
    PRINCIPAL,
    REGION,
    STABLE_PRIMS,
    TEXT,
    UNIT,
    ActorType,
    AnyType,
    ArrayType,
    ConType,
    Field,
    FuncSort,
    FuncType,
    Migration,
    NamedType,
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
    TypeEnv,
    VariantType,
    VarType,
    WeakType,
    children,
    label_hash,
    migration_fields,
    substitute,
    unfold,
)
from migrate.stable_types.parser import parse_signature, parse_type
from migrate.stable_types.printer import format_signature, format_type, quote_text

__all__ = [
    "ANY",
    "BLOB",
    "BOOL",
    "CHAR",
    "FLOAT",
    "INT",
    "NAT",
    "NONE",
    "NULL",
    "PRIM_NAMES",
    "PRINCIPAL",
    "REGION",
    "STABLE_PRIMS",
    "TEXT",
    "UNIT",
    "ActorType",
    "AnyType",
    "ArrayType",
    "ConType",
    "Field",
    "FuncSort",
    "FuncType",
    "Migration",
    "NamedType",
    "NoneType",
    "OptType",
    "Prim",
    "RecordType",
    "StableField",
    "StableSignature",
    "StableType",
    "StableTypeError",
    "Tag",
    "TupleType",
    "TypeDef",
    "TypeEnv",
    "VarType",
    "VariantType",
    "WeakType",
    "children",
    "format_signature",
    "format_type",
    "label_hash",
    "migration_fields",
    "parse_signature",
    "parse_type",
    "quote_text",
    "substitute",
    "unfold",
]
