"""The Wasm binary format at the level graphcopy reads and rewrites it: framing, LEB128, names.

Only the section framing, names and the few constructs graphcopy decodes are covered; function
bodies pass through untouched. No maintained Python library edits modules at this level (the PyPI
parsers are analysis tools), so this reader is written here; LEB128 *encoding* comes from the
``leb128`` package, decoding is inline because every read needs its own bounds and error.
"""

from __future__ import annotations

import zlib

import leb128

from persist.errors import InvalidModuleError

__all__ = [
    "GZIP_MAGIC",
    "WASM_MAGIC",
    "WASM_MAX_SIZE",
    "WasmReader",
    "encode_name",
    "encode_section",
    "leb_u",
    "module_too_large",
    "normalize_wasm",
    "read_limits",
    "skip_const_expr",
    "split_sections",
]

WASM_MAGIC = b"\0asm\x01\0\0\0"
GZIP_MAGIC = b"\x1f\x8b"
#: The largest (uncompressed) canister module the IC accepts: ``WASM_MAX_SIZE`` = 100 MiB
#: (dfinity/ic ``rs/config/src/embedders.rs``; also the size of a canister's Wasm chunk store).
WASM_MAX_SIZE = 100 * 1024 * 1024
# Decompression reads at most this much compressed input, and yields at most this much output, per step.
_INFLATE_STEP = 1 << 20


class WasmReader:
    """A cursor over a byte string with the LEB128 primitives of the Wasm binary format."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise InvalidModuleError("not a valid Wasm module: unexpected end of section")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result
            if shift > 70:
                raise InvalidModuleError("not a valid Wasm module: LEB128 integer too long")

    def s(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                if b & 0x40:
                    result -= 1 << shift
                return result
            if shift > 70:
                raise InvalidModuleError("not a valid Wasm module: LEB128 integer too long")

    def bytes_(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise InvalidModuleError("not a valid Wasm module: unexpected end of section")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(out)

    def name(self) -> str:
        raw = self.bytes_(self.u())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidModuleError("not a valid Wasm module: a name is not UTF-8") from exc


def leb_u(value: int) -> bytes:
    """Unsigned LEB128 encoding (the `leb128` package)."""
    return bytes(leb128.u.encode(value))


def encode_name(text: str) -> bytes:
    """A Wasm name: its UTF-8 length, then the bytes."""
    raw = text.encode("utf-8")
    return leb_u(len(raw)) + raw


def encode_section(section_id: int, body: bytes) -> bytes:
    """A section: id, payload length, payload."""
    return bytes([section_id]) + leb_u(len(body)) + body


def normalize_wasm(data: bytes, *, max_size: int = WASM_MAX_SIZE) -> bytes:
    """Accept gzip-compressed modules as the IC does; check the size and the Wasm header.

    As the replica (``decode_wasm`` in dfinity/ic ``rs/embedders/src/wasm_utils/decoding.rs``), the
    size the gzip footer announces is checked against ``max_size`` before anything is inflated, and
    the stream is inflated step by step and abandoned as soon as it passes that size, so a gzip
    bomb costs neither time nor memory.
    """
    if data[:2] == GZIP_MAGIC:
        data = _gunzip(data, max_size)
    elif len(data) > max_size:
        raise InvalidModuleError(module_too_large(len(data), max_size))
    if data[:4] != WASM_MAGIC[:4]:
        raise InvalidModuleError("not a Wasm module: the file does not start with the Wasm magic bytes")
    if data[:8] != WASM_MAGIC:
        raise InvalidModuleError("unsupported Wasm binary version (only version 1 is supported)")
    return data


def module_too_large(size: int, allowed: int) -> str:
    """The replica's ``WasmValidationError::ModuleTooLarge`` text, with the rule's name."""
    return (f"invalid canister module (the IC's WASM_MAX_SIZE): Wasm module size of {size} exceeds the "
            f"maximum allowed size of {allowed}.")


def _gunzip(data: bytes, max_size: int) -> bytes:
    """Inflate a gzip stream, in bounded steps, never past the size its footer announces (which
    must be at most ``max_size``): as the replica, a stream that holds more is refused, not read."""
    if len(data) < 18:
        raise InvalidModuleError("not a valid Wasm module: the gzip stream is too short")
    announced = int.from_bytes(data[-4:], "little")
    if announced > max_size:
        raise InvalidModuleError(module_too_large(announced, max_size))
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    pos = 0
    try:
        while not inflater.eof and len(out) <= announced:
            if inflater.unconsumed_tail:
                chunk = inflater.unconsumed_tail
            elif pos < len(data):
                chunk, pos = data[pos:pos + _INFLATE_STEP], pos + _INFLATE_STEP
            else:
                raise InvalidModuleError("not a valid Wasm module: the gzip stream ends early")
            out += inflater.decompress(chunk, min(_INFLATE_STEP, announced + 1 - len(out)))
    except zlib.error as exc:
        raise InvalidModuleError(f"not a valid Wasm module: corrupt gzip data ({exc})") from exc
    if len(out) != announced:
        more = "more than " if len(out) > announced else ""
        raise InvalidModuleError(f"not a valid Wasm module: the gzip footer announces {announced} bytes, "
                                 f"the stream holds {more}{len(out) if not more else announced}")
    return bytes(out)


def split_sections(data: bytes) -> list[tuple[int, int, int]]:
    """(section id, payload start, payload end) for every section, in order."""
    out = []
    pos = 8
    while pos < len(data):
        r = WasmReader(data, pos)
        sid = r.byte()
        size = r.u()
        start = r.pos
        end = start + size
        if end > len(data):
            raise InvalidModuleError("not a valid Wasm module: a section runs past the end of the file")
        out.append((sid, start, end))
        pos = end
    return out


def read_limits(r: WasmReader) -> tuple[int, int, int | None]:
    """Memory or table limits: (flags, minimum, maximum or None)."""
    flags = r.byte()
    minimum = r.u()
    maximum = r.u() if flags & 1 else None
    return flags, minimum, maximum


def skip_const_expr(r: WasmReader) -> None:
    """Skip a constant expression (global initialisers), up to and including ``end``."""
    while True:
        op = r.byte()
        if op == 0x0B:
            return
        if op in (0x41, 0x42):
            r.s()
        elif op == 0x43:
            r.bytes_(4)
        elif op == 0x44:
            r.bytes_(8)
        elif op in (0x23, 0xD2):
            r.u()
        elif op == 0xD0:
            r.byte()
        elif op == 0xFD:  # v128.const
            r.u()
            r.bytes_(16)
        elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):  # extended-const arithmetic
            continue
        else:
            raise InvalidModuleError(f"not a valid Wasm module: unsupported constant expression opcode 0x{op:02x}")


