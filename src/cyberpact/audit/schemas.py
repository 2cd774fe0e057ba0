from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    actor: str
    actor_id: str | None
    action: str
    object_type: str
    object_id: str | None
    source: str | None
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRecordOut]
    next: str | None = None


class AuditCheckOut(BaseModel):
    """A walk of the whole chain: queued, running (``records_checked`` of ``records_total``), or ended:
    intact, broken at ``finding_seq`` (what kind of fault, and what was found), or failed (``error``)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    requested_by: str
    requested_at: datetime
    reason: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    records_total: int | None
    records_checked: int
    anchors: int | None
    finding_seq: int | None
    finding_kind: str | None
    finding_message: str | None
    error: str | None
