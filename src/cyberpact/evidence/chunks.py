"""The chunked AEAD format of stored and transferred evidence, and the streaming pipeline that writes it.

A file is cut into chunks of ``chunk_size`` plaintext bytes (the last one shorter, an empty file one empty
chunk). Each chunk is sealed on its own with AES-256-GCM (:func:`cyberpact.kit.crypto.seal_chunk`) under
associated data naming its scope (package or transfer id), file, position and whether it is the last one,
in the manner of the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015):

- a chunk moved to another position, file or package fails authentication (reordering, splicing);
- dropping the last chunks leaves a non-final chunk where a final one must be (truncation);
- appending after the final chunk leaves a final chunk where a non-final one must be (extension).

When a chunk fails, :meth:`ChunkCodec.diagnose` works out which of these happened, so the error names it.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cyberpact.evidence.errors import DigestMismatch, TamperDetected
from cyberpact.kit import crypto
from cyberpact.kit.errors import IntegrityFailure, InvalidInput, NotFound, Problem
from cyberpact.kit.storage import ObjectStorage

_AAD_PREFIX = b"cyberpact-evidence-chunk/v1\x00"
_MAX_DIAGNOSE = 4096  # positions tried when looking for where a misplaced chunk belongs
# Chunks still being hashed or written once the next one is sealed. A node's API upload keeps none: each
# chunk is stored before the request's next bytes are taken, which holds a node at its footprint plus
# about two chunks (benchmarks/bench_evidence.py, 1 GiB: peak 144 MB against 152 with one in flight, for
# 6 % less upload speed, still above what a network brings). The CLI, a process of its own, keeps four, so
# that several chunks' fsyncs overlap (8-20 % faster ingest for 20 MB more).
IN_FLIGHT_NODE = 0
IN_FLIGHT_BULK = 4


def chunk_count(size: int, chunk_size: int) -> int:
    return max(1, -(-size // chunk_size))


def object_key(package_id: uuid.UUID | str, file_index: int, chunk: int) -> str:
    return f"{package_id}/{file_index:05d}/{chunk:010d}"


def package_prefix(package_id: uuid.UUID | str) -> str:
    return str(package_id)


def file_prefix(package_id: uuid.UUID | str, file_index: int) -> str:
    return f"{package_id}/{file_index:05d}"


def new_hashers() -> tuple[Any, Any]:
    # BLAKE2b-512 beside SHA-256: another design family (ChaCha-based, not Merkle-Damgard SHA-2), so a
    # future break of one leaves the other standing; `b2sum` checks it from any coreutils.
    return hashlib.sha256(), hashlib.blake2b()


@dataclass(frozen=True)
class ChunkCodec:
    """Seals and opens the chunks of one file under one key and scope."""

    cipher: Any  # AESGCM
    scope: uuid.UUID
    file_index: int
    size: int
    chunk_size: int

    @property
    def count(self) -> int:
        return chunk_count(self.size, self.chunk_size)

    def plain_length(self, chunk: int) -> int:
        if chunk < self.count - 1:
            return self.chunk_size
        return self.size - (self.count - 1) * self.chunk_size

    def aad(self, chunk: int, final: bool) -> bytes:
        return _AAD_PREFIX + self.scope.bytes + struct.pack(">IQ?", self.file_index, chunk, final)

    def seal(self, chunk: int, plaintext: bytes | bytearray) -> bytes | bytearray:
        if not 0 <= chunk < self.count or len(plaintext) != self.plain_length(chunk):
            raise ValueError(f"chunk {chunk} of {self.count} cannot hold {len(plaintext)} bytes")
        return crypto.seal_chunk(self.cipher, plaintext, self.aad(chunk, chunk == self.count - 1))

    def open(self, chunk: int, sealed: bytes) -> bytes:
        try:
            plain = crypto.open_chunk(self.cipher, sealed, self.aad(chunk, chunk == self.count - 1))
        except IntegrityFailure:
            raise self.diagnose(chunk, sealed) from None
        if len(plain) != self.plain_length(chunk):  # only a broken sealer gets here
            raise TamperDetected(f"file {self.file_index} chunk {chunk}", "has the wrong length")
        return plain

    def diagnose(self, chunk: int, sealed: bytes) -> TamperDetected:
        """Name what happened to a chunk that failed authentication at position ``chunk``."""
        what = f"file {self.file_index} chunk {chunk}"
        last = self.count - 1

        def opens(position: int, final: bool) -> bool:
            try:
                crypto.open_chunk(self.cipher, sealed, self.aad(position, final))
            except IntegrityFailure:
                return False
            return True

        if chunk == last and opens(chunk, False):
            return TamperDetected(
                what,
                "is not the final chunk: the chunks after it were removed (truncated)",
                fault="truncated",
            )
        if chunk < last and opens(chunk, True):
            return TamperDetected(
                what, "is a final chunk with more after it: chunks were appended (extended)", fault="extended"
            )
        for other in range(min(_MAX_DIAGNOSE, max(self.count, chunk + 1) + 16)):
            if other != chunk and (opens(other, False) or opens(other, True)):
                return TamperDetected(
                    what,
                    f"holds chunk {other} (chunks were reordered or moved)",
                    fault="reordered",
                    found=other,
                )
        return TamperDetected(what, "failed authentication: its bytes were altered", fault="altered")


class StreamSealer:
    """Cuts a byte stream into chunks, hashes, seals and stores them, overlapping the work in threads.

    ``hashlib`` releases the GIL on large buffers and object-store writes wait on I/O, so SHA-256 (this
    thread), BLAKE2b and storage writes (two helper threads) run side by side; at most a few chunks are
    in flight, so memory stays flat at any file size. ``on_stored(n)`` is called, in order, once the first
    ``n`` chunks are durably stored, so a caller can record progress for resumption.
    """

    def __init__(
        self,
        codec: ChunkCodec,
        storage: ObjectStorage,
        key_of: Callable[[int], str],
        *,
        start_chunk: int = 0,
        hashers: tuple[Any, Any] | None = None,
        on_stored: Callable[[int], None] | None = None,
        in_flight: int = IN_FLIGHT_NODE,
    ) -> None:
        self.codec, self.storage, self.key_of = codec, storage, key_of
        self.in_flight = in_flight
        self.next_chunk = start_chunk
        self.sha256, self.blake2b = hashers or new_hashers()
        self.on_stored = on_stored
        # The chunk being filled, allocated once at its full size: appending to a growing buffer and
        # cutting chunks off its front left it holding up to twice a chunk.
        self._buf = bytearray(0)
        self._fill = 0
        self._hash_pool = ThreadPoolExecutor(1, thread_name_prefix="evidence-hash")
        # Two writers: a local disk or an object store takes more than one request in flight to reach
        # its throughput, and an fsync of one chunk then overlaps the write of the next.
        self._write_pool = ThreadPoolExecutor(2, thread_name_prefix="evidence-write")
        self._pending: deque[tuple[int, Future[Any], Future[None]]] = deque()

    @property
    def offset(self) -> int:
        """Plaintext bytes accepted so far, stored or in flight, including the buffered tail."""
        return self.next_chunk * self.codec.chunk_size + self._fill

    def write(self, data: bytes | bytearray) -> None:
        if self.offset + len(data) > self.codec.size:
            raise InvalidInput(
                "More bytes than declared",
                [Problem("size", f"the file was declared as {self.codec.size} bytes")],
            )
        size = self.codec.chunk_size
        if not self._fill and len(data) == size:
            self._emit(data)  # the common case when reading a file: no copy
            return
        if not self._buf:
            self._buf = bytearray(min(size, self.codec.size))
        with memoryview(data) as view:
            pos = 0
            while pos < len(view):
                take = min(len(view) - pos, size - self._fill)
                self._buf[self._fill : self._fill + take] = view[pos : pos + take]
                self._fill += take
                pos += take
                if self._fill == size and self.next_chunk < self.codec.count:
                    # The full buffer itself goes out (it is never written again) and the next chunk
                    # gets a fresh one: no 4 MiB copy per chunk.
                    full, self._buf, self._fill = self._buf, bytearray(size), 0
                    self._emit(full)

    def _emit(self, plain: bytes | bytearray) -> None:
        chunk = self.next_chunk
        hashed = self._hash_pool.submit(self.blake2b.update, plain)
        self.sha256.update(plain)
        sealed = self.codec.seal(chunk, plain)
        written = self._write_pool.submit(self.storage.put, self.key_of(chunk), sealed)
        self.next_chunk += 1
        self._pending.append((chunk, hashed, written))
        while len(self._pending) > self.in_flight:
            self._settle_one()

    def _settle_one(self) -> None:
        chunk, hashed, written = self._pending.popleft()
        hashed.result()
        written.result()
        if self.on_stored is not None:
            self.on_stored(chunk + 1)

    def flush(self) -> None:
        """Wait for every emitted chunk to be stored (the buffered tail stays buffered)."""
        while self._pending:
            self._settle_one()

    def finish(self) -> tuple[str, str]:
        """Store the final chunk; returns (sha256, blake2b) hex of the whole file."""
        if self.offset != self.codec.size:
            raise InvalidInput(
                "Fewer bytes than declared",
                [Problem("size", f"got {self.offset} of the {self.codec.size} bytes declared")],
            )
        if self.next_chunk < self.codec.count:
            tail = bytes(self._buf[: self._fill])
            self._buf, self._fill = bytearray(0), 0
            self._emit(tail)
        self.flush()
        return self.sha256.hexdigest(), self.blake2b.hexdigest()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._hash_pool.shutdown(wait=True)
            self._write_pool.shutdown(wait=True)


def read_chunks(
    codec: ChunkCodec,
    storage: ObjectStorage,
    key_of: Callable[[int], str],
    start: int = 0,
    *,
    read_ahead: bool = True,
) -> Iterator[bytes]:
    """The plaintext chunks of a stored file, each authenticated, fetching one ahead of the consumer
    unless ``read_ahead`` is off (for a consumer that already reads on a thread of its own)."""
    if start >= codec.count:
        return
    # Each sealed chunk is handed to ``open`` through a list, so that the suspended generator keeps no
    # reference to it while the consumer works on the plaintext: one chunk less resident per reader.
    if not read_ahead:
        for chunk in range(start, codec.count):
            box = [_fetch(codec, storage, key_of, chunk)]
            yield codec.open(chunk, box.pop())
        return
    with ThreadPoolExecutor(1, thread_name_prefix="evidence-read") as pool:
        ahead = pool.submit(_fetch, codec, storage, key_of, start)
        for chunk in range(start, codec.count):
            box = [ahead.result()]
            if chunk + 1 < codec.count:
                ahead = pool.submit(_fetch, codec, storage, key_of, chunk + 1)
            yield codec.open(chunk, box.pop())


def _fetch(codec: ChunkCodec, storage: ObjectStorage, key_of: Callable[[int], str], chunk: int) -> bytes:
    try:
        return storage.get(key_of(chunk))
    except NotFound:
        raise TamperDetected(
            f"file {codec.file_index} chunk {chunk}", "is missing from storage", fault="missing"
        ) from None


def check_no_extra_chunks(codec: ChunkCodec, storage: ObjectStorage, prefix: str) -> None:
    """Objects beyond the last chunk mean someone appended to the stored file."""
    expected = {f"{prefix}/{c:010d}" for c in range(codec.count)}
    for key in storage.keys(prefix):
        if key not in expected:
            raise TamperDetected(
                f"file {codec.file_index}",
                f"storage holds an unexpected object {key} beyond its final chunk (extended)",
                fault="extended",
            )


def hash_stream(chunks: Iterable[bytes]) -> tuple[str, str, int]:
    sha, blake = new_hashers()
    size = 0
    for piece in chunks:
        sha.update(piece)
        blake.update(piece)
        size += len(piece)
    return sha.hexdigest(), blake.hexdigest(), size


def check_digests(what: str, expected: dict[str, Any], sha256: str, blake2b: str, size: int) -> None:
    if size != expected.get("size"):
        raise DigestMismatch(
            f"{what}: {size} bytes, the manifest says {expected.get('size')}",
            extra={"object": what, "field": "size"},
        )
    if sha256 != expected.get("sha256"):
        raise DigestMismatch(
            f"{what}: SHA-256 is {sha256}, the manifest says {expected.get('sha256')}",
            extra={"object": what, "field": "sha256"},
        )
    if blake2b != expected.get("blake2b"):
        raise DigestMismatch(
            f"{what}: BLAKE2b differs from the manifest", extra={"object": what, "field": "blake2b"}
        )
