"""Streaming a file's bytes into a package, resumably.

Services take a session and flush; uploads are the exception that proves the rule: a multi-gigabyte
stream cannot live in one transaction, so :class:`Upload` commits its progress chunk by chunk in short
units of work of its own, guarded by a lease on the file row.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update

from cyberpact.audit import service as audit
from cyberpact.evidence import chunks
from cyberpact.evidence.errors import DigestMismatch, PackageSealed
from cyberpact.evidence.models import EvidenceFile
from cyberpact.evidence.service import WITHDRAWN, Context, codec, data_key, get_file, get_package, key_of
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database
from cyberpact.kit.errors import Conflict
from cyberpact.kit.time import utcnow

_LEASE = timedelta(seconds=30)

# Hash states of uploads interrupted at a chunk boundary, so a resumed upload in this process need not
# re-read what it stored. hashlib states cannot be persisted; another process re-hashes from storage.
_HASH_CACHE: OrderedDict[uuid.UUID, tuple[int, tuple[Any, Any]]] = OrderedDict()
_HASH_CACHE_LOCK = threading.Lock()


class Upload:
    """One stream of bytes into one file, from ``offset`` on; see the module docstring."""

    def __init__(
        self,
        db: Database,
        ctx: Context,
        actor: Actor,
        package_id: uuid.UUID | str,
        index: int,
        offset: int,
        *,
        in_flight: int = chunks.IN_FLIGHT_NODE,
    ) -> None:
        self.db, self.ctx, self.actor = db, ctx, actor
        self.token = secrets.token_hex(16)
        with db.transaction() as session:
            package = get_package(session, package_id, actor, "write")
            f = get_file(session, package, index)
            if package.status != "open":
                raise PackageSealed(f"package {package.id} is {package.status}")
            if f.status == "complete":
                raise Conflict(f"file {index} is complete", extra={"expected_offset": f.size})
            committed = f.chunks_stored * f.chunk_size
            if offset != committed:
                raise Conflict(
                    f"the upload continues at byte {committed}, not {offset}",
                    extra={"expected_offset": committed},
                )
            now = utcnow()
            taken = session.execute(
                update(EvidenceFile)
                .where(
                    EvidenceFile.id == f.id,
                    or_(EvidenceFile.upload_token.is_(None), EvidenceFile.upload_until < now),
                )
                .values(upload_token=self.token, upload_until=now + _LEASE)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                raise Conflict(f"another upload to file {index} is in progress; retry shortly")
            self.package_id, self.file_id, self.index = package.id, f.id, f.index
            self.size, self.chunk_size, self.start = f.size, f.chunk_size, f.chunks_stored
            self.declared = f.declared_sha256
            key = data_key(session, ctx, package)
            self.codec = codec(session, ctx, package, f, key)
            self.key_of = key_of(package, f)
        self._stored, self._recorded_at = self.start, time.monotonic()
        self.sealer = chunks.StreamSealer(
            self.codec,
            ctx.storage,
            self.key_of,
            start_chunk=self.start,
            hashers=self._hashers(),
            on_stored=self._progress,
            in_flight=in_flight,
        )

    def _hashers(self) -> tuple[Any, Any]:
        with _HASH_CACHE_LOCK:
            cached = _HASH_CACHE.pop(self.file_id, None)
        if cached is not None and cached[0] == self.start:
            return cached[1]
        hashers = chunks.new_hashers()
        if self.start:
            for i, piece in enumerate(chunks.read_chunks(self.codec, self.ctx.storage, self.key_of)):
                hashers[0].update(piece)
                hashers[1].update(piece)
                if i + 1 == self.start:
                    break
        return hashers

    def _progress(self, stored: int, force: bool = False) -> None:
        # Recorded at most every half second: a resumed upload re-sends what was stored but not yet
        # recorded (re-sealed under fresh nonces), which costs less than a commit per chunk.
        self._stored = stored
        now = time.monotonic()
        if not force and now - self._recorded_at < 0.5:
            return
        self._recorded_at = now
        with self.db.transaction() as session:
            done = session.execute(
                update(EvidenceFile)
                .where(EvidenceFile.id == self.file_id, EvidenceFile.upload_token == self.token)
                .values(chunks_stored=stored, upload_until=utcnow() + _LEASE)
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                raise Conflict("the upload lease was lost to another upload")

    @property
    def offset(self) -> int:
        return self.sealer.offset

    def write(self, data: bytes | bytearray) -> None:
        self.sealer.write(data)

    def finish(self) -> EvidenceFile:
        """All bytes are in: store the final chunk, check the declared digest, mark the file complete."""
        try:
            sha, blake = self.sealer.finish()
        finally:
            self.sealer.close()
        with self.db.transaction() as session:
            f = session.get_one(EvidenceFile, self.file_id)
            if f.status == WITHDRAWN:
                # Withdrawn while this stream, its lease lapsed, still sent: what it stored since goes too.
                self.ctx.storage.delete_prefix(chunks.file_prefix(self.package_id, self.index))
                raise Conflict(f"file {self.index} was withdrawn while it was being uploaded")
            if self.declared is None or sha == self.declared:
                f.sha256, f.blake2b, f.status = sha, blake, "complete"
                f.upload_token = f.upload_until = None
                session.flush()
                audit.record(
                    session,
                    self.actor,
                    "evidence.file.complete",
                    "evidence_package",
                    self.package_id,
                    detail={"index": self.index},
                )
                return f
            # Nothing of a mismatching upload is kept: it is not the content the uploader meant.
            self.ctx.storage.delete_prefix(chunks.file_prefix(self.package_id, self.index))
            f.chunks_stored, f.upload_token, f.upload_until = 0, None, None
            audit.record(
                session,
                self.actor,
                "evidence.file.digest_mismatch",
                "evidence_package",
                self.package_id,
                outcome="denied",
                detail={"index": self.index},
            )
        raise DigestMismatch(
            f"file {self.index}: the content hashes to {sha}, not the declared {self.declared}; "
            "nothing was kept",
            extra={"object": f"file {self.index}", "field": "sha256"},
        )

    def pause(self) -> int:
        """The stream ended early (or was cut): keep what is stored, release the lease; returns the offset
        a client resumes from. The buffered tail of a partial chunk is dropped and sent again."""
        try:
            self.sealer.flush()
            if self._stored > self.start:
                self._progress(self._stored, force=True)
        finally:
            self.sealer.close()
            with _HASH_CACHE_LOCK:
                _HASH_CACHE[self.file_id] = (
                    self.sealer.next_chunk,
                    (self.sealer.sha256, self.sealer.blake2b),
                )
                while len(_HASH_CACHE) > 64:
                    _HASH_CACHE.popitem(last=False)
            with self.db.transaction() as session:
                session.execute(
                    update(EvidenceFile)
                    .where(EvidenceFile.id == self.file_id, EvidenceFile.upload_token == self.token)
                    .values(upload_token=None, upload_until=None)
                )
        return self.sealer.next_chunk * self.chunk_size

    def end(self) -> tuple[int, EvidenceFile | None]:
        if self.offset == self.size:
            f = self.finish()
            return self.size, f
        return self.pause(), None
