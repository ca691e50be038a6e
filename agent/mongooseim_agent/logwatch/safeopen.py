"""Opening log files so that nothing but a regular file is ever read, and no open blocks.

A FIFO (or a device) swapped in where a rotated log was would block a plain open() until a
writer shows up, and a read() until it writes: the follower thread would hang for good.
Opened with O_NONBLOCK, a FIFO opens at once; fstat() then says what was opened, and
anything but a regular file is closed again and refused. On a regular file O_NONBLOCK
changes nothing.
"""

from __future__ import annotations

import errno
import os
import stat

OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class NotRegularFile(OSError):
    """The path leads to a FIFO, socket, device or directory: never read."""

    def __init__(self, path: str, mode: int) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({_kind(mode)})", path)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "unknown type"


def open_regular(path: str) -> int:
    """A read-only fd of the regular file at `path`; NotRegularFile for anything else."""
    fd = os.open(path, OPEN_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(path, mode)
    return fd
