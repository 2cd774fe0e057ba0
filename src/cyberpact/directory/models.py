"""Directory tables: parties, their authorities (with accepted languages) and their treaty status.

A party's ISO code is its primary key: it is the natural key every import, URL and other feature uses,
and it never changes for a given party. Relationships load with ``lazy="raise"`` so that a list page
cannot quietly turn into one query per row.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cyberpact.kit.db import Base, IdMixin


class Party(Base):
    """A State (ISO 3166-1 codes) or a regional economic integration organization.

    ISO 3166-1 gives the European Union only the "exceptionally reserved" alpha-2 code EU and no alpha-3
    code, so the directory gives it EUE, a choice of its own and not an ISO code. A State's codes must be
    ISO's; an organization's must not be any country's, so the two can never be confused.
    """

    __tablename__ = "directory_parties"

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    code3: Mapped[str] = mapped_column(String(3), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(60), index=True)
    # ISO alpha-2 codes of an organization's member States (empty for a State); they need not be
    # parties themselves, which is why this is a list and not a foreign key.
    members: Mapped[list[Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TreatyStatus(Base):
    __tablename__ = "directory_treaty_status"

    party_code: Mapped[str] = mapped_column(ForeignKey("directory_parties.code"), primary_key=True)
    signature_date: Mapped[date | None] = mapped_column(Date, index=True)
    instrument_type: Mapped[str | None] = mapped_column(String(20))
    instrument_date: Mapped[date | None] = mapped_column(Date, index=True)
    declarations: Mapped[list[Any]]
    reservations: Mapped[list[Any]]
    source: Mapped[str] = mapped_column(String(500))
    as_of: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime]


class Authority(IdMixin, Base):
    __tablename__ = "directory_authorities"
    # The unique key doubles as the keyset-pagination order of the authority list.
    __table_args__ = (
        UniqueConstraint("party_code", "kind", "name_key"),
        Index("ix_directory_authorities_kind", "kind", "party_code"),
    )

    party_code: Mapped[str] = mapped_column(ForeignKey("directory_parties.code"))
    kind: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(300))
    name_key: Mapped[str] = mapped_column(String(300))  # casefolded name: duplicates differ only in case
    address: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(50))
    email: Mapped[str | None] = mapped_column(String(254))
    web: Mapped[str | None] = mapped_column(String(500))
    channels: Mapped[list[Any]]
    timezone: Mapped[str] = mapped_column(String(64))
    always_open: Mapped[bool]
    office_hours: Mapped[list[Any]]
    interpol_allowed: Mapped[bool]
    legal_requirements: Mapped[str | None] = mapped_column(Text)
    procedural_requirements: Mapped[str | None] = mapped_column(Text)
    encryption_required: Mapped[bool | None]
    e_signature_required: Mapped[bool | None]
    dual_criminality: Mapped[str | None] = mapped_column(String(30))
    use_limitations: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(500))
    as_of: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    language_rows: Mapped[list[AuthorityLanguage]] = relationship(
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
        order_by="AuthorityLanguage.position",
    )

    @property
    def languages(self) -> list[str]:
        return [row.tag for row in self.language_rows]


class AuthorityLanguage(Base):
    """One accepted language of an authority, in order of preference; a row per tag so that filtering
    by language is an index lookup on either database."""

    __tablename__ = "directory_languages"

    authority_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("directory_authorities.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(8), index=True)  # the primary language subtag
