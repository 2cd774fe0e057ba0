from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from cyberpact.accounts.api import require_roles
from cyberpact.audit import service
from cyberpact.audit.schemas import AuditPage, AuditRecordOut
from cyberpact.kit.actor import Actor
from cyberpact.kit.http import WriteSession
from cyberpact.kit.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Auditor = Annotated[Actor, Depends(require_roles("auditor", "admin"))]


@router.get("", response_model=AuditPage)
def list_records(
    request: Request,
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
    after = int(decode_cursor(cursor, "audit", 1)[0]) if cursor else None
    rows = service.search(
        session,
        actor=by,
        object_type=object_type,
        object_id=object_id,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
        after_seq=after,
        limit=limit + 1,
    )
    items = [AuditRecordOut.model_validate(r) for r in rows[:limit]]
    service.record(
        session,
        actor,
        "audit.read",
        "audit",
        None,
        detail={"query": dict(request.query_params), "returned": len(items)},
    )
    nxt = encode_cursor("audit", [items[-1].seq]) if len(rows) > limit else None
    return AuditPage(items=items, next=nxt)
