"""Erlang External Term Format: the subset the distribution client sends and receives.

Python forms of Erlang terms:

| Erlang | Python |
| --- | --- |
| atom | `Atom` (a `str` subclass, so `Atom("rex") == "rex"`) |
| integer | `int` |
| float | `float` (finite only: Erlang has no NaN or infinity) |
| binary | `bytes`; a bitstring whose last byte is partial is a `BitString` |
| tuple | `tuple` |
| proper list | `list`; STRING_EXT (Erlang's compact form of a list of bytes) decodes to a |
|             | `list[int]` too, because that is what the Erlang side holds |
| improper list | `ImproperList(items, tail)` |
| map | `dict` (keys must be hashable in Python: a list key is a decode error) |
| pid, reference, port | `Pid`, `Reference`, `Port` |

`encode` also accepts `bool` (the atoms true/false) and `bytearray`; a plain `str` is
refused, because Erlang has no single meaning for it (atom, list or binary).

Decoding trusts nothing: every length field is checked against the bytes that remain before
anything is allocated, nesting is capped, and any malformed input raises `TermDecodeError`
(a ValueError), never another exception. Encoding is byte-for-byte what
`term_to_binary(T, [{minor_version, 2}])` produces for the same term (maps aside: Erlang
orders map keys its own way).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import TypeAlias

VERSION = 131
MAX_DEPTH = 100
MAX_ATOM_CHARS = 255
MAX_REF_IDS = 5

NEW_FLOAT_EXT = 70
BIT_BINARY_EXT = 77
COMPRESSED = 80
NEW_PID_EXT = 88
NEW_PORT_EXT = 89
NEWER_REFERENCE_EXT = 90
SMALL_INTEGER_EXT = 97
INTEGER_EXT = 98
FLOAT_EXT = 99
ATOM_EXT = 100
PORT_EXT = 102
PID_EXT = 103
SMALL_TUPLE_EXT = 104
LARGE_TUPLE_EXT = 105
NIL_EXT = 106
STRING_EXT = 107
LIST_EXT = 108
BINARY_EXT = 109
SMALL_BIG_EXT = 110
LARGE_BIG_EXT = 111
NEW_REFERENCE_EXT = 114
SMALL_ATOM_EXT = 115
MAP_EXT = 116
ATOM_UTF8_EXT = 118
SMALL_ATOM_UTF8_EXT = 119
V4_PORT_EXT = 120

_ATOM_TAGS = frozenset({ATOM_EXT, SMALL_ATOM_EXT, ATOM_UTF8_EXT, SMALL_ATOM_UTF8_EXT})
# FLOAT_EXT is the pre-R11 text form "%.20e" padded with NULs to 31 bytes.
_OLD_FLOAT_RE = re.compile(rb"[-+]?[0-9]+\.[0-9]+e[-+]?[0-9]+")
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


class TermDecodeError(ValueError):
    """The bytes are not a valid term (or use a form this codec does not accept)."""


class TermEncodeError(ValueError):
    """The Python value has no Erlang term form here."""


class Atom(str):
    """An Erlang atom. Compares equal to the plain string of the same text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class ImproperList:
    """`[items... | tail]` where tail is not a list; `items` is never empty."""

    items: tuple[Term, ...]
    tail: Term

    def __post_init__(self) -> None:
        if not self.items:
            raise TermEncodeError("an improper list needs at least one item")
        if isinstance(self.tail, list | ImproperList):
            raise TermEncodeError("an improper list's tail must not be a list")


@dataclass(frozen=True, slots=True)
class BitString:
    """A bitstring whose last byte holds only `bits` (1..8) significant high bits."""

    data: bytes
    bits: int

    def __post_init__(self) -> None:
        if not self.data or not 1 <= self.bits <= 8:
            raise TermEncodeError("a bitstring needs data and 1..8 bits in its last byte")


@dataclass(frozen=True, slots=True)
class Pid:
    node: Atom
    id: int
    serial: int
    creation: int


@dataclass(frozen=True, slots=True)
class Reference:
    node: Atom
    creation: int
    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Port:
    node: Atom
    id: int
    creation: int


Term: TypeAlias = (
    "Atom | bool | int | float | bytes | BitString | tuple[Term, ...] | list[Term] "
    "| ImproperList | dict[Term, Term] | Pid | Reference | Port"
)


def decode(data: bytes) -> Term:
    """One whole term as `term_to_binary` writes it (version byte first, nothing after)."""
    term, end = decode_from(data, 0)
    if end != len(data):
        raise TermDecodeError(f"{len(data) - end} bytes after the term")
    return term


def decode_from(data: bytes, offset: int) -> tuple[Term, int]:
    """The versioned term starting at `offset`, and the offset just after it.

    A distribution frame carries two of them back to back (control message, then payload).
    """
    decoder = _Decoder(bytes(data), offset)
    if decoder.u8() != VERSION:
        raise TermDecodeError("not an external term: version byte is not 131")
    term = decoder.term(0)
    return term, decoder.pos


class _Decoder:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        if not 0 <= pos <= len(data):
            raise TermDecodeError("offset outside the data")
        self.data = data
        self.pos = pos

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise TermDecodeError(
                f"truncated: need {count} bytes at offset {self.pos}, "
                f"have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def require(self, count: int, what: str) -> None:
        """Refuse a length field that claims more than the input can hold."""
        if count > self.remaining():
            raise TermDecodeError(
                f"{what} of {count} at offset {self.pos} exceeds the {self.remaining()} "
                "bytes left"
            )

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def term(self, depth: int) -> Term:
        if depth > MAX_DEPTH:
            raise TermDecodeError(f"nested deeper than {MAX_DEPTH}")
        tag = self.u8()
        if tag == SMALL_INTEGER_EXT:
            return self.u8()
        if tag == INTEGER_EXT:
            value: int = struct.unpack(">i", self.take(4))[0]
            return value
        if tag in _ATOM_TAGS:
            return self.atom_body(tag)
        if tag == SMALL_TUPLE_EXT:
            return self.elements(self.u8(), depth)
        if tag == LARGE_TUPLE_EXT:
            return self.elements(self.u32(), depth)
        if tag == NIL_EXT:
            return []
        if tag == STRING_EXT:
            size = self.u16()
            self.require(size, "string length")
            return list(self.take(size))
        if tag == LIST_EXT:
            return self.list_body(depth)
        if tag == BINARY_EXT:
            size = self.u32()
            self.require(size, "binary length")
            return self.take(size)
        if tag == BIT_BINARY_EXT:
            return self.bit_binary()
        if tag == SMALL_BIG_EXT:
            return self.big(self.u8())
        if tag == LARGE_BIG_EXT:
            return self.big(self.u32())
        if tag == NEW_FLOAT_EXT:
            return _finite(struct.unpack(">d", self.take(8))[0])
        if tag == FLOAT_EXT:
            return self.old_float()
        if tag == MAP_EXT:
            return self.map_body(depth)
        if tag == NEW_PID_EXT:
            return Pid(self.atom(), self.u32(), self.u32(), self.u32())
        if tag == PID_EXT:
            return Pid(self.atom(), self.u32(), self.u32(), self.u8())
        if tag == NEW_PORT_EXT:
            return Port(self.atom(), self.u32(), self.u32())
        if tag == V4_PORT_EXT:
            node = self.atom()
            port_id: int = struct.unpack(">Q", self.take(8))[0]
            return Port(node, port_id, self.u32())
        if tag == PORT_EXT:
            return Port(self.atom(), self.u32(), self.u8())
        if tag in (NEWER_REFERENCE_EXT, NEW_REFERENCE_EXT):
            return self.reference(tag)
        if tag == COMPRESSED:
            raise TermDecodeError("compressed terms are not accepted")
        raise TermDecodeError(f"unsupported term tag {tag} at offset {self.pos - 1}")

    def elements(self, arity: int, depth: int) -> tuple[Term, ...]:
        self.require(arity, "tuple arity")
        return tuple(self.term(depth + 1) for _ in range(arity))

    def list_body(self, depth: int) -> list[Term] | ImproperList:
        size = self.u32()
        # Each element and the tail take at least one byte.
        self.require(size + 1, "list length")
        items = [self.term(depth + 1) for _ in range(size)]
        tail = self.term(depth + 1)
        if isinstance(tail, list):
            return items + tail
        if isinstance(tail, ImproperList):
            return ImproperList((*items, *tail.items), tail.tail)
        if not items:
            raise TermDecodeError("improper list with no items")
        return ImproperList(tuple(items), tail)

    def map_body(self, depth: int) -> dict[Term, Term]:
        arity = self.u32()
        self.require(2 * arity, "map arity")
        result: dict[Term, Term] = {}
        for _ in range(arity):
            key = self.term(depth + 1)
            value = self.term(depth + 1)
            try:
                if key in result:
                    raise TermDecodeError("duplicate map key")
                result[key] = value
            except TypeError:
                raise TermDecodeError(
                    f"map key of type {type(key).__name__} cannot be a Python dict key"
                ) from None
        return result

    def big(self, size: int) -> int:
        sign = self.u8()
        if sign > 1:
            raise TermDecodeError(f"bad bignum sign byte {sign}")
        self.require(size, "bignum length")
        magnitude = int.from_bytes(self.take(size), "little")
        return -magnitude if sign else magnitude

    def bit_binary(self) -> BitString:
        size = self.u32()
        bits = self.u8()
        self.require(size, "bitstring length")
        data = self.take(size)
        if not data or not 1 <= bits <= 8:
            raise TermDecodeError("bitstring with no data or a bad bit count")
        return BitString(data, bits)

    def old_float(self) -> float:
        text = self.take(31).rstrip(b"\0")
        if _OLD_FLOAT_RE.fullmatch(text) is None:
            raise TermDecodeError("malformed FLOAT_EXT text")
        return _finite(float(text))

    def atom(self) -> Atom:
        tag = self.u8()
        if tag not in _ATOM_TAGS:
            raise TermDecodeError(f"expected an atom, got tag {tag} at offset {self.pos - 1}")
        return self.atom_body(tag)

    def atom_body(self, tag: int) -> Atom:
        size = self.u8() if tag in (SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT) else self.u16()
        self.require(size, "atom length")
        raw = self.take(size)
        if tag in (ATOM_EXT, SMALL_ATOM_EXT):
            text = raw.decode("latin-1")
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise TermDecodeError("atom is not valid UTF-8") from None
        if len(text) > MAX_ATOM_CHARS:
            raise TermDecodeError(f"atom longer than {MAX_ATOM_CHARS} characters")
        return Atom(text)

    def reference(self, tag: int) -> Reference:
        count = self.u16()
        if not 1 <= count <= MAX_REF_IDS:
            raise TermDecodeError(f"reference with {count} id words")
        node = self.atom()
        creation = self.u32() if tag == NEWER_REFERENCE_EXT else self.u8()
        ids = struct.unpack(f">{count}I", self.take(4 * count))
        return Reference(node, creation, tuple(ids))


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise TermDecodeError("float is not finite")
    return value


def encode(term: Term) -> bytes:
    """`term` in external format, version byte first."""
    out = bytearray([VERSION])
    _encode(term, out, 0)
    return bytes(out)


def _encode(term: Term, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TermEncodeError(f"nested deeper than {MAX_DEPTH}")
    # bool before int (bool is an int), Atom before any str check.
    if isinstance(term, bool):
        _encode_atom(Atom("true" if term else "false"), out)
    elif isinstance(term, Atom):
        _encode_atom(term, out)
    elif isinstance(term, int):
        _encode_int(term, out)
    elif isinstance(term, float):
        if not math.isfinite(term):
            raise TermEncodeError("Erlang floats are finite")
        out += struct.pack(">Bd", NEW_FLOAT_EXT, term)
    elif isinstance(term, bytes | bytearray):
        out += struct.pack(">BI", BINARY_EXT, _u32(len(term), "binary size"))
        out += term
    elif isinstance(term, BitString):
        out += struct.pack(">BIB", BIT_BINARY_EXT, _u32(len(term.data), "bitstring size"),
                           term.bits)
        out += term.data
    elif isinstance(term, tuple):
        if len(term) <= 255:
            out += struct.pack(">BB", SMALL_TUPLE_EXT, len(term))
        else:
            out += struct.pack(">BI", LARGE_TUPLE_EXT, _u32(len(term), "tuple arity"))
        for item in term:
            _encode(item, out, depth + 1)
    elif isinstance(term, list):
        _encode_list(term, out, depth)
    elif isinstance(term, ImproperList):
        out += struct.pack(">BI", LIST_EXT, _u32(len(term.items), "list length"))
        for item in term.items:
            _encode(item, out, depth + 1)
        _encode(term.tail, out, depth + 1)
    elif isinstance(term, dict):
        out += struct.pack(">BI", MAP_EXT, _u32(len(term), "map size"))
        for key, value in term.items():
            _encode(key, out, depth + 1)
            _encode(value, out, depth + 1)
    elif isinstance(term, Pid):
        out.append(NEW_PID_EXT)
        _encode_atom(term.node, out)
        out += struct.pack(">III", _u32(term.id, "pid id"), _u32(term.serial, "pid serial"),
                           _u32(term.creation, "pid creation"))
    elif isinstance(term, Reference):
        if not 1 <= len(term.ids) <= MAX_REF_IDS:
            raise TermEncodeError(f"a reference has 1..{MAX_REF_IDS} id words")
        out += struct.pack(">BH", NEWER_REFERENCE_EXT, len(term.ids))
        _encode_atom(term.node, out)
        out += struct.pack(">I", _u32(term.creation, "reference creation"))
        for word in term.ids:
            out += struct.pack(">I", _u32(word, "reference id"))
    elif isinstance(term, Port):
        _encode_port(term, out)
    else:
        raise TermEncodeError(
            f"no Erlang form for {type(term).__name__}"
            + (": use Atom or bytes" if isinstance(term, str) else "")
        )


def _u32(value: int, what: str) -> int:
    if not 0 <= value <= _U32:
        raise TermEncodeError(f"{what} {value} does not fit 32 bits")
    return value


def _encode_atom(atom: str, out: bytearray) -> None:
    if len(atom) > MAX_ATOM_CHARS:
        raise TermEncodeError(f"atom longer than {MAX_ATOM_CHARS} characters")
    raw = atom.encode("utf-8")
    if len(raw) <= 255:
        out += struct.pack(">BB", SMALL_ATOM_UTF8_EXT, len(raw))
    else:
        out += struct.pack(">BH", ATOM_UTF8_EXT, len(raw))
    out += raw


def _encode_int(value: int, out: bytearray) -> None:
    if 0 <= value <= 255:
        out += struct.pack(">BB", SMALL_INTEGER_EXT, value)
    elif -(2**31) <= value < 2**31:
        out += struct.pack(">Bi", INTEGER_EXT, value)
    else:
        magnitude = abs(value)
        digits = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
        if len(digits) <= 255:
            out += struct.pack(">BB", SMALL_BIG_EXT, len(digits))
        else:
            out += struct.pack(">BI", LARGE_BIG_EXT, _u32(len(digits), "bignum size"))
        out.append(1 if value < 0 else 0)
        out += digits


def _encode_list(items: list[Term], out: bytearray, depth: int) -> None:
    if not items:
        out.append(NIL_EXT)
        return
    # Erlang writes a list of small integers as STRING_EXT; matching it keeps bytes identical.
    if len(items) <= 0xFFFF:
        codes = [item for item in items if type(item) is int and 0 <= item <= 255]
        if len(codes) == len(items):
            out += struct.pack(">BH", STRING_EXT, len(codes))
            out += bytes(codes)
            return
    out += struct.pack(">BI", LIST_EXT, _u32(len(items), "list length"))
    for item in items:
        _encode(item, out, depth + 1)
    out.append(NIL_EXT)


def _encode_port(port: Port, out: bytearray) -> None:
    if 0 <= port.id <= _U32:
        out.append(NEW_PORT_EXT)
        _encode_atom(port.node, out)
        out += struct.pack(">II", port.id, _u32(port.creation, "port creation"))
    elif 0 <= port.id <= _U64:
        out.append(V4_PORT_EXT)
        _encode_atom(port.node, out)
        out += struct.pack(">QI", port.id, _u32(port.creation, "port creation"))
    else:
        raise TermEncodeError(f"port id {port.id} does not fit 64 bits")


_PLAIN_ATOM = re.compile(r"[a-z][A-Za-z0-9_@]*")


def format_term(term: Term, limit: int = 200) -> str:
    """`term` in Erlang syntax, cut at `limit` characters: for error texts and logs."""
    text = _format(term, 0)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format(term: Term, depth: int) -> str:
    if depth > 20:
        return "..."
    if isinstance(term, bool):
        return "true" if term else "false"
    if isinstance(term, Atom):
        if _PLAIN_ATOM.fullmatch(term):
            return str(term)
        return "'" + term.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(term, int | float):
        return repr(term)
    if isinstance(term, bytes | bytearray):
        if all(32 <= b < 127 and b not in (34, 92) for b in term):
            return '<<"' + term.decode("ascii") + '">>'
        return "<<" + ",".join(str(b) for b in term) + ">>"
    if isinstance(term, BitString):
        return f"<<{','.join(str(b) for b in term.data[:-1])}{',' if len(term.data) > 1 else ''}" \
               f"{term.data[-1] >> (8 - term.bits)}:{term.bits}>>"
    if isinstance(term, tuple):
        return "{" + ",".join(_format(item, depth + 1) for item in term) + "}"
    if isinstance(term, list):
        return "[" + ",".join(_format(item, depth + 1) for item in term) + "]"
    if isinstance(term, ImproperList):
        items = ",".join(_format(item, depth + 1) for item in term.items)
        return f"[{items}|{_format(term.tail, depth + 1)}]"
    if isinstance(term, dict):
        pairs = (f"{_format(k, depth + 1)} => {_format(v, depth + 1)}" for k, v in term.items())
        return "#{" + ",".join(pairs) + "}"
    if isinstance(term, Pid):
        return f"<{term.node}.{term.id}.{term.serial}>"
    if isinstance(term, Port):
        return f"#Port<{term.node}.{term.id}>"
    return f"#Ref<{term.node}." + ".".join(str(i) for i in term.ids) + ">"
