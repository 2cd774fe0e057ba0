"""The two-sided life cycle: every step checked against the catalog's life cycle, taken on this side,
and carried to the other side as a signed message that the other side checks again before applying."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from cyberpact.audit import service as audit
from cyberpact.cases import deadlines
from cyberpact.cases.models import Case, Request, RequestEvent, RequestRevision
from cyberpact.cases.service import AwayPeer, away, check, event
from cyberpact.catalog.schemas import Action
from cyberpact.catalog.service import Catalog, check_values
from cyberpact.federation import handlers, outbox, peers
from cyberpact.federation.envelope import OpenedEnvelope
from cyberpact.federation.models import OutboxMessage
from cyberpact.kit.actor import Actor
from cyberpact.kit.canonical import canonical_json
from cyberpact.kit.errors import Conflict, CyberpactError, InvalidInput, NotFound, PermissionDenied, Problem
from cyberpact.kit.i18n import Phrase
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.time import rfc3339, utcnow

REQUEST_MESSAGE = "cp.request"
STEP_MESSAGE = "cp.step"
# Before the requested side acknowledges, the requester's copy says "sent" or "delivered" where the
# requested side's says "received": the same state seen from either end.
_SAME_AS_RECEIVED = {"sent", "delivered"}


# Ends a request on this node alone when its other side's node is gone from the directory of peers: the
# one way left to end it, since closing and withdrawing are messages to that node.
LOCAL_ENDING = "end_locally"


class TransitionRefused(Conflict):
    code = "transition_not_allowed"
    title = "Not allowed in this state"


class CounterpartRemoved(Conflict):
    code = "counterpart_removed"
    title = "The other side's node was removed"


class CounterpartSuspended(Conflict):
    code = "counterpart_suspended"
    title = "The other side's node is suspended"


def our_side(request: Request) -> str:
    return "requesting" if request.direction == "outgoing" else "requested"


def _state(request: Request) -> str:
    return "received" if request.status in _SAME_AS_RECEIVED else request.status


@dataclass(frozen=True)
class Offer:
    """What a person is offered on a request now, and what not and why: the API, the command line and the
    desk all show this one answer."""

    allowed: list[str]
    # Open by state, side and role, but not offered: each would send a message to ``away``.
    withheld: list[str]
    away: AwayPeer | None


def sends(catalog: Catalog, name: str) -> bool:
    """Whether taking ``name`` sends the other side a message: what the catalog's ``message`` says, and
    approving, which sends the request itself (:func:`_approve_and_send`)."""
    return name == "approve" or catalog.lifecycle.actions[name].message


def _open_to(catalog: Catalog, name: str, away: AwayPeer | None) -> bool:
    """The one rule for a counterpart this node cannot send to: no step that messages it, and the local
    ending only once it was removed (a suspension is lifted, and the request goes on then)."""
    if name == LOCAL_ENDING:
        return away is not None and away.removed
    return away is None or not sends(catalog, name)


def counterpart_away(request: Request) -> AwayPeer | None:
    """The request's other side's node when this node cannot send to it now (removed or suspended)."""
    session = object_session(request)
    assert session is not None, "a detached request cannot tell the state of its peer"
    return away(session, request.counterpart)


def offer(catalog: Catalog, request: Request, actor: Actor | None = None, side: str | None = None) -> Offer:
    """The actions open now on ``side`` (default: ours), for ``actor`` when given (roles, four eyes), and
    those held back because they would message a counterpart this node cannot send to."""
    gone = counterpart_away(request)
    allowed, withheld = [], []
    for name in _open(catalog, request, actor, side or our_side(request)):
        if _open_to(catalog, name, gone):
            allowed.append(name)
        elif name != LOCAL_ENDING:
            withheld.append(name)
    return Offer(allowed, withheld, gone)


def allowed_actions(
    catalog: Catalog, request: Request, actor: Actor | None = None, side: str | None = None
) -> list[str]:
    """What :func:`offer` allows: the steps that will work if taken now."""
    return offer(catalog, request, actor, side).allowed


def _open(catalog: Catalog, request: Request, actor: Actor | None, side: str) -> list[str]:
    rt = catalog.type(request.type)
    out = []
    for name in rt.actions:
        action = catalog.lifecycle.actions[name]
        if _state(request) not in action.from_ or action.side not in (side, "any"):
            continue
        if actor is not None and not _may(actor, request, action):
            continue
        if name == "release" and _held_here(request, side):
            continue
        out.append(name)
    return out


def _held_here(request: Request, side: str) -> bool:
    # The requested side may not let the data go while the follow-up waits (art. 42); the requesting
    # side may still say it no longer needs them.
    return request.held_by is not None and side == "requested"


def _may(actor: Actor, request: Request, action: Action) -> bool:
    if not actor.has_any(*action.roles):
        return False
    return not (action.four_eyes and _wrote(request, actor.username))


def _wrote(request: Request, username: str) -> bool:
    """Whether ``username`` drafted, edited or submitted the request: a supervisor may edit someone else's
    draft, and would then be approving their own words under another person's name."""
    if username == request.drafted_by:
        return True
    session = object_session(request)
    if session is None:  # a detached row cannot prove who touched it: refuse rather than assume
        return True
    query = select(RequestEvent.seq).where(
        RequestEvent.request_id == request.id,
        RequestEvent.actor == username,
        RequestEvent.action.in_(("drafted", "edited", "submit")),
    )
    return session.scalar(query.limit(1)) is not None


def _digest(request: Request) -> str:
    body = {"type": request.type, "header": request.header, "fields": request.fields}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def act(
    session: Session,
    actor: Actor,
    catalog: Catalog,
    request: Request,
    name: str,
    data: dict[str, Any],
    *,
    expected_version: int | None = None,
) -> Request:
    """Take action ``name`` on this side; refuse with the actions that are allowed instead.

    ``expected_version`` is the version the person read: an approval must be of the words the supervisor
    saw, not of a text returned, edited and resubmitted while their page was open."""
    if expected_version is not None and expected_version != request.version:
        raise Conflict(
            Phrase(
                "The request was edited since you read it (you read version {read}, it is now version "
                "{now}); read it again",
                read=expected_version,
                now=request.version,
            )
        )
    rt = catalog.type(request.type)
    action = catalog.lifecycle.actions.get(name)
    if action is None or name not in rt.actions:
        raise InvalidInput(
            f"{name!r} is not an action for a {rt.label.lower()} request",
            [Problem("action", Phrase("one of: {actions}", actions=", ".join(rt.actions)))],
        )
    # Clients read the step and the state by their ids, as they send them; the desk by their labels.
    step = Phrase(action.label, english=name)
    if action.side not in (our_side(request), "any"):
        raise TransitionRefused(
            Phrase("{step} is taken by the requesting side, and this node is the requested side", step=step)
            if action.side == "requesting"
            else Phrase(
                "{step} is taken by the requested side, and this node is the requesting side", step=step
            ),
            extra={"allowed": allowed_actions(catalog, request, actor)},
        )
    if _state(request) not in action.from_:
        state = catalog.lifecycle.states.get(request.status, request.status)
        raise TransitionRefused(
            # Translators: {step} is the label of a step ("Acknowledge"), {state} of a state ("Sent").
            Phrase(
                "Cannot {step} a request that is {state}",
                step=step,
                state=Phrase(state, english=request.status),
            ),
            extra={"allowed": allowed_actions(catalog, request, actor)},
        )
    if not actor.has_any(*action.roles):
        raise PermissionDenied(
            Phrase("{step} needs one of the roles: {roles}", step=step, roles=", ".join(action.roles))
        )
    gone = counterpart_away(request)
    if not _open_to(catalog, name, gone):
        raise _unreachable(catalog, request, actor, name, gone)
    if name == "release" and _held_here(request, our_side(request)):
        raise TransitionRefused(
            Phrase(
                "Art. 42: the data stay preserved until the follow-up request {request} is decided",
                request=request.held_by,
            ),
            extra={"allowed": allowed_actions(catalog, request, actor)},
        )
    if action.four_eyes and _wrote(request, actor.username):
        raise PermissionDenied(
            Phrase(
                "Four eyes: you drafted, edited or submitted this request; another supervisor must review it"
            )
        )
    problems = check_values(catalog, action.fields, data, "data", set(rt.grounds))
    if not problems:  # the extra checks read values the catalog checks have proved well-formed
        problems = _extra_checks(catalog, request, name, data)
    problems += _consultation(catalog, request, name, data)
    if problems:
        # Said as it is: a date written 31/12/2027 is not missing, and a person looking for an empty field
        # would not find one.
        gaps = {p.code for p in problems} <= {"missing"}
        raise InvalidInput(
            f"{name} is missing what the convention requires"
            if gaps
            else f"{name}: some of what you gave is missing or not valid; each item says which",
            problems,
        )
    before = request.status
    if name == "submit":
        report = check(session, catalog, _draft_input(request))
        if not report.complete:
            raise InvalidInput("The request is incomplete", report.errors)
        _snapshot(session, request, actor, "submitted", None)
    if name == "return":
        _snapshot(session, request, actor, "returned", data["comments"])
    request.status = action.to
    request.updated_at = utcnow()
    _effects(request, name, data, catalog)
    session.flush()
    message_id = None
    detail = data
    unsent = False
    if name == LOCAL_ENDING:
        detail = _end_locally(session, request, data)
    if name == "withdraw" and request.counterpart is not None:
        # A request still waiting for its peer (away, or refusing it) is taken back whole: what was
        # addressed to the wrong State, or is no longer needed, is never disclosed.
        taken = outbox.cancel_undelivered(
            session, str(request.id), REQUEST_MESSAGE, "withdrawn before it was delivered"
        )
        if taken.messages:
            detail = {**data, "undelivered_request": "cancelled"}
            # Never tried: it never left this node, and there is nothing to tell. Tried without an
            # answer: it may have arrived, so the withdrawal follows it.
            unsent = not taken.attempted
    if action.message and request.counterpart is not None:
        if not unsent:
            message_id = _send_step(session, actor, request, name, data)
    elif action.message:
        # Registered from outside the network: no peer to tell. The timeline says the step must go back
        # the way the request came.
        detail = {**data, "outside_network": (request.approval or {}).get("channel") or "other"}
    event(
        session, request, actor.username, "local", name, before=before, detail=detail, message_id=message_id
    )
    recorded: dict[str, Any] = {"from": before, "to": request.status}
    if name == LOCAL_ENDING and gone is not None:
        # What an inspector asks of it: which node was gone, and that nothing was sent to it.
        recorded |= {"counterpart": gone.node_id, "counterpart_status": gone.status, "sent": False}
    audit.record(session, actor, f"cases.request.{name}", "request", request.id, detail=recorded)
    if name == "approve":
        _approve_and_send(session, actor, catalog, request)
    deadlines.after_transition(session, catalog, request, name, data)
    return request


def _unreachable(
    catalog: Catalog, request: Request, actor: Actor, name: str, gone: AwayPeer | None
) -> CyberpactError:
    """Why :func:`_open_to` refuses ``name``, with the actions open instead."""
    step = Phrase(catalog.lifecycle.actions[name].label, english=name)
    allowed = {"allowed": allowed_actions(catalog, request, actor)}
    if name == LOCAL_ENDING or gone is None:  # (None: only the local ending is refused then)
        return TransitionRefused(
            Phrase(
                "{step} is only for a request whose other side's node was removed from this node's "
                "directory of peers",
                step=step,
            ),
            extra=allowed,
        )
    peer = peers.named(gone.peer)
    more = {**allowed, "counterpart": gone.node_id, "since": gone.since.isoformat()}
    if gone.removed:
        return CounterpartRemoved(
            Phrase(
                "{step} sends a message to {peer}, which was removed from this node's directory of peers on "
                "{date}: nothing more can be sent to it",
                step=step,
                peer=peer,
                date=gone.since,
            ),
            extra=more,
        )
    return CounterpartSuspended(
        Phrase(
            "{step} sends a message to {peer}, which was suspended in this node's directory of peers on "
            "{date}: nothing can be sent to it until an administrator resumes it",
            step=step,
            peer=peer,
            date=gone.since,
        ),
        extra=more,
    )


def _end_locally(session: Session, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """What is still queued for the removed node is taken back: if it were ever added again, it would
    otherwise receive the words of a request that has ended here."""
    why = "the request was ended on this node after its peer was removed"
    taken = outbox.cancel_undelivered(session, str(request.id), REQUEST_MESSAGE, why)
    outbox.cancel_undelivered(session, str(request.id), STEP_MESSAGE, why)
    return {**data, "undelivered_request": "cancelled"} if taken.messages else data


def _draft_input(request: Request) -> Any:
    from cyberpact.cases.service import DraftInput

    return DraftInput(request.type, request.counterpart, request.header, request.fields)


def _extra_checks(catalog: Catalog, request: Request, name: str, data: dict[str, Any]) -> list[Problem]:
    problems = []
    rt = catalog.type(request.type)
    if name in ("preserve", "grant_extension") and isinstance(data.get("preserved_until"), str):
        minimum = rt.deadlines.min_preservation_days or 0
        until = date.fromisoformat(data["preserved_until"])
        if name == "preserve" and until < utcnow().date() + timedelta(days=minimum):
            problems.append(
                Problem(
                    "data.preserved_until",
                    Phrase(
                        "preservation lasts not less than {minimum} days",
                        lead="art. 42(7) [parallel: Budapest 29(7)]",
                        minimum=minimum,
                    ),
                    "invalid",
                    "art. 42(7)",
                )
            )
    new_until = data.get("until")
    if (
        name in ("postpone", "request_extension")
        and isinstance(new_until, str)
        and date.fromisoformat(new_until) <= utcnow().date()
    ):
        problems.append(Problem("data.until", Phrase("must be a future date"), "invalid"))
    # An extension lengthens: a date on or before the current end would shorten the preservation under
    # the name of extending it.
    extended = data.get("until") if name == "request_extension" else data.get("preserved_until")
    if (
        name in ("request_extension", "grant_extension")
        and isinstance(extended, str)
        and request.preserved_until is not None
        and date.fromisoformat(extended) <= request.preserved_until
    ):
        field = "data.until" if name == "request_extension" else "data.preserved_until"
        problems.append(
            Problem(
                field,
                Phrase(
                    "an extension must end after the current end of preservation, {end}",
                    lead="art. 42(7)",
                    end=request.preserved_until,
                ),
                "invalid",
                "art. 42(7)",
            )
        )
    if name == "refuse" and not data.get("grounds"):
        problems.append(
            Problem(
                "data.grounds",
                Phrase("cite at least one refusal ground", lead="art. 40(21)"),
                "missing",
                "art. 40(21)",
            )
        )
    return problems


def _consultation(catalog: Catalog, request: Request, name: str, data: dict[str, Any]) -> list[Problem]:
    """A refusal or postponement the convention lets only follow a consultation: checked with the form's
    values, not after them, so that a person drafting a refusal learns of every gap in one answer."""
    rt = catalog.type(request.type)
    said = data.get("consultation")
    if name not in rt.consult_before or (isinstance(said, str) and said.strip()) or _consulted(request):
        return []
    cite = rt.consult_cite
    return [
        Problem(
            "data.consultation",
            Phrase(
                "consult the requesting State first, to see whether the request can be met, perhaps on "
                "conditions: take the step “{consult}”, or say here when and how you consulted",
                lead=cite,
                consult=Phrase(catalog.lifecycle.actions["consult"].label),
            ),
            "missing",
            cite,
        )
    ]


def _consulted(request: Request) -> bool:
    session = object_session(request)
    assert session is not None
    found = session.scalar(
        select(RequestEvent.seq)
        .where(RequestEvent.request_id == request.id, RequestEvent.action == "consult")
        .limit(1)
    )
    return found is not None


def _effects(request: Request, name: str, data: dict[str, Any], catalog: Catalog) -> None:
    now = utcnow()
    if name == "acknowledge":
        request.acknowledged_at = now
    if name in ("preserve", "grant_extension"):
        request.preserved_until = date.fromisoformat(data["preserved_until"])
    if name in ("execute",):
        request.executed_at = now
    if name == "release":
        request.preserved_until = None


def _snapshot(session: Session, request: Request, actor: Actor, reason: str, comments: str | None) -> None:
    session.add(
        RequestRevision(
            request_id=request.id,
            version=request.version,
            at=utcnow(),
            by=actor.username,
            reason=reason,
            header=dict(request.header),
            fields=dict(request.fields),
            comments=comments,
        )
    )


def _approve_and_send(session: Session, actor: Actor, catalog: Catalog, request: Request) -> None:
    """Only approved requests reach the outbox; the approval travels inside the signed message."""
    assert request.counterpart is not None
    now = utcnow()
    request.approved_by, request.approved_at = actor.username, now
    request.approval = {
        "drafted_by": request.drafted_by,
        "approved_by": actor.username,
        "approved_at": rfc3339(now),
        "digest": _digest(request),
    }
    case = session.get_one(Case, request.case_id)
    row = outbox.enqueue(
        session,
        actor,
        recipient=request.counterpart,
        message_type=REQUEST_MESSAGE,
        conversation_id=str(request.id),
        payload={
            "request_id": str(request.id),
            "type": request.type,
            "catalog_version": request.catalog_version,
            "case_reference": case.reference,
            "header": request.header,
            "fields": request.fields,
            "approval": request.approval,
            "conditions": {
                "confidentiality": request.confidentiality,
                "use_limitation": request.use_limitation,
            },
            "summary": catalog.type(request.type).label,
        },
    )
    before = request.status
    request.status, request.sent_at, request.request_message_id = "sent", now, row.message_id
    session.flush()
    event(
        session,
        request,
        actor.username,
        "local",
        "sent",
        before=before,
        detail={"to": request.counterpart},
        message_id=row.message_id,
    )


def _send_step(session: Session, actor: Actor, request: Request, name: str, data: dict[str, Any]) -> str:
    assert request.counterpart is not None
    row = outbox.enqueue(
        session,
        actor,
        recipient=request.counterpart,
        message_type=STEP_MESSAGE,
        conversation_id=str(request.id),
        payload={
            "request_id": str(request.id),
            "action": name,
            "data": data,
            "status": request.status,
            "by": actor.username,
            "summary": name.replace("_", " "),
        },
    )
    return row.message_id


# --- the other side --------------------------------------------------------------------------------------


def _catalog() -> Catalog:
    from cyberpact.catalog.service import get_catalog

    return get_catalog()


def _refuse(reason: str) -> CyberpactError:
    return InvalidInput(reason)


@handlers.register(REQUEST_MESSAGE)
def receive_request(session: Session, message: OpenedEnvelope) -> str:
    catalog = _catalog()
    p = message.payload
    request_id = parse_uuid(p.get("request_id"))
    if request_id is None:
        raise _refuse("request_id is not a UUID")
    if str(request_id) != message.conversation_id:
        raise _refuse("the request id and the conversation differ")
    if session.get(Request, request_id) is not None:
        raise _refuse("a request with this id exists already")
    type_id = str(p.get("type"))
    if type_id not in catalog.types:
        raise _refuse(f"unknown request type {type_id!r}")
    header, fields = p.get("header"), p.get("fields")
    approval = p.get("approval")
    if not isinstance(header, dict) or not isinstance(fields, dict) or not isinstance(approval, dict):
        raise _refuse("header, fields and approval must be objects")
    if approval.get("drafted_by") == approval.get("approved_by"):
        raise _refuse("the request was not approved by a second person")
    raw_conditions = p.get("conditions")
    conditions: dict[str, Any] = raw_conditions if isinstance(raw_conditions, dict) else {}
    now = utcnow()
    ref = f"IN-{message.sender}-{str(header.get('our_reference') or request_id)[:60]}"
    case = session.scalar(select(Case).where(Case.reference == ref))
    if case is None:
        case = Case(
            reference=ref,
            title=f"{catalog.type(type_id).label} from {message.sender}",
            created_by=f"peer:{message.sender}",
            created_at=now,
        )
        session.add(case)
        session.flush()
    confidentiality = str(conditions.get("confidentiality") or "none")
    if confidentiality not in ("none", "fact_and_substance", "substance"):
        raise _refuse("unknown confidentiality condition")
    from cyberpact.federation.models import Peer

    peer = session.get(Peer, message.sender)
    request = Request(
        id=request_id,
        case_id=case.id,
        direction="incoming",
        type=type_id,
        status="received",
        catalog_version=str(p.get("catalog_version") or ""),
        counterpart=message.sender,
        counterpart_country=peer.country if peer else None,
        header=header,
        fields=fields,
        emergency=header.get("emergency") is True or catalog.type(type_id).emergency,
        confidentiality=confidentiality,
        use_limitation=_use_conditions(conditions, type_id, fields),
        drafted_by=str(approval.get("drafted_by")),
        approved_by=str(approval.get("approved_by")),
        approval=approval,
        remote_reference=str(header.get("our_reference") or "") or None,
        request_message_id=message.message_id,
        sent_at=message.created,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()
    event(
        session,
        request,
        f"peer:{message.sender}",
        "remote",
        "received",
        before=None,
        detail={"approved_by": approval.get("approved_by")},
        message_id=message.message_id,
    )
    deadlines.after_transition(session, catalog, request, "received")
    deadlines.hold_for_follow_up(session, catalog, request)
    return f"{catalog.type(type_id).label} ({header.get('our_reference', '')})"


def _use_conditions(conditions: dict[str, Any], type_id: str, fields: dict[str, Any]) -> str | None:
    """The conditions the receiver must honour: the header's use limitation and, for spontaneous
    information, the conditions the sender attached to it (art. 40 [parallel: UNTOC 18(5)])."""
    parts = [str(conditions.get("use_limitation") or "").strip()]
    if type_id == "spontaneous_information":
        parts.append(str(fields.get("conditions") or "").strip())
    text = "\n".join(p for p in parts if p)
    return text[:20_000] or None


@handlers.register(STEP_MESSAGE)
def receive_step(session: Session, message: OpenedEnvelope) -> str:
    catalog = _catalog()
    p = message.payload
    request_id = parse_uuid(p.get("request_id"))
    if request_id is None:
        raise _refuse("request_id is not a UUID")
    request = session.get(Request, request_id)
    if request is None:
        raise NotFound(f"no request {request_id}")
    if request.counterpart != message.sender:
        # A third node cannot speak for the other side of someone else's request.
        raise PermissionDenied(f"request {request_id} is not shared with {message.sender}")
    name = str(p.get("action"))
    action = catalog.lifecycle.actions.get(name)
    their_side = "requested" if request.direction == "outgoing" else "requesting"
    if action is None or name not in catalog.type(request.type).actions:
        raise _refuse(f"unknown action {name!r}")
    if not action.message:
        # A step that stays on the node that takes it (approving, a local ending) is never sent: a peer
        # that sends one is not ending or approving anything here.
        raise PermissionDenied(f"{name} is taken on one node only, never sent")
    if action.side not in (their_side, "any"):
        raise PermissionDenied(f"{name} is not taken by the {their_side} side")
    if _state(request) not in action.from_:
        raise TransitionRefused(f"cannot {name} a request that is {request.status} here")
    raw_data = p.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    grounds = set(catalog.type(request.type).grounds)
    problems = check_values(catalog, action.fields, data, "data", grounds, received=True)
    if problems:
        raise InvalidInput(f"{name} is incomplete", problems)
    before = request.status
    request.status = action.to
    request.updated_at = utcnow()
    if name == "acknowledge" and request.direction == "outgoing":
        request.remote_reference = str(data.get("reference"))
        request.acknowledged_at = utcnow()
    elif name in ("preserve", "grant_extension", "release", "execute"):
        _effects(request, name, data, catalog)
    session.flush()
    event(
        session,
        request,
        f"peer:{message.sender}:{p.get('by', '')}",
        "remote",
        name,
        before=before,
        detail=data,
        message_id=message.message_id,
    )
    deadlines.after_transition(session, catalog, request, name, data)
    return f"{name.replace('_', ' ')} ({request.type})"


@handlers.on_receipt(REQUEST_MESSAGE)
def request_delivered(session: Session, row: OutboxMessage, status: str) -> None:
    request = session.get(Request, uuid.UUID(row.conversation_id))
    if request is None or request.status != "sent":
        return
    request.status = "delivered" if status in ("accepted", "duplicate") else "sent"
    if status == "rejected":
        event(
            session,
            request,
            f"peer:{row.recipient}",
            "remote",
            "rejected_by_peer",
            before="sent",
            detail={"note": "the requested node refused the message; see the outbox for its reason"},
            message_id=row.message_id,
        )
        return
    event(
        session,
        request,
        f"peer:{row.recipient}",
        "remote",
        "delivered",
        before="sent",
        detail={"receipt": status},
        message_id=row.message_id,
    )
    # Their signed receipt is the proof the follow-up was received: from then on our preservation is held
    # as theirs is.
    deadlines.hold_for_follow_up(session, _catalog(), request)
