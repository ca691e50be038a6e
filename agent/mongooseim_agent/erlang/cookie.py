"""Where the agent gets the node's cookie, in order:

1. `[node] cookie_file`: a file holding the cookie, e.g. a systemd credential
   (`LoadCredential=erlang-cookie:/var/lib/mongooseim/.erlang.cookie` in the unit and
   `cookie_file = "$CREDENTIALS_DIRECTORY/erlang-cookie"`, or just `"erlang-cookie"`: a
   relative path is looked up in `$CREDENTIALS_DIRECTORY` when systemd sets it);
2. the node's own `-setcookie` (from its command line);
3. `~/.erlang.cookie` of the user the node runs as, which is what the node itself read.

A configured file that cannot be read is an error, not a reason to try the next source: the
operator asked for that file. Error texts name paths and sources, never file contents.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Mapping
from pathlib import Path

from mongooseim_agent.mongooseim.node import NodeProcess
from mongooseim_agent.secret import Secret

CREDENTIALS_VARIABLE = "CREDENTIALS_DIRECTORY"
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


def expand_cookie_path(path: Path, env: Mapping[str, str]) -> Path:
    """`$CREDENTIALS_DIRECTORY/...` expanded; a relative path placed in that directory."""
    text = str(path)
    credentials = env.get(CREDENTIALS_VARIABLE)
    for prefix in (f"${CREDENTIALS_VARIABLE}", f"${{{CREDENTIALS_VARIABLE}}}"):
        if text == prefix or text.startswith(prefix + "/"):
            if not credentials:
                raise CookieUnavailable(
                    f"[node] cookie_file uses ${CREDENTIALS_VARIABLE}, which is not set: "
                    "add LoadCredential= to the agent's systemd unit"
                )
            return Path(credentials) / text[len(prefix) :].lstrip("/")
    if not path.is_absolute() and credentials:
        return Path(credentials) / path
    return path


def home_of(uid: int) -> Path:
    try:
        return Path(pwd.getpwuid(uid).pw_dir)
    except KeyError:
        raise CookieUnavailable(f"uid {uid} has no passwd entry, so no home directory") from None


def resolve_cookie(
    node: NodeProcess | None,
    cookie_file: Path | None,
    *,
    env: Mapping[str, str] = os.environ,
    home: Callable[[int], Path] = home_of,
) -> Secret:
    """The cookie for `node` (blocking file IO: call off the event loop)."""
    if cookie_file is not None:
        return read_cookie_file(expand_cookie_path(cookie_file, env))
    if node is None:
        raise CookieUnavailable(
            "no cookie: the node was not found (so neither its -setcookie nor its user's "
            "~/.erlang.cookie is known) and [node] cookie_file is not set"
        )
    if node.cookie is not None:
        return node.cookie
    path = home(node.uid) / ".erlang.cookie"
    try:
        return read_cookie_file(path)
    except CookieUnavailable as exc:
        raise CookieUnavailable(
            f"{node.name} has no -setcookie and {exc}: run the agent as the node's user, "
            "or set [node] cookie_file (a systemd LoadCredential= path works)"
        ) from None
