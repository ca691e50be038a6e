"""Distribution handshake frames and flags, without a socket."""

from __future__ import annotations

import hashlib
import struct

import pytest

from mongooseim_agent.erlang import handshake as hs
from mongooseim_agent.erlang.errors import CookieRejected, HandshakeFailed
from mongooseim_agent.erlang.secret import Secret

COOKIE = Secret("unit-test-cookie")


def test_digest_is_md5_of_cookie_and_decimal_challenge() -> None:
    """The challenge is written in decimal after the cookie, as OTP's dist_util does."""
    expected = hashlib.md5(b"unit-test-cookie" + b"4294967295").digest()
    assert hs.digest(COOKIE, 4294967295) == expected


def test_flags_are_hidden_and_plain() -> None:
    """Never published; no atom cache or fragments; every OTP 25/26 mandatory flag."""
    assert not hs.CLIENT_FLAGS & hs.DFLAG_PUBLISHED
    for unwanted in (hs.DFLAG_ATOM_CACHE, hs.DFLAG_DIST_HDR_ATOM_CACHE, hs.DFLAG_FRAGMENTS):
        assert not hs.CLIENT_FLAGS & unwanted
    for needed in (hs.MANDATORY_25, hs.DFLAG_V4_NC, hs.DFLAG_UNLINK_ID,
                   hs.DFLAG_MANDATORY_25_DIGEST):
        assert hs.CLIENT_FLAGS & needed == needed


def test_send_name_frame() -> None:
    """'N', 64-bit flags, 32-bit creation, 16-bit name length, name."""
    frame = hs.send_name_frame(0x1234, 7, "mongooseim_agent_1@h")
    assert frame[:1] == b"N"
    assert struct.unpack(">QIH", frame[1:15]) == (0x1234, 7, 20)
    assert frame[15:] == b"mongooseim_agent_1@h"


def test_parse_challenge() -> None:
    """The peer's flags, challenge, creation and name."""
    frame = b"N" + struct.pack(">QIIH", 0xFF, 42, 9, 3) + b"a@b"
    assert hs.parse_challenge(frame) == hs.Challenge(0xFF, 42, 9, "a@b")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"n\x00\x05", "version 5"),
        (b"X" * 30, "malformed"),
        (b"N" + struct.pack(">QIIH", 0, 0, 0, 5) + b"a@b", "length does not match"),
        (b"N" + struct.pack(">QIIH", 0, 0, 0, 1) + b"\xff", "UTF-8"),
    ],
)
def test_bad_challenges(frame: bytes, message: str) -> None:
    """Malformed challenges are HandshakeFailed."""
    with pytest.raises(HandshakeFailed, match=message):
        hs.parse_challenge(frame)


def test_status_frames() -> None:
    """Status text, or HandshakeFailed when it is not a status."""
    assert hs.parse_status(b"sok") == "ok"
    with pytest.raises(HandshakeFailed, match="status"):
        hs.parse_status(b"xok")
    with pytest.raises(HandshakeFailed, match="ASCII"):
        hs.parse_status(b"s\xff")


def test_ack_is_checked_against_our_cookie() -> None:
    """An ack digest made with another cookie is CookieRejected; a wrong shape is not."""
    hs.check_ack(b"a" + hs.digest(COOKIE, 5), COOKIE, 5)
    with pytest.raises(CookieRejected):
        hs.check_ack(b"a" + hs.digest(Secret("other"), 5), COOKIE, 5)
    with pytest.raises(HandshakeFailed, match="malformed"):
        hs.check_ack(b"a" + b"x" * 3, COOKIE, 5)


def test_challenge_reply_frame() -> None:
    """'r', our challenge, the digest of theirs."""
    frame = hs.challenge_reply_frame(3, hs.digest(COOKIE, 9))
    assert frame[:5] == b"r\x00\x00\x00\x03"
    assert frame[5:] == hs.digest(COOKIE, 9)
