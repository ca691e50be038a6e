"""PAM stacks: is pam_limits.so in the session stack that logins and `su -` go through?

Debian and Ubuntu keep it in /etc/pam.d/common-session and common-session-noninteractive
(the guide: every common-session* file must have it); RHEL-family systems in system-auth
(and password-auth). Includes (`@include`, `include`, `substack`) are followed.
"""

from __future__ import annotations

from dataclasses import dataclass

DEBIAN_FILES = ("common-session", "common-session-noninteractive")
RHEL_FILES = ("system-auth", "password-auth")


@dataclass(frozen=True, slots=True)
class PamLine:
    kind: str
    control: str
    module: str
    line: int


@dataclass(frozen=True, slots=True)
class PamFile:
    lines: tuple[PamLine, ...]
    includes: tuple[str, ...]


def parse_pam(text: str) -> PamFile:
    """`[-]type control module-path [args]`; `[...]` controls may hold spaces; `#` comments."""
    lines: list[PamLine] = []
    includes: list[str] = []
    joined: list[tuple[int, str]] = []
    carry: tuple[int, str] | None = None
    for count, raw in enumerate(text.splitlines(), start=1):
        body = raw.split("#", 1)[0].rstrip()
        number = count
        if carry is not None:
            body = carry[1] + " " + body.strip()
            number = carry[0]
            carry = None
        if body.endswith("\\"):
            carry = (number, body[:-1])
            continue
        if body.strip():
            joined.append((number, body.strip()))
    for number, body in joined:
        if body.startswith("@include"):
            target = body.split(None, 1)[1].strip() if " " in body else ""
            if target:
                includes.append(target)
            continue
        kind, _, rest = body.partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            close = rest.find("]")
            if close < 0:
                continue
            control, rest = rest[: close + 1], rest[close + 1 :].strip()
        else:
            control, _, rest = rest.partition(" ")
            rest = rest.strip()
        module = rest.split(None, 1)[0] if rest else ""
        kind = kind.lstrip("-").lower()
        if control in ("include", "substack") and kind == "session" and module:
            includes.append(module)
            continue
        if module:
            lines.append(PamLine(kind, control, module, number))
    return PamFile(tuple(lines), tuple(includes))


def has_pam_limits(pam: PamFile) -> PamLine | None:
    for line in pam.lines:
        if line.kind == "session" and line.module.rsplit("/", 1)[-1] == "pam_limits.so":
            return line
    return None
