"""External Term Format codec: round trips, exact bytes, and hostile input."""

from __future__ import annotations

import contextlib
import math
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mongooseim_agent.erlang import etf
from mongooseim_agent.erlang.etf import (
    Atom,
    BitString,
    ImproperList,
    Pid,
    Port,
    Reference,
    TermDecodeError,
    TermEncodeError,
    decode,
    decode_from,
    encode,
    format_term,
)


def same(a: object, b: object) -> bool:
    """Equal with the same types all the way down (Atom("a") == "a" is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    if isinstance(a, ImproperList):
        assert isinstance(b, ImproperList)
        return same(a.items, b.items) and same(a.tail, b.tail)
    if isinstance(a, float):
        assert isinstance(b, float)
        return struct.pack(">d", a) == struct.pack(">d", b)
    return a == b


atoms = st.text(max_size=40).map(Atom) | st.sampled_from(["ok", "rex", "", "a@b"]).map(Atom)
node_atoms = st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}", fullmatch=True).map(Atom)
u32 = st.integers(0, 2**32 - 1)
scalars = (
    atoms
    | st.integers(-(2**70), 2**70)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=40)
    | st.builds(BitString, st.binary(min_size=1, max_size=8), st.integers(1, 8))
    | st.builds(Pid, node_atoms, u32, u32, u32)
    | st.builds(Reference, node_atoms, u32, st.lists(u32, min_size=1, max_size=5).map(tuple))
    | st.builds(Port, node_atoms, st.integers(0, 2**64 - 1), u32)
)
hashable = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4).map(tuple),
                        max_leaves=8)


def _improper(args: tuple[list[object], object]) -> ImproperList:
    items, tail = args
    return ImproperList(tuple(items), tail)  # type: ignore[arg-type]


terms = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(hashable, inner, max_size=4)
        | st.tuples(st.lists(inner, min_size=1, max_size=4), scalars).map(_improper)
    ),
    max_leaves=20,
)


@given(terms)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(term: etf.Term) -> None:
    """Every representable term decodes back to itself, types included."""
    assert same(decode(encode(term)), term)


@given(st.binary(max_size=200))
@settings(max_examples=1000)
def test_arbitrary_bytes_give_value_error_or_a_term(data: bytes) -> None:
    """Any bytes: a term or TermDecodeError, never another exception."""
    for candidate in (data, b"\x83" + data):
        with contextlib.suppress(TermDecodeError):
            decode(candidate)


@given(terms, st.data())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_encodings_give_value_error_or_a_term(term: etf.Term, data: st.DataObject) -> None:
    """Valid encodings cut short or with flipped bytes never crash the decoder."""
    raw = bytearray(encode(term))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(TermDecodeError):
        decode(bytes(raw[:cut]))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(TermDecodeError):
        decode(bytes(raw))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x83l\xff\xff\xff\xffj", "list length"),
        (b"\x83i\xff\xff\xff\xff", "tuple arity"),
        (b"\x83t\xff\xff\xff\xff", "map arity"),
        (b"\x83m\xff\xff\xff\xff" + b"x" * 10, "binary length"),
        (b"\x83o\xff\xff\xff\xff\x00", "bignum length"),
        (b"\x83k\xff\xff", "string length"),
        (b"\x83v\xff\xff", "atom length"),
        (b"\x83M\xff\xff\xff\xff\x03", "bitstring length"),
    ],
)
def test_length_fields_are_checked_before_allocating(data: bytes, why: str) -> None:
    """A 4 GiB length in a 10-byte input fails at once, naming the field."""
    start = time.perf_counter()
    with pytest.raises(TermDecodeError, match=why):
        decode(data)
    assert time.perf_counter() - start < 0.05


def test_nesting_is_capped() -> None:
    """A deep nest of 1-tuples is refused, not a RecursionError."""
    deep = b"\x83" + b"h\x01" * 10_000 + b"j"
    with pytest.raises(TermDecodeError, match="nested deeper"):
        decode(deep)
    with pytest.raises(TermEncodeError, match="nested deeper"):
        nested: etf.Term = []
        for _ in range(etf.MAX_DEPTH + 5):
            nested = (nested,)
        encode(nested)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"\x82a\x01", "version byte"),
        (b"\x83a\x01\x00", "after the term"),
        (b"\x83P\x00\x00\x00\x10x\x9c", "compressed"),
        (b"\x83F" + struct.pack(">d", math.inf), "not finite"),
        (b"\x83F" + struct.pack(">d", math.nan), "not finite"),
        (b"\x83t\x00\x00\x00\x02a\x01a\x02a\x01a\x03", "duplicate map key"),
        (b"\x83t\x00\x00\x00\x01ja\x01", "cannot be a Python dict key"),
        (b"\x83w\x02\xff\xfe", "UTF-8"),
        (b"\x83n\x01\x02\x01", "sign"),
        (b"\x83Z\x00\x00a\x01", "reference with 0"),
        (b"\x83Z\x00\x01a\x01\x00\x00\x00\x00\x00\x00\x00\x01", "expected an atom"),
        (b"\x83q", "unsupported term tag 113"),
        (b"\x83c" + b"garbage".ljust(31, b"\0"), "FLOAT_EXT"),
        (b"\x83l\x00\x00\x00\x00a\x01", "improper list with no items"),
    ],
)
def test_bad_input_messages(data: bytes, message: str) -> None:
    """Each kind of malformed input is a TermDecodeError that says what is wrong."""
    with pytest.raises(TermDecodeError, match=message):
        decode(data)


def test_decode_error_is_a_value_error() -> None:
    """Callers may catch ValueError."""
    assert issubclass(TermDecodeError, ValueError)


def test_old_forms_decode() -> None:
    """Pre-OTP-23 forms a peer may still send decode to the same Python types."""
    assert decode(b"\x83d\x00\x02ok") == Atom("ok")
    assert decode(b"\x83s\x02ok") == Atom("ok")
    old_float = b"\x83c" + b"1.50000000000000000000e+00".ljust(31, b"\0")
    assert decode(old_float) == 1.5
    old_pid = b"\x83gs\x03a@b" + struct.pack(">IIB", 1, 2, 3)
    assert decode(old_pid) == Pid(Atom("a@b"), 1, 2, 3)
    old_port = b"\x83fs\x03a@b" + struct.pack(">IB", 7, 1)
    assert decode(old_port) == Port(Atom("a@b"), 7, 1)
    old_ref = b"\x83r\x00\x01s\x03a@b\x02" + struct.pack(">I", 9)
    assert decode(old_ref) == Reference(Atom("a@b"), 2, (9,))


def test_nested_list_tails_merge_as_erlang_does() -> None:
    """[1 | [2]] written as two LIST_EXTs is the proper list [1, 2]."""
    data = b"\x83l\x00\x00\x00\x01a\x01l\x00\x00\x00\x01a\x02j"
    assert decode(data) == [1, 2]
    improper = b"\x83l\x00\x00\x00\x01a\x01l\x00\x00\x00\x01a\x02a\x03"
    assert decode(improper) == ImproperList((1, 2), 3)


def test_decode_from_reads_consecutive_terms() -> None:
    """A distribution frame holds two terms back to back."""
    data = encode((Atom("a"), 1)) + encode([2])
    first, offset = decode_from(data, 0)
    second, end = decode_from(data, offset)
    assert first == (Atom("a"), 1)
    assert second == [2]
    assert end == len(data)


@pytest.mark.parametrize(
    ("term", "encoded"),
    [
        (0, b"a\x00"),
        (255, b"a\xff"),
        (256, b"b\x00\x00\x01\x00"),
        (-1, b"b\xff\xff\xff\xff"),
        (2**31, b"n\x04\x00\x00\x00\x00\x80"),
        (-(2**31) - 1, b"n\x04\x01\x01\x00\x00\x80"),
        (Atom("ok"), b"w\x02ok"),
        (True, b"w\x04true"),
        ([], b"j"),
        ([1, 2], b"k\x00\x02\x01\x02"),
        ([256], b"l\x00\x00\x00\x01b\x00\x00\x01\x00j"),
        ((), b"h\x00"),
        (b"ab", b"m\x00\x00\x00\x02ab"),
        (1.5, b"F?\xf8\x00\x00\x00\x00\x00\x00"),
        ({}, b"t\x00\x00\x00\x00"),
    ],
)
def test_encoding_bytes(term: etf.Term, encoded: bytes) -> None:
    """The forms Erlang itself writes (checked against term_to_binary in the integration
    golden test too)."""
    assert encode(term) == b"\x83" + encoded


def test_large_forms() -> None:
    """Sizes beyond the small forms switch to the large ones."""
    assert encode(tuple(range(256)))[1] == etf.LARGE_TUPLE_EXT
    assert encode(2 ** (8 * 256))[1] == etf.LARGE_BIG_EXT
    assert encode(Atom("é" * 200))[1] == etf.ATOM_UTF8_EXT
    assert encode([1] * 70_000)[1] == etf.LIST_EXT
    assert encode(Port(Atom("a@b"), 2**40, 1))[1] == etf.V4_PORT_EXT
    assert decode(encode(Atom("é" * 255))) == "é" * 255


@pytest.mark.parametrize(
    "value",
    ["plain str", None, math.nan, Atom("x" * 256), Pid(Atom("a@b"), 2**32, 0, 0),
     Reference(Atom("a@b"), 0, ()), Port(Atom("a@b"), 2**64, 0), object()],
)
def test_unencodable_values(value: object) -> None:
    """Values with no Erlang form are refused with TermEncodeError."""
    with pytest.raises(TermEncodeError):
        encode(value)  # type: ignore[arg-type]


def test_improper_list_and_bitstring_invariants() -> None:
    """The helper types refuse shapes Erlang cannot have."""
    with pytest.raises(ValueError, match="at least one item"):
        ImproperList((), 1)
    with pytest.raises(ValueError, match="tail must not be a list"):
        ImproperList((1,), [2])
    with pytest.raises(ValueError, match=r"1\.\.8 bits"):
        BitString(b"\x00", 0)


def test_atom_repr_and_equality() -> None:
    """Atoms print as atoms and compare as their text."""
    assert repr(Atom("ok")) == "Atom('ok')"
    assert Atom("ok") == "ok"


def test_format_term() -> None:
    """Error texts show terms in Erlang syntax, cut to length."""
    term = (Atom("badrpc"), (Atom("EXIT"), [1, b"x", b"\x00", {Atom("k"): 1.5}]),
            ImproperList((Atom("a"),), Atom("b")), Pid(Atom("n@h"), 1, 2, 3))
    assert format_term(term) == (
        "{badrpc,{'EXIT',[1,<<\"x\">>,<<0>>,#{k => 1.5}]},[a|b],<n@h.1.2>}"
    )
    assert format_term(list(range(1000)), limit=20) == "[0,1,2,3,4,5,6,7,..."
    assert format_term(BitString(b"\xff\xe0", 3)) == "<<255,7:3>>"
