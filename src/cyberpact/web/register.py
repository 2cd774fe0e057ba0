"""Registering a request that arrived outside the network (e-mail, fax, post, telephone).

One page: the type first (its fields depend on it), then where it came from and everything it says, as
written. ``cases.service.register_received`` decides what is acceptable; what the catalog finds missing is
not a reason to refuse the registration but what to ask the requesting State for, shown on the request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.cases import service as cases
from cyberpact.catalog.service import Catalog
from cyberpact.directory.models import Party
from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.http import get_database
from cyberpact.kit.time import utcnow
from cyberpact.web import forms
from cyberpact.web.render import catalog_of, page
from cyberpact.web.security import CheckedForm, CurrentViewer, DeskRoute, Posted, Viewer, require

router = APIRouter(route_class=DeskRoute, include_in_schema=False)
PATH = "/desk/received"


def _context(
    session: Session,
    catalog: Catalog,
    viewer: Viewer,
    type_id: str | None,
    chosen: dict[str, Any],
    header: dict[str, Any],
    fields: dict[str, Any],
    problems: list[Problem],
    existing: str | None = None,
) -> dict[str, Any]:
    rt = catalog.types.get(type_id or "")
    return {
        "types": sorted(catalog.types.values(), key=lambda t: t.article),
        "rt": rt,
        "parties": list(session.scalars(select(Party).order_by(Party.name))),
        "channels": cases.CHANNELS,
        "chosen": chosen,
        "header_controls": forms.controls(catalog, catalog.head.header, "header", header, problems)
        if rt
        else [],
        "field_controls": forms.controls(catalog, rt.fields, "fields", fields, problems) if rt else [],
        "problems": problems,
        "label_of": lambda path: catalog.field_label(rt.id, path) if rt else None,
        # The request this one repeats, when it does: the officer opens it instead.
        "existing": existing,
    }


@router.get(PATH)
def new(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *cases.REGISTER_ROLES)
    catalog = catalog_of(request)
    type_id = request.query_params.get("type")
    now = utcnow().astimezone(ZoneInfo(viewer.timezone)).strftime("%Y-%m-%dT%H:%M")
    with get_database(request).transaction() as session:
        context = _context(session, catalog, viewer, type_id, {"received_at": now}, {}, {}, [])
    return page(request, viewer, "register.html", context)


def _received_at(form: Posted, tz: str) -> datetime | None:
    # A datetime-local control has no zone: it is the officer's own clock.
    try:
        parsed = datetime.fromisoformat(form.get("received_at").strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(tz))


@router.post(PATH)
def register(request: Request, viewer: CurrentViewer, form: CheckedForm) -> Response:
    require(viewer, *cases.REGISTER_ROLES)
    catalog = catalog_of(request)
    type_id = form.get("type")
    rt = catalog.types.get(type_id)
    chosen = {k: form.get(k).strip() for k in ("country", "authority", "channel", "received_at")}
    header = forms.read(form, catalog.head.header, "header") if rt else {}
    fields = forms.read(form, rt.fields, "fields") if rt else {}
    at = _received_at(form, viewer.timezone)
    problems: list[Problem] = []
    existing: str | None = None
    if rt is None:
        problems.append(Problem("type", "choose the type of request", "missing"))
    if not chosen["authority"]:
        problems.append(Problem("authority", "name the authority that sent it", "missing"))
    if at is None:
        problems.append(Problem("received_at", "when it arrived, on your clock", "missing"))
    db = get_database(request)
    if not problems:
        assert at is not None and rt is not None
        data = cases.ReceivedInput(
            rt.id, header, fields, chosen["country"], chosen["authority"], chosen["channel"], at
        )
        try:
            with db.transaction() as session:
                row, _ = cases.register_received(session, viewer.actor, catalog, None, data)
                rid = row.id
        except InvalidInput as exc:
            problems, existing = exc.problems, exc.extra.get("existing_request")
    if problems:
        with db.transaction() as session:
            context = _context(session, catalog, viewer, type_id, chosen, header, fields, problems, existing)
        return page(request, viewer, "register.html", context, status=422)
    return RedirectResponse(f"/desk/requests/{rid}", status_code=303)
