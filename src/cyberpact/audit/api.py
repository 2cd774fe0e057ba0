from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response

from cyberpact.accounts.api import require_roles
from cyberpact.audit import service
from cyberpact.audit.schemas import AuditCheckOut, AuditPage, AuditRecordOut
from cyberpact.kit.actor import Actor
from cyberpact.kit.http import WriteSession, wake_jobs

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


@router.post("/checks", response_model=AuditCheckOut, status_code=202)
def request_check(
    actor: Auditor, session: WriteSession, request: Request, response: Response, after: BackgroundTasks
) -> AuditCheckOut:
    """Queue a walk of the whole chain against its signed anchors; while one is queued or running, that one
    is answered. Poll its URL (``Location``) for progress and the finding."""
    check, _ = service.request_check(session, actor)
    after.add_task(wake_jobs, request)  # runs once the response is on its way, after the commit
    response.headers["Location"] = f"/api/v1/audit/checks/{check.id}"
    return AuditCheckOut.model_validate(check)


@router.get("/checks", response_model=list[AuditCheckOut])
def list_checks(
    actor: Auditor, session: WriteSession, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[AuditCheckOut]:
    """The latest checks of the chain, newest first."""
    return [AuditCheckOut.model_validate(c) for c in service.checks(session, actor, limit)]


@router.get("/checks/{check_id}", response_model=AuditCheckOut)
def get_check(actor: Auditor, session: WriteSession, check_id: uuid.UUID) -> AuditCheckOut:
    return AuditCheckOut.model_validate(service.get_check(session, actor, check_id))
