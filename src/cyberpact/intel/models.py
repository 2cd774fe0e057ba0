"""Intel tables: collections and their grants, STIX objects (every version), TAXII status resources,
the observable index behind correlations, and deletion tombstones for federation.

``intel_objects`` is read by keyset on ``(date_added, seq)`` under one collection, so every listing is an
index range scan whatever the table's size; ``is_latest`` is maintained on write so that the default
"latest version of each object" listing needs no grouping.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cyberpact.kit.db import Base, IdMixin

# SQLite only auto-assigns rowids to a column declared exactly INTEGER PRIMARY KEY.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


class IntelCollection(IdMixin, Base):
    """A TAXII collection and its sharing policy (see ``policy.recipients``)."""

    __tablename__ = "intel_collections"

    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    alias: Mapped[str | None] = mapped_column(String(100), unique=True)
    federate: Mapped[bool] = mapped_column(default=False)
    sharing_group: Mapped[list[Any]]  # peer ids that receive GREEN and AMBER
    strict_recipient: Mapped[str | None] = mapped_column(String(120))  # the one peer for AMBER+STRICT
    default_tlp: Mapped[str] = mapped_column(String(12), default="amber")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(120))
    # A mirror of a peer's collection (same id), written only by that peer's messages; None: our own.
    source_peer: Mapped[str | None] = mapped_column(String(120))


class IntelGrant(Base):
    __tablename__ = "intel_grants"

    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("intel_collections.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    can_read: Mapped[bool]
    can_write: Mapped[bool]
    granted_at: Mapped[datetime]


class IntelObject(Base):
    """One version of one STIX object in one collection; ``raw`` is returned byte for byte."""

    __tablename__ = "intel_objects"
    __table_args__ = (
        UniqueConstraint("collection_id", "stix_id", "version", name="uq_intel_objects_version"),
        Index("ix_intel_objects_added", "collection_id", "date_added", "seq"),
        Index("ix_intel_objects_latest", "collection_id", "is_latest", "date_added", "seq"),
        Index("ix_intel_objects_type", "collection_id", "stix_type", "is_latest", "date_added", "seq"),
        # match[version]=<timestamp> without match[id]: one range of this index per timestamp.
        Index("ix_intel_objects_version", "collection_id", "version", "date_added", "seq"),
    )

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("intel_collections.id", ondelete="CASCADE"))
    stix_id: Mapped[str] = mapped_column(String(300))
    stix_type: Mapped[str] = mapped_column(String(250))
    # modified, else created, else date_added (TAXII 2.1's rule for objects without timestamps).
    version: Mapped[datetime]
    date_added: Mapped[datetime]
    is_latest: Mapped[bool]
    created_by_ref: Mapped[str | None] = mapped_column(String(300))
    tlp: Mapped[str | None] = mapped_column(String(12))
    pap: Mapped[str | None] = mapped_column(String(8))
    markings: Mapped[list[Any] | None]
    source_peer: Mapped[str | None] = mapped_column(String(120))  # None: originated on this node
    raw: Mapped[str] = mapped_column(Text)
    # A sighting's report is what it sighted: the observables of that indicator when the sighting was
    # stored, [[kind, value], ...], kept so that revoking the sighting takes back exactly those even if the
    # indicator changed since. None for every other object: its own content says what it reports.
    reported: Mapped[list[Any] | None]


class IntelOpenSighting(Base):
    """A stored sighting version whose sighted object this collection did not hold when it arrived.

    Peers and importers do not promise to send an indicator before its sightings; when the object arrives,
    the sightings waiting for it here are given what they report and counted. Gone with its sighting.
    """

    __tablename__ = "intel_open_sightings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["collection_id", "sighting_id", "version"],
            ["intel_objects.collection_id", "intel_objects.stix_id", "intel_objects.version"],
            ondelete="CASCADE",
        ),
        Index("ix_intel_open_sightings_target", "collection_id", "target_id"),
    )

    collection_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sighting_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    version: Mapped[datetime] = mapped_column(primary_key=True)
    target_id: Mapped[str] = mapped_column(String(300))


class IntelStatus(Base):
    """A TAXII status resource, kept so that ``GET .../status/{id}/`` answers after the POST."""

    __tablename__ = "intel_status"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("intel_collections.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    request_timestamp: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(10))
    total_count: Mapped[int]
    success_count: Mapped[int]
    failure_count: Mapped[int]
    pending_count: Mapped[int]
    successes: Mapped[list[Any]]  # [[id, version], ...]: compact, expanded when read
    failures: Mapped[list[Any]]  # [[id, version, message], ...]


class IntelTombstone(Base):
    """A deletion, kept so that federation can propagate it instead of silently losing it."""

    __tablename__ = "intel_tombstones"
    __table_args__ = (Index("ix_intel_tombstones_collection", "collection_id", "seq"),)

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("intel_collections.id", ondelete="CASCADE"))
    stix_id: Mapped[str] = mapped_column(String(300))
    version: Mapped[datetime | None]  # None: every version
    deleted_at: Mapped[datetime]
    deleted_by: Mapped[str] = mapped_column(String(120))
    # What the deleted version was marked and where it came from: a pull replays a deletion only to the
    # peers the sharing policy would have sent the object to, so a tombstone never discloses a RED id.
    tlp: Mapped[str | None] = mapped_column(String(12))
    source_peer: Mapped[str | None] = mapped_column(String(120))


class IntelIdentity(Base):
    """Which State a reporter speaks for: a STIX identity id, or ``peer:<id>`` for a peer node."""

    __tablename__ = "intel_identities"

    reporter: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[str] = mapped_column(String(2))
    name: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class IntelObservation(Base):
    """One reporter reported one observable (an indicator's equality value or an SCO) in one collection."""

    __tablename__ = "intel_observations"
    __table_args__ = (Index("ix_intel_observations_reporter", "reporter"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of kind and value
    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("intel_collections.id", ondelete="CASCADE"), primary_key=True
    )
    reporter: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(300))
    value: Mapped[str] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(2))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    reports: Mapped[int]


class IntelCorrelation(Base):
    """An observable and how many distinct States reported it; two or more make a correlation.

    Derived from ``intel_observations`` (``bulk.refresh_correlations``) when a known State reports it.
    """

    __tablename__ = "intel_correlations"
    __table_args__ = (Index("ix_intel_correlations_states", "states", "last_seen", "key"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(300))
    value: Mapped[str] = mapped_column(Text)
    states: Mapped[int]
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
