"""Due dates, preservation expiry and reminders. Times are stored in UTC; the viewer's zone is applied at
the edge (API clients, CLI, web)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
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
    session: Session,
    catalog: Catalog,
    request: Request,
    action: str,
    data: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Recompute the next due date and (re)schedule reminders after a step on either side; ``data`` is
    what the step carried, ``at`` when it happened if not now (a request registered after it arrived)."""
    d = catalog.type(request.type).deadlines
    now = at or utcnow()
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
        if request.held_by is None:
            schedule_reminders(session, request, d.reminder_days)
    if request.status in CLOSED:
        request.due_at = None
        jobs.cancel(session, f"preserve:{request.id}:")
        end_holds(session, catalog, request)


def schedule_reminders(session: Session, request: Request, days: list[int], round_: str = "") -> None:
    """Reminders before the preservation ends; ``round_`` tells apart a second schedule for the same date
    (after a hold), since a job's key is used once."""
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
            key=f"preserve:{request.id}:{until.isoformat()}:{before}{round_}",
        )


@jobs.runner(REMINDER)
def _remind(session: Session, payload: dict[str, Any]) -> None:
    from cyberpact.cases.service import event

    request = session.get(Request, uuid.UUID(payload["request_id"]))
    if request is None or request.preserved_until is None or request.held_by is not None:
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
    """held, ok, expiring (within 14 days), expires_today or expired; None when nothing is preserved."""
    if request.preserved_until is None or request.status not in ("preserved", "extension_requested"):
        return None
    if request.held_by is not None:
        return "held"
    left = (request.preserved_until - (today or utcnow().date())).days
    if left < 0:
        return "expired"
    if left == 0:
        return "expires_today"
    return "expiring" if left <= 14 else "ok"


def is_overdue(request: Request, now: datetime | None = None) -> bool:
    return request.due_at is not None and request.due_at < (now or utcnow()) and request.status not in CLOSED


# --- art. 42: preserved until the follow-up request is decided ------------------------------------------


def cited_tickets(header: dict[str, Any], fields: dict[str, Any]) -> set[str]:
    """The references of an earlier preservation a request says it follows (header and fields)."""
    found = {fields.get("preservation_reference")}
    if header.get("request_kind") == "follow_up_to_preservation":
        found.add(header.get("related_ticket"))
    return {t.strip() for t in found if isinstance(t, str) and t.strip()}


def _tickets_of(session: Session, preservation: Request) -> set[str]:
    """Every name the two sides may know a preservation by: its id, each side's reference, and the
    requested side's ticket."""
    from cyberpact.cases.service import requested_reference

    names = {
        str(preservation.id),
        preservation.remote_reference,
        preservation.header.get("our_reference"),
        requested_reference(session, preservation),
    }
    return {n.strip() for n in names if isinstance(n, str) and n.strip()}


def cited_preservations(
    session: Session,
    catalog: Catalog,
    follow_up_type: str,
    direction: str,
    counterpart: str | None,
    tickets: set[str],
    exclude: uuid.UUID | None = None,
    country: str | None = None,
) -> list[Request]:
    """The open preservations with the same State, on the same side, that ``tickets`` name and that a
    request of ``follow_up_type`` may follow (the catalog's ``follow_up``).

    The same State is the same country, whatever the channel: a State's 24/7 point of contact often
    sends the preservation (art. 41) and its central authority the MLA request that follows (art. 40),
    from two nodes, and either may come by fax and be registered. Only when no country is known is it
    the same peer."""
    kinds = [
        t for t, rt in catalog.types.items() if follow_up_type in rt.follow_up and "preserve" in rt.actions
    ]
    if not tickets or not kinds or (counterpart is None and country is None):
        return []
    same_state = (
        Request.counterpart_country == country
        if country is not None
        else (Request.counterpart == counterpart) & Request.counterpart_country.is_(None)
    )
    query = select(Request).where(
        Request.direction == direction,
        same_state,
        Request.type.in_(kinds),
        Request.status.not_in(CLOSED),
    )
    if exclude is not None:
        query = query.where(Request.id != exclude)
    return [p for p in session.scalars(query) if tickets & _tickets_of(session, p)]


def hold_for_follow_up(session: Session, catalog: Catalog, follow_up: Request) -> list[Request]:
    """Once the request that follows a preservation is received, the data stay preserved until it is
    decided (art. 42 [parallel: Budapest 29(7)]): the preservations it cites, with the same State, are
    held and their expiry reminders stop. Called on the requested side when it arrives and on the
    requesting side when its signed receipt comes back; returns the preservations held."""
    tickets = cited_tickets(follow_up.header, follow_up.fields)
    if not tickets:
        return []
    from cyberpact.cases.service import event

    held = cited_preservations(
        session,
        catalog,
        follow_up.type,
        follow_up.direction,
        follow_up.counterpart,
        tickets,
        follow_up.id,
        follow_up.counterpart_country,
    )
    for p in held:
        p.held_by = follow_up.id
        jobs.cancel(session, f"preserve:{p.id}:")
        event(
            session, p, "system", "system", "held", before=p.status, detail={"follow_up": str(follow_up.id)}
        )
    if not held and follow_up.direction == "incoming":
        # The officer must find the preservation by hand before its period runs out.
        event(
            session,
            follow_up,
            "system",
            "system",
            "preservation_not_found",
            before=follow_up.status,
            detail={"reference": ", ".join(sorted(tickets))},
        )
    return held


def end_holds(session: Session, catalog: Catalog, decided: Request) -> None:
    """The follow-up is decided: the preservations it held run to their date again, reminded as before
    (at once, when that date has passed meanwhile)."""
    from cyberpact.cases.service import event

    for p in session.scalars(select(Request).where(Request.held_by == decided.id)):
        p.held_by = None
        event(
            session,
            p,
            "system",
            "system",
            "hold_ended",
            before=p.status,
            detail={"follow_up": str(decided.id)},
        )
        if p.preserved_until is not None and p.status in ("preserved", "extension_requested"):
            days = catalog.type(p.type).deadlines.reminder_days
            schedule_reminders(session, p, days, round_=f":after:{decided.id}")
