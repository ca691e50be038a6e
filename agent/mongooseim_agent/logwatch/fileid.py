"""What makes a log file the same file: (st_dev, st_ino) plus a fingerprint of its first bytes.

The inode alone is not enough: a truncated-and-rewritten file keeps it (copytruncate, OTP
disk_log wrap files), and a deleted file's inode number comes back for the next file
created. The first bytes of a MongooseIM log hold a microsecond timestamp, so two different
contents practically never share them, while a copy (logrotate copytruncate) or a
compressed archive of the same file does.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

FINGERPRINT_BYTES = 256
# Below this many bytes a head proves nothing: every MongooseIM line starts "when=20".
MIN_MATCH_BYTES = 8

_ROTATION_SUFFIX = re.compile(r"(?:[.-]\d+)*(?:\.(?:gz|bz2|xz|zst|lz4))?$")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4")
# disk_log's own bookkeeping next to mongooseim.log.N: binary, never log lines.
INDEX_SUFFIXES = (".idx", ".siz")


@dataclass(frozen=True, slots=True, order=True)
class FileId:
    dev: int
    ino: int


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A hash of the first `length` bytes (up to FINGERPRINT_BYTES) of a file."""

    length: int
    digest: str

    @classmethod
    def of(cls, head: bytes) -> Fingerprint:
        head = head[:FINGERPRINT_BYTES]
        return cls(len(head), _digest(head))

    @property
    def identifying(self) -> bool:
        """Long enough to tell a copy of this file from an unrelated one."""
        return self.length >= MIN_MATCH_BYTES

    def matches(self, head: bytes) -> bool:
        """`head` starts with the bytes this fingerprint was taken of."""
        if len(head) < self.length:
            return False
        return _digest(head[: self.length]) == self.digest


class HeadMatcher:
    """Tests one head against many fingerprints, hashing it once per fingerprint length
    (3000 files found at once would otherwise cost 3000 hashes each)."""

    __slots__ = ("_digests", "_head")

    def __init__(self, head: bytes) -> None:
        self._head = head[:FINGERPRINT_BYTES]
        self._digests: dict[int, str] = {}

    def digest(self, length: int) -> str | None:
        """The digest of the head's first `length` bytes; None when it is shorter."""
        if len(self._head) < length:
            return None
        digest = self._digests.get(length)
        if digest is None:
            digest = self._digests[length] = _digest(self._head[:length])
        return digest

    def matches(self, fp: Fingerprint) -> bool:
        """Same as fp.matches(head)."""
        return self.digest(fp.length) == fp.digest


@functools.lru_cache(maxsize=1 << 16)
def family(path: str) -> str:
    """Files that take turns as one log: mongooseim.log, .log.1, .log.0.gz -> mongooseim.log."""
    return _ROTATION_SUFFIX.sub("", path) or path


def is_compressed(path: str) -> bool:
    return path.endswith(COMPRESSED_SUFFIXES)


def is_index(path: str) -> bool:
    return path.endswith(INDEX_SUFFIXES)
