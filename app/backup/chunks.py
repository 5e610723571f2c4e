"""Data files of a backup: a byte stream split into numbered chunk files, each with its SHA-256.

``ChunkWriter`` appends what a snapshot or a COPY produces to ``<prefix>/00000001.<ext>``,
``00000002...`` (a new file every ``chunk_bytes``), fsyncs each file when it is full and returns the
list of ``Chunk`` records for the manifest. ``check_chunk``/``read_chunks`` re-read files and compare
size and SHA-256: a restore checks every chunk of a backup before it changes anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import BinaryIO

from app.backup.manifest import Chunk, fsync_dir

DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024
READ_BYTES = 1024 * 1024


class ChunkError(ValueError):
    """A chunk file is missing, has another size, or another SHA-256 than the manifest says."""


class ChunkWriter:
    """Writes one part's bytes as chunk files under ``root/prefix``."""

    def __init__(self, root: Path, prefix: str, ext: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self._root = root
        self._prefix = prefix
        self._ext = ext
        self._limit = chunk_bytes
        (root / prefix).mkdir(parents=True, exist_ok=True)
        self._chunks: list[Chunk] = []
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self.total = 0

    def _name(self) -> str:
        return f"{self._prefix}/{len(self._chunks) + 1:08d}.{self._ext}"

    async def write(self, data: bytes) -> None:
        """Append ``data`` (a full chunk file is closed and fsynced off the event loop)."""
        view = memoryview(data)
        while view:
            if self._file is None:
                self._file = (self._root / self._name()).open("wb")
            room = self._limit - self._size
            piece = view[:room]
            self._file.write(piece)
            self._hash.update(piece)
            self._size += len(piece)
            self.total += len(piece)
            view = view[len(piece) :]
            if self._size >= self._limit:
                await asyncio.to_thread(self._seal)

    def _seal(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._chunks.append(Chunk(self._name(), self._size, self._hash.hexdigest()))
        self._file, self._hash, self._size = None, hashlib.sha256(), 0

    async def close(self) -> list[Chunk]:
        """Seal the last chunk; the records of every chunk written."""
        if self._file is not None:
            await asyncio.to_thread(self._seal)
        await asyncio.to_thread(fsync_dir, self._root / self._prefix)
        return list(self._chunks)

    def abandon(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def check_chunk(root: Path, chunk: Chunk) -> None:
    """``ChunkError`` unless ``root/chunk.file`` has the recorded size and SHA-256."""
    path = root / chunk.file
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ChunkError(f"chunk {chunk.file} is missing") from None
    if size != chunk.bytes:
        raise ChunkError(f"chunk {chunk.file} has {size} bytes, the manifest says {chunk.bytes}")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(READ_BYTES):
            digest.update(block)
    if digest.hexdigest() != chunk.sha256:
        raise ChunkError(
            f"chunk {chunk.file} is corrupted: SHA-256 {digest.hexdigest()[:16]}..., "
            f"the manifest says {chunk.sha256[:16]}..."
        )


async def read_chunks(root: Path, chunks: Iterable[Chunk], piece: int) -> AsyncIterator[bytes]:
    """The bytes of ``chunks`` in order, in pieces of at most ``piece`` bytes, each chunk checked
    against its SHA-256 as it is read (a file changed since the up-front check still fails)."""
    for chunk in chunks:
        data = await asyncio.to_thread((root / chunk.file).read_bytes)
        if len(data) != chunk.bytes or hashlib.sha256(data).hexdigest() != chunk.sha256:
            raise ChunkError(f"chunk {chunk.file} changed since it was checked")
        for start in range(0, len(data), piece):
            yield data[start : start + piece]
