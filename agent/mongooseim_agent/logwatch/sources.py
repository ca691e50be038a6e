"""Which files to follow: configured globs, or the discovered release root's default logs."""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mongooseim_agent.logwatch.fileid import FileId, is_compressed, is_index

DEFAULT_LOG_GLOBS = ("log/mongooseim.log*", "log/mongooseim.json*")


def default_globs(release_root: Path | None) -> tuple[str, ...]:
    if release_root is None:
        return ()
    return tuple(str(release_root / pattern) for pattern in DEFAULT_LOG_GLOBS)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A regular file a glob matched, as stat() saw it (through symlinks)."""

    path: str
    fid: FileId
    size: int
    mtime_ns: int
    ctime_ns: int


@dataclass(slots=True)
class Listing:
    plain: dict[FileId, Candidate] = field(default_factory=dict)
    # Compressed rotated files: never followed, only searched to finish a file that vanished.
    archives: dict[FileId, Candidate] = field(default_factory=dict)
    # Paths that matched but could not be stat()ed, with the reason.
    errors: dict[str, str] = field(default_factory=dict)


def candidate(path: str, st: os.stat_result) -> Candidate:
    return Candidate(path, FileId(st.st_dev, st.st_ino), st.st_size, st.st_mtime_ns,
                     st.st_ctime_ns)


def list_files(patterns: Iterable[str]) -> Listing:
    """Every regular file the globs match, once per identity; disk_log index files skipped."""
    listing = Listing()
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if is_index(path):
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                # Gone between the glob and the stat, or a dangling symlink: not there.
                continue
            except OSError as exc:
                listing.errors[path] = exc.strerror or type(exc).__name__
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            found = candidate(path, st)
            target = listing.archives if is_compressed(path) else listing.plain
            target.setdefault(found.fid, found)
    return listing
