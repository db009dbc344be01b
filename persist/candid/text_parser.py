"""Parser of Candid text into an untyped value tree (the ``T*`` nodes), and :func:`parse_type`.

Follows ``candid_parser``'s ``grammar.lalrpop``. Values are typed afterwards by :mod:`persist.candid.annotate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from persist.candid.lexer import LEX_KEYWORDS, Tok, syntax_error, tokenize
from persist.candid.limits import MAX_TEXT_DEPTH, no_recursion_error
from persist.candid.quoting import fmt_label
from persist.candid.types import PRIMITIVES, CType, Field, Func, Opt, Prim, Record, Ref, Service, Variant, Vec, label_id
from persist.candid.wire import MODE_CODES
from persist.errors import CandidError
from persist.principal import Principal


@dataclass
class TNum:
    """An integer literal (``raw``: as written)."""

    value: int
    raw: str


@dataclass
class TFloat:
    """A float literal, ``NaN`` or ``inf`` (``raw``: as written)."""

    value: float
    raw: str


@dataclass
class TBool:
    """``true`` or ``false``."""

    value: bool


@dataclass
class TNull:
    """``null``."""


@dataclass
class TText:
    """A text literal."""

    value: str


@dataclass
class TBlob:
    """``blob "..."``."""

    value: bytes


@dataclass
class TOpt:
    """``opt value``."""

    value: Ast


@dataclass
class TVec:
    """``vec { ... }``."""

    items: list[Ast]


@dataclass
class TRecord:
    """``record { ... }``: fields in the order written (unlabelled ones numbered)."""

    fields: list[tuple[str | int, Ast]]


@dataclass
class TVariant:
    """``variant { label = value }`` (``value`` None when only the label is written)."""

    label: str | int
    value: Ast | None


@dataclass
class TPrincipal:
    """``principal "..."``."""

    value: Principal


@dataclass
class TService:
    """``service "..."``."""

    value: Principal


@dataclass
class TFunc:
    """``func "principal".method``."""

    principal: Principal
    method: str


@dataclass
class TAnn:
    """``value : type``, a value with a type annotation."""

    value: Ast
    type: CType


Ast: TypeAlias = (
    TNum | TFloat | TBool | TNull | TText | TBlob | TOpt | TVec | TRecord | TVariant
    | TPrincipal | TService | TFunc | TAnn
)  # fmt: skip


class Parser:
    """Recursive-descent parser of Candid text: values (:meth:`parse_args`) and types (:meth:`typ`)."""

    def __init__(self, src: str, env: Mapping[str, CType] | None = None) -> None:
        if not isinstance(src, str):
            raise CandidError(f"bad Candid text: expected a string, got {type(src).__name__}")
        self.toks = tokenize(src)
        self.i = 0
        self.env = env
        self.depth = 0

    # -- token helpers -------------------------------------------------------------------------

    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Tok:
        tok = self.peek()
        if tok.kind != "eof":
            self.i += 1
        return tok

    @staticmethod
    def describe(tok: Tok) -> str:
        if tok.kind == "eof":
            return "end of input"
        raw = tok.raw if len(tok.raw) <= 30 else tok.raw[:27] + "..."
        return f"{raw!r}" if tok.kind != "text" else raw

    def fail(self, expected: str, tok: Tok | None = None) -> CandidError:
        tok = tok or self.peek()
        if tok.kind == "eof":
            unbalanced = expected.startswith(("')'", "'}'", "','"))
            hint = " (unbalanced parentheses or braces?)" if unbalanced else ""
            return syntax_error(f"expected {expected} but the text ended{hint}", None)
        return syntax_error(f"expected {expected}, found {self.describe(tok)}", tok.pos)

    def expect(self, kind: str) -> Tok:
        if self.peek().kind != kind:
            raise self.fail(f"'{kind}'")
        return self.next()

    def is_word(self, word: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "id" and tok.value == word

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_TEXT_DEPTH:
            raise syntax_error(f"values nested more than {MAX_TEXT_DEPTH} deep", self.peek().pos)

    def sep_by(self, item: Callable[[], Any], sep: str, close: str) -> list[Any]:
        out = []
        while self.peek().kind != close:
            out.append(item())
            if self.peek().kind == sep:
                self.next()
            elif self.peek().kind != close:
                raise self.fail(f"'{sep}' or '{close}'")
        self.next()
        return out

    def text_value(self, tok: Tok) -> str:
        try:
            return bytes(tok.value).decode("utf-8")
        except UnicodeDecodeError:
            raise syntax_error("text is not valid UTF-8 (use blob \"...\" for bytes)", tok.pos) from None

    def principal(self, tok: Tok) -> Principal:
        if tok.kind != "text":
            raise self.fail("a quoted principal", tok)
        text = self.text_value(tok)
        try:
            return Principal.from_text(text)
        except CandidError as exc:
            raise syntax_error(str(exc), tok.pos) from None

    # -- values ---------------------------------------------------------------------------------

    def parse_args(self) -> list[Ast]:
        if self.peek().kind == "eof":
            return []
        if self.peek().kind == "(":
            self.next()
            args: list[Ast] = self.sep_by(self.annval, ",", ")")
        else:
            args = [self.annval()]
        if self.peek().kind != "eof":
            tok = self.peek()
            raise syntax_error(
                f"unexpected {self.describe(tok)} after the arguments "
                "(write several arguments as a tuple: (a, b))",
                tok.pos,
            )
        return args

    def annval(self) -> Ast:
        value = self.arg()
        if self.peek().kind == ":":
            self.next()
            return TAnn(value, self.typ())
        return value

    def arg(self) -> Ast:
        self.enter()
        try:
            return self._arg()
        finally:
            self.depth -= 1

    def _arg(self) -> Ast:
        tok = self.peek()
        if tok.kind == "(":
            self.next()
            value = self.annval()
            self.expect(")")
            return value
        if tok.kind in ("sign", "num", "float"):
            return self.number()
        if tok.kind == "text":
            self.next()
            return TText(self.text_value(tok))
        if tok.kind != "id":
            raise self.fail("a value")
        word = tok.value
        if word in ("NaN", "nan", "inf", "infinity"):
            return self.number()
        self.next()
        if word in ("true", "false"):
            return TBool(word == "true")
        if word == "null":
            return TNull()
        if word == "opt":
            return TOpt(self.arg())
        if word == "vec":
            self.expect("{")
            return TVec(self.sep_by(self.annval, ";", "}"))
        if word == "blob":
            t = self.next()
            if t.kind != "text":
                raise self.fail('a quoted string after blob, like blob "\\00\\ff"', t)
            return TBlob(bytes(t.value))
        if word == "record":
            return self.record()
        if word == "variant":
            return self.variant()
        if word == "principal":
            return TPrincipal(self.principal(self.next()))
        if word == "service":
            return TService(self.principal(self.next()))
        if word == "func":
            p = self.principal(self.next())
            self.expect(".")
            name = self.next()
            if name.kind == "id" and name.value not in LEX_KEYWORDS:
                return TFunc(p, name.value)
            if name.kind == "text":
                return TFunc(p, self.text_value(name))
            raise self.fail("a method name", name)
        raise syntax_error(
            f"unexpected word {word!r} (text values are written in double quotes)", tok.pos
        )

    def number(self) -> Ast:
        sign = ""
        if self.peek().kind == "sign":
            sign = self.next().value
        tok = self.next()
        if tok.kind == "num":
            value = -tok.value if sign == "-" else tok.value
            return TNum(value, sign + tok.raw)
        if tok.kind == "float":
            return TFloat(-tok.value if sign == "-" else tok.value, sign + tok.raw)
        if tok.kind == "id" and tok.value in ("NaN", "nan", "inf", "infinity"):
            f = math.nan if tok.value.lower() == "nan" else math.inf
            return TFloat(-f if sign == "-" else f, sign + tok.raw)
        raise self.fail("a number", tok)

    def label_ahead(self, follow: str) -> bool:
        tok = self.peek()
        is_label = tok.kind in ("text", "num") or (tok.kind == "id" and tok.value not in LEX_KEYWORDS)
        return is_label and self.peek(1).kind == follow

    def label(self) -> str | int:
        tok = self.next()
        if tok.kind == "num":
            if not 0 <= tok.value < 2**32:
                raise syntax_error("field id out of the u32 range", tok.pos)
            return int(tok.value)
        if tok.kind == "text":
            return self.text_value(tok)
        if tok.kind == "id" and tok.value not in LEX_KEYWORDS:
            return str(tok.value)
        raise self.fail("a field name", tok)

    def record(self) -> TRecord:
        open_tok = self.expect("{")
        fields: list[tuple[str | int, Ast]] = []
        next_id = 0

        def item() -> None:
            nonlocal next_id
            if self.label_ahead("="):
                label = self.label()
                self.next()
                value = self.annval()
            else:
                label, value = next_id, self.annval()
            next_id = label_id(label) + 1
            fields.append((label, value))

        self.sep_by(item, ";", "}")
        ids: dict[int, str | int] = {}
        for label, _ in fields:
            lid = label_id(label)
            if lid in ids:
                raise syntax_error(
                    f"record field {fmt_label(label)} given twice"
                    + ("" if ids[lid] == label else f" (same id as {fmt_label(ids[lid])})"),
                    open_tok.pos,
                )
            ids[lid] = label
        return TRecord(fields)

    def variant(self) -> TVariant:
        self.expect("{")
        if self.label_ahead("="):
            label = self.label()
            self.next()
            value: Ast | None = self.annval()
        else:
            label, value = self.label(), None
        if self.peek().kind == ";":
            self.next()
        if self.peek().kind != "}":
            raise self.fail("'}' (a variant value has exactly one field)")
        self.next()
        return TVariant(label, value)

    # -- types ----------------------------------------------------------------------------------

    def typ(self) -> CType:
        self.enter()
        try:
            return self._typ()
        finally:
            self.depth -= 1

    def _typ(self) -> CType:
        tok = self.next()
        if tok.kind != "id":
            raise self.fail("a type", tok)
        word = tok.value
        if word in PRIMITIVES:
            return Prim(word)
        if word == "opt":
            return Opt(self.typ())
        if word == "vec":
            return Vec(self.typ())
        if word == "blob":
            return Vec(Prim("nat8"))
        if word in ("record", "variant"):
            return self.fields_type(word)
        if word == "func":
            return self.functype()
        if word == "service":
            return self.service_type()
        if word in LEX_KEYWORDS:
            raise self.fail("a type", tok)
        if self.env is not None and word in self.env:
            return Ref(word, self.env)
        raise syntax_error(f"unknown type {word!r}", tok.pos)

    def fields_type(self, kind: str) -> CType:
        self.expect("{")
        fields: list[Field] = []
        next_id = 0

        def item() -> None:
            nonlocal next_id
            if self.label_ahead(":"):
                label = self.label()
                self.next()
                fields.append(Field(label, self.typ()))
            elif kind == "variant":
                label = self.label()
                fields.append(Field(label, Prim("null")))
            else:
                label = next_id
                fields.append(Field(label, self.typ()))
            next_id = label_id(label) + 1

        self.sep_by(item, ";", "}")
        try:
            return Record(tuple(fields)) if kind == "record" else Variant(tuple(fields))
        except CandidError as exc:
            raise syntax_error(str(exc), self.peek().pos) from None

    def functype(self) -> Func:
        def params() -> tuple[CType, ...]:
            self.expect("(")

            def param() -> CType:
                if self.label_ahead(":"):
                    self.label()
                    self.next()
                return self.typ()

            return tuple(self.sep_by(param, ",", ")"))

        args = params()
        self.expect("->")
        rets = params()
        modes = []
        while self.peek().kind == "id" and self.peek().value in MODE_CODES:
            modes.append(self.next().value)
        return Func(args, rets, tuple(modes))

    def service_type(self) -> Service:
        self.expect("{")
        methods: list[tuple[str, CType]] = []

        def item() -> None:
            name = self.label()
            if isinstance(name, int):
                raise self.fail("a method name")
            self.expect(":")
            if self.peek().kind == "(":
                methods.append((name, self.functype()))
            else:
                methods.append((name, self.typ()))

        self.sep_by(item, ";", "}")
        try:
            return Service(tuple(methods))
        except CandidError as exc:
            raise syntax_error(str(exc), self.peek().pos) from None


@no_recursion_error
def parse_type(text: str, env: Mapping[str, CType] | None = None) -> CType:
    """Parse one Candid type, e.g. ``"record { id : nat; tags : vec text }"``.

    Type names are looked up in ``env`` (for example ``ServiceInterface.types``).
    """
    p = Parser(text, env)
    t = p.typ()
    if p.peek().kind != "eof":
        raise p.fail("end of the type")
    return t
