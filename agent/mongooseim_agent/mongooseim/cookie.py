"""Where the agent gets the watched node's cookie, in order:

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

from mongooseim_agent.erlang.cookie import CookieUnavailable, read_cookie_file
from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.node import NodeProcess

__all__ = ["CREDENTIALS_VARIABLE", "CookieUnavailable", "expand_cookie_path", "home_of",
           "resolve_cookie"]

CREDENTIALS_VARIABLE = "CREDENTIALS_DIRECTORY"


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
