from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cyberpact.kit.db import Base, IdMixin


class AuditRecord(Base):
    """One entry of the append-only, hash-chained access and change record.

    ``seq`` is assigned by the writer under the chain lock (never by a database sequence), so the chain
    has no gaps and a missing number means a deleted record. ``seq`` is deliberately outside the hash:
    the chain itself (``prev_hash``) defines the order, which lets verification tell a reordering from an
    alteration.
    """

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_actor_at", "actor", "at"),
        Index("ix_audit_records_object", "object_type", "object_id"),
        Index("ix_audit_records_action_at", "action", "at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(120))
    actor_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(120))
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(120))
    outcome: Mapped[str] = mapped_column(String(10))
    detail: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditAnchor(Base):
    """A signed statement of the chain head, so deleting the newest records is detectable too."""

    __tablename__ = "audit_anchors"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    kid: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)


class AuditCheck(IdMixin, Base):
    """One walk of the whole chain against its signed anchors, asked for by an inspector or run on the
    node's own schedule, with how far it got and what it found."""

    __tablename__ = "audit_checks"
    __table_args__ = (Index("ix_audit_checks_requested_at", "requested_at"),)

    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(10))  # asked, scheduled, command (`cyberpact audit verify`)
    status: Mapped[str] = mapped_column(String(10))  # queued, running, intact, broken, failed
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    records_total: Mapped[int | None] = mapped_column(BigInteger)  # in the chain when the walk began
    records_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    anchors: Mapped[int | None]
    finding_seq: Mapped[int | None] = mapped_column(BigInteger)
    finding_kind: Mapped[str | None] = mapped_column(String(10))
    finding_message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(200))  # why a walk could not finish
