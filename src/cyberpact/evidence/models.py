"""Tables of the evidence package: packages and their files, transfers, and the custody log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cyberpact.kit.db import Base, IdMixin

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class EvidencePackage(IdMixin, Base):
    __tablename__ = "evidence_packages"

    # Plain indexed strings until the cases feature lands; then they become foreign keys.
    case_ref: Mapped[str] = mapped_column(String(120), index=True)
    request_ref: Mapped[str | None] = mapped_column(String(120), index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    use_conditions: Mapped[dict[str, Any]]
    # open -> sealed -> (deleted); a package received from a peer is "received" from the start.
    status: Mapped[str] = mapped_column(String(10), default="open")
    origin_node: Mapped[str] = mapped_column(String(120))
    origin_package_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(index=True)
    sealed_at: Mapped[datetime | None]
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    manifest_jws: Mapped[str | None] = mapped_column(Text)
    manifest_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    # For a received package: the origin's own custody events with inclusion proofs, as verified on arrival.
    origin_custody: Mapped[dict[str, Any] | None]


class EvidenceFile(IdMixin, Base):
    __tablename__ = "evidence_files"
    __table_args__ = (Index("ix_evidence_files_package", "package_id", "index", unique=True),)

    package_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evidence_packages.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(_BIGINT)
    media_type: Mapped[str] = mapped_column(String(255))
    declared_sha256: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64))
    blake2b: Mapped[str | None] = mapped_column(String(128))
    acquisition: Mapped[dict[str, Any]]
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunks_stored: Mapped[int] = mapped_column(Integer, default=0)  # contiguous from chunk 0
    # uploading, complete; withdrawn: taken out before sealing, the row kept so its index is never reused
    status: Mapped[str] = mapped_column(String(10), default="uploading")
    created_at: Mapped[datetime]
    # A lease on the upload, so two clients can never write the same chunk positions at once.
    upload_token: Mapped[str | None] = mapped_column(String(32))
    upload_until: Mapped[datetime | None]


class CustodyEvent(Base):
    """One leaf of the custody log. ``entry`` is the exact RFC 8785 text whose leaf hash is in the tree."""

    __tablename__ = "custody_events"
    # The few events of a kind (the deletions waiting for a second administrator) without reading the log.
    __table_args__ = (Index("ix_custody_events_kind", "kind", "seq"),)

    seq: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)  # leaf index
    package_id: Mapped[str | None] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    entry: Mapped[str] = mapped_column(Text)


class CustodyNode(Base):
    """The hash of the perfect subtree of 2**level leaves starting at leaf idx * 2**level."""

    __tablename__ = "custody_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class CustodyHead(Base):
    """A tree head this node signed."""

    __tablename__ = "custody_heads"

    size: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    at: Mapped[datetime]
    kid: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)


class PeerTreeHead(Base):
    """A tree head a peer signed and presented to us, kept to hold it to every later one."""

    __tablename__ = "custody_peer_heads"

    peer: Mapped[str] = mapped_column(String(120), primary_key=True)
    size: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    jws: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]


class CustodyAlert(IdMixin, Base):
    """A peer caught presenting a tree head inconsistent with one it signed before: proof of misconduct."""

    __tablename__ = "custody_alerts"

    peer: Mapped[str] = mapped_column(String(120), index=True)
    at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[dict[str, Any]]  # both signed heads and the failed proof


class EvidenceTransfer(IdMixin, Base):
    __tablename__ = "evidence_transfers"

    direction: Mapped[str] = mapped_column(String(3))  # out, in
    peer: Mapped[str] = mapped_column(String(120), index=True)
    package_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("evidence_packages.id", ondelete="SET NULL"), index=True
    )
    # offered -> sending -> accepted | rejected (out); receiving -> accepted | rejected (in)
    status: Mapped[str] = mapped_column(String(10))
    manifest_digest: Mapped[str] = mapped_column(String(64))
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(128))  # the per-transfer key, wrapped by our KEK
    offer: Mapped[dict[str, Any]]  # files, sizes and chunking the two sides agreed on
    receipt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
