"""Which files to follow: configured globs, or the discovered release root's default logs.

The listing says what it could not see: glob.glob() swallows errors, so a directory that
cannot be read (EMFILE, EACCES) or has vanished for a moment would look like a directory
whose files were all deleted. Here each directory is read with scandir(), and a directory
that fails is named in `errors`; the follower takes the files it knew there as unseen this
time, not as gone.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mongooseim_agent.logwatch.fileid import FileId, is_compressed, is_index

DEFAULT_LOG_GLOBS = ("log/mongooseim.log*", "log/mongooseim.json*")
_MAGIC = re.compile(r"[*?[]")


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
    # Paths (files, or directories the globs go through) that could not be examined, with
    # the reason.
    errors: dict[str, str] = field(default_factory=dict)

    def unsure(self, path: str) -> bool:
        """Whether `path` not being listed may only mean it could not be seen."""
        if not self.errors:
            return False
        return path in self.errors or any(
            path.startswith(failed.rstrip("/") + "/") for failed in self.errors
        )


def candidate(path: str, st: os.stat_result) -> Candidate:
    return Candidate(path, FileId(st.st_dev, st.st_ino), st.st_size, st.st_mtime_ns,
                     st.st_ctime_ns)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def expand(pattern: str, errors: dict[str, str]) -> list[str]:
    """glob.glob(pattern) (no `**`, hidden names only for a pattern starting with a dot),
    recording each directory that cannot be read in `errors` instead of skipping it."""
    directory, name = os.path.split(pattern)
    if _MAGIC.search(directory):
        directories = [d for d in expand(directory, errors) if os.path.isdir(d)]
    else:
        directories = [directory]
    found: list[str] = []
    for d in directories:
        try:
            with os.scandir(d or ".") as entries:
                names = [entry.name for entry in entries]
        except OSError as exc:
            errors[d or "."] = _reason(exc)
            continue
        matched = fnmatch.filter(names, name) if _MAGIC.search(name) else (
            [name] if name in names else [])
        if not name.startswith("."):
            matched = [n for n in matched if not n.startswith(".")]
        found.extend(os.path.join(d, n) for n in sorted(matched))
    return found


def list_files(patterns: Iterable[str]) -> Listing:
    """Every regular file the globs match, once per identity; disk_log index files skipped."""
    listing = Listing()
    for pattern in patterns:
        for path in expand(pattern, listing.errors):
            if is_index(path):
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                # Gone between the listing and the stat, or a dangling symlink: not there.
                continue
            except OSError as exc:
                listing.errors[path] = _reason(exc)
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            found = candidate(path, st)
            target = listing.archives if is_compressed(path) else listing.plain
            target.setdefault(found.fid, found)
    return listing
