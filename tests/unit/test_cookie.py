"""Cookie sources and the cookie file rules; the cookie never shows in an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mongooseim_agent.erlang.cookie import CookieUnavailable, parse_cookie, read_cookie_file
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.cookie import expand_cookie_path, resolve_cookie
from mongooseim_agent.mongooseim.node import NodeProcess

COOKIE = "Zq7cookieValue"


def node(cookie: str | None = None, uid: int = 4242) -> NodeProcess:
    return NodeProcess(pid=1, name="mongooseim@h", longnames=False, uid=uid, start_ticks=1,
                       cookie=Secret(cookie) if cookie is not None else None)


@pytest.mark.parametrize(
    ("data", "cookie"),
    [
        (b"abc", "abc"),
        (b"abc\n", "abc"),
        (b"abc\r\n\n  \n", "abc"),
        (b"ab c \n", "ab c "),
        (b"a!~ ", "a!~ "),
    ],
)
def test_cookie_file_rules(data: bytes, cookie: str) -> None:
    """As OTP's auth module reads it: printable ASCII, then only line breaks and spaces."""
    assert parse_cookie(data) == Secret(cookie)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"), (b"\n", "empty"), (b"abc\ndef", "bad characters"), (b"ab\tc", "bad"),
    (b"\xe9t\xe9", "bad"),
])
def test_bad_cookie_files(data: bytes, message: str) -> None:
    """Files Erlang would refuse are refused."""
    with pytest.raises(CookieUnavailable, match=message):
        parse_cookie(data)


def test_configured_file_wins(tmp_path: Path) -> None:
    """[node] cookie_file is used even when the node has -setcookie."""
    path = tmp_path / "cookie"
    path.write_text(COOKIE + "\n")
    assert resolve_cookie(node("other"), path) == Secret(COOKIE)


def test_setcookie_before_home(tmp_path: Path) -> None:
    """The node's -setcookie is used when no file is configured."""
    assert resolve_cookie(node(COOKIE), None, home=lambda uid: tmp_path) == Secret(COOKIE)


def test_home_cookie_of_the_node_user(tmp_path: Path) -> None:
    """Without -setcookie: ~/.erlang.cookie of the node's uid."""
    (tmp_path / ".erlang.cookie").write_text(COOKIE)
    seen: list[int] = []

    def home(uid: int) -> Path:
        seen.append(uid)
        return tmp_path

    assert resolve_cookie(node(), None, home=home) == Secret(COOKIE)
    assert seen == [4242]


def test_credentials_directory(tmp_path: Path) -> None:
    """$CREDENTIALS_DIRECTORY paths and bare names resolve into systemd's directory."""
    (tmp_path / "erlang-cookie").write_text(COOKIE)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    for configured in ("$CREDENTIALS_DIRECTORY/erlang-cookie",
                       "${CREDENTIALS_DIRECTORY}/erlang-cookie", "erlang-cookie"):
        assert resolve_cookie(None, Path(configured), env=env) == Secret(COOKIE)
    assert expand_cookie_path(Path("/etc/c"), env) == Path("/etc/c")
    with pytest.raises(CookieUnavailable, match="LoadCredential"):
        expand_cookie_path(Path("$CREDENTIALS_DIRECTORY/x"), {})


def test_errors_name_the_source_never_the_cookie(tmp_path: Path) -> None:
    """Unreadable or missing sources say where and how to fix, without the contents."""
    bad = tmp_path / "bad"
    bad.write_bytes(COOKIE.encode() + b"\n\x01" + COOKIE.encode())
    with pytest.raises(CookieUnavailable) as caught:
        read_cookie_file(bad)
    leaked = COOKIE in str(caught.value)
    assert not leaked, "the cookie file's contents reached the error text"
    assert str(bad) in str(caught.value)
    with pytest.raises(CookieUnavailable, match="No such file"):
        resolve_cookie(node(COOKIE), tmp_path / "missing")
    with pytest.raises(CookieUnavailable, match=r"no -setcookie.*cookie_file"):
        resolve_cookie(node(), None, home=lambda uid: tmp_path / "nohome")
    with pytest.raises(CookieUnavailable, match="node was not found"):
        resolve_cookie(None, None)


def test_oversized_file(tmp_path: Path) -> None:
    """A huge file is refused without reading it all."""
    big = tmp_path / "big"
    big.write_bytes(b"a" * 70_000)
    with pytest.raises(CookieUnavailable, match="larger than"):
        read_cookie_file(big)
