"""What desk pages show of requests: summaries for lists and one merged timeline for a request or a case.

Everything here reads rows the caller has already loaded through the cases service (which decides what
the viewer may see and records the read); nothing here decides access.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from cyberpact.cases import deadlines
from cyberpact.cases.models import Case, CaseNote, RequestEvent
from cyberpact.cases.models import Request as RequestRow
from cyberpact.cases.service import CHANNELS
from cyberpact.catalog.service import Catalog
from cyberpact.evidence.models import CustodyEvent, EvidencePackage
from cyberpact.federation import outbox
from cyberpact.federation.models import ConversationEvent
from cyberpact.kit.i18n import N_, Translator

# Timeline words that are not catalog actions: system and federation steps, and custody events.
EVENT_LABELS: dict[str, str] = {
    "drafted": N_("Drafted"),
    "edited": N_("Draft edited"),
    "sent": N_("Sent to the requested State"),
    "delivered": N_("Delivered (signed receipt)"),
    "received": N_("Received"),
    "rejected_by_peer": N_("Refused by the requested node"),
    "reminder": N_("Reminder: preservation ends soon"),
    "expires_today": N_("Preservation ends today"),
    "registered": N_("Registered: received outside the network"),
    "held": N_("Follow-up request received: the data stay preserved until it is decided (art. 42)"),
    "hold_ended": N_("Follow-up request decided: the preservation period runs again"),
    "preservation_not_found": N_("The preservation request it follows is not on this node: find it by hand"),
    "msg.delivered": N_("Message delivered (signed receipt)"),
    "msg.rejected": N_("Message refused by the peer"),
    "msg.dead": N_("Message undelivered: given up"),
    "msg.received": N_("Message received"),
    "custody.created": N_("Evidence package created"),
    "custody.viewed": N_("Evidence viewed"),
    "custody.downloaded": N_("Evidence downloaded"),
    "custody.copied": N_("Evidence copied"),
    "custody.transferred": N_("Evidence transferred"),
    "custody.received": N_("Evidence received"),
    "custody.verified": N_("Evidence verified"),
    "custody.exported": N_("Court bundle exported"),
    "custody.sealed": N_("Evidence package sealed"),
    "custody.released": N_("Evidence released"),
    "custody.delete_asked": N_("Deletion requested: a second administrator must confirm it"),
    "custody.delete_kept": N_("Deletion request withdrawn: the evidence is kept"),
    "custody.deleted": N_("Evidence deleted"),
    "custody.withdrawn": N_("Removed"),  # one file, taken out of its package before sealing
}
SIDE_LABELS: dict[str, str] = {
    "local": N_("this node"),
    "remote": N_("the other State"),
    "system": N_("system"),
    "federation": N_("federation"),
    "custody": N_("custody log"),
}
DIRECTION_LABELS: dict[str, str] = {"incoming": N_("Incoming"), "outgoing": N_("Outgoing")}
PACKAGE_STATES: dict[str, str] = {
    "open": N_("Open"),
    "sealed": N_("Sealed"),
    "received": N_("Received"),
    "deleted": N_("Deleted"),
}
# An outgoing transfer: offered, then its chunks sending, then the receiver's signed verdict.
TRANSFER_STATES: dict[str, str] = {
    "offered": N_("Offered, waiting for the peer"),
    "sending": N_("Sending"),
    "accepted": N_("Received and verified (signed receipt)"),
    "rejected": N_("Refused by the receiver"),
}
# The catalog check's soft warnings, by code: what the drafter should look at again.
WARNING_LABELS: dict[str, str] = {
    "language_not_accepted": N_("The requested State may not accept the language of the request."),
    "not_party": N_("The requested State has neither signed nor ratified the convention."),
    "not_ratified": N_("The requested State has signed but not ratified the convention."),
    "no_follow_up": N_("No date is planned yet for the follow-up request for mutual assistance."),
    "emergency_unjustified": N_("Marked as an emergency without saying what makes it one."),
    "wrong_channel": N_(
        "The requested node does not serve as the office this type of request goes to: a 24/7 point of "
        "contact for urgent requests such as preservation, a central authority for mutual legal assistance."
    ),
    "preservation_unknown": N_(
        "No open preservation sent to this State carries this ticket: the preserved data will not be held "
        "for this request. Check the ticket the requested side gave."
    ),
}
ACQUISITION_LABELS: dict[str, str] = {
    "by": N_("Acquired by (person or unit)"),
    "at": N_("Acquired at (your local time)"),
    "where": N_("Where (place or system it was taken from)"),
    "method": N_("Method (imaging, export, seizure…)"),
    "tool": N_("Tool"),
    "tool_version": N_("Tool version"),
    "authority": N_("Legal authority or order reference"),
    "notes": N_("Notes"),
}
EXPIRY_LABELS: dict[str, str] = {
    "ok": N_("Preserved"),
    "expiring": N_("Ends within 14 days"),
    "expires_today": N_("Ends today"),
    "expired": N_("Preservation period over"),
    "held": N_("Held for the follow-up request"),
}


@dataclass(frozen=True)
class RequestSummary:
    id: uuid.UUID
    case_id: uuid.UUID
    direction: str
    type: str
    type_label: str
    article: str
    status: str
    status_label: str
    counterpart: str | None
    country: str | None
    emergency: bool
    reference: str | None
    due_at: datetime | None
    overdue: bool
    preserved_until: date | None
    expiry: str | None
    created_at: datetime
    updated_at: datetime
    drafted_by: str


def summary(catalog: Catalog, row: RequestRow, today: date | None = None) -> RequestSummary:
    rt = catalog.types.get(row.type)
    ref = row.header.get("our_reference") if isinstance(row.header, dict) else None
    return RequestSummary(
        id=row.id,
        case_id=row.case_id,
        direction=row.direction,
        type=row.type,
        type_label=rt.label if rt else row.type,
        article=rt.article if rt else "",
        status=row.status,
        status_label=catalog.lifecycle.states.get(row.status, row.status),
        counterpart=row.counterpart,
        country=row.counterpart_country,
        emergency=row.emergency,
        reference=str(ref) if ref else row.remote_reference,
        due_at=row.due_at,
        overdue=deadlines.is_overdue(row),
        preserved_until=row.preserved_until,
        expiry=deadlines.expiry_state(row, today),
        created_at=row.created_at,
        updated_at=row.updated_at,
        drafted_by=row.drafted_by,
    )


# --- the timeline --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    label: str  # a msgid or a catalog label, translated by the template
    text: str  # as written: free text is shown exactly, escaped, never translated
    translate_text: bool = False


@dataclass(frozen=True)
class Entry:
    at: datetime
    who: str
    side: str
    label: str  # msgid or catalog action label
    status: str | None = None  # the state it led to (a catalog state label)
    request_id: uuid.UUID | None = None
    message_id: str | None = None
    details: tuple[Detail, ...] = field(default_factory=tuple)
    order: int = 0


# Per catalog (one per process): a timeline asks for the same few actions' labels a thousand times.
_LABELS: dict[tuple[int, str], dict[str, str]] = {}


def _field_labels(catalog: Catalog, action: str) -> dict[str, str]:
    key = (id(catalog), action)
    if key not in _LABELS:
        a = catalog.lifecycle.actions.get(action)
        _LABELS[key] = {f.name: f.label for f in a.fields if f.label} if a else {}
    return _LABELS[key]


def _ground_labels(catalog: Catalog) -> dict[str, str]:
    key = (id(catalog), "\0grounds")
    if key not in _LABELS:
        _LABELS[key] = {g.id: g.label for g in catalog.head.grounds}
    return _LABELS[key]


# Kept in the event for the record, shown on the request page instead (in the reader's time zone).
_SHOWN_ELSEWHERE = frozenset({"received_at"})


def _details(catalog: Catalog, action: str, detail: dict[str, Any]) -> tuple[Detail, ...]:
    """The fields an action carried, labelled from the catalog where it knows them."""
    labels = _field_labels(catalog, action)
    out = []
    for key, value in detail.items():
        if value in (None, "", [], {}) or key in _SHOWN_ELSEWHERE:
            continue
        if key == "grounds" and isinstance(value, list):
            grounds = _ground_labels(catalog)
            for g in value:
                out.append(Detail(N_("Ground for refusal"), grounds.get(str(g), str(g)), str(g) in grounds))
            continue
        label = labels.get(key) or DETAIL_LABELS.get(key, key)
        if key == "receipt" and value in RECEIPT_LABELS:
            out.append(Detail(label, RECEIPT_LABELS[value], True))
            continue
        if key == "undelivered_request" and value == "cancelled":
            out.append(Detail(label, N_("taken back before it was delivered; it is not sent again"), True))
            continue
        if key in ("channel", "outside_network") and value in CHANNELS:
            out.append(Detail(label, CHANNELS[value], True))
            continue
        if isinstance(value, bool):
            out.append(Detail(label, N_("Yes") if value else N_("No"), True))
            continue
        if isinstance(value, str):
            text = value
        elif isinstance(value, int | float):
            text = str(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            # One per line (the timeline keeps line breaks): JSON's brackets and quotes mean nothing to
            # an officer reading a list of evidence references.
            text = "\n".join(value)
        else:
            text = json.dumps(value, ensure_ascii=False)
        out.append(Detail(label, text))
    return tuple(out)


# What the peer's signed receipt said, in words: the code itself means nothing to an officer.
RECEIPT_LABELS: dict[str, str] = {
    "accepted": N_("accepted and signed for"),
    "duplicate": N_("accepted: it had arrived before"),
}

DETAIL_LABELS: dict[str, str] = {
    "reference": N_("Reference"),
    "follow_up": N_("Follow-up request"),
    "channel": N_("Received by"),
    "authority": N_("Requesting authority"),
    "outside_network": N_("Not sent through the network: answer by"),
    "questions": N_("Questions"),
    "answers": N_("Answers"),
    "subject": N_("Subject"),
    "preserved_until": N_("Preserved until"),
    "note": N_("Note"),
    "until": N_("Until"),
    "reason": N_("Reason"),
    "reasons": N_("Reasons"),
    "results": N_("Results"),
    "evidence_refs": N_("Evidence references"),
    "comments": N_("Comments"),
    "to": N_("To"),
    "approved_by": N_("Approved by"),
    "receipt": N_("Receipt"),
    "use_limitation": N_("Conditions on use"),
    "complete": N_("Complete"),
    "missing": N_("Missing items"),
    "days_left": N_("Days left"),
    "undelivered_request": N_("The request itself"),
}


def _message_details(kind: str, summary: str) -> tuple[Detail, ...]:
    """A federation event's line: a receipt in words (the peer is already named as who), anything else
    as the federation wrote it."""
    status = outbox.receipt_status(summary) if kind == "delivered" else None
    if status is not None:
        return (Detail(N_("Receipt"), RECEIPT_LABELS[status], True),)
    return (Detail(N_("Message"), summary),) if summary else ()


def timeline(
    session: Session,
    catalog: Catalog,
    requests: Sequence[RequestRow],
    case: Case | None = None,
    notes: Sequence[CaseNote] = (),
    may_open: Callable[[EvidencePackage], bool] = lambda _: True,
) -> list[Entry]:
    """Every event of ``requests`` in time order: their steps on both sides, the federation messages that
    carried them, the custody events of the evidence filed under them (views excepted), and ``notes``;
    a package's title only where ``may_open`` it."""
    noted = [
        Entry(at=n.at, who=n.author, side="local", label=N_("Note"), details=(Detail(N_("Text"), n.text),))
        for n in notes
    ]
    if not requests:
        return noted
    ids = [r.id for r in requests]
    entries: list[Entry] = []
    seen: set[tuple[str, str]] = set()
    known_messages: set[str] = set()
    # Plain rows, not ORM objects: a long timeline is read, never changed, and this halves its cost.
    ev_cols = (
        RequestEvent.seq,
        RequestEvent.at,
        RequestEvent.actor,
        RequestEvent.side,
        RequestEvent.action,
        RequestEvent.from_status,
        RequestEvent.to_status,
        RequestEvent.detail,
        RequestEvent.message_id,
    )
    rows = session.execute(
        select(*ev_cols).where(RequestEvent.request_id.in_(ids)).order_by(RequestEvent.seq)
    )
    for ev in rows:
        if ev.message_id:
            seen.add((ev.message_id, ev.action))
            known_messages.add(ev.message_id)
        action = catalog.lifecycle.actions.get(ev.action)
        label = action.label if action else EVENT_LABELS.get(ev.action, ev.action)
        details = _details(catalog, ev.action, ev.detail or {})
        if ev.action in ("drafted", "edited"):
            details = ()
        entries.append(
            Entry(
                at=ev.at,
                who=ev.actor,
                side=ev.side,
                label=label,
                status=catalog.lifecycle.states.get(ev.to_status or "")
                if ev.to_status != ev.from_status
                else None,
                message_id=ev.message_id,
                details=details,
                order=ev.seq,
            )
        )
    conversations = [str(i) for i in ids]
    for ce in session.scalars(
        select(ConversationEvent)
        .where(ConversationEvent.conversation_id.in_(conversations))
        .order_by(ConversationEvent.seq)
    ):
        # The request's own events already say when a step was queued and received; the federation
        # adds what only it knows: receipts for every message, refusals and messages given up on.
        if ce.kind == "queued" or (ce.kind == "received" and ce.message_id in known_messages):
            continue
        if (ce.message_id, ce.kind) in seen:
            continue
        entries.append(
            Entry(
                at=ce.at,
                who=ce.peer,
                side="federation",
                label=EVENT_LABELS.get(f"msg.{ce.kind}", ce.kind),
                message_id=ce.message_id,
                details=_message_details(ce.kind, ce.summary),
                order=ce.seq,
            )
        )
    entries += custody_entries(session, packages_for(session, requests, case), may_open)
    entries += noted
    entries.sort(key=lambda e: (e.at, e.order))
    return entries


@dataclass(frozen=True)
class Shown:
    """A timeline entry in the reader's language and zone, ready to print as it is."""

    at_iso: str
    when: str
    who: str
    side: str
    side_label: str
    label: str
    status: str | None
    details: tuple[tuple[str, str], ...]


def present(entries: Sequence[Entry], t: Translator, clock: Callable[[datetime], str]) -> list[Shown]:
    """Translate and format a timeline once in Python: on a page with a thousand entries this is most of
    the rendering time, and the template then only prints strings it escapes."""
    gettext = t.gettext
    sides = {k: gettext(v) for k, v in SIDE_LABELS.items()}
    return [
        Shown(
            e.at.isoformat(),
            clock(e.at),
            e.who,
            e.side,
            sides.get(e.side, e.side),
            gettext(e.label),
            gettext(e.status) if e.status else None,
            tuple((gettext(d.label), gettext(d.text) if d.translate_text else d.text) for d in e.details),
        )
        for e in entries
    ]


def packages_for(
    session: Session, requests: Iterable[RequestRow], case: Case | None = None
) -> list[EvidencePackage]:
    refs = [str(r.id) for r in requests]
    clauses: list[ColumnElement[bool]] = [EvidencePackage.request_ref.in_(refs)]
    if case is not None:
        # By the case's reference only this node's own packages: a peer names its case as it likes, and
        # must not be able to file a package on one of ours. Nor a package of a request of this case the
        # reader may not see.
        others = [str(i) for i in session.scalars(select(RequestRow.id).where(RequestRow.case_id == case.id))]
        hidden = sorted(set(others) - set(refs))
        clauses.append(
            and_(
                EvidencePackage.case_ref == case.reference,
                EvidencePackage.origin_package_id.is_(None),
                or_(EvidencePackage.request_ref.is_(None), EvidencePackage.request_ref.not_in(hidden)),
            )
        )
    query = select(EvidencePackage).where(or_(*clauses)).order_by(EvidencePackage.created_at)
    return list(session.scalars(query))


@dataclass(frozen=True)
class FiledPackage:
    """A package on a request's or a case's page; its title only for one who may open it (None otherwise)."""

    id: uuid.UUID
    title: str | None
    status: str


def filed_packages(
    packages: Iterable[EvidencePackage], may_open: Callable[[EvidencePackage], bool]
) -> list[FiledPackage]:
    return [FiledPackage(p.id, p.title if may_open(p) else None, p.status) for p in packages]


def custody_entries(
    session: Session,
    packages: Sequence[EvidencePackage],
    may_open: Callable[[EvidencePackage], bool] = lambda _: True,
) -> list[Entry]:
    if not packages:
        return []
    titles = {str(p.id): p.title for p in packages}
    # One who may not open a package still sees that evidence was filed, sealed and sent on the request,
    # but not what the package is called: that is evidence, read by the evidence roles only.
    shown = {str(p.id) for p in packages if may_open(p)}
    query = (
        select(CustodyEvent)
        .where(CustodyEvent.package_id.in_(list(titles)), CustodyEvent.kind != "viewed")
        .order_by(CustodyEvent.seq)
    )
    return [
        Entry(
            at=ev.at,
            who=ev.actor,
            side="custody",
            label=EVENT_LABELS.get(f"custody.{ev.kind}", ev.kind),
            details=(Detail(N_("Evidence package"), titles.get(ev.package_id or "", "")),)
            if ev.package_id in shown
            else (),
            order=ev.seq,
        )
        for ev in session.scalars(query)
    ]
