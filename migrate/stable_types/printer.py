"""Printing stable types and signatures as moc does, byte for byte.

Printing re-implements the layout of OCaml's ``Format`` (margin 78) over the same box structure
moc uses, so ``format_signature(parse_signature(t)) == t`` for text the pinned moc wrote.
"""

from __future__ import annotations

from collections.abc import Sequence

from migrate.stable_types.model import (
    UNIT,
    ActorType,
    AnyType,
    ArrayType,
    ConType,
    Field,
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
    VariantType,
    VarType,
    WeakType,
)

__all__ = ["format_signature", "format_type", "quote_text"]

# ---------------------------------------------------------------------------------------------
# Printing: moc lays out signatures with OCaml's Format module (margin 78); a small re-implementation
# of that layout algorithm (boxes, break hints, the scan queue) gives byte-identical text.

_MARGIN = 78
_MAX_INDENT = 68  # margin - min_space_left (10)
_INFINITY = 1_000_000_010


class _Layout:
    """OCaml ``Format`` semantics: ``open_box(kind, indent)`` with kind ``"b"`` (structural),
    ``"hov"``, ``"hv"``, ``"v"``, ``"h"``; ``brk(width, offset)``; ``text``; ``newline``."""

    def __init__(self, margin: int = _MARGIN) -> None:
        self.margin = margin
        self.max_indent = margin - (_MARGIN - _MAX_INDENT)
        self.out: list[str] = []
        self.queue: list[list] = []  # [size, kind, payload, length]
        self.qhead = 0
        self.scan: list[tuple[int, list]] = []
        self.fmt: list[tuple[str, int]] = []  # (box kind, width)
        self.space_left = margin
        self.current_indent = 0
        self.is_new_line = True
        self.left_total = 1
        self.right_total = 1
        self.depth = 1
        sys_tok = [-1, "begin", (0, "hov"), 0]
        self.queue.append(sys_tok)
        self._init_scan()
        self.scan.append((1, sys_tok))

    def _init_scan(self) -> None:
        self.scan = [(-1, [-1, "text", "", 0])]

    def _enqueue(self, tok: list) -> None:
        self.right_total += tok[3]
        self.queue.append(tok)

    def _set_size(self, is_break: bool) -> None:
        if not self.scan:
            return
        left_total, tok = self.scan[-1]
        if left_total < self.left_total:
            self._init_scan()
            return
        if tok[1] == "break" and is_break:
            tok[0] = self.right_total + tok[0]
            self.scan.pop()
        elif tok[1] == "begin" and not is_break:
            tok[0] = self.right_total + tok[0]
            self.scan.pop()

    def _scan_push(self, is_break: bool, tok: list) -> None:
        self._enqueue(tok)
        if is_break:
            self._set_size(True)
        self.scan.append((self.right_total, tok))

    def _advance(self) -> None:
        while self.qhead < len(self.queue):
            size, kind, payload, length = self.queue[self.qhead]
            pending = self.right_total - self.left_total
            if not (size >= 0 or pending >= self.space_left):
                return
            self.qhead += 1
            self._format(size if size >= 0 else _INFINITY, kind, payload)
            self.left_total += length

    def _newline_indent(self, width: int, offset: int) -> None:
        self.out.append("\n")
        self.is_new_line = True
        indent = min(self.max_indent, self.margin - width + offset)
        self.current_indent = indent
        self.space_left = self.margin - indent
        self.out.append(" " * indent)

    def _format(self, size: int, kind: str, payload: object) -> None:
        if kind == "text":
            assert isinstance(payload, str)
            self.space_left -= size
            self.out.append(payload)
            self.is_new_line = False
        elif kind == "begin":
            assert isinstance(payload, tuple)
            off, ty = payload
            if self.margin - self.space_left > self.max_indent:
                self._force_break()
            width = self.space_left - off
            box = ty if ty == "v" or size > self.space_left else "fits"
            self.fmt.append((box, width))
        elif kind == "end":
            if self.fmt:
                self.fmt.pop()
        elif kind == "newline":
            if self.fmt:
                self._newline_indent(self.fmt[-1][1], 0)
            else:
                self.out.append("\n")
        elif kind == "break":
            assert isinstance(payload, tuple)
            fits_w, off = payload
            if not self.fmt:
                return
            box, width = self.fmt[-1]
            if box in ("hv", "v"):
                self._newline_indent(width, off)
            elif box in ("fits", "h"):
                self._same_line(fits_w)
            elif box == "hov":
                if size > self.space_left:
                    self._newline_indent(width, off)
                else:
                    self._same_line(fits_w)
            else:  # "b": structural box
                if self.is_new_line:
                    self._same_line(fits_w)
                elif size > self.space_left or self.current_indent > self.margin - width + off:
                    self._newline_indent(width, off)
                else:
                    self._same_line(fits_w)

    def _same_line(self, width: int) -> None:
        self.space_left -= width
        self.out.append(" " * width)

    def _force_break(self) -> None:
        if not self.fmt:
            self.out.append("\n")
            return
        box, width = self.fmt[-1]
        if width > self.space_left and box not in ("fits", "h"):
            self._newline_indent(width, 0)

    # -- the public operations

    def open(self, kind: str, indent: int = 0) -> None:
        self.depth += 1
        self._scan_push(False, [-self.right_total, "begin", (indent, kind), 0])

    def close(self) -> None:
        if self.depth > 1:
            self._enqueue([0, "end", None, 0])
            self._set_size(True)
            self._set_size(False)
            self.depth -= 1

    def text(self, s: str) -> None:
        # OCaml measures strings in bytes; so does the layout.
        n = len(s.encode("utf-8"))
        self._enqueue([n, "text", s, n])
        self._advance()

    def brk(self, width: int = 1, offset: int = 0) -> None:
        self._scan_push(True, [-self.right_total, "break", (width, offset), width])

    def newline(self) -> None:
        self._enqueue([0, "newline", None, 0])
        self._advance()

    def flush(self) -> str:
        while self.depth > 1:
            self.close()
        self.right_total = _INFINITY
        self._advance()
        return "".join(self.out)


class _Printer:
    """Emits moc's box structure for types and signatures into a ``_Layout``."""

    def __init__(self, lay: _Layout) -> None:
        self.lay = lay

    # small combinators
    def boxed(self, kind: str, indent: int, *parts: object) -> None:
        self.lay.open(kind, indent)
        self.seq(*parts)
        self.lay.close()

    def seq(self, *parts: object) -> None:
        for p in parts:
            if isinstance(p, str):
                self.lay.text(p)
            elif isinstance(p, tuple):
                self.lay.brk(*p)
            else:
                assert callable(p)
                p()

    def sep_list(self, items: Sequence[object], emit: object, sep: str) -> None:
        assert callable(emit)
        for k, item in enumerate(items):
            if k:
                self.lay.text(sep)
                self.lay.brk(1, 0)
            emit(item)

    def block(self, kind: str, opener: str, items: Sequence[object], emit: object) -> None:
        """``opener`` then items separated by ``;`` inside a ``{ }`` box that breaks consistently."""
        self.lay.open(kind, 2)
        self.lay.text(opener)
        self.lay.brk(0, 0)
        self.sep_list(items, emit, ";")
        self.lay.brk(0, -2)
        self.lay.text("}")
        self.lay.close()

    # types, by precedence level (moc: typ', typ_nobin, typ_pre, typ_un, typ_nullary)

    def typ(self, t: StableType) -> None:
        self.nobin(t)

    def nobin(self, t: StableType) -> None:
        if isinstance(t, FuncType):
            self.func(t)
        else:
            self.pre(t)

    def pre(self, t: StableType) -> None:
        if isinstance(t, ActorType):
            self.block("hv", "actor {", (*t.type_fields, *t.methods), self.member)
        else:
            self.un(t)

    def un(self, t: StableType) -> None:
        if isinstance(t, OptType):
            self.boxed("b", 1, "?", lambda: self.un(t.inner))
        elif isinstance(t, WeakType):
            self.boxed("b", 1, "weak ", lambda: self.un(t.inner))
        else:
            self.nullary(t)

    def nullary(self, t: StableType) -> None:
        lay = self.lay
        match t:
            case NamedType(name, inner):
                self.boxed("b", 1, f"({name} : ", lambda: self.typ(inner), ")")
            case TupleType(items):
                lay.open("b", 1)
                lay.text("(")
                self.sep_list(items, self.item, ",")
                lay.text(",)" if len(items) == 1 else ")")
                lay.close()
            case Prim(name):
                lay.text(name)
            case AnyType():
                lay.text("Any")
            case NoneType():
                lay.text("None")
            case VarType(name):
                lay.text(name)
            case ConType(name, ()):
                lay.text(name)
            case ConType(name, args):
                lay.open("b", 0)
                lay.text(name + "<")
                lay.open("b", 1)
                self.sep_list(args, self.typ, ",")
                lay.close()
                lay.text(">")
                lay.close()
            case ArrayType(elem, mutable):
                self.boxed("b", 1, "[var " if mutable else "[", lambda: self.typ(elem), "]")
            case RecordType(fields, tfs):
                self.block("hv", "{", (*tfs, *fields), self.member)
            case VariantType(()):
                lay.text("{#}")
            case VariantType(tags):
                self.block("hv", "{", tags, self.tag)
            case _:
                self.boxed("b", 1, "(", lambda: self.typ(t), ")")

    def item(self, t: StableType) -> None:
        if isinstance(t, NamedType):
            self.boxed("b", 1, f"{t.name} : ", lambda: self.typ(t.inner))
        else:
            self.typ(t)

    def sequence(self, ts: tuple[StableType, ...], emit: object) -> None:
        assert callable(emit)
        if len(ts) == 1 and isinstance(ts[0], TupleType):
            self.boxed("b", 1, "(", lambda: emit(ts[0]), ")")
        else:
            emit(ts[0] if len(ts) == 1 else TupleType(ts))

    def func(self, t: FuncType) -> None:
        lay = self.lay
        lay.open("b", 2)
        lay.text({"local": "", "shared": "shared ", "query": "shared query ",
                  "composite": "shared composite query "}[t.sort])  # fmt: skip
        if t.type_params:
            lay.open("b", 1)
            lay.text("<")
            self.sep_list(t.type_params, lay.text, ",")
            lay.text(">")
            lay.close()
        self.sequence(t.params, self.un)
        lay.text(" ->")
        lay.brk(1, 0)
        if t.is_async:
            self.boxed("b", 2, "async", (1, 0), lambda: self.sequence(t.results, self.pre))
        else:
            self.sequence(t.results, self.nobin)
        lay.close()

    def field(self, f: Field) -> None:
        self.boxed("b", 2, f"{'var ' if f.mutable else ''}{f.name} :", (1, 0), lambda: self.typ(f.typ))

    def member(self, m: Field | TypeDef) -> None:
        if isinstance(m, TypeDef):
            self.typedef(m)
        else:
            self.field(m)

    def tag(self, g: Tag) -> None:
        if g.typ == UNIT:
            self.lay.text(f"#{g.name}")
        else:
            self.boxed("b", 2, f"#{g.name} :", (1, 0), lambda: self.typ(g.typ))

    def typedef(self, d: TypeDef) -> None:
        lay = self.lay
        lay.open("b", 2)
        lay.text(f"type {d.name}")
        if d.params:
            lay.open("b", 1)
            lay.text("<")
            self.sep_list(d.params, lay.text, ",")
            lay.text(">")
            lay.close()
        lay.text(" =")
        lay.brk(1, 0)
        self.typ(d.body)
        lay.close()

    def migration(self, m: Migration) -> None:
        self.boxed("b", 2, f"{quote_text(m.name)} :", (1, 0), lambda: self.typ(m.typ))

    def stable_field(self, f: StableField, in_pre: bool) -> None:
        kw = "in" if in_pre and f.required else "stable"
        var = "var " if f.mutable else ""
        self.boxed("b", 2, f"{kw} {var}{f.name} :", (1, 0), lambda: self.typ(f.typ))

    def braced(self, items: Sequence[object], emit: object, closer: str) -> None:
        """The items of a ``{ ... }`` list of the signature, one per line, then ``closer``."""
        self.lay.brk(0, 0)
        self.sep_list(items, emit, ";")
        self.lay.brk(0, -2)
        self.lay.text(closer)

    def signature(self, sig: StableSignature) -> None:
        lay = self.lay
        lay.open("v", 0)
        lay.open("v", 0)
        self.sep_list(sig.types, self.typedef, ";")
        if sig.types:
            lay.text(";")
            lay.brk(1, 0)
        lay.open("v", 2)

        def post(f: StableField) -> None:
            self.stable_field(f, False)

        if sig.chain is not None:
            # moc: "{ chain }" then "actor " " {" (its actor keyword keeps a trailing space).
            lay.text("{")
            self.braced(sig.chain, self.migration, "}")
            lay.brk(0, -2)
            lay.text("actor  {")
            self.braced(sig.post, post, "}")
        elif sig.pre is None:
            lay.text("actor {")
            self.braced(sig.post, post, "}")
        else:
            lay.text("actor ({")
            self.braced(sig.pre, lambda f: self.stable_field(f, True), "}, {")
            self.braced(sig.post, post, "})")
        lay.close()
        lay.text(";")
        lay.close()
        lay.close()
        lay.newline()


def quote_text(text: str) -> str:
    """``text`` as a Motoko text literal, escaped as moc prints migration names."""
    out = ['"']
    for ch in text:
        c = ord(ch)
        if ch in _QUOTED:
            out.append(_QUOTED[ch])
        elif 0x20 <= c < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\u{{{c:02x}}}")
    out.append('"')
    return "".join(out)


_QUOTED = {"\t": "\\t", "\n": "\\n", '"': '\\"', "'": "\\'", "\\": "\\\\"}


def format_type(t: StableType, *, margin: int = _MARGIN) -> str:
    """Motoko syntax for ``t``, laid out as moc does: lines break at ``margin`` columns (moc's 78;
    pass a huge margin for one line)."""
    lay = _Layout(margin)
    _Printer(lay).typ(t)
    return lay.flush()


def format_signature(sig: StableSignature) -> str:
    """The ``.most`` text of ``sig``: for signatures moc produced, the same bytes moc writes."""
    lay = _Layout()
    _Printer(lay).signature(sig)
    return f"// Version: {sig.version}\n" + lay.flush()
