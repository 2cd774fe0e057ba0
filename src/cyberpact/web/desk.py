"""Today (what needs me now) and the inbox and outbox of requests.

Lists start from the cases service's own query (``list_query``), which applies who may see what, and each
page view leaves one audit record of the listing, as the API's list does.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.audit.models import AuditCheck
from cyberpact.cases import deadlines
from cyberpact.cases import service as cases
from cyberpact.cases.models import Request as RequestRow
from cyberpact.catalog.service import Catalog
from cyberpact.evidence import deletion
from cyberpact.federation.models import OutboxMessage
from cyberpact.kit import jobs
from cyberpact.kit.errors import Problem
from cyberpact.kit.filters import choice_problem
from cyberpact.kit.http import get_database
from cyberpact.kit.i18n import N_
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.time import utcnow
from cyberpact.web.render import CASE_ROLES, catalog_of, page
from cyberpact.web.security import CurrentViewer, DeskRoute, Viewer
from cyberpact.web.views import RequestSummary, summary

router = APIRouter(route_class=DeskRoute, include_in_schema=False)

TOP = 10
PAGE_SIZE = 25
EXPIRING_DAYS = 14
SORTS: dict[str, Any] = {
    "created": RequestRow.created_at,
    "updated": RequestRow.updated_at,
    "due": RequestRow.due_at,
    "status": RequestRow.status,
    "type": RequestRow.type,
    "state": RequestRow.counterpart_country,
}


@router.get("/")
def root() -> Response:
    return RedirectResponse("/desk", status_code=303)


# --- today -------------------------------------------------------------------------------------------------


@dataclass
class Section:
    key: str
    count: int = 0
    items: list[RequestSummary] = field(default_factory=list)
    link: str = ""


@dataclass
class Today:
    sections: list[Section]
    outbox_pending: int = 0
    outbox_dead: int = 0
    deletions_waiting: int = 0
    broken_chain: AuditCheck | None = None  # the last check of the audit chain ran and found a break
    jobs_given_up: int = 0  # background jobs no longer tried (a reminder that never fired, ...)
    given_up: list[jobs.Job] = field(default_factory=list)  # the latest of them, each with its retry


def _count(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)


def _section(
    session: Session, catalog: Catalog, key: str, query: Select[Any], order: Any, link: str
) -> Section:
    rows = list(session.scalars(query.order_by(order, RequestRow.id).limit(TOP)))
    return Section(key, _count(session, query), [summary(catalog, r) for r in rows], link)


def _undelivered(session: Session, viewer: Viewer) -> Select[Any]:
    """Requests with a message that did not reach the other side: being retried (whatever the request's
    state: a withdrawal still on its way is news the other side lacks), or refused or given up while the
    request is still open (a step that crossed a withdrawal, refused by the side that closed it, asks
    nothing of anyone)."""

    def conversations(*where: Any) -> list[uuid.UUID]:
        # The most recent first, so that years of old trouble never push today's out of the window.
        found = session.scalars(
            select(OutboxMessage.conversation_id)
            .where(OutboxMessage.message_type.in_(("cp.request", "cp.step")), *where)
            .group_by(OutboxMessage.conversation_id)
            .order_by(func.max(OutboxMessage.seq).desc())
            .limit(500)
        )
        return [rid for conv in found if (rid := parse_uuid(conv)) is not None]

    retrying = conversations(OutboxMessage.status == "pending", OutboxMessage.attempts > 0)
    failed = conversations(OutboxMessage.status.in_(("dead", "rejected")))
    live = RequestRow.status.not_in((*deadlines.CLOSED, "draft"))
    return cases.list_query(viewer.actor, cases.RequestFilter()).where(
        or_(RequestRow.id.in_(retrying), and_(RequestRow.id.in_(failed), live))
    )


def today_view(session: Session, catalog: Catalog, viewer: Viewer) -> Today:
    out = Today([])
    if viewer.has_any(*CASE_ROLES):
        base = cases.list_query(viewer.actor, cases.RequestFilter())
        live = RequestRow.status.not_in((*deadlines.CLOSED, "draft"))
        soon = utcnow().date() + timedelta(days=EXPIRING_DAYS)
        sections = [
            _section(
                session,
                catalog,
                "emergency",
                base.where(RequestRow.emergency.is_(True), live),
                RequestRow.created_at.desc(),
                "/desk/inbox?emergency=1",
            ),
            # What a duty officer answers first: a new request waiting for its acknowledgement (24 hours
            # for a preservation), before it turns overdue.
            _section(
                session,
                catalog,
                "to_acknowledge",
                base.where(RequestRow.direction == "incoming", RequestRow.status == "received"),
                RequestRow.due_at,
                "/desk/inbox?status=received&sort=due&order=asc",
            ),
            # The other State asked us something and waits: nothing moves until we answer.
            _section(
                session,
                catalog,
                "questions",
                base.where(
                    RequestRow.direction == "outgoing",
                    RequestRow.status.in_(("info_requested", "consultation")),
                ),
                RequestRow.updated_at,
                "/desk/outbox?status=info_requested",
            ),
            _section(
                session,
                catalog,
                "expiring",
                base.where(
                    RequestRow.status.in_(("preserved", "extension_requested")),
                    RequestRow.preserved_until <= soon,
                    RequestRow.held_by.is_(None),  # kept until its follow-up is decided: not ending
                ),
                RequestRow.preserved_until,
                "/desk/inbox?status=preserved&sort=due&order=asc",
            ),
            _section(
                session,
                catalog,
                "overdue",
                cases.list_query(viewer.actor, cases.RequestFilter(overdue=True)),
                RequestRow.due_at,
                "/desk/inbox?deadline=overdue",
            ),
        ]
        if viewer.has_any("supervisor"):
            waiting = base.where(
                RequestRow.status == "pending_approval", RequestRow.drafted_by != viewer.username
            )
            sections.append(
                _section(session, catalog, "approvals", waiting, RequestRow.updated_at, "/desk/approvals")
            )
        returned = base.where(RequestRow.status == "returned", RequestRow.drafted_by == viewer.username)
        sections.append(
            _section(
                session, catalog, "returned", returned, RequestRow.updated_at, "/desk/outbox?status=returned"
            )
        )
        sections.append(
            _section(
                session, catalog, "undelivered", _undelivered(session, viewer), RequestRow.updated_at, ""
            )
        )
        out.sections = sections
        audit.record(
            session,
            viewer.actor,
            "cases.request.list",
            "request",
            None,
            detail={"view": "desk.today", "returned": sum(len(s.items) for s in sections)},
        )
    if viewer.has_any("admin"):
        out.outbox_pending = int(
            session.scalar(
                select(func.count()).where(OutboxMessage.status == "pending", OutboxMessage.attempts > 0)
            )
            or 0
        )
        out.outbox_dead = int(session.scalar(select(func.count()).where(OutboxMessage.status == "dead")) or 0)
        out.deletions_waiting = len(deletion.pending_deletions(session))
        out.jobs_given_up, out.given_up = jobs.given_up(session)
    if viewer.has_any("admin", "auditor"):
        last = audit.last_finished_check(session)
        out.broken_chain = last if last is not None and last.status == "broken" else None
    return out


@router.get("/desk")
def today(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    with get_database(request).transaction() as session:
        view = today_view(session, catalog_of(request), viewer)
    return page(request, viewer, "today.html", {"today": view})


# --- inbox and outbox ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilter:
    country: str = ""
    type: str = ""
    status: str = ""
    deadline: str = ""  # overdue, week, none
    emergency: bool = False
    sort: str = "created"
    order: str = "desc"
    page: int = 1

    def query(self, **changes: Any) -> str:
        from urllib.parse import urlencode

        values = {**self.__dict__, **changes}
        values["emergency"] = "1" if values["emergency"] else ""
        return urlencode({k: v for k, v in values.items() if v not in ("", None, False)})


# The name each filter has on the form, for the problems shown beside it.
FILTER_LABELS: dict[str, str] = {
    "country": N_("State (ISO code)"),
    "type": N_("Type"),
    "status": N_("Status"),
    "deadline": N_("Deadline"),
    "sort": N_("Sort by"),
    "order": N_("Order"),
    "page": N_("Page"),
}


def read_filter(catalog: Catalog, params: Any) -> tuple[ListFilter, list[Problem]]:
    """Filters from the query string, and what is wrong with them. A value the lists cannot mean is never
    silently dropped: it is a problem, and the filter keeps its default there (the State as typed, so the
    form shows what to correct)."""
    problems: list[Problem] = []
    country = str(params.get("country", "")).strip().upper()
    if country and (len(country) != 2 or not country.isalpha()):
        problems.append(Problem("country", "an ISO 3166-1 alpha-2 code"))
    checks: dict[str, tuple[str, Iterable[str]]] = {
        "type": (str(params.get("type", "")), catalog.types),
        "status": (str(params.get("status", "")), catalog.lifecycle.states),
        "deadline": (str(params.get("deadline", "")), ("overdue", "week", "none")),
        "sort": (str(params.get("sort", "created")), SORTS),
        "order": (str(params.get("order", "desc")), ("asc", "desc")),
    }
    chosen: dict[str, str] = {}
    for name, (value, allowed) in checks.items():
        problem = choice_problem(name, value, allowed)
        if problem is None:
            chosen[name] = value
        else:
            problems.append(problem)
    raw_page = str(params.get("page", "1"))
    page_no = int(raw_page) if raw_page.isdigit() and 0 < len(raw_page) < 7 else 0
    if page_no < 1:
        problems.append(Problem("page", "a page number"))
    return ListFilter(
        country=country,
        emergency=params.get("emergency") in ("1", "on", "true"),
        page=max(page_no, 1),
        **chosen,
    ), problems


@dataclass
class Listing:
    direction: str
    filter: ListFilter
    items: list[RequestSummary]
    total: int
    pages: int


def listing(session: Session, catalog: Catalog, viewer: Viewer, direction: str, f: ListFilter) -> Listing:
    query = cases.list_query(
        viewer.actor,
        cases.RequestFilter(
            direction=direction,
            status=f.status or None,
            type=f.type or None,
            country=f.country or None,
            emergency=True if f.emergency else None,
            overdue=f.deadline == "overdue",
        ),
    )
    if f.deadline == "week":
        query = query.where(
            RequestRow.due_at <= utcnow() + timedelta(days=7), RequestRow.status.not_in(deadlines.CLOSED)
        )
    elif f.deadline == "none":
        query = query.where(RequestRow.due_at.is_(None))
    total = _count(session, query)
    column = SORTS[f.sort]
    ordered = column.asc().nulls_last() if f.order == "asc" else column.desc().nulls_last()
    rows = list(
        session.scalars(
            query.order_by(ordered, RequestRow.id).offset((f.page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
        )
    )
    audit.record(
        session,
        viewer.actor,
        "cases.request.list",
        "request",
        None,
        detail={
            "view": f"desk.{direction}",
            "returned": len(rows),
            "filter": {k: str(v) for k, v in f.__dict__.items() if v},
        },
    )
    today_ = utcnow().date()
    return Listing(
        direction, f, [summary(catalog, r, today_) for r in rows], total, max(1, math.ceil(total / PAGE_SIZE))
    )


def _list_page(request: Request, viewer: Viewer, direction: str) -> HTMLResponse:
    from cyberpact.web.security import require

    require(viewer, *CASE_ROLES)
    catalog = catalog_of(request)
    f, problems = read_filter(catalog, request.query_params)
    context: dict[str, Any] = {"sorts": list(SORTS), "labels": FILTER_LABELS, "problems": problems}
    if problems:
        # Beside the filters, each at its field, as the audit page does; nothing was listed or recorded.
        empty = Listing(direction, f, [], 0, 1)
        return page(request, viewer, "requests.html", {**context, "listing": empty}, status=422)
    with get_database(request).transaction() as session:
        result = listing(session, catalog, viewer, direction, f)
    return page(request, viewer, "requests.html", {**context, "listing": result})


@router.get("/desk/inbox")
def inbox(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return _list_page(request, viewer, "incoming")


@router.get("/desk/outbox")
def outbox(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return _list_page(request, viewer, "outgoing")
