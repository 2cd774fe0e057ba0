from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from cyberpact.accounts.api import require_roles
from cyberpact.audit import service
from cyberpact.audit.schemas import AuditPage, AuditRecordOut
from cyberpact.kit.actor import Actor
from cyberpact.kit.http import WriteSession

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Auditor = Annotated[Actor, Depends(require_roles("auditor", "admin"))]


@router.get("", response_model=AuditPage)
def list_records(
    actor: Auditor,
    session: WriteSession,
    by: Annotated[str | None, Query(alias="actor", max_length=120)] = None,
    object_type: Annotated[str | None, Query(max_length=60)] = None,
    object_id: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=120, description="prefix match")] = None,
    outcome: Literal["allowed", "denied"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditPage:
    """Newest first. Reading the record is itself recorded: inspectors are inspected too."""
    filters = service.Filters(by, object_type, object_id, action, outcome, since, until)
    rows, nxt = service.read(session, actor, filters, cursor=cursor, limit=limit)
    return AuditPage(items=[AuditRecordOut.model_validate(r) for r in rows], next=nxt)
