"""Tampering with what is stored is detected and named: chunks, manifest, rows, keys, the custody log."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from conftest import make_settings
from cyberpact.config import Settings
from cyberpact.evidence import chunks, custody, merkle, service, uploads
from cyberpact.evidence.errors import InconsistentTreeHead, TamperDetected
from cyberpact.evidence.models import (
    CustodyAlert,
    CustodyEvent,
    CustodyHead,
    CustodyNode,
    EvidenceFile,
    EvidencePackage,
)
from cyberpact.evidence.schemas import Acquisition
from cyberpact.federation.models import Peer, PeerKey
from cyberpact.kit import crypto
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.errors import Conflict, IntegrityFailure
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.storage import LocalStorage
from cyberpact.kit.time import utcnow
from evidence.helpers import ACQUISITION

CHUNK = 64 * 1024


@pytest.fixture
def ctx(db_url: str, tmp_path: Path) -> service.Context:
    s: Settings = make_settings(db_url, tmp_path, evidence_chunk_bytes=CHUNK)
    return service.Context(
        s, KeyStore(s.key_passphrase_value(), s.key_kdf_iterations), LocalStorage(tmp_path / "store")
    )


@pytest.fixture
def db(ctx: service.Context) -> Iterator[Database]:
    d = Database(ctx.settings.sqlalchemy_url)
    yield d
    d.dispose()


def make(db: Database, ctx: service.Context, data: bytes) -> uuid.UUID:
    with db.transaction() as s:
        p = service.create_package(s, ctx, SYSTEM, case_ref="C", request_ref=None, title="t")
        service.add_file(
            s,
            ctx,
            SYSTEM,
            p,
            name="img",
            size=len(data),
            media_type="application/octet-stream",
            acquisition=Acquisition.model_validate(ACQUISITION),
        )
        pid = p.id
    up = uploads.Upload(db, ctx, SYSTEM, pid, 0, 0)
    up.write(data)
    up.finish()
    with db.transaction() as s:
        service.seal(s, ctx, SYSTEM, service.get_package(s, pid))
        custody.sign_head(s, ctx.keys, ctx.node_id)
    return pid


def verify(db: Database, ctx: service.Context, pid: uuid.UUID) -> None:
    with db.transaction() as s:
        service.verify_package(s, ctx, SYSTEM, service.get_package(s, pid))


def obj(ctx: service.Context, pid: uuid.UUID, chunk: int) -> Path:
    assert isinstance(ctx.storage, LocalStorage)
    return ctx.storage.root / chunks.object_key(pid, 0, chunk)


@pytest.fixture
def stored(db: Database, ctx: service.Context) -> uuid.UUID:
    pid = make(db, ctx, os.urandom(4 * CHUNK + 100))
    verify(db, ctx, pid)
    return pid


def test_flipped_byte_in_a_stored_chunk(db: Database, ctx: service.Context, stored: uuid.UUID) -> None:
    path = obj(ctx, stored, 1)
    raw = bytearray(path.read_bytes())
    raw[500] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(
        TamperDetected, match=r"file 0 chunk 1: failed authentication: its bytes were altered"
    ):
        verify(db, ctx, stored)


def test_reordered_chunks(db: Database, ctx: service.Context, stored: uuid.UUID) -> None:
    a, b = obj(ctx, stored, 1), obj(ctx, stored, 2)
    ra, rb = a.read_bytes(), b.read_bytes()
    a.write_bytes(rb)
    b.write_bytes(ra)
    with pytest.raises(TamperDetected, match=r"file 0 chunk 1: holds chunk 2 \(chunks were reordered"):
        verify(db, ctx, stored)


def test_dropped_and_appended_chunks(db: Database, ctx: service.Context, stored: uuid.UUID) -> None:
    last = obj(ctx, stored, 4)
    saved = last.read_bytes()
    last.unlink()
    with pytest.raises(TamperDetected, match="file 0 chunk 4: is missing from storage"):
        verify(db, ctx, stored)
    last.write_bytes(saved)
    obj(ctx, stored, 5).write_bytes(saved)
    with pytest.raises(TamperDetected, match=r"unexpected object .* beyond its final chunk"):
        verify(db, ctx, stored)


def test_stream_format_detects_truncation_and_extension() -> None:
    key = crypto.chunk_cipher(crypto.new_data_key())
    scope = uuid.uuid4()
    full = chunks.ChunkCodec(key, scope, 0, 3 * CHUNK, CHUNK)
    sealed = [full.seal(i, os.urandom(CHUNK)) for i in range(3)]
    shorter = chunks.ChunkCodec(key, scope, 0, 2 * CHUNK, CHUNK)  # a reader told the file has two chunks
    with pytest.raises(TamperDetected, match="truncated"):
        shorter.open(1, sealed[1])
    longer = chunks.ChunkCodec(key, scope, 0, 4 * CHUNK, CHUNK)
    with pytest.raises(TamperDetected, match="extended"):
        longer.open(2, sealed[2])
    other_file = chunks.ChunkCodec(key, scope, 1, 3 * CHUNK, CHUNK)
    with pytest.raises(TamperDetected):
        other_file.open(0, sealed[0])
    assert full.open(2, sealed[2])


def test_database_rows_that_differ_from_the_signed_manifest(
    db: Database, ctx: service.Context, stored: uuid.UUID
) -> None:
    with db.transaction() as s:
        s.execute(update(EvidenceFile).values(sha256="0" * 64))
    with pytest.raises(TamperDetected, match="file 0 row: sha256 differs from the signed manifest"):
        verify(db, ctx, stored)
    with db.transaction() as s:
        s.execute(update(EvidenceFile).values(sha256=None))
        p = s.get_one(EvidencePackage, stored)
        p.case_ref = "OTHER"
    with pytest.raises(TamperDetected, match="case_ref differs from the signed manifest"):
        verify(db, ctx, stored)


def test_flipped_manifest_and_wrapped_key(db: Database, ctx: service.Context, stored: uuid.UUID) -> None:
    with db.transaction() as s:
        p = s.get_one(EvidencePackage, stored)
        original = p.manifest_jws
        assert original
        p.manifest_jws = original[:-5] + ("A" if original[-5] != "A" else "B") + original[-4:]
    with pytest.raises(TamperDetected, match="manifest: signature check failed"):
        verify(db, ctx, stored)
    with db.transaction() as s:
        p = s.get_one(EvidencePackage, stored)
        p.manifest_jws = original
        p.wrapped_key = p.wrapped_key[:-1] + bytes([p.wrapped_key[-1] ^ 1])
    with pytest.raises(TamperDetected, match="data key: the data key cannot be unwrapped"):
        verify(db, ctx, stored)


def test_custody_log_tampering_is_named(db: Database, ctx: service.Context, stored: uuid.UUID) -> None:
    with db.transaction(read_only=True) as s:
        report = custody.verify_log(s, ctx.keys)
        assert report.events >= 3 and report.heads >= 1
        entry = s.get_one(CustodyEvent, 1).entry
    with db.transaction() as s:
        s.execute(
            update(CustodyEvent)
            .where(CustodyEvent.seq == 1)
            .values(entry=entry.replace("system", "systen", 1))
        )
    with db.transaction(read_only=True) as s, pytest.raises(TamperDetected, match="custody event 1"):
        custody.verify_log(s, ctx.keys)
    with db.transaction() as s:
        s.execute(update(CustodyEvent).where(CustodyEvent.seq == 1).values(entry=entry, kind="released"))
    with (
        db.transaction(read_only=True) as s,
        pytest.raises(TamperDetected, match="row differs from its entry"),
    ):
        custody.verify_log(s, ctx.keys)
    with db.transaction() as s:
        s.execute(update(CustodyEvent).where(CustodyEvent.seq == 1).values(kind="sealed"))
        node = s.scalars(select(CustodyNode).where(CustodyNode.level == 1)).first()
        assert node is not None
        level, idx = node.level, node.idx
        s.execute(
            update(CustodyNode)
            .where(CustodyNode.level == level, CustodyNode.idx == idx)
            .values(hash=b"\x00" * 32)
        )
    with (
        db.transaction(read_only=True) as s,
        pytest.raises(TamperDetected, match=rf"node \({level}, {idx}\)"),
    ):
        custody.verify_log(s, ctx.keys)


def test_rewritten_history_contradicts_the_signed_head(
    db: Database, ctx: service.Context, stored: uuid.UUID
) -> None:
    # Rewrite event 0 consistently (entry, leaf and all nodes above it): only the signed head knows better.
    import json

    from cyberpact.kit.canonical import canonical_json_floatless

    with db.transaction() as s:
        s.execute(delete(CustodyNode))
        rows = list(s.scalars(select(CustodyEvent).order_by(CustodyEvent.seq)))
        doc = json.loads(rows[0].entry)
        doc["actor"] = "someone else"
        rows[0].entry = canonical_json_floatless(doc).decode()
        tree = merkle.MemoryTree([merkle.leaf_hash(r.entry.encode()) for r in rows])
        for level, hashes in enumerate(tree.levels):
            for idx, h in enumerate(hashes):
                s.add(CustodyNode(level=level, idx=idx, hash=h))
    with db.transaction(read_only=True) as s, pytest.raises(TamperDetected, match="history rewritten"):
        custody.verify_log(s, ctx.keys)


def test_a_forged_or_dropped_head_is_named(db: Database, ctx: service.Context, stored: uuid.UUID) -> None:
    with db.transaction() as s:
        head = s.scalars(select(CustodyHead).order_by(CustodyHead.size)).first()
        assert head is not None
        head.jws = head.jws[:-3] + ("AAA" if not head.jws.endswith("AAA") else "BBB")
    with (
        db.transaction(read_only=True) as s,
        pytest.raises(TamperDetected, match=r"signed tree head .*signature"),
    ):
        custody.verify_log(s, ctx.keys)


def test_deleted_events_are_named(db: Database, ctx: service.Context, stored: uuid.UUID) -> None:
    with db.transaction() as s:
        s.execute(delete(CustodyEvent).where(CustodyEvent.seq == 1))
    with (
        db.transaction(read_only=True) as s,
        pytest.raises(TamperDetected, match=r"events 1\.\.1 are missing"),
    ):
        custody.verify_log(s, ctx.keys)


def _peer(db: Database) -> tuple[str, object]:
    key = crypto.generate_key("Ed25519")
    jwk = crypto.public_jwk(key)
    now = utcnow()
    with db.transaction() as s:
        s.add(
            Peer(
                node_id="pl-ca",
                name="PL",
                country="PL",
                authority=None,
                roles=[],
                base_url="http://x",
                status="active",
                pinned_fingerprint="x",
                card_seq=1,
                card="{}",
                added_at=now,
                updated_at=now,
            )
        )
        s.flush()
        s.add(
            PeerKey(
                peer_id="pl-ca",
                kid=jwk["kid"],
                use="sig",
                jwk=jwk,
                card_seq=1,
                valid_from=now,
                valid_until=None,
            )
        )
    return "pl-ca", key


def _sth(key: object, tree: merkle.MemoryTree, size: int) -> str:
    return crypto.sign_json(
        key,
        custody.head_payload("pl-ca", size, tree.root(size), "2026-01-01T00:00:00.000000Z"),
        {"typ": custody.STH_TYP},
    )  # type: ignore[arg-type]


def test_a_peer_head_inconsistent_with_its_past_is_refused_and_flagged(db: Database) -> None:
    peer, key = _peer(db)
    honest = merkle.MemoryTree([merkle.leaf_hash(bytes([i])) for i in range(10)])
    with db.transaction() as s:
        custody.accept_peer_head(s, peer, _sth(key, honest, 3), 0, [], SYSTEM)
        custody.accept_peer_head(
            s, peer, _sth(key, honest, 7), 3, merkle.consistency_proof(3, 7, honest.get), SYSTEM
        )
    with db.transaction() as s, pytest.raises(Conflict, match="must start at 7"):
        custody.accept_peer_head(
            s, peer, _sth(key, honest, 9), 3, merkle.consistency_proof(3, 9, honest.get), SYSTEM
        )
    # The peer rewrote leaf 5 and signs a bigger tree: any proof it offers from 7 fails.
    forked = merkle.MemoryTree([merkle.leaf_hash(bytes([i if i != 5 else 99])) for i in range(10)])
    with pytest.raises(InconsistentTreeHead) as caught, db.transaction() as s:
        custody.accept_peer_head(
            s, peer, _sth(key, forked, 9), 7, merkle.consistency_proof(7, 9, forked.get), SYSTEM
        )
    with db.transaction() as s:
        custody.store_alert(s, caught.value)
    with db.transaction(read_only=True) as s:
        alert = s.scalars(select(CustodyAlert)).one()
        assert alert.peer == "pl-ca" and "not consistent with head 7" in alert.reason
        assert alert.evidence["before"] and alert.evidence["after"]
        assert custody.peer_latest(s, peer).size == 7  # type: ignore[union-attr]
    # Same size, another root: two signed heads that cannot both be true.
    with pytest.raises(InconsistentTreeHead, match="different roots"), db.transaction() as s:
        custody.accept_peer_head(s, peer, _sth(key, forked, 7), 7, [], SYSTEM)
    with pytest.raises(IntegrityFailure), db.transaction() as s:
        custody.accept_peer_head(s, peer, _sth(crypto.generate_key("Ed25519"), honest, 10), 7, [], SYSTEM)


def test_digest_helper_names_the_field() -> None:
    entry = {
        "size": 3,
        "sha256": hashlib.sha256(b"abc").hexdigest(),
        "blake2b": hashlib.blake2b(b"abc").hexdigest(),
    }
    sha, blake, size = chunks.hash_stream([b"ab", b"c"])
    chunks.check_digests("f", entry, sha, blake, size)
    with pytest.raises(IntegrityFailure, match="SHA-256"):
        chunks.check_digests("f", {**entry, "sha256": "0" * 64}, sha, blake, size)
