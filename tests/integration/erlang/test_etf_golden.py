"""Golden vectors: terms written by the real erlang:term_to_binary at test time."""

from __future__ import annotations

import pytest

from mongooseim_agent.erlang import etf
from mongooseim_agent.erlang.etf import Atom, BitString, ImproperList, Pid, Port, Reference
from tests.integration.erlang.erlnodes import ErlNode

pytestmark = pytest.mark.integration

# Erlang expression -> the Python value it must decode to. The node encodes each with
# minor_version 2 (UTF-8 atoms, the form the distribution uses).
VECTORS: list[tuple[str, etf.Term]] = [
    ("ok", Atom("ok")),
    ("'hello world'", Atom("hello world")),
    ("''", Atom("")),
    ("list_to_atom([16#e9, 16#4e2d, 16#1f600])", Atom("\u00e9\u4e2d\U0001f600")),
    ("list_to_atom(lists:duplicate(255, 16#4e2d))", Atom("\u4e2d" * 255)),
    ("0", 0),
    ("255", 255),
    ("256", 256),
    ("-1", -1),
    ("2147483647", 2147483647),
    ("-2147483648", -2147483648),
    ("2147483648", 2147483648),
    ("-(1 bsl 64)", -(1 << 64)),
    ("1 bsl 2100", 1 << 2100),
    ("1.5", 1.5),
    ("-0.0", -0.0),
    ("1.0e300", 1.0e300),
    ("<<>>", b""),
    ("<<\"abc\">>", b"abc"),
    ("<<0, 255>>", b"\x00\xff"),
    ("<<1:3>>", BitString(b"\x20", 3)),
    ("<<255, 7:3>>", BitString(b"\xff\xe0", 3)),
    ("[]", []),
    ("[1, 2, 3]", [1, 2, 3]),
    ("\"abc\"", [97, 98, 99]),
    ("[256, -1]", [256, -1]),
    ("[1, a, <<\"x\">>]", [1, Atom("a"), b"x"]),
    ("lists:duplicate(70000, $a)", [97] * 70000),
    ("[a | b]", ImproperList((Atom("a"),), Atom("b"))),
    ("[1, 2 | 3]", ImproperList((1, 2), 3)),
    ("{}", ()),
    ("{a, 1}", (Atom("a"), 1)),
    ("list_to_tuple(lists:seq(1, 300))", tuple(range(1, 301))),
    ("#{}", {}),
    ("#{a => 1, <<\"k\">> => [x], {t} => #{}}", {Atom("a"): 1, b"k": [Atom("x")],
                                                 (Atom("t"),): {}}),
    ("maps:from_list([{N, N} || N <- lists:seq(1, 40)])", {n: n for n in range(1, 41)}),
    ("{ok, [{a, #{b => [1.5, <<\"z\">>]}}]}",
     (Atom("ok"), [(Atom("a"), {Atom("b"): [1.5, b"z"]})])),
]


def erl_encode(node: ErlNode, expression: str) -> bytes:
    return node.eval_bytes(f"{expression}.")


def erl_accepts(node: ErlNode, data: bytes, expression: str) -> bool:
    """binary_to_term on the node of our bytes is exactly (=:=) the Erlang term."""
    answer = node.eval(f"binary_to_term(binary:decode_hex(<<\"{data.hex()}\">>)) =:= "
                       f"({expression}).")
    return answer == Atom("true")


@pytest.mark.parametrize(("expression", "expected"), VECTORS, ids=[v[0][:30] for v in VECTORS])
def test_golden_vector(node_a: ErlNode, expression: str, expected: etf.Term) -> None:
    """Erlang's bytes decode to the expected value; ours are byte-identical (maps aside,
    whose key order is Erlang's own) and binary_to_term reads them back as the same term."""
    erlang_bytes = erl_encode(node_a, expression)
    decoded = etf.decode(erlang_bytes)
    assert decoded == expected
    assert type(decoded) is type(expected)
    ours = etf.encode(expected)
    if not isinstance(expected, dict):
        assert ours == erlang_bytes
    assert erl_accepts(node_a, ours, expression)


def test_default_minor_version_decodes(node_a: ErlNode) -> None:
    """term_to_binary's default (Latin-1 atom tags on OTP 25) decodes too."""
    raw = node_a.eval("term_to_binary({ok, 'Caf\\x{e9}', [a]}).")
    assert isinstance(raw, bytes)
    assert etf.decode(raw) == (Atom("ok"), Atom("Caf\u00e9"), [Atom("a")])


@pytest.mark.parametrize(
    ("expression", "kind"),
    [("self()", Pid), ("make_ref()", Reference), ("hd(erlang:ports())", Port),
     ("alias()", Reference)],
)
def test_identifiers_round_trip(node_a: ErlNode, expression: str, kind: type) -> None:
    """Pids, references and ports from a live node decode, and re-encode byte for byte."""
    erlang_bytes = erl_encode(node_a, expression)
    decoded = etf.decode(erlang_bytes)
    assert isinstance(decoded, kind)
    assert decoded.node == node_a.name  # type: ignore[union-attr]
    assert etf.encode(decoded) == erlang_bytes
