from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cyberpact.federation.roster import MAX_NODES, RosterEntry
from cyberpact.kit.schemas import Strict


class PeerAdd(Strict):
    url: str = Field(min_length=8, max_length=500)
    fingerprint: str = Field(min_length=10, max_length=80)


class PeerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node_id: str
    name: str
    country: str | None
    authority: str | None
    roles: list[str]
    base_url: str
    status: str
    pinned_fingerprint: str
    # The fingerprint to compare by telephone: the keys in force, not those pinned before a rotation.
    fingerprint: str
    rotated_at: datetime | None
    card_seq: int
    added_at: datetime
    updated_at: datetime


class NodeOut(BaseModel):
    node_id: str
    name: str
    base_url: str
    fingerprint: str
    card_seq: int
    sig_kid: str
    enc_kid: str


class MessageSend(Strict):
    recipient: str = Field(min_length=1, max_length=120)
    message_type: str = Field("note", min_length=1, max_length=80)
    payload: dict[str, Any]
    conversation_id: str | None = Field(None, max_length=256)
    in_reply_to: str | None = Field(None, max_length=36)


class OutboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    message_id: str
    recipient: str
    message_type: str
    conversation_id: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    receipt_status: str | None
    last_error: str | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    conversation_id: str
    peer: str
    direction: str
    kind: str
    message_id: str
    message_type: str
    summary: str


class RosterImport(Strict):
    roster: str = Field(min_length=1, max_length=1_000_000, description="a signed roster (compact JWS)")


class RosterOutcomeOut(BaseModel):
    added: list[str]
    unchanged: list[str]
    refused: dict[str, str]  # node id -> why


class PublisherAdd(Strict):
    node_id: str = Field(min_length=2, max_length=120)


class PublisherOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node_id: str
    trusted_at: datetime
    trusted_by: str
    last_serial: int


class RosterSign(Strict):
    days: int = Field(30, ge=1, le=366, description="how long the roster stays in force")
    nodes: list[RosterEntry] | None = Field(
        None, max_length=MAX_NODES, description="default: this node's active peers"
    )


class RosterSigned(BaseModel):
    roster: str
    nodes: int
    serial: int


class IssuedRosterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    serial: int
    issued_at: datetime
    valid_until: datetime
    issued_by: str
    nodes: int
