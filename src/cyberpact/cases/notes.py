"""Officers' notes on a case, or on one request of it: what was said on the telephone at 3 a.m., what to
check in the morning. A note stays on this node (nothing here sends it), is never edited or deleted (a
correction is a later note), and is seen by exactly those who may see what it is about: a note on a
request only by those who may see that request, a note on the case by those who may open the case.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.cases import service
from cyberpact.cases.models import Case, CaseNote
from cyberpact.cases.models import Request as RequestRow
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.text import unsafe
from cyberpact.kit.time import utcnow

MAX_NOTE = 10_000


def add(
    session: Session,
    actor: Actor,
    text: str,
    *,
    case_id: uuid.UUID | None = None,
    request_id: uuid.UUID | None = None,
) -> CaseNote:
    """A note on the request ``request_id`` (its case implied), else on the case ``case_id``."""
    text = text.strip()
    if not text:
        raise InvalidInput("Empty note", [Problem("text", "write the note", "missing")])
    if len(text) > MAX_NOTE:
        raise InvalidInput("Note too long", [Problem("text", f"at most {MAX_NOTE} characters", "invalid")])
    if reason := unsafe(text):
        raise InvalidInput("Note refused", [Problem("text", reason, "invalid")])
    if request_id is not None:
        request = service.get_request(session, actor, request_id, purpose="note")
        case_id = request.case_id
    elif case_id is not None:
        case_id = service.get_case(session, actor, case_id).id
    else:
        raise InvalidInput(
            "A note is about something", [Problem("case_id", "a case or a request", "missing")]
        )
    note = CaseNote(case_id=case_id, request_id=request_id, author=actor.username, at=utcnow(), text=text)
    session.add(note)
    session.flush()
    # The text stays out of the audit record, which administrators read: they read no case material.
    detail = {"note": str(note.id), "length": len(text)} | (
        {"request": str(request_id)} if request_id else {}
    )
    audit.record(session, actor, "cases.note.add", "case", case_id, detail=detail)
    return note


def of_case(session: Session, case: Case, visible: Sequence[RequestRow]) -> list[CaseNote]:
    """The case's own notes and those on the requests in ``visible`` (the ones the reader may see)."""
    ids = [r.id for r in visible]
    on = (
        or_(CaseNote.request_id.is_(None), CaseNote.request_id.in_(ids))
        if ids
        else CaseNote.request_id.is_(None)
    )
    return list(
        session.scalars(select(CaseNote).where(CaseNote.case_id == case.id, on).order_by(CaseNote.at))
    )


def of_request(session: Session, request: RequestRow) -> list[CaseNote]:
    """The notes on one request (the caller has checked the reader may see it)."""
    query = select(CaseNote).where(CaseNote.request_id == request.id).order_by(CaseNote.at)
    return list(session.scalars(query))
