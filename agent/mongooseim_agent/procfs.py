"""Pure parsers for the /proc files the agent reads. No IO here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    """A resource limit; None means unlimited."""

    soft: int | None
    hard: int | None


@dataclass(frozen=True, slots=True)
class FileNr:
    allocated: int
    free: int
    maximum: int


def _limit_value(token: str) -> int | None:
    if token == "unlimited":
        return None
    return int(token)


def parse_limits(text: str) -> dict[str, Limit]:
    """Parse /proc/PID/limits into {"Max open files": Limit(...), ...}.

    Names contain spaces and the columns are aligned with spaces, so each row is read from
    the right: [units] hard soft, with the name being what is left.
    """
    limits: dict[str, Limit] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 3:
            continue
        # Rows end in a unit ("files", "bytes", ...) except a few ("Max nice priority").
        if parts[-1].isalpha() and parts[-1] != "unlimited":
            name_end, soft, hard = len(parts) - 3, parts[-3], parts[-2]
        else:
            name_end, soft, hard = len(parts) - 2, parts[-2], parts[-1]
        try:
            limits[" ".join(parts[:name_end])] = Limit(_limit_value(soft), _limit_value(hard))
        except ValueError:
            continue
    return limits


def parse_nofile(text: str) -> Limit:
    """The "Max open files" row of /proc/PID/limits; ValueError when absent."""
    try:
        return parse_limits(text)["Max open files"]
    except KeyError:
        raise ValueError("no 'Max open files' row in limits") from None


def parse_file_nr(text: str) -> FileNr:
    """/proc/sys/fs/file-nr: allocated, free (always 0 since 2.6), maximum."""
    parts = text.split()
    if len(parts) != 3:
        raise ValueError(f"file-nr: expected 3 fields, got {len(parts)}")
    return FileNr(int(parts[0]), int(parts[1]), int(parts[2]))


def parse_stat_start_ticks(text: str) -> int:
    """Field 22 (starttime, clock ticks after boot) of /proc/PID/stat.

    The command name (field 2) is in parentheses and may itself hold spaces and ')', so
    fields are counted from the last ')'.
    """
    close = text.rfind(")")
    if close < 0:
        raise ValueError("stat: no ')' after the command name")
    fields = text[close + 1 :].split()
    # fields[0] is field 3 (state); starttime is field 22.
    if len(fields) < 20:
        raise ValueError("stat: too few fields")
    return int(fields[19])


def parse_btime(text: str) -> int:
    """Boot time (seconds since the epoch) from /proc/stat."""
    for line in text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ValueError("no btime line in /proc/stat")


def parse_nul_separated(data: bytes) -> list[str]:
    """/proc/PID/cmdline or environ: NUL-separated, NUL-terminated; undecodable bytes kept."""
    return [item.decode("utf-8", "surrogateescape") for item in data.split(b"\0") if item]


def parse_environ(data: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in parse_nul_separated(data):
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    return env


def parse_status_uid(text: str) -> int:
    """Real uid from /proc/PID/status."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise ValueError("no Uid line in status")
