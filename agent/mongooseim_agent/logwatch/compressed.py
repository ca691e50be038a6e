"""Reading rotated archives: gzip, bzip2 and xz recognised by their magic bytes."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
from pathlib import Path
from typing import BinaryIO

from mongooseim_agent.logwatch.safeopen import open_regular

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


class _Decompressed(io.RawIOBase):
    """A decompressing reader that owns the file under it: GzipFile, BZ2File and LZMAFile
    given a file object leave it open when closed, until garbage collection."""

    def __init__(self, reader: BinaryIO, raw: io.FileIO) -> None:
        super().__init__()
        self._reader = reader
        self._raw = raw

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._reader.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._reader.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._reader.close()
        finally:
            self._raw.close()
            super().close()


def open_stream(path: str | Path) -> BinaryIO:
    """A binary stream of the file's content, decompressed when it is compressed; closing it
    closes the file. Only a regular file is opened (OSError otherwise, never a block)."""
    # Unbuffered: reads are large, and a buffer would only add a copy.
    raw = os.fdopen(open_regular(os.fspath(path)), "rb", buffering=0)
    try:
        kind = compression_of(raw.read(6))
        raw.seek(0)
        reader: BinaryIO
        if kind == "gzip":
            reader = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        elif kind == "bzip2":
            reader = bz2.BZ2File(raw, "rb")  # type: ignore[assignment]
        elif kind == "xz":
            reader = lzma.LZMAFile(raw, "rb")  # type: ignore[assignment]  # noqa: SIM115
        else:
            return raw
    except BaseException:
        raw.close()
        raise
    return _Decompressed(reader, raw)  # type: ignore[return-value]


def read_head(path: str | Path, size: int) -> bytes:
    """The first `size` bytes of the (decompressed) content."""
    with open_stream(path) as stream:
        return stream.read(size)
