"""Reading rotated archives: gzip, bzip2 and xz recognised by their magic bytes."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path
from typing import BinaryIO

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_OTHER_MAGIC = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
)


class UnsupportedCompression(Exception):
    """A compressed file in a format the standard library cannot read."""


def compression_of(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            raise UnsupportedCompression(f"{name}-compressed files cannot be read")
    return None


def open_stream(path: str | Path) -> BinaryIO:
    """A binary stream of the file's content, decompressed when it is compressed."""
    # Unbuffered: reads are large, and a buffer would only add a copy.
    raw = open(path, "rb", buffering=0)  # noqa: SIM115 - returned to the caller, who closes it
    try:
        kind = compression_of(raw.read(6))
    except BaseException:
        raw.close()
        raise
    raw.seek(0)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]
    return raw


def read_head(path: str | Path, size: int) -> bytes:
    """The first `size` bytes of the (decompressed) content."""
    with open_stream(path) as stream:
        return stream.read(size)
