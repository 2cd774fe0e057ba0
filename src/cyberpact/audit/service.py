"""Appending to, anchoring and verifying the audit chain."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from cyberpact.audit.models import AuditAnchor, AuditCheck, AuditRecord
from cyberpact.kit import crypto, jobs
from cyberpact.kit.actor import SYSTEM, Actor
from cyberpact.kit.canonical import canonical_json_floatless
from cyberpact.kit.db import Lock, advisory_lock
from cyberpact.kit.errors import CyberpactError, IntegrityFailure, InvalidInput, NotFound, Problem
from cyberpact.kit.keystore import KeyStore, public_keys
from cyberpact.kit.pagination import decode_cursor, encode_cursor
from cyberpact.kit.time import rfc3339, utcnow

GENESIS = "0" * 64
_HEAD = "cyberpact.audit.head"


@event.listens_for(Session, "after_soft_rollback")
def _forget_head(session: Session, previous_transaction: Any) -> None:
    # A rolled-back savepoint may have taken remembered records with it; the next record reads the head.
    session.info.pop(_HEAD, None)


@event.listens_for(Session, "after_commit")
def _forget_head_after_commit(session: Session) -> None:
    # The chain lock ends with the transaction: the next transaction must lock and read again.
    session.info.pop(_HEAD, None)


Outcome = Literal["allowed", "denied"]


def _scrub(value: Any) -> Any:
    """Keep ``detail`` inside the float-free JSON that the fast canonical form covers."""
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def record_hash(
    *,
    at: str,
    actor: str,
    actor_id: str | None,
    action: str,
    object_type: str,
    object_id: str | None,
    source: str | None,
    outcome: str,
    detail: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "at": at,
        "actor": actor,
        "actor_id": actor_id,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "source": source,
        "outcome": outcome,
        "detail": detail,
        "prev": prev_hash,
    }
    return hashlib.sha256(canonical_json_floatless(body)).hexdigest()


def _hash_of(row: AuditRecord | Any) -> str:
    return record_hash(
        at=rfc3339(row.at),
        actor=row.actor,
        actor_id=row.actor_id,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        source=row.source,
        outcome=row.outcome,
        detail=row.detail,
        prev_hash=row.prev_hash,
    )


def _lock_chain(session: Session) -> None:
    # SQLite writers already hold the database write lock (BEGIN IMMEDIATE); PostgreSQL writers queue
    # here so that two transactions never link to the same head.
    advisory_lock(session, Lock.AUDIT_CHAIN)


def record_denial(
    session: Session, actor: Actor, exc: CyberpactError, where: str, *, action: str
) -> AuditRecord:
    """A refusal (401, 403, a hidden 404) as the record keeps it, from the API, the desk or the command
    line alike: what the error says was refused or else ``action`` on ``where`` (the route or the
    command). The refused unit of work rolled back, so the caller writes this in one of its own."""
    action, object_type, object_id = exc.denied or (action, "endpoint", where)
    return record(
        session,
        actor,
        action,
        object_type,
        object_id,
        outcome="denied",
        detail={"status": exc.status, "code": exc.code, "reason": exc.detail, "path": where},
    )


def record(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object | None = None,
    *,
    outcome: Outcome = "allowed",
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one record in the caller's transaction: it commits or vanishes with the change it describes.

    The first record of a transaction takes the chain lock and reads the head; later ones in the same
    transaction link to the head it remembers (the lock is held until commit, so nobody else can move it),
    which makes a batch of records cost one round trip instead of two each.
    """
    cached = session.info.get(_HEAD)
    if cached is None:
        _lock_chain(session)
        head = session.execute(
            select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
        ).first()
        cached = (head[0], head[1]) if head else (0, GENESIS)
    seq, prev = cached[0] + 1, cached[1]
    row = AuditRecord(
        seq=seq,
        at=utcnow(),
        actor=actor.username,
        actor_id=str(actor.user_id) if actor.user_id else None,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        source=actor.source,
        outcome=outcome,
        detail=_scrub(detail or {}),
        prev_hash=prev,
    )
    row.hash = _hash_of(row)
    session.add(row)
    session.info[_HEAD] = (seq, row.hash)
    return row


def anchor(session: Session, keys: KeyStore, node: str) -> AuditAnchor | None:
    """Sign the current chain head; returns None when the head is already anchored or the chain is empty."""
    _lock_chain(session)
    head = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).first()
    if head is None or session.get(AuditAnchor, head.seq) is not None:
        return None
    key_row, key = keys.signing_key(session)
    at = utcnow()
    payload = {"node": node, "seq": head.seq, "head": head.hash, "at": rfc3339(at)}
    jws = crypto.sign_json(key, payload, {"typ": "cyberpact-audit-anchor+jws"})
    row = AuditAnchor(seq=head.seq, head_hash=head.hash, at=at, kid=key_row.kid, jws=jws)
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class Finding:
    seq: int
    kind: Literal["altered", "deleted", "inserted", "reordered", "anchor"]
    message: str


@dataclass(frozen=True)
class VerifyResult:
    records: int
    anchors: int
    finding: Finding | None

    @property
    def ok(self) -> bool:
        return self.finding is None


def _locate_hash(session: Session, digest: str) -> int | None:
    return session.scalar(select(AuditRecord.seq).where(AuditRecord.hash == digest))


def verify(
    session: Session, *, batch: int = 20_000, progress: Callable[[int], None] | None = None
) -> VerifyResult:
    """Walk the whole chain in order and name the first record that does not hold.

    Streaming keeps memory flat at any chain length; the lookups that classify a break run only once,
    after the break is found.
    """
    anchors = {a.seq: a for a in session.scalars(select(AuditAnchor))}
    public = {k.kid: crypto.import_public(k.public_jwk) for k in public_keys(session, "sig")}
    for a in anchors.values():
        key = public.get(a.kid)
        if key is None:
            return VerifyResult(0, len(anchors), Finding(a.seq, "anchor", f"anchor at {a.seq}: unknown key"))
        try:
            _, payload = crypto.verify_json(a.jws, key)
        except IntegrityFailure:
            return VerifyResult(
                0, len(anchors), Finding(a.seq, "anchor", f"anchor at {a.seq}: bad signature")
            )
        if payload.get("seq") != a.seq or payload.get("head") != a.head_hash:
            return VerifyResult(
                0,
                len(anchors),
                Finding(a.seq, "anchor", f"anchor at {a.seq}: row differs from its signature"),
            )

    count = 0
    prev_seq, prev_hash, prev_prev = 0, GENESIS, None
    for row in _stream(session, batch):
        count += 1
        if progress and count % batch == 0:
            progress(count)
        if _hash_of(row) != row.hash:
            return VerifyResult(
                count,
                len(anchors),
                Finding(row.seq, "altered", f"record {row.seq}: content does not match its hash"),
            )
        if row.prev_hash != prev_hash:
            return VerifyResult(count, len(anchors), _classify(session, row, prev_seq, prev_prev))
        if row.seq != prev_seq + 1:
            # Links hold but numbers jump: rows were deleted and the chain re-linked after them.
            return VerifyResult(
                count,
                len(anchors),
                Finding(prev_seq + 1, "deleted", f"records {prev_seq + 1}..{row.seq - 1} are missing"),
            )
        anchored = anchors.get(row.seq)
        if anchored is not None and anchored.head_hash != row.hash:
            return VerifyResult(
                count,
                len(anchors),
                Finding(row.seq, "altered", f"record {row.seq}: differs from the signed anchor at {row.seq}"),
            )
        prev_seq, prev_prev, prev_hash = row.seq, row.prev_hash, row.hash
    last_anchor = max(anchors, default=0)
    if last_anchor > prev_seq:
        return VerifyResult(
            count,
            len(anchors),
            Finding(
                prev_seq + 1,
                "deleted",
                f"records {prev_seq + 1}..{last_anchor} are missing (signed anchor at {last_anchor})",
            ),
        )
    return VerifyResult(count, len(anchors), None)


def _classify(session: Session, row: AuditRecord, prev_seq: int, prev_prev: str | None) -> Finding:
    later = _locate_hash(session, row.prev_hash)
    if later is not None and later > row.seq:
        return Finding(row.seq, "reordered", f"record {row.seq}: follows record {later}, which comes later")
    if prev_prev is not None and row.prev_hash == prev_prev:
        return Finding(prev_seq, "inserted", f"record {prev_seq}: not part of the original chain")
    if row.seq != prev_seq + 1:
        return Finding(prev_seq + 1, "deleted", f"records {prev_seq + 1}..{row.seq - 1} are missing")
    return Finding(row.seq, "altered", f"record {row.seq}: its link to the previous record was changed")


def _stream(session: Session, batch: int) -> Iterator[Any]:
    # Core rows, not ORM objects: verification reads every record once and identity-map bookkeeping
    # would cost more than the hashing.
    columns = select(*AuditRecord.__table__.c).order_by(AuditRecord.seq)
    yield from session.execute(columns.execution_options(yield_per=batch))


@dataclass(frozen=True)
class Filters:
    """What an inspector narrows the record to; every part optional."""

    actor: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    action: str | None = None  # a prefix: "cases." is every case action
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive

    def as_query(self) -> dict[str, str]:
        """The filters given, as text: what a record of the reading says was asked."""
        out: dict[str, str] = {}
        for name, value in vars(self).items():
            if value is not None and value != "":
                out[name] = rfc3339(value) if isinstance(value, datetime) else str(value)
        return out


CURSOR_SCOPE = "audit"


def after_seq(cursor: str | None) -> int | None:
    """The record number a page cursor continues after; a cursor not issued here is a 422."""
    if not cursor:
        return None
    [seq] = decode_cursor(cursor, CURSOR_SCOPE, 1)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise InvalidInput("Invalid page cursor", [Problem("cursor", "not a cursor issued by this listing")])
    return seq


def read(
    session: Session, reader: Actor, filters: Filters, *, cursor: str | None = None, limit: int = 100
) -> tuple[list[AuditRecord], str | None]:
    """A page of the record, newest first, and the cursor of the next page. Reading the record is itself
    recorded (with what was asked): inspectors are inspected too."""
    after = after_seq(cursor)
    rows = search(session, filters, after_seq=after, limit=limit + 1)
    page = rows[:limit]
    query = filters.as_query() | ({"after": str(after)} if after is not None else {})
    record(session, reader, "audit.read", "audit", None, detail={"query": query, "returned": len(page)})
    return page, encode_cursor(CURSOR_SCOPE, [page[-1].seq]) if len(rows) > limit else None


def search(
    session: Session, filters: Filters, *, after_seq: int | None = None, limit: int = 100
) -> list[AuditRecord]:
    f = filters
    query = select(AuditRecord)
    if f.actor:
        query = query.where(AuditRecord.actor == f.actor)
    if f.object_type:
        query = query.where(AuditRecord.object_type == f.object_type)
    if f.object_id:
        query = query.where(AuditRecord.object_id == f.object_id)
    if f.action:
        query = query.where(AuditRecord.action.startswith(f.action, autoescape=True))
    if f.outcome:
        query = query.where(AuditRecord.outcome == f.outcome)
    if f.since:
        query = query.where(AuditRecord.at >= f.since)
    if f.until:
        query = query.where(AuditRecord.at < f.until)
    if after_seq is not None:
        query = query.where(AuditRecord.seq < after_seq)
    return list(session.scalars(query.order_by(AuditRecord.seq.desc()).limit(limit)))


# --- checks of the whole chain, run in the background (audit.tasks) ------------------------------------

CHECK_JOB = "audit.check"
CHECK_ACTIVE = ("queued", "running")
COMMAND = "command"  # the reason of a check run by ``cyberpact audit verify``


def request_check(session: Session, actor: Actor, *, reason: str = "asked") -> tuple[AuditCheck, bool]:
    """Queue a walk of the whole chain, and whether it is new: while one is queued or running, asking
    again gives that one (two walks at once would only halve each one's speed)."""
    # Two requests at once on PostgreSQL would each find none active and queue a walk each.
    advisory_lock(session, Lock.AUDIT_CHECK_REQUEST)
    active = session.scalar(
        select(AuditCheck)
        .where(AuditCheck.status.in_(CHECK_ACTIVE))
        .order_by(AuditCheck.requested_at.desc())
        .limit(1)
    )
    if active is not None:
        return active, False
    now = utcnow()
    check = AuditCheck(requested_by=actor.username, requested_at=now, reason=reason, status="queued")
    session.add(check)
    session.flush()
    jobs.schedule(session, CHECK_JOB, now, {"check": str(check.id)}, key=f"{CHECK_JOB}:{check.id}")
    record(session, actor, "audit.check.request", "audit_check", str(check.id), detail={"reason": reason})
    return check, True


def request_check_if_due(session: Session, every: timedelta) -> bool:
    """The node's own schedule: queue a check when none was asked for within ``every``. Measured from the
    last check rather than from the process's start, so a node restarted daily still checks daily."""
    last = session.scalar(select(func.max(AuditCheck.requested_at)))
    if last is not None and utcnow() - last < every:
        return False
    return request_check(session, SYSTEM, reason="scheduled")[1]


def start_check(session: Session, check_id: uuid.UUID) -> bool:
    """Mark a queued check running, with the chain's length now; False when it has already finished (the
    job ran again after its worker died between the end of the walk and the end of the job)."""
    check = session.get(AuditCheck, check_id)
    if check is None or check.status not in CHECK_ACTIVE:
        return False
    check.status, check.started_at, check.records_checked = "running", utcnow(), 0
    check.records_total = session.scalar(select(func.count()).select_from(AuditRecord)) or 0
    return True


def note_progress(session: Session, check_id: uuid.UUID, records: int) -> None:
    session.execute(update(AuditCheck).where(AuditCheck.id == check_id).values(records_checked=records))


def finish_check(session: Session, check_id: uuid.UUID, result: VerifyResult | None, error: str = "") -> None:
    """Keep what the walk found (or why it could not finish), and record it in the chain it walked."""
    check = session.get_one(AuditCheck, check_id)
    check.finished_at = utcnow()
    if result is None:
        check.status, check.error = "failed", error[:200]
    else:
        check.status = "intact" if result.ok else "broken"
        check.records_checked, check.anchors = result.records, result.anchors
        if result.finding is not None:
            f = result.finding
            check.finding_seq, check.finding_kind, check.finding_message = f.seq, f.kind, f.message
    detail: dict[str, Any] = {"requested_by": check.requested_by, "status": check.status}
    if result is not None:
        detail |= {"records": result.records, "anchors": result.anchors}
        if result.finding is not None:
            detail["finding"] = {"seq": result.finding.seq, "kind": result.finding.kind}
    record(session, SYSTEM, "audit.verify", "audit_check", str(check_id), detail=detail)


def keep_command_check(
    session: Session, actor: Actor, started_at: datetime, total: int, result: VerifyResult
) -> AuditCheck:
    """Keep a walk run on the command line (``cyberpact audit verify``) among the checks, so that the desk
    shows it beside the node's own and a break it found raises the same alarm on Today.

    Kept once it has ended, never while it runs: it passes through no worker that would notice it was
    killed, and a check left "running" would stand in for every check an inspector asks for later.
    """
    check = AuditCheck(
        requested_by=actor.username,
        requested_at=started_at,
        reason=COMMAND,
        status="running",
        started_at=started_at,
        records_total=total,
    )
    session.add(check)
    session.flush()
    finish_check(session, check.id, result)
    return check


def latest_checks(session: Session, limit: int = 10) -> list[AuditCheck]:
    """The latest checks, newest first, unrecorded: for a page whose own reading is recorded."""
    return list(session.scalars(select(AuditCheck).order_by(AuditCheck.requested_at.desc()).limit(limit)))


def checks(session: Session, reader: Actor, limit: int = 10) -> list[AuditCheck]:
    """The latest checks, newest first; reading them is recorded like reading the record."""
    rows = latest_checks(session, limit)
    record(session, reader, "audit.check.read", "audit_check", None, detail={"returned": len(rows)})
    return rows


def get_check(session: Session, reader: Actor, check_id: uuid.UUID) -> AuditCheck:
    check = session.get(AuditCheck, check_id)
    if check is None:
        raise NotFound(f"No check {check_id}")
    record(session, reader, "audit.check.read", "audit_check", str(check_id))
    return check


def last_finished_check(session: Session) -> AuditCheck | None:
    """The newest check that ran to an end: what an alert about a broken chain rests on."""
    return session.scalar(
        select(AuditCheck)
        .where(AuditCheck.status.in_(("intact", "broken")))
        .order_by(AuditCheck.finished_at.desc())
        .limit(1)
    )
