"""The directory (parties, treaty status and entry into force, authorities and contact points) for everyone
signed in; peers with their key fingerprints and the undelivered messages, for administrators, who also
try again here what the background gave up (the undelivered messages, and on Today the jobs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cyberpact.directory import queries
from cyberpact.directory import service as directory
from cyberpact.directory.models import Authority
from cyberpact.federation import identity, outbox, peers, roster
from cyberpact.federation.models import OutboxMessage
from cyberpact.kit import jobs
from cyberpact.kit.errors import CyberpactError, InvalidInput, Problem
from cyberpact.kit.http import get_database, wake_jobs
from cyberpact.kit.i18n import Phrase
from cyberpact.kit.time import utcnow
from cyberpact.web.render import page
from cyberpact.web.security import CheckedForm, CurrentViewer, DeskRoute, Viewer, require, settings_of

router = APIRouter(route_class=DeskRoute, include_in_schema=False)
PAGE = 300


@dataclass(frozen=True)
class PartyLine:
    code: str
    name: str
    kind: str
    signed: date | None
    instrument_type: str | None
    deposited: date | None
    in_force: date | None


@dataclass(frozen=True)
class AuthorityLine:
    authority: Authority
    languages: list[str]
    open_now: bool | None


@router.get("/desk/directory")
def directory_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    country = request.query_params.get("country", "").strip().upper()
    if country and (len(country) not in (2, 3) or not country.isalpha()):
        raise InvalidInput(Phrase("Invalid filter"), [Problem("country", "an ISO 3166-1 code")])
    filters = queries.Filters(country=country or None)
    with get_database(request).transaction(read_only=True) as session:
        view = directory.convention(session)
        eif = view.status
        parties = [
            PartyLine(
                r.code,
                r.name,
                r.kind,
                r.signature_date,
                r.instrument_type,
                r.instrument_date,
                eif.for_party.get(r.code),
            )
            for r in queries.list_parties(session, filters, None, PAGE)
        ]
        now = utcnow()
        authorities = [
            AuthorityLine(a, a.languages, directory.is_open(a, now))
            for a in queries.list_authorities(session, filters, None, PAGE)
        ]
    return page(
        request,
        viewer,
        "directory.html",
        {
            "convention": view,
            "in_force_today": eif.in_force_on(directory.today()),
            "parties": parties,
            "authorities": authorities,
            "country": country,
        },
    )


@dataclass(frozen=True)
class OwnNode:
    node_id: str
    name: str
    base_url: str
    fingerprint: str


@router.get("/desk/admin/peers")
def peers_page(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, "admin")
    return _peers(request, viewer)


def _peers(
    request: Request,
    viewer: Viewer,
    *,
    outcome: roster.Outcome | None = None,
    failure: CyberpactError | None = None,
) -> HTMLResponse:
    with get_database(request).transaction(read_only=True) as session:
        card = identity.current_card(session)
        own = None
        if card is not None:
            info = identity.read_card(json.loads(card.card))
            own = OwnNode(info.node_id, info.name, info.base_url, info.fingerprint)
        rows = peers.list_peers(session, include_removed=True)
        in_force = peers.keys_in_force(session, rows)
        publishers = {p.node_id for p in roster.list_publishers(session)}
        stuck: list[OutboxMessage] = [
            m
            for status in ("dead", "rejected", "pending")
            for m in outbox.list_messages(session, status, 100)
            if status != "pending" or m.attempts > 0
        ]
    context = {
        "own": own,
        "peers": rows,
        "in_force": in_force,
        "publishers": publishers,
        "stuck": stuck,
        "outcome": outcome,
        "failure": failure,
    }
    return page(request, viewer, "peers.html", context, status=failure.status if failure else 200)


@router.post("/desk/admin/peers/roster")
def take_roster(request: Request, viewer: CurrentViewer, form: CheckedForm) -> HTMLResponse:
    """Take a signed roster pasted by an administrator, as ``cyberpact peers roster import`` does: the
    page answers with what was added, what was already here and what was refused, with the reason."""
    require(viewer, "admin")
    token = form.get("roster").strip()
    try:
        if not token:
            raise InvalidInput(Phrase("No roster"), [Problem("roster", "paste the signed roster", "missing")])
        outcome = roster.take(get_database(request), viewer.actor, settings_of(request), token)
    except CyberpactError as exc:
        # Shown beside the form, reasons and all, rather than on an error page that loses them.
        return _peers(request, viewer, failure=exc)
    return _peers(request, viewer, outcome=outcome)


@router.post("/desk/admin/outbox/{message_id}/retry")
def retry(request: Request, message_id: str, viewer: CurrentViewer, _: CheckedForm) -> Response:
    require(viewer, "admin")
    with get_database(request).transaction() as session:
        outbox.retry(session, viewer.actor, message_id[:36])
    outbox.wake_workers(request.app)
    return RedirectResponse("/desk/admin/peers", status_code=303)


@router.post("/desk/admin/jobs/{job_id}/retry")
def retry_job(request: Request, job_id: str, viewer: CurrentViewer, _: CheckedForm) -> Response:
    """Give a background job that gave up a fresh set of attempts, as ``cyberpact jobs retry`` does."""
    require(viewer, "admin")
    with get_database(request).transaction() as session:
        jobs.retry(session, viewer.actor, job_id[:36])
    wake_jobs(request)
    return RedirectResponse("/desk#jobs-given-up", status_code=303)
