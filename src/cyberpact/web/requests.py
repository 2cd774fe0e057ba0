"""The request page and the case page (one timeline each, the actions open to the viewer now), the life
cycle's actions, the formal document, and the supervisors' approval queue.

Access and every rule come from the cases service and ``lifecycle``: a page offers exactly
``allowed_actions(catalog, request, actor)``, and posting any other action is refused by ``lifecycle.act``
itself (403 for a role, 409 for a state), which the denial hook records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.cases import deadlines, document, lifecycle, notes
from cyberpact.cases import service as cases
from cyberpact.cases.models import Case, RequestRevision
from cyberpact.cases.models import Request as RequestRow
from cyberpact.catalog.schemas import Action, FieldDef
from cyberpact.catalog.service import Catalog, RequestedState, check_draft
from cyberpact.directory.models import TreatyStatus
from cyberpact.directory.service import convention
from cyberpact.evidence import service as evidence
from cyberpact.evidence.models import EvidencePackage
from cyberpact.federation import outbox
from cyberpact.kit.errors import InvalidInput, NotFound, Problem
from cyberpact.kit.http import get_database
from cyberpact.kit.i18n import LANGUAGES, N_, translator
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.time import utcnow
from cyberpact.web import forms
from cyberpact.web.render import CASE_ROLES, catalog_of, clock, page
from cyberpact.web.security import DOCUMENT_CSP, CheckedForm, CurrentViewer, DeskRoute, Viewer, require
from cyberpact.web.views import RequestSummary, filed_packages, packages_for, present, summary, timeline

router = APIRouter(route_class=DeskRoute, include_in_schema=False)
EDITABLE = ("draft", "returned")


def parse_id(value: str, what: str = "request") -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound(f"No {what} {value[:60]}")
    return parsed


@dataclass(frozen=True)
class Row:
    label: str
    value: document.Value
    cite: str


@dataclass(frozen=True)
class ActionForm:
    name: str
    label: str
    controls: list[forms.Control]
    open: bool
    hint: str | None  # a msgid


@dataclass(frozen=True)
class StateInfo:
    """What the drafter must know of the requested State: the languages it accepts and the treaty."""

    requested: RequestedState | None
    signature_date: Any
    instrument_date: Any
    in_force: Any
    convention_in_force: Any


def _rows(catalog: Catalog, viewer: Viewer, defs: list[FieldDef], values: dict[str, Any]) -> list[Row]:
    t = translator(viewer.locale)
    known = {f.name for f in defs}
    out = [
        Row(f.label or f.name, document.format_value(t, catalog, f, values.get(f.name)), f.cite)
        for f in defs
        if values.get(f.name) not in (None, "", [], {})
    ]
    # Fields from a peer on a newer catalog are shown under their own names rather than dropped.
    out += [
        Row(name, document.Value("text", v if isinstance(v, str) else str(v)), "")
        for name, v in values.items()
        if name not in known and v not in (None, "", [], {})
    ]
    return out


def state_info(session: Session, catalog: Catalog, row: RequestRow) -> StateInfo:
    rt = catalog.type(row.type)
    requested = cases.requested_state(session, row.counterpart_country, rt.channel)
    treaty = session.get(TreatyStatus, row.counterpart_country) if row.counterpart_country else None
    eif = convention(session).status
    return StateInfo(
        requested,
        treaty.signature_date if treaty else None,
        treaty.instrument_date if treaty else None,
        eif.for_party.get(row.counterpart_country or ""),
        eif.convention,
    )


# What a step's form says under its fields, where the step is not what its label alone suggests.
_FOUR_EYES = N_("Four eyes: you are reviewing another person's draft.")
_ENDS_HERE = N_(
    "Nothing is sent to the other State, and it is not told: the request ends on this node only. Your reason "
    "is kept in its timeline and in the audit record."
)


def action_forms(
    catalog: Catalog,
    viewer: Viewer,
    row: RequestRow,
    failed: tuple[str, list[Problem], dict[str, Any]] | None,
    offered: lifecycle.Offer | None = None,
) -> list[ActionForm]:
    """The forms of the actions offered to the viewer (``offered``, else the life cycle's own offer)."""
    rt = catalog.type(row.type)
    out = []
    for name in (offered or lifecycle.offer(catalog, row, viewer.actor)).allowed:
        action: Action = catalog.lifecycle.actions[name]
        problems: list[Problem] = []
        values: dict[str, Any] = {}
        if failed is not None and failed[0] == name:
            problems, values = failed[1], failed[2]
        elif name == "preserve" and rt.deadlines.default_preservation_days:
            # The usual period already filled in (the officer may shorten it to the 60-day minimum).
            days = rt.deadlines.default_preservation_days
            values = {"preserved_until": (utcnow().date() + timedelta(days=days)).isoformat()}
        out.append(
            ActionForm(
                name,
                action.label,
                forms.controls(catalog, action.fields, "data", values, problems, rt.grounds),
                failed is not None and failed[0] == name,
                _ENDS_HERE if name == lifecycle.LOCAL_ENDING else _FOUR_EYES if action.four_eyes else None,
            )
        )
    return out


def request_context(
    session: Session,
    catalog: Catalog,
    viewer: Viewer,
    row: RequestRow,
    failed: tuple[str, list[Problem], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    rt = catalog.type(row.type)
    case = session.get_one(Case, row.case_id)
    may_open = _may_open(session, viewer)
    report = None
    if row.direction == "outgoing" and row.status in EDITABLE:
        report = cases.check(
            session, catalog, cases.DraftInput(row.type, row.counterpart, row.header, row.fields)
        )
    elif row.direction == "incoming" and row.counterpart is None and row.status not in deadlines.CLOSED:
        # Registered from outside the network: what it lacks is what to ask the requesting State for.
        report = check_draft(catalog, row.type, row.header, row.fields, None)
    general = [p for p in (failed[1] if failed else []) if not p.field.startswith("data.")]
    offered = lifecycle.offer(catalog, row, viewer.actor)
    return {
        "req": summary(catalog, row),
        "row": row,
        "case": case,
        "rt": rt,
        "header_rows": _rows(catalog, viewer, catalog.head.header, row.header),
        "field_rows": _rows(catalog, viewer, rt.fields, row.fields),
        "actions": action_forms(catalog, viewer, row, failed, offered),
        "away": offered.away,
        "withheld": [catalog.lifecycle.actions[name].label for name in offered.withheld],
        # A person who may not end it here learns that someone may: the request is not stuck for good.
        "ended_by_others": offered.away is not None
        and lifecycle.LOCAL_ENDING not in offered.allowed
        and lifecycle.LOCAL_ENDING in lifecycle.allowed_actions(catalog, row),
        "general_problems": general,
        "timeline": present(
            timeline(session, catalog, [row], None, notes.of_request(session, row), may_open),
            translator(viewer.locale),
            clock(viewer.locale, viewer.timezone),
        ),
        "packages": filed_packages(packages_for(session, [row]), may_open),
        "may_file_evidence": viewer.has_any(*evidence.EVIDENCE_ROLES),
        # Art. 42 holds, both ways: the follow-up this preservation waits for, the preservations this
        # request holds. Linked only where the reader may open them.
        "held_for": _link(viewer, session.get(RequestRow, row.held_by) if row.held_by else None),
        "holding": [
            link
            for p in session.scalars(select(RequestRow).where(RequestRow.held_by == row.id))
            if (link := _link(viewer, p)) is not None
        ],
        "label_of": lambda path: catalog.field_label(row.type, path),
        "report": report,
        "editable": row.direction == "outgoing" and row.status in EDITABLE,
        "state": state_info(session, catalog, row),
        "done": None,
    }


def _may_open(session: Session, viewer: Viewer) -> Callable[[EvidencePackage], bool]:
    """Whether the viewer may open a package: its page says so by the evidence service's own rule, so that
    a supervisor (who sees the request, not its evidence) is offered no link that ends on a 403."""
    return lambda package: evidence.may_see(session, viewer.actor, package)


def _link(viewer: Viewer, other: RequestRow | None) -> tuple[str, str] | None:
    if other is None or not cases.can_see(viewer.actor, other):
        return None
    return str(other.id), str(other.header.get("our_reference") or other.remote_reference or other.id)


def render_request(
    request: Request,
    viewer: Viewer,
    request_id: uuid.UUID,
    *,
    failed: tuple[str, list[Problem], dict[str, Any]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    catalog = catalog_of(request)
    with get_database(request).transaction() as session:
        row = cases.get_request(session, viewer.actor, request_id)
        context = request_context(session, catalog, viewer, row, failed)
    done = request.query_params.get("done")
    if done in catalog.lifecycle.actions:
        context["done"] = catalog.lifecycle.actions[done].label
    return page(request, viewer, "request.html", context, status=status)


@router.get("/desk/requests/{request_id}")
def show_request(request: Request, request_id: str, viewer: CurrentViewer) -> HTMLResponse:
    return render_request(request, viewer, parse_id(request_id))


@router.post("/desk/requests/{request_id}/actions/{name}")
def take_action(
    request: Request, request_id: str, name: str, viewer: CurrentViewer, form: CheckedForm
) -> Response:
    rid = parse_id(request_id)
    catalog = catalog_of(request)
    action = catalog.lifecycle.actions.get(name)
    data = forms.read(form, action.fields, "data") if action is not None else {}
    try:
        with get_database(request).transaction() as session:
            row = cases.get_request(session, viewer.actor, rid, purpose=name)
            read = form.get("version")
            lifecycle.act(
                session,
                viewer.actor,
                catalog,
                row,
                name,
                data,
                expected_version=int(read) if read.isdigit() else None,
            )
    except InvalidInput as exc:
        # Rolled back whole: the page comes again with each problem beside its control.
        return render_request(request, viewer, rid, failed=(name, exc.problems, data), status=422)
    outbox.wake_workers(request.app)
    back = form.get("back")
    target = back if back == "/desk/approvals" else f"/desk/requests/{rid}?done={name}"
    return RedirectResponse(target, status_code=303)


@router.get("/desk/requests/{request_id}/document")
def request_document(request: Request, request_id: str, viewer: CurrentViewer) -> Response:
    lang = request.query_params.get("lang", viewer.locale)
    if lang not in LANGUAGES:
        raise InvalidInput("Unknown language", [Problem("lang", f"one of {', '.join(LANGUAGES)}")])
    as_pdf = request.query_params.get("format") == "pdf"
    with get_database(request).transaction() as session:
        row = cases.get_request(session, viewer.actor, parse_id(request_id))
        html = document.render_html(session, catalog_of(request), row, lang, viewer.timezone)
    if as_pdf:
        from cyberpact.kit.documents import render_pdf

        return Response(
            render_pdf(html),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="request-{row.id}-{lang}.pdf"'},
        )
    return HTMLResponse(
        html, headers={"Content-Security-Policy": DOCUMENT_CSP, "X-Frame-Options": "SAMEORIGIN"}
    )


# --- the case ------------------------------------------------------------------------------------------


@router.get("/desk/cases/{case_id}")
def show_case(request: Request, case_id: str, viewer: CurrentViewer) -> HTMLResponse:
    return render_case(request, viewer, parse_id(case_id, "case"))


def render_case(
    request: Request,
    viewer: Viewer,
    case_id: uuid.UUID,
    *,
    problems: list[Problem] | None = None,
    status: int = 200,
) -> HTMLResponse:
    require(viewer, *CASE_ROLES)
    catalog = catalog_of(request)
    with get_database(request).transaction() as session:
        case = cases.get_case(session, viewer.actor, case_id)
        query = cases.list_query(viewer.actor, cases.RequestFilter(case_id=case.id))
        rows = list(session.scalars(query.order_by(RequestRow.created_at)))
        audit.record(
            session,
            viewer.actor,
            "cases.request.list",
            "request",
            None,
            detail={"view": "desk.case", "case": case.reference, "returned": len(rows)},
        )
        may_open = _may_open(session, viewer)
        entries = present(
            timeline(session, catalog, rows, case, notes.of_case(session, case, rows), may_open),
            translator(viewer.locale),
            clock(viewer.locale, viewer.timezone),
        )
        packages = filed_packages(packages_for(session, rows, case), may_open)
        requests_: list[RequestSummary] = [summary(catalog, r) for r in rows]
    return page(
        request,
        viewer,
        "case.html",
        {
            "case": case,
            "requests": requests_,
            "timeline": entries,
            "packages": packages,
            "problems": problems or [],
        },
        status=status,
    )


def _noted(request: Request, viewer: Viewer, form: Any, **about: uuid.UUID) -> Response:
    """Add a note from a desk form; an empty or over-long one comes back as a problem on the page."""
    text = form.get("text")
    try:
        with get_database(request).transaction() as session:
            note = notes.add(session, viewer.actor, text, **about)
            case_id = note.case_id
    except InvalidInput as exc:
        if "request_id" in about:
            return render_request(
                request, viewer, about["request_id"], failed=("note", exc.problems, {}), status=422
            )
        return render_case(request, viewer, about["case_id"], problems=exc.problems, status=422)
    if "request_id" in about:
        return RedirectResponse(f"/desk/requests/{about['request_id']}#h-timeline", status_code=303)
    return RedirectResponse(f"/desk/cases/{case_id}#h-timeline", status_code=303)


@router.post("/desk/cases/{case_id}/notes")
def note_case(request: Request, case_id: str, viewer: CurrentViewer, form: CheckedForm) -> Response:
    require(viewer, *CASE_ROLES)
    return _noted(request, viewer, form, case_id=parse_id(case_id, "case"))


@router.post("/desk/requests/{request_id}/notes")
def note_request(request: Request, request_id: str, viewer: CurrentViewer, form: CheckedForm) -> Response:
    require(viewer, *CASE_ROLES)
    return _noted(request, viewer, form, request_id=parse_id(request_id))


# --- approvals -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    label: str
    before: str
    after: str


@dataclass(frozen=True)
class Waiting:
    req: RequestSummary
    returned_comments: str | None
    returned_by: str | None
    changes: list[Change]
    first_submission: bool
    actions: list[ActionForm]


def _shown(value: Any) -> str:
    if value in (None, "", [], {}):
        return ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def changes_since_return(catalog: Catalog, row: RequestRow, returned: RequestRevision | None) -> list[Change]:
    """Every header or field value that differs from the draft as it stood when last returned."""
    if returned is None:
        return []
    rt = catalog.type(row.type)
    out = []
    for defs, before, after in (
        (catalog.head.header, returned.header, row.header),
        (rt.fields, returned.fields, row.fields),
    ):
        labels = {f.name: f.label or f.name for f in defs}
        for name in [*labels, *sorted(set(before) | set(after) - set(labels))]:
            old, new = _shown(before.get(name)), _shown(after.get(name))
            if old != new:
                out.append(Change(labels.get(name, name), old, new))
    return out


@router.get("/desk/approvals")
def approvals(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, "supervisor")
    catalog = catalog_of(request)
    waiting: list[Waiting] = []
    with get_database(request).transaction() as session:
        query = cases.list_query(
            viewer.actor, cases.RequestFilter(direction="outgoing", status="pending_approval")
        )
        rows = list(session.scalars(query.order_by(RequestRow.updated_at)))
        audit.record(
            session,
            viewer.actor,
            "cases.request.list",
            "request",
            None,
            detail={"view": "desk.approvals", "returned": len(rows)},
        )
        for row in rows:
            returned = session.scalar(
                select(RequestRevision)
                .where(RequestRevision.request_id == row.id, RequestRevision.reason == "returned")
                .order_by(RequestRevision.seq.desc())
                .limit(1)
            )
            waiting.append(
                Waiting(
                    summary(catalog, row),
                    returned.comments if returned else None,
                    returned.by if returned else None,
                    changes_since_return(catalog, row, returned),
                    returned is None,
                    [a for a in action_forms(catalog, viewer, row, None) if a.name in ("approve", "return")],
                )
            )
    return page(request, viewer, "approvals.html", {"waiting": waiting})
