"""REST for cases and requests, and the catalog itself."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from cyberpact.accounts.api import CurrentActor
from cyberpact.accounts.models import User
from cyberpact.cases import deadlines, lifecycle, notes, service
from cyberpact.cases.models import Request as RequestRow
from cyberpact.cases.models import RequestRevision
from cyberpact.cases.schemas import (
    ActionIn,
    CaseCreate,
    CaseOut,
    CheckOut,
    CounterpartAway,
    DraftCheck,
    DraftIn,
    DraftOut,
    DraftUpdate,
    EventOut,
    NoteIn,
    NoteOut,
    ReceivedIn,
    RequestOut,
    RequestPage,
    RevisionOut,
)
from cyberpact.catalog.service import Catalog, DraftReport
from cyberpact.federation import outbox
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import InvalidInput, PermissionDenied, Problem
from cyberpact.kit.http import ReadSession, WriteSession, get_database
from cyberpact.kit.pagination import Page, after_time_cursor, next_time_cursor

router = APIRouter(prefix="/api/v1", tags=["requests"])


def catalog_of(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def request_out(catalog: Catalog, row: RequestRow, actor: Actor | None = None) -> RequestOut:
    offered = lifecycle.offer(catalog, row, actor)
    return RequestOut(
        id=row.id,
        case_id=row.case_id,
        direction=row.direction,
        type=row.type,
        type_label=catalog.type(row.type).label,
        status=row.status,
        counterpart=row.counterpart,
        counterpart_country=row.counterpart_country,
        header=row.header,
        fields=row.fields,
        emergency=row.emergency,
        confidentiality=row.confidentiality,
        use_limitation=row.use_limitation,
        drafted_by=row.drafted_by,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        remote_reference=row.remote_reference,
        due_at=row.due_at,
        overdue=deadlines.is_overdue(row),
        preserved_until=row.preserved_until,
        held_by=row.held_by,
        expiry=deadlines.expiry_state(row),
        sent_at=row.sent_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        allowed_actions=offered.allowed,
        counterpart_away=_away_out(offered),
    )


def _away_out(offered: lifecycle.Offer) -> CounterpartAway | None:
    gone = offered.away
    if gone is None:
        return None
    return CounterpartAway(
        node_id=gone.node_id,
        status="removed" if gone.removed else "suspended",
        since=gone.since,
        withheld_actions=offered.withheld,
        reason=gone.reason(),
    )


def check_out(report: DraftReport) -> CheckOut:
    return CheckOut.model_validate(report.as_dict())


@router.get("/catalog", tags=["catalog"])
def read_catalog(request: Request, _: CurrentActor) -> dict[str, Any]:
    """The convention catalog: request types, their fields with article references, grounds, life cycle."""
    return catalog_of(request).as_dict()


@router.post("/cases", status_code=201, response_model=CaseOut)
def create_case(body: CaseCreate, actor: CurrentActor, session: WriteSession) -> CaseOut:
    return CaseOut.model_validate(service.create_case(session, actor, body.title, body.reference))


@router.get("/cases", response_model=Page[CaseOut])
def list_cases(
    actor: CurrentActor,
    session: WriteSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=service.SEARCH_MAX,
            description="only cases whose reference or title holds this text, in any case",
        ),
    ] = None,
) -> Page[CaseOut]:
    """The cases the caller may see, newest first; ``next``, when there are more, is the ``cursor`` of the
    page after (with the same ``q``)."""
    after = after_time_cursor(cursor, service.CASES_CURSOR)
    rows = service.list_cases(session, actor, limit + 1, after, search=q)
    return Page(
        items=[CaseOut.model_validate(c) for c in rows[:limit]],
        next=next_time_cursor(service.CASES_CURSOR, rows, limit),
    )


@router.get("/cases/{case_id}", response_model=CaseOut)
def get_case(case_id: uuid.UUID, actor: CurrentActor, session: WriteSession) -> CaseOut:
    return CaseOut.model_validate(service.get_case(session, actor, case_id))


@router.post("/requests/check", response_model=CheckOut)
def check_draft(body: DraftCheck, request: Request, actor: CurrentActor, session: ReadSession) -> CheckOut:
    """Check a draft against the catalog without storing anything (the wizard calls this at every step)."""
    if not actor.has_any(*service.CASE_ROLES):
        # Its warnings read this node's requests (an open preservation with a given ticket): drafting is
        # for those who may draft.
        raise PermissionDenied("Checking a draft needs a case role")
    data = service.DraftInput(body.type, body.counterpart, body.header, body.fields)
    return check_out(service.check(session, catalog_of(request), data))


@router.post("/requests", status_code=201, response_model=DraftOut)
def create_request(body: DraftIn, request: Request, actor: CurrentActor, session: WriteSession) -> DraftOut:
    catalog = catalog_of(request)
    if body.case_id is not None:
        case = service.get_case(session, actor, body.case_id)
    elif body.case_title:
        case = service.create_case(session, actor, body.case_title)
    else:
        raise InvalidInput(
            "Say which case", [Problem("case_id", "give case_id, or case_title for a new case")]
        )
    row, report = service.create_draft(
        session,
        actor,
        catalog,
        case,
        service.DraftInput(body.type, body.counterpart, body.header, body.fields),
    )
    return DraftOut(request=request_out(catalog, row, actor), check=check_out(report))


@router.post("/requests/received", status_code=201, response_model=DraftOut)
def register_received(
    body: ReceivedIn, request: Request, actor: CurrentActor, session: WriteSession
) -> DraftOut:
    """Register a request that reached this authority outside the network; ``check`` lists what the
    convention requires that it lacks (what to ask the requesting State for)."""
    catalog = catalog_of(request)
    case = service.get_case(session, actor, body.case_id) if body.case_id is not None else None
    row, report = service.register_received(
        session,
        actor,
        catalog,
        case,
        service.ReceivedInput(
            body.type, body.header, body.fields, body.country, body.authority, body.channel, body.received_at
        ),
    )
    return DraftOut(request=request_out(catalog, row, actor), check=check_out(report))


@router.get("/requests", response_model=RequestPage)
def list_requests(
    request: Request,
    actor: CurrentActor,
    session: WriteSession,
    direction: Literal["outgoing", "incoming"] | None = None,
    status: Annotated[str | None, Query(max_length=30)] = None,
    type: Annotated[str | None, Query(max_length=40)] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    emergency: bool | None = None,
    overdue: bool = False,
    due_before: datetime | None = None,
    case_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> RequestPage:
    catalog = catalog_of(request)
    after = after_time_cursor(cursor, service.REQUESTS_CURSOR)
    f = service.RequestFilter(
        direction=direction,
        status=status,
        type=type,
        country=country,
        emergency=emergency,
        due_before=due_before,
        case_id=case_id,
        overdue=overdue,
    )
    rows = service.list_requests(session, actor, catalog, f, limit + 1, after)
    items = [request_out(catalog, r, actor) for r in rows[:limit]]
    return RequestPage(items=items, next=next_time_cursor(service.REQUESTS_CURSOR, rows, limit))


@router.post("/cases/{case_id}/notes", status_code=201, response_model=NoteOut)
def note_case(case_id: uuid.UUID, body: NoteIn, actor: CurrentActor, session: WriteSession) -> NoteOut:
    """A note on the case, seen by whoever may open the case; it never leaves this node."""
    return NoteOut.model_validate(notes.add(session, actor, body.text, case_id=case_id))


@router.get("/cases/{case_id}/notes", response_model=list[NoteOut])
def case_notes(case_id: uuid.UUID, actor: CurrentActor, session: WriteSession) -> list[NoteOut]:
    """The case's notes and those on its requests the reader may see, oldest first."""
    case = service.get_case(session, actor, case_id)
    visible = session.scalars(service.list_query(actor, service.RequestFilter(case_id=case.id)))
    return [NoteOut.model_validate(n) for n in notes.of_case(session, case, list(visible))]


@router.post("/requests/{request_id}/notes", status_code=201, response_model=NoteOut)
def note_request(request_id: uuid.UUID, body: NoteIn, actor: CurrentActor, session: WriteSession) -> NoteOut:
    """A note on one request, seen only by those who may see the request; it never leaves this node."""
    return NoteOut.model_validate(notes.add(session, actor, body.text, request_id=request_id))


@router.get("/requests/{request_id}/notes", response_model=list[NoteOut])
def request_notes(request_id: uuid.UUID, actor: CurrentActor, session: WriteSession) -> list[NoteOut]:
    row = service.get_request(session, actor, request_id)
    return [NoteOut.model_validate(n) for n in notes.of_request(session, row)]


@router.get("/requests/{request_id}", response_model=RequestOut)
def get_request(
    request_id: uuid.UUID, request: Request, actor: CurrentActor, session: WriteSession
) -> RequestOut:
    return request_out(catalog_of(request), service.get_request(session, actor, request_id), actor)


@router.put("/requests/{request_id}", response_model=DraftOut)
def update_request(
    request_id: uuid.UUID, body: DraftUpdate, request: Request, actor: CurrentActor, session: WriteSession
) -> DraftOut:
    catalog = catalog_of(request)
    row = service.get_request(session, actor, request_id, purpose="update")
    # A client that edits only the text (a supervisor fixing a returned draft, a script) leaves the
    # requested State out; taking that as "none" dropped it silently and the next submit was refused.
    counterpart = body.counterpart if "counterpart" in body.model_fields_set else row.counterpart
    row, report = service.update_draft(
        session,
        actor,
        catalog,
        row,
        service.DraftInput(row.type, counterpart, body.header, body.fields),
        body.version,
    )
    return DraftOut(request=request_out(catalog, row, actor), check=check_out(report))


@router.get("/requests/{request_id}/check", response_model=CheckOut)
def check_request(
    request_id: uuid.UUID, request: Request, actor: CurrentActor, session: WriteSession
) -> CheckOut:
    row = service.get_request(session, actor, request_id)
    data = service.DraftInput(row.type, row.counterpart, row.header, row.fields)
    return check_out(service.check(session, catalog_of(request), data))


@router.post("/requests/{request_id}/actions/{action}", response_model=RequestOut)
def take_action(
    request_id: uuid.UUID,
    action: str,
    body: ActionIn,
    request: Request,
    actor: CurrentActor,
    session: WriteSession,
) -> RequestOut:
    """Move the request along its life cycle; 409 lists the actions allowed instead, and refuses a step
    that would message a counterpart removed or suspended (``counterpart_removed``,
    ``counterpart_suspended``)."""
    catalog = catalog_of(request)
    row = service.get_request(session, actor, request_id, purpose=action)
    lifecycle.act(session, actor, catalog, row, action, body.data, expected_version=body.version)
    outbox.wake_workers(request.app)
    return request_out(catalog, row, actor)


@router.get("/requests/{request_id}/timeline", response_model=list[EventOut])
def request_timeline(request_id: uuid.UUID, actor: CurrentActor, session: WriteSession) -> list[EventOut]:
    row = service.get_request(session, actor, request_id)
    return [EventOut.model_validate(e) for e in service.timeline(session, row)]


@router.get("/requests/{request_id}/revisions", response_model=list[RevisionOut])
def request_revisions(request_id: uuid.UUID, actor: CurrentActor, session: WriteSession) -> list[RevisionOut]:
    row = service.get_request(session, actor, request_id)
    revs = session.scalars(
        select(RequestRevision).where(RequestRevision.request_id == row.id).order_by(RequestRevision.seq)
    )
    return [RevisionOut.model_validate(r) for r in revs]


@router.get("/requests/{request_id}/document", response_model=None)
def request_document(
    request_id: uuid.UUID,
    request: Request,
    actor: CurrentActor,
    lang: Annotated[str, Query(pattern=r"^(en|fr|es|ru|zh|ar|vi)$")] = "en",
    format: Literal["html", "pdf"] = "html",
) -> Response:
    """The formal request document, in any of the seven languages."""
    from cyberpact.cases import document

    # The read is recorded and the page written in a short unit of work; the PDF is drawn after it ends.
    # Drawn inside it (seconds for a long request), it held SQLite's one write lock and stalled every
    # approval, note and inbound message meanwhile, failing some with "database is locked".
    with get_database(request).transaction() as session:
        row = service.get_request(session, actor, request_id)
        # Dates in the viewer's own time zone, as everywhere a person reads them.
        viewer = session.get(User, actor.user_id) if actor.user_id else None
        zone = viewer.timezone if viewer else "UTC"
        html = document.render_html(session, catalog_of(request), row, lang, zone)
        name = f"request-{row.id}-{lang}.pdf"
    if format == "html":
        return HTMLResponse(
            html, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
        )
    from cyberpact.kit.documents import render_pdf

    return Response(
        render_pdf(html),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
