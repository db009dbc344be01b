"""How Candid text spells single names and literals, as the ``candid`` crate prints them.

Identifiers (quoted when they are keywords or not plain), field labels, digit-grouped numbers and escaped
text. Shared by the type printer, the value printer and error messages.
"""

from __future__ import annotations

import re
import unicodedata

# candid/src/pretty/candid.rs: KEYWORDS, is_valid_as_id, ident_string
_KEYWORDS = frozenset(
    "import service func type opt vec record variant blob principal nat nat8 nat16 nat32 nat64 int "
    "int8 int16 int32 int64 float32 float64 bool text null reserved empty oneway query "
    "composite_query".split()
)
ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def ident(name: str) -> str:
    """An identifier as Candid text: as it is when plain, else quoted and escaped."""
    if ID_RE.match(name) and name not in _KEYWORDS:
        return name
    return '"' + escape_text(name, debug=False) + '"'


def pp_num(digits: str) -> str:
    """candid utils.rs ``pp_num_str``: group decimal digits by three with ``_``."""
    sign = "-" if digits.startswith("-") else ""
    body = digits[len(sign) :]
    groups = []
    while len(body) > 3:
        groups.append(body[-3:])
        body = body[:-3]
    groups.append(body)
    return sign + "_".join(reversed(groups))


def fmt_label(label: str | int) -> str:
    """A field label as Candid text: a number grouped with :func:`pp_num`, a name via :func:`ident`."""
    return pp_num(str(label)) if isinstance(label, int) else ident(label)


def _is_grapheme_extend(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me")


def escape_text(s: str, *, debug: bool) -> str:
    """Rust's ``str::escape_debug`` (``debug=False``) or ``{:?}`` of a str (``debug=True``).

    One deliberate difference: NUL is written ``\\00`` (Rust writes ``\\0``, which the Candid
    parser rejects), so printed text always parses back.
    """
    out = []
    for i, ch in enumerate(s):
        if ch == "\0":
            out.append("\\00")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "'" and not debug:
            out.append("\\'")
        elif ((debug or i == 0) and _is_grapheme_extend(ch)) or not ch.isprintable():
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)
