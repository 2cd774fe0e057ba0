"""Cases, the requests in and out of them, and every event of their two-sided life."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cyberpact.kit.db import Base, IdMixin


class Case(IdMixin, Base):
    __tablename__ = "cases"
    # Every listing of cases (the desk's, the API's, the command line's, the wizard's picker) reads them
    # newest first, a page after a (created_at, id) cursor: one index range, whatever the number of cases.
    __table_args__ = (Index("ix_cases_created", "created_at", "id"),)

    reference: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]


class Request(IdMixin, Base):
    """One request, outgoing (we ask) or incoming (we are asked). Both sides share its id."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_direction_status", "direction", "status"),
        Index("ix_requests_due", "due_at"),
        Index("ix_requests_preserved_until", "preserved_until"),
    )

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # outgoing, incoming
    type: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(30))
    catalog_version: Mapped[str] = mapped_column(String(40))
    counterpart: Mapped[str | None] = mapped_column(String(120), index=True)  # the peer node
    counterpart_country: Mapped[str | None] = mapped_column(String(2), index=True)
    header: Mapped[dict[str, Any]]
    fields: Mapped[dict[str, Any]]
    emergency: Mapped[bool] = mapped_column(default=False, index=True)
    confidentiality: Mapped[str] = mapped_column(String(24), default="none")
    use_limitation: Mapped[str | None] = mapped_column(Text)
    drafted_by: Mapped[str] = mapped_column(String(120))
    approved_by: Mapped[str | None] = mapped_column(String(120))
    approved_at: Mapped[datetime | None]
    approval: Mapped[dict[str, Any] | None]
    remote_reference: Mapped[str | None] = mapped_column(String(120))
    due_at: Mapped[datetime | None]
    preserved_until: Mapped[date | None] = mapped_column(Date)
    # The follow-up request whose decision the preserved data now wait for (art. 42): set when it is
    # received, cleared when it is decided; the preservation period does not run out meanwhile.
    held_by: Mapped[uuid.UUID | None] = mapped_column(index=True)
    sent_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    executed_at: Mapped[datetime | None]
    request_message_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)


class RequestEvent(Base):
    """A step on a request's timeline; ``side`` says whether this node or the peer took it."""

    __tablename__ = "request_events"
    __table_args__ = (Index("ix_request_events_request", "request_id", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("requests.id"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(160))
    side: Mapped[str] = mapped_column(String(8))  # local, remote, system
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str | None] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]]
    message_id: Mapped[str | None] = mapped_column(String(36))


class RequestRevision(Base):
    """The draft as it stood when submitted or returned, so a reviewer sees what changed since."""

    __tablename__ = "request_revisions"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("requests.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(String(20))  # submitted, returned
    header: Mapped[dict[str, Any]]
    fields: Mapped[dict[str, Any]]
    comments: Mapped[str | None] = mapped_column(Text)


class CaseNote(IdMixin, Base):
    """An officer's note on a case, or on one request of it. Kept on this node: no note ever reaches another
    State. Never edited or deleted: a correction is a later note."""

    __tablename__ = "case_notes"
    __table_args__ = (Index("ix_case_notes_case", "case_id", "at"),)

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"))
    # Set: seen only by those who may see that request (a note on a confidential request is as confidential).
    request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("requests.id"), index=True)
    author: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text)
