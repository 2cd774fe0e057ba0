from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cyberpact.kit.schemas import Strict


class CaseCreate(Strict):
    title: str = Field(min_length=1, max_length=300)
    reference: str | None = Field(
        None, min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
    )


class CaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    reference: str
    title: str
    created_by: str
    created_at: datetime


class DraftIn(Strict):
    type: str = Field(min_length=1, max_length=40)
    case_id: uuid.UUID | None = None
    case_title: str | None = Field(
        None, min_length=1, max_length=300, description="opens a new case when no case_id is given"
    )
    counterpart: str | None = Field(None, max_length=120, description="the requested node (a peer)")
    header: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)


class ReceivedIn(Strict):
    """An incoming request that arrived outside the network (e-mail, fax, post, telephone), as written."""

    type: str = Field(min_length=1, max_length=40)
    case_id: uuid.UUID | None = Field(None, description="default: the case of the sender's reference")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="the requesting State (ISO 3166-1 alpha-2)")
    authority: str = Field(min_length=1, max_length=300, description="the requesting authority")
    channel: str = Field(description="email, fax, post, diplomatic, phone or in_person")
    received_at: datetime = Field(description="when it arrived, with its time zone")
    header: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)


class DraftUpdate(Strict):
    counterpart: str | None = Field(
        None, max_length=120, description="the requested node; left out, it stays as it was; null clears it"
    )
    header: dict[str, Any]
    fields: dict[str, Any]
    version: int | None = Field(None, ge=1, description="the version you edited, to catch concurrent edits")


class DraftCheck(Strict):
    type: str = Field(min_length=1, max_length=40)
    counterpart: str | None = Field(None, max_length=120)
    header: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)


class ProblemOut(BaseModel):
    field: str
    code: str
    message: str
    cite: str | None = None


class CheckOut(BaseModel):
    complete: bool
    errors: list[ProblemOut]
    warnings: list[ProblemOut]


class CounterpartAway(BaseModel):
    """The other side's node while this node cannot send to it, and the steps held back for that."""

    node_id: str
    status: Literal["removed", "suspended"]
    since: date = Field(description="the day its status changed")
    withheld_actions: list[str] = Field(
        description="open by state and role, not offered: each would send it a message"
    )
    reason: str


class RequestOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    direction: str
    type: str
    type_label: str
    status: str
    counterpart: str | None
    counterpart_country: str | None
    header: dict[str, Any]
    fields: dict[str, Any]
    emergency: bool
    confidentiality: str
    use_limitation: str | None
    drafted_by: str
    approved_by: str | None
    approved_at: datetime | None
    remote_reference: str | None
    due_at: datetime | None
    overdue: bool
    preserved_until: date | None
    held_by: uuid.UUID | None = Field(
        None, description="the follow-up request the preserved data wait for (art. 42); no expiry meanwhile"
    )
    expiry: str | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    allowed_actions: list[str]
    counterpart_away: CounterpartAway | None = None


class DraftOut(BaseModel):
    request: RequestOut
    check: CheckOut


class ActionIn(Strict):
    data: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(
        None, ge=1, description="the version of the request you read; 409 if it has been edited since"
    )


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    actor: str
    side: str
    action: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]
    message_id: str | None


class RevisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    at: datetime
    by: str
    reason: str
    header: dict[str, Any]
    fields: dict[str, Any]
    comments: str | None


class RequestPage(BaseModel):
    items: list[RequestOut]
    next: str | None = None


class NoteIn(Strict):
    text: str = Field(min_length=1, max_length=10_000, description="kept on this node; never sent to a peer")


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    case_id: uuid.UUID
    request_id: uuid.UUID | None
    author: str
    at: datetime
    text: str
