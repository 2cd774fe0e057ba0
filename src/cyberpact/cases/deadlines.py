"""Due dates, preservation expiry and reminders. Times are stored in UTC; the viewer's zone is applied at
the edge (API clients, CLI, web)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cyberpact.cases.models import Request
from cyberpact.catalog.service import Catalog
from cyberpact.kit import jobs
from cyberpact.kit.time import end_of_day, utcnow

REMINDER = "cases.preservation_reminder"
CLOSED = ("executed", "refused", "released", "closed", "withdrawn")


def _end_of(day: date, zone: object = None) -> datetime:
    # Deadlines are read as 23:59 of the day, on the writer's clock.
    return end_of_day(day, zone, time(23, 59)).astimezone(UTC)


def _deadline_from_header(request: Request) -> datetime | None:
    raw = request.header.get("deadline")
    if not isinstance(raw, str):
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    # The requesting authority set it, on its contact's clock (the header names that zone).
    return _end_of(day, request.header.get("contact_timezone"))


def after_transition(
    session: Session, catalog: Catalog, request: Request, action: str, data: dict[str, Any] | None = None
) -> None:
    """Recompute the next due date and (re)schedule reminders after a step on either side; ``data`` is
    what the step carried."""
    d = catalog.type(request.type).deadlines
    now = utcnow()
    if action in ("received", "approve") and d.acknowledge_hours:
        request.due_at = now + timedelta(hours=d.acknowledge_hours)
    elif action in ("acknowledge", "start_execution", "info_provided", "provide_info"):
        candidates = [
            x
            for x in (
                _deadline_from_header(request),
                now + timedelta(days=d.execute_days) if d.execute_days else None,
            )
            if x
        ]
        request.due_at = min(candidates) if candidates else None
    elif action == "request_info" and request.status == "info_requested":
        # The clock waits for the answers: the requested side cannot be late while the requesting side
        # owes it information, and the answers start it again.
        request.due_at = None
    elif action == "postpone" and request.status == "postponed":
        # Execution is due again when the postponement ends: a request nobody is reminded of is lost.
        try:
            request.due_at = _end_of(date.fromisoformat(str((data or {}).get("until"))))
        except ValueError:
            request.due_at = None
    if action in ("preserve", "grant_extension") and request.preserved_until is not None:
        request.due_at = None
        schedule_reminders(session, request, d.reminder_days)
    if request.status in CLOSED:
        request.due_at = None
        jobs.cancel(session, f"preserve:{request.id}:")


def schedule_reminders(session: Session, request: Request, days: list[int]) -> None:
    assert request.preserved_until is not None
    jobs.cancel(session, f"preserve:{request.id}:")
    until = request.preserved_until
    for before in [*sorted(set(days), reverse=True), 0]:
        day = until - timedelta(days=before)
        run_at = datetime.combine(day, time(6, 0), tzinfo=UTC)
        if run_at < utcnow() and before:
            continue
        jobs.schedule(
            session,
            REMINDER,
            max(run_at, utcnow()),
            {"request_id": str(request.id), "until": until.isoformat(), "days_before": before},
            key=f"preserve:{request.id}:{until.isoformat()}:{before}",
        )


@jobs.runner(REMINDER)
def _remind(session: Session, payload: dict[str, Any]) -> None:
    from cyberpact.cases.service import event

    request = session.get(Request, uuid.UUID(payload["request_id"]))
    if request is None or request.preserved_until is None:
        return
    if request.preserved_until.isoformat() != payload["until"] or request.status in CLOSED:
        return  # extended or released since: this reminder is stale
    days = int(payload["days_before"])
    action = "expires_today" if days == 0 else "reminder"
    event(
        session,
        request,
        "system",
        "system",
        action,
        before=request.status,
        detail={"preserved_until": payload["until"], "days_left": days},
    )


def expiry_state(request: Request, today: date | None = None) -> str | None:
    """ok, expiring (within 14 days), expires_today or expired; None when nothing is preserved."""
    if request.preserved_until is None or request.status not in ("preserved", "extension_requested"):
        return None
    left = (request.preserved_until - (today or utcnow().date())).days
    if left < 0:
        return "expired"
    if left == 0:
        return "expires_today"
    return "expiring" if left <= 14 else "ok"


def is_overdue(request: Request, now: datetime | None = None) -> bool:
    return request.due_at is not None and request.due_at < (now or utcnow()) and request.status not in CLOSED
