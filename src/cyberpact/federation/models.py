"""Tables of the federation channel: this node's cards, its peers and their keys, the inbox and outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cyberpact.kit.db import Base


class NodeCard(Base):
    """Every card this node has issued; the newest is served, the older ones prove continuity."""

    __tablename__ = "node_cards"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    card: Mapped[str] = mapped_column(Text)  # JWS JSON serialization, one or two signatures
    sig_kid: Mapped[str] = mapped_column(String(64))
    enc_kid: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime]


class Peer(Base):
    __tablename__ = "peers"

    node_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    authority: Mapped[str | None] = mapped_column(String(300))
    roles: Mapped[list[Any]]
    base_url: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12), default="active")  # active, suspended, removed
    pinned_fingerprint: Mapped[str] = mapped_column(String(64))
    card_seq: Mapped[int] = mapped_column(Integer)
    card: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PeerKey(Base):
    """A peer's public key. Keys rotated out stay, with the end of their validity, to verify history."""

    __tablename__ = "peer_keys"

    peer_id: Mapped[str] = mapped_column(ForeignKey("peers.node_id", ondelete="CASCADE"), primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    use: Mapped[str] = mapped_column(String(8))
    jwk: Mapped[dict[str, Any]]
    card_seq: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]


class InboxMessage(Base):
    """An accepted message, stored with the exact envelope that carried it and the receipt we signed."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_messages_conv", "sender", "conversation_id", "created_at"),)

    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender: Mapped[str] = mapped_column(String(120), index=True)
    message_type: Mapped[str] = mapped_column(String(80))
    conversation_id: Mapped[str] = mapped_column(String(256))
    in_reply_to: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(index=True)
    envelope: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    signed: Mapped[str] = mapped_column(Text)  # the inner JWS: the sender's signature over the payload
    signing_kid: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    receipt: Mapped[str] = mapped_column(Text)


class OutboxMessage(Base):
    """A message waiting for, or past, delivery. Written in the transaction of the change that causes it."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        Index("ix_outbox_messages_conv", "recipient", "conversation_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    recipient: Mapped[str] = mapped_column(String(120), index=True)
    message_type: Mapped[str] = mapped_column(String(80))
    conversation_id: Mapped[str] = mapped_column(String(256))
    in_reply_to: Mapped[str | None] = mapped_column(String(36))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    # pending -> delivered | rejected | dead; "dead" is a flag for people, `outbox retry` revives it.
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    envelope: Mapped[str | None] = mapped_column(Text)
    signed: Mapped[str | None] = mapped_column(Text)
    digest: Mapped[str | None] = mapped_column(String(64))
    receipt: Mapped[str | None] = mapped_column(Text)
    receipt_status: Mapped[str | None] = mapped_column(String(10))
    delivered_at: Mapped[datetime | None]


class RosterPublisher(Base):
    """A peer whose signed rosters this node takes (see ``roster``), and the serial of the last one taken."""

    __tablename__ = "roster_publishers"

    node_id: Mapped[str] = mapped_column(ForeignKey("peers.node_id", ondelete="CASCADE"), primary_key=True)
    trusted_at: Mapped[datetime]
    trusted_by: Mapped[str] = mapped_column(String(120))
    last_serial: Mapped[int] = mapped_column(BigInteger, default=0)


class IssuedRoster(Base):
    """A roster this node signed as a publisher. Its serial is above every earlier one's whatever the clock
    says, so that a clock set back never makes a new roster read as a replay to those who take them."""

    __tablename__ = "issued_rosters"

    serial: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    issued_at: Mapped[datetime]
    valid_until: Mapped[datetime]
    issued_by: Mapped[str] = mapped_column(String(120))
    nodes: Mapped[int] = mapped_column(Integer)


class PeerLink(Base):
    """Delivery health per peer: the circuit breaker's state."""

    __tablename__ = "peer_links"

    peer_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    open_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_success_at: Mapped[datetime | None]


class ConversationEvent(Base):
    """One step of a conversation with a peer as this side saw it: queued, sent, delivered, received...

    Both sides keep their own; together they are the two-sided timeline.
    """

    __tablename__ = "conversation_events"
    __table_args__ = (Index("ix_conversation_events_conv", "conversation_id", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    conversation_id: Mapped[str] = mapped_column(String(256))
    peer: Mapped[str] = mapped_column(String(120))
    direction: Mapped[str] = mapped_column(String(3))  # in, out
    kind: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    message_type: Mapped[str] = mapped_column(String(80))
    summary: Mapped[str] = mapped_column(String(500))
