"""Cases and drafting: creating, checking and listing requests, and who may see them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, true
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.cases import deadlines
from cyberpact.cases.models import Case, Request, RequestEvent
from cyberpact.catalog.service import Catalog, DraftReport, RequestedState, channel_warning, check_draft
from cyberpact.directory.models import Authority, AuthorityLanguage, Party, TreatyStatus
from cyberpact.federation import outbox, peers
from cyberpact.federation.models import Peer
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Lock, advisory_lock
from cyberpact.kit.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Problem
from cyberpact.kit.filters import check_choices
from cyberpact.kit.i18n import N_, Phrase
from cyberpact.kit.text import unsafe
from cyberpact.kit.time import PAST_MOMENT, is_past_moment, rfc3339, utcnow

CASE_ROLES = ("officer", "supervisor", "central_authority", "contact_point")
# Who may see a request whose sender asked for confidentiality: the operational channels and their
# supervisors, not every officer of the node (art. 40 [parallel: UNTOC 18(20)]).
CONFIDENTIAL_ROLES = ("central_authority", "contact_point", "supervisor")
OPEN_STATUSES_EXCLUDED = (
    "draft",
    "pending_approval",
    "returned",
    "approved",
    "executed",
    "refused",
    "released",
    "closed",
    "withdrawn",
)


def _next_reference(session: Session, prefix: str) -> str:
    # Two officers opening cases at the same moment must not both get the next number.
    advisory_lock(session, Lock.CASE_REFERENCE)
    year = utcnow().year
    count = session.scalar(
        select(func.count()).select_from(Case).where(Case.reference.like(f"{prefix}-{year}-%"))
    )
    n = (count or 0) + 1
    # A reference someone chose by hand may already hold the next number: the officer who asked for a
    # new case chose nothing, and must not be told that "their" reference is taken.
    while session.scalar(select(Case.id).where(Case.reference == f"{prefix}-{year}-{n:04d}")) is not None:
        n += 1
    return f"{prefix}-{year}-{n:04d}"


def create_case(session: Session, actor: Actor, title: str, reference: str | None = None) -> Case:
    if not actor.has_any(*CASE_ROLES):
        raise PermissionDenied("Creating a case needs a case role")
    title = title.strip()
    if not title or len(title) > 300:
        raise InvalidInput(Phrase("Invalid case"), [Problem("title", "1 to 300 characters")])
    if reason := unsafe(title, short=True):
        raise InvalidInput(Phrase("Invalid case"), [Problem("title", reason)])
    reference = reference or _next_reference(session, "CASE")
    if session.scalar(select(Case.id).where(Case.reference == reference)):
        raise Conflict("Case reference taken", [Problem("reference", f"{reference} exists", "duplicate")])
    case = Case(reference=reference, title=title, created_by=actor.username, created_at=utcnow())
    session.add(case)
    session.flush()
    audit.record(session, actor, "cases.case.create", "case", case.id, detail={"reference": reference})
    return case


def get_case(session: Session, actor: Actor, case_id: uuid.UUID) -> Case:
    case = session.get(Case, case_id)
    if case is None or not actor.has_any(*CASE_ROLES):
        raise NotFound(f"No case {case_id}")
    if session.scalar(select(Case.id).where(Case.id == case.id, case_visible(actor))) is None:
        # A case opened for a confidential incoming request is named after it: its existence is as
        # confidential as the request's.
        raise NotFound(f"No case {case_id}").denying("cases.case.read", "case", case.id)
    audit.record(session, actor, "cases.case.read", "case", case.id)
    return case


# The scopes of the cursors that page the two listings (kit.pagination): one's cursor is refused by the other.
CASES_CURSOR = "cases"
REQUESTS_CURSOR = "requests"


# The longest search a listing of cases takes: a case's title is at most 300 characters, and a longer text
# can be found in none.
SEARCH_MAX = 300


def list_cases(
    session: Session,
    actor: Actor,
    limit: int = 100,
    after: tuple[datetime, uuid.UUID] | None = None,
    *,
    search: str | None = None,
    view: str | None = None,
) -> list[Case]:
    """The cases ``actor`` may see, newest first, from just after ``after``: the (created_at, id) of the
    last case of the page before, as a :data:`CASES_CURSOR` cursor carries it.

    ``search`` keeps the cases whose reference or title holds it, in any case (``%`` and ``_`` are
    themselves, not wildcards); ``view`` names the page that listed them in the audit record."""
    if not actor.has_any(*CASE_ROLES):
        raise PermissionDenied("Reading cases needs a case role")
    query = select(Case).where(case_visible(actor))
    search = (search or "").strip()
    if search:
        query = query.where(_matching(search))
    if after is not None:
        query = query.where(
            (Case.created_at < after[0]) | ((Case.created_at == after[0]) & (Case.id < after[1]))
        )
    # The id breaks ties: cases made in the same microsecond would otherwise fall between two pages.
    rows = list(session.scalars(query.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)))
    detail: dict[str, Any] = {"returned": len(rows)}
    if search:
        detail["search"] = search
    if view:
        detail["view"] = view
    audit.record(session, actor, "cases.case.list", "case", None, detail=detail)
    return rows


def _matching(search: str) -> Any:
    """Cases whose reference or title holds ``search``, whatever its letters' case. Refused: a search longer
    than any title, or one holding a character no text may (PostgreSQL cannot even compare a NUL)."""
    too_long = len(search) > SEARCH_MAX
    problem = Phrase("at most {count} characters", count=SEARCH_MAX) if too_long else unsafe(search)
    if problem:
        raise InvalidInput(Phrase("Invalid search"), [Problem("q", problem)])
    # Escaped, so that "50%" or "A_1" find themselves rather than every reference with a character there.
    pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(Case.reference.ilike(pattern, escape="\\"), Case.title.ilike(pattern, escape="\\"))


def request_counts(session: Session, actor: Actor, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many requests ``actor`` may see in each of ``case_ids`` (a page of :func:`list_cases`), in one
    query; a case without any is left out."""
    if not case_ids:
        return {}
    query = (
        select(Request.case_id, func.count())
        .where(Request.case_id.in_(case_ids), visible_filter(actor))
        .group_by(Request.case_id)
    )
    return {case_id: int(n) for case_id, n in session.execute(query)}


def case_visible(actor: Actor) -> Any:
    """A case the actor may see: one that holds no request hidden from them.

    A case holding a confidential incoming request is named after it (``IN-<peer>-<their reference>``),
    and its notes speak of the matter as a whole: it stays hidden even once someone adds a request the
    actor could see (a request to a third State in the same matter), which they still open on its own."""
    if actor.has_any(*CONFIDENTIAL_ROLES):
        return true()
    hidden = select(Request.id).where(Request.case_id == Case.id, ~visible_filter(actor))
    return ~hidden.exists()


def can_see(actor: Actor, request: Request) -> bool:
    if not actor.has_any(*CASE_ROLES):
        return False
    if request.confidentiality != "none" and request.direction == "incoming":
        return actor.has_any(*CONFIDENTIAL_ROLES)
    return True


def visible_filter(actor: Actor) -> Any:
    if actor.has_any(*CONFIDENTIAL_ROLES):
        return True
    return or_(Request.confidentiality == "none", Request.direction == "outgoing")


def get_request(session: Session, actor: Actor, request_id: uuid.UUID, *, purpose: str = "read") -> Request:
    """Load a request the actor may see; every read is recorded, and so is every refused look."""
    request = session.get(Request, request_id)
    if request is None or not can_see(actor, request):
        # 404, not 403: a confidential request's existence is itself confidential. The refusal is still
        # recorded, in its own transaction, by the error handler.
        error = NotFound(f"No request {request_id}")
        raise (
            error.denying(f"cases.request.{purpose}", "request", request_id) if request is not None else error
        )
    if purpose == "read":
        audit.record(
            session,
            actor,
            "cases.request.read",
            "request",
            request.id,
            # Marked, not quoted: administrators read the audit record, and the conditions are case
            # material (a spontaneous sender's own words); the request holds them.
            detail={"use_limited": True} if request.use_limitation else None,
        )
    return request


def requested_state(
    session: Session, country: str | None, channel: str | None = None
) -> RequestedState | None:
    if not country:
        return None
    party = session.get(Party, country)
    if party is None:
        return None
    treaty = session.get(TreatyStatus, country)
    query = (
        select(AuthorityLanguage.language)
        .join(Authority, Authority.id == AuthorityLanguage.authority_id)
        .where(Authority.party_code == country)
    )
    if channel:
        query = query.where(Authority.kind == channel)
    languages = frozenset(session.scalars(query))
    return RequestedState(
        code=country,
        name=party.name,
        languages=languages,
        signed=bool(treaty and treaty.signature_date),
        ratified=bool(treaty and treaty.instrument_date),
    )


@dataclass(frozen=True)
class DraftInput:
    type: str
    counterpart: str | None
    header: dict[str, Any]
    fields: dict[str, Any]


def _peer(session: Session, counterpart: str | None) -> Peer | None:
    if counterpart is None:
        return None
    peer = peers.find_peer(session, counterpart)
    if peer is None:
        raise InvalidInput(
            "Unknown requested node", [Problem("counterpart", f"{counterpart!r} is not a peer")]
        )
    return peer


@dataclass(frozen=True)
class AwayPeer:
    """The other side's node while this node cannot send to it: removed from the directory of peers (for
    good, unless added again with its fingerprint) or suspended by an administrator (for a while)."""

    peer: Peer
    # The day its status last changed: nothing moves a removed peer's row after its removal (its keys
    # are retired, no card is fetched), and a suspended one's only if its card rotates meanwhile.
    since: date

    @property
    def node_id(self) -> str:
        return self.peer.node_id

    @property
    def status(self) -> str:
        return self.peer.status

    @property
    def removed(self) -> bool:
        return self.peer.status == "removed"

    def reason(self) -> Phrase:
        """Why no step that messages it is offered, as a person reads it."""
        if self.removed:
            return Phrase(
                "{peer} was removed from this node's directory of peers on {date}: nothing more can be sent "
                "to it, so no step that would send it a message is offered",
                peer=peers.named(self.peer),
                date=self.since,
            )
        return Phrase(
            "{peer} was suspended in this node's directory of peers on {date}: nothing can be sent to it "
            "until an administrator resumes it, so no step that would send it a message is offered",
            peer=peers.named(self.peer),
            date=self.since,
        )


def away(session: Session, counterpart: str | None) -> AwayPeer | None:
    """The requested or requesting node of a request, when this node cannot send to it now; None when it
    can, and for a request registered from outside the network (it has no node)."""
    peer = peers.find_peer(session, counterpart) if counterpart is not None else None
    if peer is None or peer.status == "active":
        return None
    return AwayPeer(peer, peer.updated_at.astimezone(UTC).date())


def _peer_removed(peer: Peer) -> Problem:
    return Problem(
        "counterpart", f"{outbox.removed_peer(peer)}; choose another requested node", "peer_removed"
    )


def _peer_country(session: Session, counterpart: str | None) -> str | None:
    peer = _peer(session, counterpart)
    if peer is not None and peer.status == "removed":
        raise InvalidInput("Removed requested node", [_peer_removed(peer)])
    return peer.country if peer is not None else None


def check(session: Session, catalog: Catalog, data: DraftInput) -> DraftReport:
    if data.type not in catalog.types:
        known = ", ".join(sorted(catalog.types))
        unknown = Phrase("{type} is not a request type; known: {known}", type=repr(data.type), known=known)
        raise InvalidInput(Phrase("Unknown request type"), [Problem("type", unknown)])
    rt = catalog.type(data.type)
    peer = _peer(session, data.counterpart)
    country = peer.country if peer is not None else None
    report = check_draft(
        catalog, data.type, data.header, data.fields, requested_state(session, country, rt.channel)
    )
    if peer is not None and peer.status == "removed":
        # Reported, not raised: a draft addressed before the peer was removed still opens, and says why
        # it cannot go.
        report.errors.insert(0, _peer_removed(peer))
    elif peer is not None and (mismatch := channel_warning(rt, peers.named(peer), peer.roles)):
        report.warnings.append(mismatch)
    tickets = deadlines.cited_tickets(data.header, data.fields)
    if (
        tickets
        and data.counterpart is not None
        and not deadlines.cited_preservations(
            session, catalog, data.type, "outgoing", data.counterpart, tickets, country=country
        )
    ):
        # Caught here, not when the data are gone: a ticket the requested side does not know holds nothing.
        report.warnings.append(
            Problem(
                "fields.preservation_reference"
                if str(data.fields.get("preservation_reference") or "").strip() in tickets
                else "header.related_ticket",
                Phrase(
                    "no open preservation sent to this State carries this ticket, so the data it kept will "
                    "not be held for this request; check the ticket the requested side gave",
                    lead="art. 42",
                ),
                "preservation_unknown",
                "art. 42(7)",
            )
        )
    if data.counterpart is None:
        report.errors.insert(
            0,
            Problem(
                "counterpart",
                Phrase("name the requested authority's node", lead="art. 40(13)"),
                "missing",
                "art. 40(13)",
            ),
        )
    return report


def _sync(catalog: Catalog, request: Request, data: DraftInput, country: str | None) -> None:
    request.counterpart, request.counterpart_country = data.counterpart, country
    request.header, request.fields = dict(data.header), dict(data.fields)
    # An emergency disclosure is an emergency by its type (art. 41), ticked or not; the receiving node
    # reads it the same way.
    rt = catalog.types.get(data.type)
    request.emergency = data.header.get("emergency") is True or (rt is not None and rt.emergency)
    request.confidentiality = str(data.header.get("confidentiality") or "none")
    request.use_limitation = data.header.get("use_limitation") or None


def requested_reference(session: Session, request: Request) -> str | None:
    """The requested side's ticket: kept on an outgoing row, in our acknowledgement of an incoming one."""
    if request.direction == "outgoing":
        return request.remote_reference
    ack = session.scalar(
        select(RequestEvent)
        .where(RequestEvent.request_id == request.id, RequestEvent.action == "acknowledge")
        .order_by(RequestEvent.seq.desc())
        .limit(1)
    )
    reference = ack.detail.get("reference") if ack is not None else None
    return reference if isinstance(reference, str) and reference else None


def event(
    session: Session,
    request: Request,
    actor: str,
    side: str,
    action: str,
    *,
    before: str | None,
    detail: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> RequestEvent:
    row = RequestEvent(
        request_id=request.id,
        at=utcnow(),
        actor=actor,
        side=side,
        action=action,
        from_status=before,
        to_status=request.status,
        detail=detail or {},
        message_id=message_id,
    )
    if request.use_limitation:
        # Use conditions mark every record derived from the request.
        row.detail = {**row.detail, "use_limitation": request.use_limitation}
    session.add(row)
    return row


def create_draft(
    session: Session, actor: Actor, catalog: Catalog, case: Case, data: DraftInput
) -> tuple[Request, DraftReport]:
    if not actor.has_any("officer", "contact_point", "central_authority"):
        raise PermissionDenied("Drafting needs the officer, contact_point or central_authority role")
    report = check(session, catalog, data)
    _reject_malformed(report)
    now = utcnow()
    request = Request(
        case_id=case.id,
        direction="outgoing",
        type=data.type,
        status="draft",
        catalog_version=catalog.version,
        drafted_by=actor.username,
        created_at=now,
        updated_at=now,
        version=1,
        header={},
        fields={},
    )
    _sync(catalog, request, data, _peer_country(session, data.counterpart))
    session.add(request)
    session.flush()
    event(
        session,
        request,
        actor.username,
        "local",
        "drafted",
        before=None,
        detail={"complete": report.complete, "missing": len(report.errors)},
    )
    audit.record(
        session,
        actor,
        "cases.request.create",
        "request",
        request.id,
        detail={"type": data.type, "case": case.reference},
    )
    return request, report


# How a request that did not come over the network reached us: its steps go back the same way.
CHANNELS: dict[str, str] = {
    "email": N_("e-mail"),
    "fax": N_("fax"),
    "post": N_("post or courier"),
    "diplomatic": N_("diplomatic channel"),
    "phone": N_("telephone"),
    "in_person": N_("handed over in person"),
}
REGISTER_ROLES = ("central_authority", "contact_point")
RECEIVED_IN_FUTURE = N_("is in the future: give the moment it arrived")
# The day is the catalog's ``adopted``; a test holds the two together.
RECEIVED_BEFORE_ADOPTION = N_(
    "is before 24 December 2024, when the UN General Assembly adopted the convention: no request under it "
    "arrived earlier; check the year"
)


@dataclass(frozen=True)
class ReceivedInput:
    """A request another State sent by e-mail, fax, post or telephone, typed in from what arrived."""

    type: str
    header: dict[str, Any]
    fields: dict[str, Any]
    country: str
    authority: str
    channel: str
    received_at: datetime


def register_received(
    session: Session, actor: Actor, catalog: Catalog, case: Case | None, data: ReceivedInput
) -> tuple[Request, DraftReport]:
    """Record an incoming request that reached this node outside the network, so that it is tracked,
    acknowledged, decided and reported like any other; its steps are not sent (no peer to send them to)
    and the timeline says so. What the catalog finds missing is what to ask the requesting State for."""
    if not actor.has_any(*REGISTER_ROLES):
        raise PermissionDenied("Registering a request needs the central_authority or contact_point role")
    if data.type not in catalog.types:
        raise InvalidInput(
            Phrase("Unknown request type"), [Problem("type", f"{data.type!r} is not a request type")]
        )
    problems = []
    if session.get(Party, data.country) is None:
        problems.append(Problem("country", f"{data.country!r} is not a State in the directory"))
    if data.channel not in CHANNELS:
        problems.append(Problem("channel", f"one of: {', '.join(CHANNELS)}"))
    if data.received_at.tzinfo is None:
        problems.append(Problem("received_at", PAST_MOMENT))
    elif not is_past_moment(data.received_at):
        problems.append(Problem("received_at", RECEIVED_IN_FUTURE))
    elif data.received_at.date() < catalog.head.adopted:  # the day as written, in its own zone
        problems.append(Problem("received_at", RECEIVED_BEFORE_ADOPTION))
    reference = str(data.header.get("our_reference") or "") or None
    # Two officers typing in the same fax at once must not both find it new.
    advisory_lock(session, Lock.CASE_REFERENCE)
    existing = _registered_already(session, data, reference)
    if existing is not None:
        problems.append(_already(session, existing))
    if problems:
        raise InvalidInput(
            Phrase("The registration is incomplete or wrong"),
            problems,
            {"existing_request": str(existing.id)} if existing is not None else {},
        )
    report = check_draft(catalog, data.type, data.header, data.fields, None)
    _reject_malformed(report)
    now = utcnow()
    if case is None:
        # As for a request that arrives over the network: its later requests join the same case.
        ref = f"IN-{data.country}-{reference or uuid.uuid4().hex[:12]}"[:120]
        case = session.scalar(select(Case).where(Case.reference == ref)) or create_case(
            session, actor, f"{catalog.type(data.type).label} from {data.authority}"[:300], ref
        )
    received_at = data.received_at.astimezone(UTC)
    request = Request(
        case_id=case.id,
        direction="incoming",
        type=data.type,
        status="received",
        catalog_version=catalog.version,
        counterpart=None,
        counterpart_country=data.country,
        drafted_by=f"outside:{data.authority}"[:120],
        approval={"registered_by": actor.username, "channel": data.channel, "authority": data.authority},
        remote_reference=reference,
        sent_at=received_at,
        created_at=now,
        updated_at=now,
        version=1,
        header={},
        fields={},
    )
    _sync(catalog, request, DraftInput(data.type, None, data.header, data.fields), data.country)
    session.add(request)
    session.flush()
    event(
        session,
        request,
        actor.username,
        "local",
        "registered",
        before=None,
        detail={"channel": data.channel, "authority": data.authority, "received_at": rfc3339(received_at)},
    )
    audit.record(
        session,
        actor,
        "cases.request.register",
        "request",
        request.id,
        detail={"type": data.type, "case": case.reference, "channel": data.channel},
    )
    # The clock started when it arrived, not when it was typed in.
    deadlines.after_transition(session, catalog, request, "received", at=received_at)
    deadlines.hold_for_follow_up(session, catalog, request)
    return request, report


def _registered_already(session: Session, data: ReceivedInput, reference: str | None) -> Request | None:
    """The request from the same State with the same reference, type and kind this node already holds,
    however it came (the e-mailed advance copy, the original by post, the network).

    Type and kind are part of it: a State quotes one case reference on the preservation, the MLA request
    that follows it and an extension (this product's own drafts do), and those are requests of their own.
    The authority is not: it is typed by hand, and "Police" and "National Police" would let the same fax
    through twice, while a State's offices do not share their reference numbers."""
    if reference is None:
        return None
    candidates = session.scalars(
        select(Request)
        .where(
            Request.direction == "incoming",
            Request.counterpart_country == data.country,
            Request.type == data.type,
            func.lower(func.trim(Request.remote_reference)) == reference.strip().lower(),
        )
        .order_by(Request.created_at)
    )
    kind = data.header.get("request_kind")
    return next((r for r in candidates if r.header.get("request_kind") == kind), None)


def _already(session: Session, existing: Request) -> Problem:
    case = session.get_one(Case, existing.case_id)
    arrived = (existing.sent_at or existing.created_at).astimezone(UTC).date().isoformat()
    return Problem(
        "header.our_reference",
        f"{existing.remote_reference} from {existing.counterpart_country} is already on this node: request "
        f"{existing.id} in case {case.reference}, received {arrived}; open it rather than register it again",
        "duplicate",
    )


def _reject_malformed(report: DraftReport) -> None:
    """Missing fields are the drafter's work in progress; wrong types and unknown fields are refused."""
    bad = [p for p in report.errors if p.code in ("invalid", "unknown_field")]
    if bad:
        raise InvalidInput(Phrase("The draft has invalid values"), bad)


def update_draft(
    session: Session,
    actor: Actor,
    catalog: Catalog,
    request: Request,
    data: DraftInput,
    expected_version: int | None = None,
) -> tuple[Request, DraftReport]:
    if request.direction != "outgoing" or request.status not in ("draft", "returned"):
        raise Conflict(f"Only drafts can be edited; this request is {request.status}")
    if request.drafted_by != actor.username and not actor.has_any("supervisor"):
        raise PermissionDenied("Only the drafter (or a supervisor) edits a draft")
    if data.type != request.type:
        raise InvalidInput(
            Phrase("The type of a draft cannot change"), [Problem("type", "start a new draft instead")]
        )
    if expected_version is not None and expected_version != request.version:
        raise Conflict(f"The draft changed meanwhile (now version {request.version}); reload it")
    report = check(session, catalog, data)
    _reject_malformed(report)
    _sync(catalog, request, data, _peer_country(session, data.counterpart))
    request.version += 1
    request.updated_at = utcnow()
    session.flush()
    event(
        session,
        request,
        actor.username,
        "local",
        "edited",
        before=request.status,
        detail={"complete": report.complete, "missing": len(report.errors)},
    )
    audit.record(
        session, actor, "cases.request.update", "request", request.id, detail={"version": request.version}
    )
    return request, report


@dataclass(frozen=True)
class RequestFilter:
    direction: str | None = None
    status: str | None = None
    type: str | None = None
    country: str | None = None
    emergency: bool | None = None
    due_before: datetime | None = None
    case_id: uuid.UUID | None = None
    overdue: bool = False


DIRECTIONS = ("outgoing", "incoming")


def check_filter(catalog: Catalog, f: RequestFilter) -> RequestFilter:
    """``f`` if each of its enumerated values is one the catalog knows; else InvalidInput naming them."""
    check_choices(
        [
            ("direction", f.direction, DIRECTIONS),
            ("status", f.status, catalog.lifecycle.states),
            ("type", f.type, catalog.types),
        ]
    )
    return f


def list_query(actor: Actor, f: RequestFilter) -> Select[Request]:
    query = select(Request).where(visible_filter(actor))
    if f.direction:
        query = query.where(Request.direction == f.direction)
    if f.status:
        query = query.where(Request.status == f.status)
    if f.type:
        query = query.where(Request.type == f.type)
    if f.country:
        query = query.where(Request.counterpart_country == f.country)
    if f.emergency is not None:
        query = query.where(Request.emergency.is_(f.emergency))
    if f.due_before:
        query = query.where(Request.due_at <= f.due_before)
    if f.case_id:
        query = query.where(Request.case_id == f.case_id)
    if f.overdue:
        query = query.where(Request.due_at < utcnow(), Request.status.not_in(OPEN_STATUSES_EXCLUDED))
    return query


def list_requests(
    session: Session,
    actor: Actor,
    catalog: Catalog,
    f: RequestFilter,
    limit: int = 100,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[Request]:
    if not actor.has_any(*CASE_ROLES):
        raise PermissionDenied("Reading requests needs a case role")
    check_filter(catalog, f)
    query = list_query(actor, f)
    if after is not None:
        query = query.where(
            (Request.created_at < after[0]) | ((Request.created_at == after[0]) & (Request.id < after[1]))
        )
    rows = list(session.scalars(query.order_by(Request.created_at.desc(), Request.id.desc()).limit(limit)))
    audit.record(
        session,
        actor,
        "cases.request.list",
        "request",
        None,
        detail={"returned": len(rows), "filter": {k: str(v) for k, v in f.__dict__.items() if v}},
    )
    return rows


def timeline(session: Session, request: Request) -> list[RequestEvent]:
    return list(
        session.scalars(
            select(RequestEvent).where(RequestEvent.request_id == request.id).order_by(RequestEvent.seq)
        )
    )
