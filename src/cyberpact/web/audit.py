"""The audit record for inspectors: every read and change on this node, newest first, narrowed by who,
what and when, and a check of the whole hash chain against its signed anchors. Both are recorded: the
people who read the record are read about too."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams

from cyberpact.audit import service as audit
from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.http import get_database
from cyberpact.kit.i18n import N_
from cyberpact.kit.keystore import KeyStore
from cyberpact.web.render import page
from cyberpact.web.security import CheckedForm, CurrentViewer, DeskRoute, Viewer, require

router = APIRouter(route_class=DeskRoute, include_in_schema=False)
ROLES = ("auditor", "admin")
PAGE = 100
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


def _render(request: Request, viewer: Viewer, *, check: bool = False) -> HTMLResponse:
    """The page, after checking the chain if asked; in one transaction, which records what was done."""
    params = request.query_params
    context: dict[str, Any] = {
        "params": params,
        "labels": FILTER_LABELS,
        "text_filters": _TEXT_FILTERS,
        "check": None,
    }
    with get_database(request).transaction() as session:
        if check:
            context["check"] = _check_chain(session, request, viewer)
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


def _check_chain(session: Session, request: Request, viewer: Viewer) -> audit.VerifyResult:
    """Walk the whole chain as ``cyberpact audit verify`` does, and record that it was checked and how it
    stood. It reads every record once (about 40 s a million on a small machine, BENCHMARKS.md)."""
    keys: KeyStore = request.app.state.keys
    result = audit.verify(session, keys)
    finding = result.finding
    audit.record(
        session,
        viewer.actor,
        "audit.verify",
        "audit",
        None,
        detail={"records": result.records, "anchors": result.anchors}
        | ({"finding": {"seq": finding.seq, "kind": finding.kind}} if finding else {}),
    )
    return result


@router.get("/desk/audit")
def audit_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *ROLES)
    return _render(request, viewer)


@router.post("/desk/audit/check")
def check_chain(request: Request, viewer: CurrentViewer, _: CheckedForm) -> HTMLResponse:
    require(viewer, *ROLES)
    return _render(request, viewer, check=True)
