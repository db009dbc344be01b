"""Tokenizer of Candid text (values and types), following ``candid_parser``'s ``token.rs``; and
:func:`text_literals`, the string literals of any Candid text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persist.errors import CandidError

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_ID_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_ID_CHARS = _ID_START | _DIGITS
_SIMPLE_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'"}
# Words the candid_parser lexer turns into keyword tokens (they cannot be unquoted labels).
LEX_KEYWORDS = frozenset(
    "null vec record variant func service oneway query composite_query blob type import opt "
    "principal true false".split()
)


@dataclass
class Tok:
    """One token of Candid text: its kind, its value, where it starts and its raw text."""

    kind: str  # "id", "text", "num", "float", "sign", "eof", or the punctuation itself
    value: Any
    pos: int
    raw: str


def syntax_error(msg: str, pos: int | None) -> CandidError:
    """A :class:`CandidError` for bad Candid text, with the (1-based) position when known."""
    where = "" if pos is None else f" at position {pos + 1}"
    return CandidError(f"bad Candid text: {msg}{where}")


def tokenize(src: str) -> list[Tok]:
    """Split Candid text into tokens, ending with an ``eof`` token (whitespace and comments dropped)."""
    toks: list[Tok] = []
    i, n = 0, len(src)
    while True:
        while i < n:  # whitespace and comments
            if src[i] in " \t\r\n":
                i += 1
                continue
            j = _after_comment(src, i)
            if j == i:
                break
            i = j
        if i >= n:
            toks.append(Tok("eof", None, n, ""))
            return toks
        c, start = src[i], i
        if src.startswith("->", i):
            toks.append(Tok("->", None, i, "->"))
            i += 2
        elif c == "." and i + 1 < n and src[i + 1] in _DIGITS:
            i = _lex_number(src, i, toks)
        elif c in "(){};,.:=":
            toks.append(Tok(c, None, i, c))
            i += 1
        elif c in "+-":
            toks.append(Tok("sign", c, i, c))
            i += 1
        elif c in _DIGITS:
            i = _lex_number(src, i, toks)
        elif c == '"':
            i = _lex_text(src, i, toks)
        elif c in _ID_START:
            j = i + 1
            while j < n and src[j] in _ID_CHARS:
                j += 1
            toks.append(Tok("id", src[i:j], start, src[i:j]))
            i = j
        else:
            raise syntax_error(f"unexpected character {c!r}", i)


def _lex_number(src: str, i: int, toks: list[Tok]) -> int:
    n, start = len(src), i
    if src.startswith(("0x", "0X"), i) and i + 2 < n and src[i + 2] in _HEX:
        j = i + 2
        while j < n and (src[j] in _HEX or src[j] == "_"):
            j += 1
        raw = src[i:j]
        tok = Tok("num", int(raw[2:].replace("_", ""), 16), start, raw)
    else:
        j = i
        while j < n and (src[j] in _DIGITS or src[j] == "_"):
            j += 1
        is_float = False
        if j < n and src[j] == ".":
            is_float = True
            j += 1
            while j < n and (src[j] in _DIGITS or src[j] == "_"):
                j += 1
        if j < n and src[j] in "eE":
            k = j + 1
            if k < n and src[k] in "+-":
                k += 1
            if k < n and src[k] in _DIGITS:
                while k < n and src[k] in _DIGITS:
                    k += 1
                is_float, j = True, k
        raw = src[i:j]
        if is_float:
            tok = Tok("float", float(raw.replace("_", "")), start, raw)
        else:
            tok = Tok("num", int(raw.replace("_", "")), start, raw)
    if j < n and src[j] in _ID_CHARS:
        k = j
        while k < n and src[k] in _ID_CHARS:
            k += 1
        raise syntax_error(f"invalid number {src[start:k]!r}", start)
    toks.append(tok)
    return j


def _after_comment(src: str, i: int) -> int:
    """Where the comment that starts at ``i`` ends (``i`` itself when none starts there); block
    comments nest."""
    if src.startswith("//", i):
        j = src.find("\n", i)
        return len(src) if j < 0 else j + 1
    if not src.startswith("/*", i):
        return i
    depth, j, n = 1, i + 2, len(src)
    while depth and j < n:
        if src.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif src.startswith("*/", j):
            depth, j = depth - 1, j + 2
        else:
            j += 1
    if depth:
        raise syntax_error("unclosed comment", i)
    return j


def text_literals(src: str) -> list[tuple[int, bytes]]:
    """The string literals of Candid text (``.did`` or values) as ``(position, bytes)``, comments
    skipped, everything else ignored. CandidError for a literal that does not lex."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(src)
    while i < n:
        j = _after_comment(src, i)
        if j != i:
            i = j
        elif src[i] == '"':
            toks: list[Tok] = []
            end = _lex_text(src, i, toks)
            out.append((i, toks[0].value))
            i = end
        else:
            i += 1
    return out


def _lex_text(src: str, i: int, toks: list[Tok]) -> int:
    n, start = len(src), i
    buf = bytearray()
    j = i + 1
    while True:
        if j >= n:
            raise syntax_error("unclosed string (missing '\"')", start)
        c = src[j]
        if c == '"':
            j += 1
            break
        if c == "\\":
            d = src[j + 1] if j + 1 < n else ""
            if d in _HEX and d and j + 2 < n and src[j + 2] in _HEX:
                buf.append(int(src[j + 1 : j + 3], 16))
                j += 3
            elif d == "u" and src.startswith("{", j + 2):
                k = src.find("}", j + 3)
                digits = src[j + 3 : k].replace("_", "") if k > 0 else ""
                if not digits or any(ch not in _HEX for ch in digits):
                    raise syntax_error("bad unicode escape (expected \\u{hex})", j)
                cp = int(digits, 16)
                if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                    raise syntax_error(f"unicode escape \\u{{{digits}}} is not a character", j)
                buf += chr(cp).encode("utf-8")
                j = k + 1
            elif d in _SIMPLE_ESCAPES:
                buf += _SIMPLE_ESCAPES[d]
                j += 2
            else:
                shown = d or "end of input"
                raise syntax_error(f"unknown escape \\{shown} in string", j)
        else:
            k = j
            while k < n and src[k] not in '"\\':
                k += 1
            try:
                buf += src[j:k].encode("utf-8")
            except UnicodeEncodeError:
                raise syntax_error("string holds characters that are not valid Unicode", j) from None
            j = k
    toks.append(Tok("text", bytes(buf), start, src[start:j]))
    return j
