"""Parsing stable signatures: a tokenizer and a recursive-descent parser over moc's grammar.

Parsing follows moc's grammar for stable signatures (``parse_stab_sig``): comments (nested block
comments too), trailing ``;``, ``(T)`` vs the 1-tuple ``(T,)``, named items ``(x : T)``, type
components ``{type T = ...; ...}``. Identifiers may use Unicode letters (moc's are ASCII).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from migrate.errors import StableTypeError
from migrate.stable_types.model import (
    ANY,
    NONE,
    PRIM_NAMES,
    UNIT,
    ActorType,
    ArrayType,
    ConType,
    Field,
    FuncSort,
    FuncType,
    Migration,
    NamedType,
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
    migration_fields,
    unfold,
)

__all__ = ["parse_signature", "parse_type"]

# ---------------------------------------------------------------------------------------------
# Parsing

# Motoko's reserved words: never identifiers (``type_`` is how a program spells the label ``type``).
_KEYWORDS = frozenset(
    """actor and async assert await break case catch class composite continue debug do else false
    finally flexible for func if ignore in implicit import include mixin module not null object or
    label let loop persistent private public query return shared stable switch system transient try
    throw true type var weak while with""".split()
)
_PUNCT = ("->", "<:", "{", "}", "(", ")", "[", "]", "<", ">", ",", ";", ":", "?", "#", "=", ".")
_VERSION_RE = re.compile(r"//\s*Version:\s*(\d+\.\d+\.\d+)")


@dataclass(frozen=True)
class _Tok:
    kind: str  # "id", "kw", "punct", "str" (text: the decoded string), "eof"
    text: str
    line: int
    col: int


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


def _string_literal(text: str, i: int, line: int, col: int) -> tuple[str, int]:
    """The decoded Motoko text literal starting at ``text[i] == '"'`` and the index after it
    (escapes: ``\\n \\t \\r \\" \\' \\\\`` and ``\\u{hex}``, as moc prints migration names)."""
    out: list[str] = []
    j = i + 1
    while True:
        if j >= len(text) or text[j] == "\n":
            raise StableTypeError("unclosed string literal", line=line, column=col)
        c = text[j]
        if c == '"':
            return "".join(out), j + 1
        if c != "\\":
            out.append(c)
            j += 1
            continue
        esc = text[j + 1 : j + 2]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            j += 2
        elif esc == "u" and text[j + 2 : j + 3] == "{":
            end = text.find("}", j + 3)
            digits = text[j + 3 : end] if end > 0 else ""
            if not digits or not all(d in "0123456789abcdefABCDEF" for d in digits) or int(digits, 16) > 0x10FFFF:
                raise StableTypeError("bad \\u{...} escape in a string literal", line=line, column=col)
            out.append(chr(int(digits, 16)))
            j = end + 1
        else:
            raise StableTypeError(f"unknown escape \\{esc} in a string literal", line=line, column=col)


def _is_id_start(c: str) -> bool:
    # moc's identifiers are ASCII; Unicode letters are accepted too so that labels that only a
    # descriptor or a hand-written signature can carry still parse.
    return c == "_" or c.isalpha()


def _is_id_char(c: str) -> bool:
    return c == "_" or c.isalnum()


def _tokenize(text: str) -> tuple[list[_Tok], str | None]:
    """Tokens of ``text`` and the version named by a ``// Version: x.y.z`` comment (if any)."""
    toks: list[_Tok] = []
    version: str | None = None
    i, line, col, n = 0, 1, 1, len(text)

    def advance(k: int) -> None:
        nonlocal i, line, col
        for _ in range(k):
            if text[i] == "\n":
                line, col = line + 1, 1
            else:
                col += 1
            i += 1

    while i < n:
        c = text[i]
        if c in " \t\r\n\ufeff":
            advance(1)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            m = _VERSION_RE.match(text, i, end)
            if m and version is None and not toks:
                version = m.group(1)
            advance(end - i)
        elif text.startswith("/*", i):
            # Motoko block comments nest.
            start_line, start_col, depth = line, col, 0
            while True:
                if i >= n:
                    raise StableTypeError("unclosed comment", line=start_line, column=start_col)
                if text.startswith("/*", i):
                    depth += 1
                    advance(2)
                elif text.startswith("*/", i):
                    depth -= 1
                    advance(2)
                    if depth == 0:
                        break
                else:
                    advance(1)
        elif c == '"':
            value, end = _string_literal(text, i, line, col)
            toks.append(_Tok("str", value, line, col))
            advance(end - i)
        elif _is_id_start(c):
            j = i + 1
            while j < n and _is_id_char(text[j]):
                j += 1
            word = text[i:j]
            toks.append(_Tok("kw" if word in _KEYWORDS else "id", word, line, col))
            advance(j - i)
        else:
            for p in _PUNCT:
                if text.startswith(p, i):
                    toks.append(_Tok("punct", p, line, col))
                    advance(len(p))
                    break
            else:
                raise StableTypeError(f"unexpected character {c!r}", line=line, column=col)
    toks.append(_Tok("eof", "", line, col))
    return toks, version


#: How deeply types may nest (``[[[Nat]]]`` is 3 deep). moc sets no bound, but every stage after
#: the parser (compatibility, printing, descriptors) walks types recursively; 100 levels is far
#: beyond what a program declares, and keeps a hostile signature a one-line error.
MAX_TYPE_DEPTH = 64


class _Parser:
    """Recursive descent over moc's grammar of stable signatures (``parse_stab_sig``)."""

    def __init__(self, text: str) -> None:
        self.toks, self.version = _tokenize(text)
        self.pos = 0
        self.depth = 0
        # Every ``type Name`` at the top level, collected up front so that bodies may refer to
        # definitions that come later (moc sorts them by name, not by dependency).
        self.def_names = {
            self.toks[k + 1].text
            for k in range(len(self.toks) - 1)
            if self.toks[k].text == "type" and self.toks[k].kind == "kw" and self.toks[k + 1].kind == "id"
        }
        self.params: list[tuple[str, ...]] = []
        self.con_uses: list[tuple[ConType, _Tok]] = []

    # -- token helpers

    @property
    def tok(self) -> _Tok:
        return self.toks[self.pos]

    def peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def at(self, text: str) -> bool:
        t = self.tok
        return t.text == text and t.kind in ("kw", "punct")

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def error(self, message: str, tok: _Tok | None = None) -> StableTypeError:
        t = tok or self.tok
        return StableTypeError(message, line=t.line, column=t.col)

    def describe(self, t: _Tok) -> str:
        if t.kind == "str":
            return f"the string {t.text!r}"
        return "end of input" if t.kind == "eof" else f"{t.text!r}"

    def expect(self, text: str, what: str = "") -> _Tok:
        t = self.tok
        if not self.accept(text):
            ctx = f" {what}" if what else ""
            raise self.error(f"expected {text!r}{ctx}, found {self.describe(t)}")
        return t

    def ident(self, what: str) -> _Tok:
        t = self.tok
        if t.kind != "id":
            if t.kind == "kw":
                raise self.error(f"expected {what}, found the keyword {t.text!r} (write {t.text}_)")
            raise self.error(f"expected {what}, found {self.describe(t)}")
        self.pos += 1
        return t

    # -- signature

    def signature(self) -> StableSignature:
        defs: list[TypeDef] = []
        def_toks: dict[str, _Tok] = {}
        while self.at("type"):
            t = self.tok
            d = self.typedef()
            if d.name in def_toks:
                raise self.error(f"duplicate type definition {d.name}", t)
            def_toks[d.name] = t
            defs.append(d)
            if not self.accept(";"):
                break
        chain = self.chain() if self.at("{") else None
        t = self.tok
        if not self.accept("actor"):
            expected = "'actor'" if chain is not None else "'type', '{' (a migration chain) or 'actor'"
            raise self.error(f"expected {expected}, found {self.describe(t)}")
        pre: tuple[StableField, ...] | None
        if chain is not None:
            self.expect("{", "after 'actor'")
            post = self.stable_fields(allow_in=False)
            self.expect("}", "after the stable fields")
            pre = None
        elif self.accept("("):
            self.expect("{", "to open the pre-upgrade fields")
            pre = self.stable_fields(allow_in=True)
            self.expect("}", "after the pre-upgrade fields")
            self.expect(",", "between the pre- and post-upgrade fields")
            self.expect("{", "to open the post-upgrade fields")
            post = self.stable_fields(allow_in=False)
            self.expect("}", "after the post-upgrade fields")
            self.expect(")", "to close the actor's field lists")
        else:
            self.expect("{", "after 'actor'")
            post = self.stable_fields(allow_in=False)
            self.expect("}", "after the stable fields")
            pre = None
        self.accept(";")
        if self.tok.kind != "eof":
            raise self.error(f"unexpected {self.describe(self.tok)} after the actor")
        version = self.version or ("4.0.0" if chain is not None else "1.0.0" if pre is None else "3.0.0")
        migrations = tuple(m for m, _ in chain) if chain is not None else None
        sig = StableSignature(version, tuple(defs), post, pre, migrations)
        self.check_cons(sig.env)
        for d in defs:
            try:
                unfold(ConType(d.name, tuple(VarType(p) for p in d.params)), sig.env)
            except StableTypeError as e:
                raise self.error(e.reason, def_toks[d.name]) from None
        for m, tok in chain or ():
            try:
                migration_fields(m.typ, sig.env)
            except StableTypeError as e:
                raise self.error(f"migration {m.name!r}: {e.reason}", tok) from None
        return sig

    def chain(self) -> list[tuple[Migration, _Tok]]:
        """``{ "name" : (old : {...}) -> {...}; ... }``: the migration chain of a 4.0.0 signature."""
        self.expect("{")
        out: list[tuple[Migration, _Tok]] = []
        seen: set[str] = set()
        while not self.at("}"):
            t = self.tok
            if t.kind != "str":
                raise self.error(f"expected a migration name (a string) or '}}', found {self.describe(t)}")
            self.pos += 1
            if t.text in seen:
                raise self.error(f"duplicate migration {t.text!r}", t)
            seen.add(t.text)
            self.expect(":", f"after migration {t.text!r}")
            out.append((Migration(t.text, self.typ()), t))
            if not self.accept(";"):
                break
        self.expect("}", "to close the migration chain")
        if not out:
            raise self.error("a migration chain has at least one migration")
        return out

    def check_cons(self, env: TypeEnv) -> None:
        for con, t in self.con_uses:
            d = env.get(con.name)
            if d is None:
                raise self.error(f"undefined type {con.name}", t)
            if len(d.params) != len(con.args):
                raise self.error(
                    f"type {con.name} expects {len(d.params)} type argument(s), got {len(con.args)}", t
                )

    def typedef(self) -> TypeDef:
        self.expect("type")
        name = self.ident("a type name").text
        params: list[str] = []
        if self.accept("<"):
            while not self.at(">"):
                params.append(self.ident("a type parameter").text)
                if self.at("<:"):
                    raise self.error("type parameter bounds are not supported in stable signatures")
                if not self.accept(","):
                    break
            self.expect(">", "after the type parameters")
        if self.at("<:"):
            raise self.error("abstract type definitions ('<:') are not supported in stable signatures")
        self.expect("=", f"in the definition of type {name}")
        self.params.append(tuple(params))
        body = self.typ()
        self.params.pop()
        return TypeDef(name, tuple(params), body)

    def stable_fields(self, *, allow_in: bool) -> tuple[StableField, ...]:
        out: list[StableField] = []
        seen: set[str] = set()
        while not self.at("}"):
            t = self.tok
            if self.accept("stable"):
                required = False
            elif allow_in and self.accept("in"):
                required = True
            else:
                want = "'stable' or 'in'" if allow_in else "'stable'"
                raise self.error(f"expected {want} or '}}', found {self.describe(t)}")
            mutable = self.accept("var")
            nt = self.ident("a stable variable name")
            if nt.text in seen:
                raise self.error(f"duplicate stable variable {nt.text}", nt)
            seen.add(nt.text)
            self.expect(":", f"after stable variable {nt.text}")
            out.append(StableField(nt.text, self.typ(), mutable, required))
            if not self.accept(";"):
                break
        return tuple(out)

    # -- types

    def typ(self) -> StableType:
        t = self.typ_nobin()
        if self.at("and") or self.at("or"):
            raise self.error("type intersections and unions ('and'/'or') do not occur in stable signatures")
        return t

    def nested(self) -> None:
        """One level deeper; refuses types nested more than :data:`MAX_TYPE_DEPTH` deep."""
        self.depth += 1
        if self.depth > MAX_TYPE_DEPTH:
            raise self.error(f"type nested more than {MAX_TYPE_DEPTH} levels deep")

    def typ_nobin(self) -> StableType:
        self.nested()
        try:
            return self._typ_nobin()
        finally:
            self.depth -= 1

    def _typ_nobin(self) -> StableType:
        t = self.tok
        sort = self.func_sort()
        if sort is not None or self.at("<"):
            binders = self.binders() if self.at("<") else ()
            self.params.append(binders)
            dom, dom_items = self.typ_un()
            self.expect("->", "in the function type")
            func = self.codomain(sort or "local", dom, dom_items, binders)
            self.params.pop()
            return func
        first, first_items = self.typ_pre()
        if isinstance(first, _AsyncMarker):
            raise self.error("'async' types only occur as function results", t)
        if self.accept("->"):
            if first_items is _NOT_UN:
                raise self.error("a function's parameter type must be parenthesized here", t)
            return self.codomain("local", first, first_items, ())
        return first

    def func_sort(self) -> FuncSort | None:
        if self.accept("shared"):
            if self.accept("composite"):
                self.expect("query", "after 'composite'")
                return "composite"
            return "query" if self.accept("query") else "shared"
        if self.accept("composite"):
            self.expect("query", "after 'composite'")
            return "composite"
        if self.accept("query"):
            return "query"
        return None

    def binders(self) -> tuple[str, ...]:
        self.expect("<")
        names: list[str] = []
        while not self.at(">"):
            names.append(self.ident("a type parameter").text)
            if self.at("<:"):
                raise self.error("type parameter bounds are not supported in stable signatures")
            if not self.accept(","):
                break
        self.expect(">", "after the type parameters")
        return tuple(names)

    def codomain(
        self, sort: FuncSort, dom: StableType, dom_items: object, binders: tuple[str, ...]
    ) -> FuncType:
        """What follows ``->``: ``async T`` (a future), ``()``/a tuple, or any type (local only)."""
        params = dom_items if isinstance(dom_items, tuple) else (dom,)
        t = self.tok
        if self.func_sort_ahead():
            results: tuple[StableType, ...] = (self.typ_nobin(),)
            is_async = False
        else:
            res, res_items = self.typ_pre()
            if isinstance(res, _AsyncMarker):
                return FuncType(sort, params, res.items, True, binders)
            if self.accept("->"):
                if res_items is _NOT_UN:
                    raise self.error("a function's parameter type must be parenthesized here", t)
                results = (self.codomain("local", res, res_items, ()),)
            else:
                results = res_items if isinstance(res_items, tuple) else (res,)
            is_async = False
        if sort != "local" and results:
            raise self.error("a shared function must return '()' or 'async ...'", t)
        return FuncType(sort, params, results, is_async, binders)

    def func_sort_ahead(self) -> bool:
        return self.tok.kind == "kw" and self.tok.text in ("shared", "query", "composite") or self.at("<")

    def typ_pre(self) -> tuple[StableType | _AsyncMarker, object]:
        """``async T``, ``actor {...}`` or a ``typ_un``; the second value is the tuple items when the
        syntax was a tuple ``(A, B)``, ``_NOT_UN`` for async/actor, else None."""
        if self.accept("async"):
            inner, items = self.typ_pre()
            if isinstance(inner, _AsyncMarker):
                raise self.error("nested 'async' types are not stable")
            results = items if isinstance(items, tuple) else (inner,)
            return _AsyncMarker(results), _NOT_UN
        if self.at("actor") or self.at("module") or self.at("object"):
            kw = self.tok
            self.pos += 1
            if kw.text == "module":
                raise self.error("module types are not stable", kw)
            fields, tfs = self.record_fields(kw.text)
            if kw.text == "actor":
                return ActorType(fields, tfs), _NOT_UN
            return RecordType(fields, tfs), _NOT_UN
        return self.typ_un()

    def typ_un(self) -> tuple[StableType, object]:
        if self.at("?") or self.at("weak"):
            wrap: type[OptType] | type[WeakType] = OptType if self.tok.text == "?" else WeakType
            self.pos += 1
            self.nested()
            try:
                inner, _ = self.typ_un()
            finally:
                self.depth -= 1
            return wrap(inner), None
        return self.typ_nullary()

    def typ_nullary(self) -> tuple[StableType, object]:
        t = self.tok
        if self.accept("("):
            items: list[StableType] = []
            trailing = False
            while not self.at(")"):
                items.append(self.typ_item())
                trailing = False
                if not self.accept(","):
                    break
                trailing = True
            self.expect(")", "to close the parenthesized type")
            if len(items) == 1 and not trailing:
                # ``(T)`` is T itself (``(x : T)`` a named one); only ``(T,)`` is a 1-tuple.
                return items[0], None
            tup = tuple(items)
            return TupleType(tup), tup
        if self.accept("["):
            mutable = self.accept("var")
            elem = self.typ()
            self.expect("]", "to close the array type")
            return ArrayType(elem, mutable), None
        if self.at("{"):
            if self.peek().text == "#":
                return VariantType(self.variant_tags()), None
            fields, tfs = self.record_fields("")
            return RecordType(fields, tfs), None
        if t.kind == "id":
            return self.path(), None
        raise self.error(f"expected a type, found {self.describe(t)}")

    def typ_item(self) -> StableType:
        if self.tok.kind == "id" and self.peek().text == ":" and self.peek().kind == "punct":
            name = self.ident("a name").text
            self.expect(":")
            return NamedType(name, self.typ())
        return self.typ()

    def path(self) -> StableType:
        t = self.ident("a type")
        if self.at("."):
            raise self.error("qualified type paths (M.T) do not occur in stable signatures")
        args: list[StableType] = []
        has_args = False
        if self.accept("<"):
            has_args = True
            while not self.at(">"):
                args.append(self.typ())
                if not self.accept(","):
                    break
            self.expect(">", "to close the type arguments")
        name = t.text
        if any(name in ps for ps in self.params):
            if has_args:
                raise self.error(f"type parameter {name} takes no type arguments", t)
            return VarType(name)
        if name in self.def_names:
            con = ConType(name, tuple(args))
            self.con_uses.append((con, t))
            return con
        if has_args:
            raise self.error(f"undefined type {name}", t)
        if name in PRIM_NAMES:
            return Prim(name)
        if name == "Any":
            return ANY
        if name == "None":
            return NONE
        raise self.error(f"undefined type {name}", t)

    def record_fields(self, sort: str) -> tuple[tuple[Field, ...], tuple[TypeDef, ...]]:
        self.expect("{", f"to open the {sort or 'record'} type")
        out: list[Field] = []
        tfs: list[TypeDef] = []
        seen: set[str] = set()
        while not self.at("}"):
            if self.at("type"):
                tfs.append(self.typedef())
                if not self.accept(";"):
                    break
                continue
            mutable = self.accept("var")
            nt = self.ident("a field name")
            if nt.text in seen:
                raise self.error(f"duplicate field {nt.text}", nt)
            seen.add(nt.text)
            if self.at("<") or self.at("("):
                raise self.error("method shorthand types do not occur in stable signatures")
            self.expect(":", f"after field {nt.text}")
            out.append(Field(nt.text, self.typ(), mutable))
            if not self.accept(";"):
                break
        self.expect("}", f"to close the {sort or 'record'} type")
        return tuple(out), tuple(tfs)

    def variant_tags(self) -> tuple[Tag, ...]:
        self.expect("{")
        out: list[Tag] = []
        seen: set[str] = set()
        if self.at("#") and self.peek().text == "}":
            self.pos += 2
            return ()
        while not self.at("}"):
            self.expect("#", "before a variant tag")
            nt = self.ident("a variant tag")
            if nt.text in seen:
                raise self.error(f"duplicate variant tag #{nt.text}", nt)
            seen.add(nt.text)
            typ: StableType = UNIT
            if self.accept(":"):
                typ = self.typ()
            out.append(Tag(nt.text, typ))
            if not self.accept(";"):
                break
        self.expect("}", "to close the variant type")
        return tuple(out)


@dataclass(frozen=True)
class _AsyncMarker:
    """``async T`` while parsing: only valid as a function codomain."""

    items: tuple[StableType, ...]


_NOT_UN = object()  # "this type was not a typ_un" (async or an actor/object type)


def parse_signature(text: str | bytes, *, source: str = "") -> StableSignature:
    """Parse a stable signature as moc writes it: ``.most`` text, or the bytes of the
    ``icp:private motoko:stable-types`` custom section (UTF-8).

    Accepts versions 1.0.0 (``actor { ... }``), 2.0.0/3.0.0 (``actor ({ pre }, { post })``) and
    4.0.0 (a migration chain ``{ "name" : (old : {...}) -> {...}; ... }`` before ``actor { ... }``).
    Raises ``StableTypeError`` (with ``line``/``column``, and ``source`` in the message when given,
    e.g. the file name) for malformed text, undefined type names, wrong numbers of type arguments,
    duplicate names and chain entries that are not functions between records.
    """
    try:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise StableTypeError(f"the stable signature is not UTF-8 (byte {e.start})") from None
        return _Parser(text).signature()
    except RecursionError:
        # The nesting bound keeps real and hostile signatures well within Python's stack; this is
        # the last guard (e.g. a deep chain of type definitions referring to each other).
        raise StableTypeError("stable signature nested too deeply to analyse", source=source) from None
    except StableTypeError as e:
        if not source:
            raise
        raise e.with_source(source) from None


def parse_type(text: str, types: Sequence[TypeDef] = ()) -> StableType:
    """Parse one type, e.g. ``"?[var (Nat, Text)]"``; names may refer to ``types``."""
    p = _Parser(text)
    p.def_names |= {d.name for d in types}
    t = p.typ()
    if p.tok.kind != "eof":
        raise p.error(f"unexpected {p.describe(p.tok)} after the type")
    p.check_cons({d.name: d for d in types})
    return t
