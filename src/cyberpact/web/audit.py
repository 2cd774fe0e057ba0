"""The audit record for inspectors: every read and change on this node, newest first, narrowed by who,
what and when, and checks of the whole hash chain against its signed anchors, run in the background. Both
are recorded: the people who read the record are read about too."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import QueryParams

from cyberpact.audit import service as audit
from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.http import get_database, wake_jobs
from cyberpact.kit.i18n import N_
from cyberpact.web.render import page
from cyberpact.web.security import CheckedForm, CurrentViewer, DeskRoute, Viewer, require

router = APIRouter(route_class=DeskRoute, include_in_schema=False)
ROLES = ("auditor", "admin")
PAGE = 100
CHECKS_SHOWN = 5
# Free-text filters: name -> (longest accepted, width of the box on the page).
_TEXT_FILTERS = {"actor": (120, 14), "action": (120, 18), "object_type": (60, 10), "object_id": (200, 24)}
FILTER_LABELS = {
    "actor": N_("Who (user name)"),
    "action": N_("Action begins with"),
    "object_type": N_("Object type"),
    "object_id": N_("Object identifier"),
    "outcome": N_("Outcome"),
    "since": N_("From (day)"),
    "until": N_("To (day)"),
    "cursor": N_("Page"),
}


def _day(params: QueryParams, name: str, problems: list[Problem]) -> date | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(Problem(name, "a date (YYYY-MM-DD)", "invalid"))
        return None


def parse_filters(params: QueryParams, zone: str) -> audit.Filters:
    """The page's filters. Dates are days on the reader's own clock: "from 3 March" in Hanoi starts seven
    hours before it does in UTC."""
    problems: list[Problem] = []
    text: dict[str, str | None] = {}
    for name, (most, _size) in _TEXT_FILTERS.items():
        value = params.get(name, "").strip()
        if len(value) > most:
            problems.append(Problem(name, f"at most {most} characters", "invalid"))
        text[name] = value or None
    outcome = params.get("outcome", "").strip() or None
    if outcome not in (None, "allowed", "denied"):
        problems.append(Problem("outcome", "allowed or denied", "invalid"))
    tz = ZoneInfo(zone)
    first, last = _day(params, "since", problems), _day(params, "until", problems)
    if first and last and last < first:
        problems.append(Problem("until", "on or after the first day", "invalid"))
    if problems:
        raise InvalidInput("Invalid filter", problems)
    return audit.Filters(
        actor=text["actor"],
        object_type=text["object_type"],
        object_id=text["object_id"],
        action=text["action"],
        outcome=outcome,
        since=datetime.combine(first, time.min, tzinfo=tz) if first else None,
        until=datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz) if last else None,
    )


def _query(params: QueryParams, **changes: str) -> str:
    """The query string of these filters (the page cursor left out), with ``changes``."""
    kept = {k: v for k, v in params.items() if k in FILTER_LABELS and k != "cursor" and v}
    return str(QueryParams(kept | changes))


def _render(request: Request, viewer: Viewer) -> HTMLResponse:
    """The page, with the latest checks of the chain, in one unit of work that records the reading."""
    params = request.query_params
    context: dict[str, Any] = {
        "params": params,
        "labels": FILTER_LABELS,
        "text_filters": _TEXT_FILTERS,
        "check_hours": request.app.state.settings.audit_check_hours,
    }
    with get_database(request).transaction() as session:
        checks = audit.latest_checks(session, CHECKS_SHOWN)
        # What the chain was last found to be, even when a later walk could not finish; and that walk.
        ended = audit.last_finished_check(session)
        failed = next((c for c in checks if c.status == "failed"), None)
        if failed and ended and ended.requested_at > failed.requested_at:
            failed = None
        context |= {
            "checks": checks,
            "running": next((c for c in checks if c.status in audit.CHECK_ACTIVE), None),
            "ended": ended,
            "failed": failed,
        }
        try:
            filters = parse_filters(params, viewer.timezone)
            rows, cursor = audit.read(
                session, viewer.actor, filters, cursor=params.get("cursor") or None, limit=PAGE
            )
        except InvalidInput as exc:
            # Beside the filters, each at its field, so the reader sees what to change; nothing was read.
            context["problems"] = exc.problems
            return page(request, viewer, "audit.html", context, status=exc.status)
    context |= {
        "rows": rows,
        "older": f"?{_query(params, cursor=cursor)}" if cursor else None,
        "newest": f"?{_query(params)}" if params.get("cursor") else None,
    }
    return page(request, viewer, "audit.html", context)


@router.get("/desk/audit")
def audit_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *ROLES)
    return _render(request, viewer)


@router.post("/desk/audit/check")
def check_chain(request: Request, viewer: CurrentViewer, _: CheckedForm) -> RedirectResponse:
    """Queue a walk of the whole chain (the job worker runs it: about 40 s a million records on a small
    machine, BENCHMARKS.md, too long for a page to wait on), then show the page with its progress."""
    require(viewer, *ROLES)
    with get_database(request).transaction() as session:
        audit.request_check(session, viewer.actor)
    wake_jobs(request)
    query = _query(request.query_params)
    return RedirectResponse(f"/desk/audit{'?' + query if query else ''}#h-check", status_code=303)
