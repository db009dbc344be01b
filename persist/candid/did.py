"""``.did`` service interfaces: :func:`parse_service`, :class:`ServiceInterface`, :class:`MethodSig`.

The text is parsed by the Rust ``candid_parser`` binding (``_ic_candid_core.parse_did``); its JSON is turned
into the type model of :mod:`persist.candid.types`. The binding only parses, so the environment is checked
here (unknown names, alias cycles) and methods declared by type name are repaired.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from persist.candid.lexer import text_literals
from persist.candid.limits import no_recursion_error
from persist.candid.quoting import ID_RE, ident
from persist.candid.types import (
    CType,
    Field,
    Func,
    Opt,
    Prim,
    Record,
    Ref,
    Service,
    Variant,
    Vec,
    fmt_functype,
    resolve,
)
from persist.errors import CandidError


@dataclass(frozen=True)
class MethodSig:
    """One method of a service: argument and result types, and modes such as ``("query",)``."""

    name: str
    args: list[CType]
    rets: list[CType]
    modes: tuple[str, ...]

    @property
    def is_query(self) -> bool:
        """True for ``query`` and ``composite_query`` methods."""
        return "query" in self.modes or "composite_query" in self.modes

    def __str__(self) -> str:
        return f"{ident(self.name)} : " + fmt_functype(
            Func(tuple(self.args), tuple(self.rets), self.modes), frozenset()
        )


@dataclass(frozen=True)
class ServiceInterface:
    """A parsed ``.did`` service: its methods by name, its init arguments, and its named types."""

    methods: dict[str, MethodSig]
    init_args: list[CType]
    types: dict[str, CType] = field(default_factory=dict)


def _check_text_literals(did_text: str) -> None:
    """Refuse string literals that are not UTF-8 before the Rust parser sees them: when such a
    literal is an unexpected token, its error path panics and aborts the whole process
    (``_ic_candid_core.parse_did`` of icp-py-core 2.3.1, e.g. on ``"\\ff" x``; found by
    ``tests/test_fuzz.py``). Candid text is UTF-8, so these are errors anyway."""
    for pos, raw in text_literals(did_text):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CandidError(f"bad Candid interface: the string literal at position {pos + 1} is not valid "
                              "UTF-8") from None


@no_recursion_error
def parse_service(did_text: str | bytes) -> ServiceInterface:
    """Parse ``.did`` text (e.g. a module's ``candid:service`` section) into a :class:`ServiceInterface`.

    Accepts ``service : { ... }``, ``service : (init args) -> { ... }``, ``service : S`` and
    ``type`` definitions, recursive ones included. Text with no ``service`` yields no methods. The
    raw bytes of the custom section may be passed as they are (UTF-8). Raises :class:`CandidError`
    for syntax errors, unknown type names and alias cycles.
    """
    import json

    if isinstance(did_text, bytes | bytearray | memoryview):
        try:
            did_text = bytes(did_text).decode("utf-8")
        except UnicodeDecodeError:
            raise CandidError("bad Candid interface: the text is not valid UTF-8") from None
    if not isinstance(did_text, str):
        raise CandidError(f"bad Candid interface: expected text, got {type(did_text).__name__}")

    _check_text_literals(did_text)
    try:
        from _ic_candid_core import parse_did
    except ImportError as exc:  # pragma: no cover - the wheel is a dependency of icp-py-core
        raise CandidError(f"the Candid interface parser is not installed ({exc})") from None
    try:
        doc = json.loads(parse_did(did_text))
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        msg = msg.removeprefix("Candid Syntax Error: ")
        raise CandidError(f"bad Candid interface: {msg}") from None

    env: dict[str, CType] = {}
    conv = _JsonTypes(env)
    for entry in doc.get("env") or []:
        name = entry["name"]
        if name in env:
            raise CandidError(f"bad Candid interface: type {name} is defined twice")
        env[name] = conv.type(entry["datatype"])
    actor = doc.get("actor") or {}
    methods: dict[str, MethodSig] = {}
    for m in actor.get("methods") or []:
        sig = MethodSig(
            name=m["name"],
            args=[conv.type(a) for a in m["args"]],
            rets=[conv.type(r) for r in m["rets"]],
            modes=tuple(m["modes"]),
        )
        methods[sig.name] = sig
    init_args = [conv.type(a) for a in actor.get("init") or []]
    _check_env(env, list(methods.values()), init_args)
    _repair_method_refs(did_text, env, methods)
    return ServiceInterface(methods=methods, init_args=init_args, types=env)


class _JsonTypes:
    """Converts the JSON of ``parse_did`` into :data:`CType` values."""

    def __init__(self, env: dict[str, CType]) -> None:
        self.env = env

    def type(self, j: Mapping[str, Any]) -> CType:
        kind: Any = j.get("type")
        value: Any = j.get("value")
        if kind == "Prim":
            return Prim(value)
        if kind == "Principal":
            return Prim("principal")
        if kind == "Id":
            return Ref(value, self.env)
        if kind == "Opt":
            return Opt(self.type(value))
        if kind == "Vec":
            return Vec(self.type(value))
        if kind in ("Record", "Variant"):
            fields = [Field(self.label(label), self.type(t)) for label, t in value]
            return Record(tuple(fields)) if kind == "Record" else Variant(tuple(fields))
        if kind == "Func":
            return self.func(value)
        if kind == "Service":
            return Service(tuple((m["name"], self.func(m)) for m in value))
        raise CandidError(f"bad Candid interface: unsupported type {kind!r}")

    def func(self, j: Mapping[str, Any]) -> Func:
        return Func(
            tuple(self.type(a) for a in j["args"]),
            tuple(self.type(r) for r in j["rets"]),
            tuple(j["modes"]),
        )

    @staticmethod
    def label(text: str) -> str | int:
        # Numeric labels come back printed like candid's Label Display, e.g. "4_294_967_295".
        if re.fullmatch(r"[0-9][0-9_]*", text):
            return int(text.replace("_", ""))
        return text


def _repair_method_refs(did_text: str, env: dict[str, CType], methods: dict[str, MethodSig]) -> None:
    """Restore methods declared by type name (``m : F``), which the binding reports as ``() -> ()``."""
    suspects = [m for m in methods.values() if not m.args and not m.rets and not m.modes]
    if not suspects:
        return
    text = re.sub(r"//[^\n]*", "", did_text)
    actor = list(re.finditer(r"\bservice\s*(?:[A-Za-z_][A-Za-z0-9_]*\s*)?:", text))
    if not actor:
        return
    tail = text[actor[-1].end() :]
    named = re.match(r"\s*(?:\([^)]*\)\s*->\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*;?\s*\Z", tail)
    if named:  # `service : S` - the methods are in `type S = service { ... }`
        decl = re.search(rf"\btype\s+{re.escape(named.group(1))}\s*=\s*service\b", text)
        if decl is None:
            return
        tail = text[decl.end() :]
    for m in suspects:
        name_re = re.escape(m.name) if ID_RE.match(m.name) else '"' + re.escape(m.name) + '"'
        hit = re.search(rf"(?:^|[{{;\s]){name_re}\s*:\s*([A-Za-z_][A-Za-z0-9_]*)\s*[;}}]", tail)
        if hit is None or hit.group(1) not in env:
            continue
        target = resolve(Ref(hit.group(1), env))
        if isinstance(target, Func):
            methods[m.name] = MethodSig(m.name, list(target.args), list(target.rets), target.modes)


def _check_env(env: Mapping[str, CType], methods: list[MethodSig], init_args: list[CType]) -> None:
    def walk(t: CType, seen: set[int]) -> None:
        if isinstance(t, Ref):
            if t.name not in t.env:
                raise CandidError(f"bad Candid interface: unknown type name {t.name}")
            return
        if id(t) in seen:
            return
        seen.add(id(t))
        if isinstance(t, Opt | Vec):
            walk(t.inner, seen)
        elif isinstance(t, Record | Variant):
            for f in t.fields:
                walk(f.type, seen)
        elif isinstance(t, Func):
            for x in t.args + t.rets:
                walk(x, seen)
        elif isinstance(t, Service):
            for _, ft in t.methods:
                walk(ft, seen)

    seen: set[int] = set()
    for name, t in env.items():
        walk(t, seen)
        try:
            resolve(Ref(name, env))
        except CandidError:
            raise CandidError(f"bad Candid interface: type {name} is defined in terms of itself") from None
    for m in methods:
        for t in m.args + m.rets:
            walk(t, seen)
    for t in init_args:
        walk(t, seen)
