"""The request wizard: a draft built step by step from the catalog.

The draft is stored from the first step on (``cases.service.create_draft``) and saved at every step
(``update_draft``), so nothing typed is lost to a closed tab; a step lets the drafter move on only when the
catalog check finds nothing missing among that step's fields, and says what is missing and which article
requires it. The last step shows the formal document and submits the draft for approval.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from cyberpact.accounts.models import User
from cyberpact.cases import lifecycle
from cyberpact.cases import service as cases
from cyberpact.cases.models import Case
from cyberpact.cases.models import Request as RequestRow
from cyberpact.catalog.schemas import FieldDef
from cyberpact.catalog.service import Catalog
from cyberpact.federation import peers
from cyberpact.federation.models import Peer
from cyberpact.kit.errors import InvalidInput, NotFound, Problem
from cyberpact.kit.http import get_database
from cyberpact.kit.i18n import LANGUAGES, N_
from cyberpact.kit.ids import parse_uuid
from cyberpact.web import forms
from cyberpact.web.render import DRAFTERS, catalog_of, page
from cyberpact.web.requests import EDITABLE, parse_id, state_info
from cyberpact.web.security import CheckedForm, CurrentViewer, DeskRoute, Redirect, Viewer, require
from cyberpact.web.views import summary

router = APIRouter(route_class=DeskRoute, include_in_schema=False)


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    header: tuple[str, ...]  # header fields shown at this step; the particulars step shows the type's fields


# Presentation only: which header fields go together on one screen. A header field the catalog adds
# later and this list does not name appears on the "conditions" step, so nothing is ever left off.
STEPS: tuple[Step, ...] = (
    Step(
        "authority",
        N_("Requesting authority"),
        (
            "our_reference",
            "request_kind",
            "related_ticket",
            "language",
            "requesting_authority",
            "investigating_authority",
            "court_or_prosecution_reference",
            "previous_requests",
            "domestic_legal_basis",
        ),
    ),
    Step(
        "contact",
        N_("Contact person"),
        (
            "contact_name",
            "contact_email",
            "contact_phone",
            "contact_timezone",
            "contact_office_hours",
            "preferred_response_means",
        ),
    ),
    Step("conditions", N_("Deadline, urgency and conditions"), ()),
    Step("particulars", N_("Particulars of the request"), ()),
    Step("review", N_("Review and submit"), ()),
)
STEP_KEYS = tuple(s.key for s in STEPS)


def step_defs(catalog: Catalog, row_type: str, key: str) -> tuple[list[FieldDef], list[FieldDef]]:
    """(header fields, type fields) of step ``key``."""
    if key == "particulars":
        return [], list(catalog.type(row_type).fields)
    if key == "review":
        return [], []
    named = {n for s in STEPS for n in s.header}
    step = next(s for s in STEPS if s.key == key)
    if key == "conditions":
        return [f for f in catalog.head.header if f.name not in named], []
    return [f for f in catalog.head.header if f.name in step.header], []


def step_of(field: str) -> str:
    """The step where the control for a problem's field lives."""
    if field.startswith("fields."):
        return "particulars"
    if field == "counterpart":
        return "authority"
    name = field.removeprefix("header.")
    return next((s.key for s in STEPS if name in s.header), "conditions")


# --- step 1: type, requested node, case -----------------------------------------------------------------


# The picker lists this many cases: the newest, or the newest that match the search for an older one.
PICK = 50


def _start_context(
    session: Session, catalog: Catalog, viewer: Viewer, case_q: str = "", case_id: str = ""
) -> dict[str, Any]:
    """What the first step offers. Any case the drafter may see can be picked: the newest are listed, and
    the search (the cases service's own, as on the list of cases) reaches the others."""
    problems: list[Problem] = []
    try:
        found = cases.list_cases(session, viewer.actor, PICK + 1, search=case_q, view="desk.new")
    except InvalidInput as exc:
        found, problems = [], [replace(p, field="case_q") for p in exc.problems]
    picked = found[:PICK]
    # The case chosen before a form came back must stay chosen, even when the newest no longer hold it.
    chosen = parse_uuid(case_id) if case_id else None
    if chosen is not None and all(c.id != chosen for c in picked):
        with suppress(NotFound):  # not a case this drafter may see: nothing to keep
            picked.append(cases.get_case(session, viewer.actor, chosen))
    return {
        "types": sorted(catalog.types.values(), key=lambda t: t.article),
        "peers": [p for p in peers.list_peers(session) if p.status == "active"],
        "cases": picked,
        "more_cases": len(found) > PICK,
        "case_q": case_q,
        "pick": PICK,
        "max_search": cases.SEARCH_MAX,
        "search_problems": problems,
    }


@router.get("/desk/new")
def start(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *DRAFTERS)
    case_q = request.query_params.get("case_q", "").strip()
    with get_database(request).transaction() as session:
        context = _start_context(session, catalog_of(request), viewer, case_q)
    # One match is the case looked for: chosen already, the drafter goes on to the type.
    chosen = {"case_id": str(context["cases"][0].id)} if case_q and len(context["cases"]) == 1 else {}
    status = 422 if context["search_problems"] else 200
    return page(
        request,
        viewer,
        "wizard_start.html",
        {**context, "problems": [], "chosen": chosen},
        status=status,
    )


def _prefill(
    session: Session, viewer: Viewer, case: Case, country: str | None, channel: str
) -> dict[str, Any]:
    """What the node already knows: the case reference, the drafter's contact, a language the State takes."""
    user = session.get_one(User, viewer.user_id)
    header: dict[str, Any] = {
        "our_reference": case.reference,
        "request_kind": "new",
        "contact_name": user.display_name,
        "contact_timezone": user.timezone,
    }
    if user.email:
        header["contact_email"] = user.email
    requested = cases.requested_state(session, country, channel)
    if requested is not None and requested.languages:
        header["language"] = sorted(requested.languages)[0]
    return header


@router.post("/desk/new")
def create(request: Request, viewer: CurrentViewer, form: CheckedForm) -> Response:
    require(viewer, *DRAFTERS)
    catalog = catalog_of(request)
    type_id, counterpart = form.get("type"), form.get("counterpart") or None
    case_ref, title = form.get("case_id"), form.get("case_title").strip()
    case_q = form.get("case_q").strip()
    problems = []
    if type_id not in catalog.types:
        problems.append(Problem("type", "choose the type of request", "missing"))
    if not case_ref and not title:
        problems.append(Problem("case_title", "choose a case or give the new case a title", "missing"))
    if len(title) > 300:
        problems.append(Problem("case_title", "at most 300 characters", "invalid"))
    db = get_database(request)
    if not problems:
        try:
            with db.transaction() as session:
                if case_ref:
                    case = cases.get_case(session, viewer.actor, parse_id(case_ref, "case"))
                else:
                    case = cases.create_case(session, viewer.actor, title)
                rt = catalog.type(type_id)
                country = None
                if counterpart:
                    peer = session.get(Peer, counterpart)
                    country = peer.country if peer is not None else None
                header = _prefill(session, viewer, case, country, rt.channel)
                row, _ = cases.create_draft(
                    session, viewer.actor, catalog, case, cases.DraftInput(type_id, counterpart, header, {})
                )
                rid = row.id
        except InvalidInput as exc:
            problems = exc.problems
    if problems:
        with db.transaction() as session:
            context = _start_context(session, catalog, viewer, case_q, case_ref)
        chosen = {"type": type_id, "counterpart": counterpart or "", "case_id": case_ref, "case_title": title}
        return page(
            request,
            viewer,
            "wizard_start.html",
            {**context, "problems": problems, "chosen": chosen},
            status=422,
        )
    return RedirectResponse(f"/desk/requests/{rid}/edit/{STEP_KEYS[0]}", status_code=303)


# --- the steps -------------------------------------------------------------------------------------------


def _editable(row: RequestRow) -> None:
    if row.direction != "outgoing" or row.status not in EDITABLE:
        raise Redirect(f"/desk/requests/{row.id}")


def _step(key: str) -> str:
    if key not in STEP_KEYS:
        raise NotFound(f"No step {key[:40]}")
    return key


def _step_context(
    session: Session,
    catalog: Catalog,
    viewer: Viewer,
    row: RequestRow,
    key: str,
    problems: list[Problem] | None = None,
    header: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    counterpart: str | None = None,
) -> dict[str, Any]:
    rt = catalog.type(row.type)
    header_defs, field_defs = step_defs(catalog, row.type, key)
    report = cases.check(
        session, catalog, cases.DraftInput(row.type, row.counterpart, row.header, row.fields)
    )
    shown = problems or []
    missing_steps = {step_of(p.field) for p in report.errors}
    return {
        "req": summary(catalog, row),
        "row": row,
        "rt": rt,
        "steps": STEPS,
        "step": key,
        "missing_steps": missing_steps,
        "header_controls": forms.controls(
            catalog, header_defs, "header", header if header is not None else row.header, shown
        ),
        "field_controls": forms.controls(
            catalog, field_defs, "fields", fields if fields is not None else row.fields, shown
        ),
        "problems": shown,
        "label_of": lambda path: catalog.field_label(row.type, path),
        "report": report,
        "state": state_info(session, catalog, row),
        "peers": [p for p in peers.list_peers(session) if p.status == "active"],
        "counterpart": counterpart if counterpart is not None else (row.counterpart or ""),
        "may_submit": "submit" in lifecycle.allowed_actions(catalog, row, viewer.actor),
        "languages": LANGUAGES,
    }


@router.get("/desk/requests/{request_id}/edit/{key}")
def edit(request: Request, request_id: str, key: str, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *DRAFTERS, "supervisor")
    catalog = catalog_of(request)
    key = _step(key)
    with get_database(request).transaction() as session:
        row = cases.get_request(session, viewer.actor, parse_id(request_id))
        _editable(row)
        context = _step_context(session, catalog, viewer, row, key)
    return page(request, viewer, "wizard_step.html", context)


@router.post("/desk/requests/{request_id}/edit/{key}")
def save(request: Request, request_id: str, key: str, viewer: CurrentViewer, form: CheckedForm) -> Response:
    require(viewer, *DRAFTERS, "supervisor")
    catalog = catalog_of(request)
    key = _step(key)
    rid = parse_id(request_id)
    go = form.get("go", "next")
    version_text = form.get("version")
    if not version_text.isdigit():
        raise InvalidInput("Missing version", [Problem("version", "reload the page")])
    db = get_database(request)
    header: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    counterpart: str | None = None
    try:
        with db.transaction() as session:
            row = cases.get_request(session, viewer.actor, rid, purpose="update")
            _editable(row)
            header_defs, field_defs = step_defs(catalog, row.type, key)
            header = forms.read(form, header_defs, "header", row.header)
            fields = forms.read(form, field_defs, "fields", row.fields)
            counterpart = (form.get("counterpart") or None) if key == "authority" else row.counterpart
            _, report = cases.update_draft(
                session,
                viewer.actor,
                catalog,
                row,
                cases.DraftInput(row.type, counterpart, header, fields),
                int(version_text),
            )
            here = [p for p in report.errors if step_of(p.field) == key]
    except InvalidInput as exc:
        # A malformed value: nothing was saved; the step comes again with each problem at its control.
        with db.transaction() as session:
            row = cases.get_request(session, viewer.actor, rid)
            context = _step_context(
                session, catalog, viewer, row, key, exc.problems, header, fields, counterpart
            )
        return page(request, viewer, "wizard_step.html", context, status=422)
    index = STEP_KEYS.index(key)
    if go == "back":
        return RedirectResponse(f"/desk/requests/{rid}/edit/{STEP_KEYS[max(0, index - 1)]}", status_code=303)
    if go == "save" or not here:
        nxt = key if go == "save" else STEP_KEYS[min(index + 1, len(STEP_KEYS) - 1)]
        return RedirectResponse(f"/desk/requests/{rid}/edit/{nxt}", status_code=303)
    # Saved, but the step is not done: say what is missing, and which article asks for it.
    with db.transaction() as session:
        row = cases.get_request(session, viewer.actor, rid)
        context = _step_context(session, catalog, viewer, row, key, here)
    return page(request, viewer, "wizard_step.html", context, status=422)
