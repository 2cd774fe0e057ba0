"""Shapes of the intel REST API (kept apart from the tables)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cyberpact.kit.schemas import Strict


class CollectionCreate(Strict):
    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    alias: str | None = Field(None, max_length=100)
    federate: bool = False
    sharing_group: list[str] = Field(default_factory=list, max_length=1000)
    strict_recipient: str | None = Field(None, max_length=120)
    default_tlp: str = "amber"


class PolicyUpdate(Strict):
    federate: bool | None = None
    sharing_group: list[str] | None = Field(None, max_length=1000)
    strict_recipient: str | None = Field(None, max_length=120)
    default_tlp: str | None = None


class CollectionOut(BaseModel):
    id: uuid.UUID
    title: str
    description: str | None
    alias: str | None
    can_read: bool
    can_write: bool
    federate: bool
    sharing_group: list[str]
    strict_recipient: str | None
    default_tlp: str
    created_at: datetime
    source_peer: str | None = Field(None, description="the peer this collection mirrors; null: our own")


class GrantUpdate(Strict):
    read: bool = True
    write: bool = False


class GrantOut(BaseModel):
    username: str
    can_read: bool
    can_write: bool
    granted_at: datetime


class IdentityUpdate(Strict):
    state: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2 code")
    name: str | None = Field(None, max_length=200)


class IdentityOut(BaseModel):
    reporter: str
    state: str
    name: str | None
    updated_at: datetime


class StateSeenOut(BaseModel):
    state: str
    first_seen: datetime
    last_seen: datetime
    reports: int


class CorrelationOut(BaseModel):
    kind: str
    value: str
    first_seen: datetime
    last_seen: datetime
    states: list[StateSeenOut]


class ImportOut(BaseModel):
    status_id: uuid.UUID
    stored: int
    duplicates: int
    refused: int
    failures: list[dict[str, Any]]
    skipped: list[str]


class PullRequest(Strict):
    peer: str | None = Field(
        None, max_length=120, description="the peer to ask; default: the one the collection mirrors"
    )
    since: datetime | None = Field(
        None, description="only what the peer added or deleted after this time; default: everything"
    )


class PullOut(BaseModel):
    message_id: str
    peer: str
    collection_id: uuid.UUID
    since: datetime | None
