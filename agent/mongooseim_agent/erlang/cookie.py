"""Cookie files as OTP's auth module reads them. Error texts name paths, never contents.

Which file (or command-line cookie) belongs to which node is the agent's business:
`mongooseim/cookie.py`.
"""

from __future__ import annotations

from pathlib import Path

from mongooseim_agent.erlang.secret import Secret

MAX_COOKIE_FILE_BYTES = 64 * 1024


class CookieUnavailable(Exception):
    """No cookie could be read; str() says which source failed and how to fix it."""


def parse_cookie(data: bytes) -> Secret:
    """The cookie in a cookie file, by the rules of OTP's auth module.

    The cookie is the leading run of printable ASCII (space included); after it only
    newlines, carriage returns and spaces may follow. Anything else makes Erlang refuse
    the file, so it is refused here too.
    """
    end = 0
    while end < len(data) and 0x20 <= data[end] <= 0x7E:
        end += 1
    if any(byte not in b"\r\n " for byte in data[end:]):
        raise CookieUnavailable("bad characters in the cookie file")
    if end == 0:
        raise CookieUnavailable("the cookie file is empty")
    return Secret(data[:end].decode("ascii"))


def read_cookie_file(path: Path) -> Secret:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_COOKIE_FILE_BYTES + 1)
    except OSError as exc:
        raise CookieUnavailable(f"cannot read cookie file {path}: {exc.strerror}") from None
    if len(data) > MAX_COOKIE_FILE_BYTES:
        raise CookieUnavailable(f"cookie file {path} is larger than {MAX_COOKIE_FILE_BYTES} bytes")
    try:
        return parse_cookie(data)
    except CookieUnavailable as exc:
        raise CookieUnavailable(f"cookie file {path}: {exc}") from None
