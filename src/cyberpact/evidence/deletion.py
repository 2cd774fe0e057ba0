"""Destroying a package's content: irreversible, so four eyes among administrators.

The first administrator's call records a request in the custody log; another administrator confirms it
within ``DELETION_REQUEST_LIFETIME``, or any administrator withdraws it. What stands is read back from the
custody log itself, so the log is the one record of who asked, who confirmed and who kept the content.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.evidence import chunks, custody
from cyberpact.evidence.models import CustodyEvent, EvidencePackage
from cyberpact.evidence.service import Context, custody_reason, readable
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import Conflict
from cyberpact.kit.time import parse_rfc3339, utcnow

# A deletion request waits this long for a second administrator; after it, the confirmation a stale
# request would get is no longer a second look at the same facts, so the next call asks afresh.
DELETION_REQUEST_LIFETIME: Final = timedelta(days=7)


def pending_deletion(
    session: Session, package: EvidencePackage, now: datetime | None = None
) -> dict[str, Any] | None:
    """The standing request to delete the package (its custody entry: actor, at, reason), if there is
    one: not withdrawn since, and younger than ``DELETION_REQUEST_LIFETIME``."""
    if package.status == "deleted":
        return None
    row = session.scalar(
        select(CustodyEvent)
        .where(
            CustodyEvent.package_id == str(package.id),
            CustodyEvent.kind.in_(("delete_asked", "delete_kept")),
        )
        .order_by(CustodyEvent.seq.desc())
        .limit(1)
    )
    if row is None or row.kind != "delete_asked":
        return None
    entry: dict[str, Any] = json.loads(row.entry)
    if deletion_deadline(entry) <= (now or utcnow()):
        return None
    return entry


def pending_deletions(
    session: Session, now: datetime | None = None
) -> list[tuple[EvidencePackage, dict[str, Any]]]:
    """Every package whose deletion waits for a second administrator, with its request; the soonest to
    lapse first."""
    now = now or utcnow()
    asked = session.scalars(
        select(CustodyEvent.package_id)
        .where(CustodyEvent.kind == "delete_asked", CustodyEvent.at > now - DELETION_REQUEST_LIFETIME)
        .distinct()
    )
    waiting = []
    for pid in sorted(p for p in asked if p):
        package = session.get(EvidencePackage, uuid.UUID(pid))
        entry = pending_deletion(session, package, now) if package is not None else None
        if package is not None and entry is not None:
            waiting.append((package, entry))
    return sorted(waiting, key=lambda w: deletion_deadline(w[1]))


def deletion_deadline(asked: dict[str, Any]) -> datetime:
    """Until when a deletion request (its custody entry) may be confirmed."""
    return parse_rfc3339(asked["at"]) + DELETION_REQUEST_LIFETIME


def _lock_for_deletion(session: Session, package: EvidencePackage) -> None:
    # A confirmation and a withdrawal at the same moment must not both go through: each reads the
    # standing request under this row lock (PostgreSQL; a SQLite writer holds the database already).
    session.execute(select(EvidencePackage.id).where(EvidencePackage.id == package.id).with_for_update())


def withdraw_deletion(
    session: Session, ctx: Context, actor: Actor, package: EvidencePackage, reason: str
) -> None:
    """Take back a standing deletion request; any administrator may, the one who asked included."""
    reason = custody_reason(reason)
    readable(package)
    _lock_for_deletion(session, package)
    asked = pending_deletion(session, package)
    if asked is None:
        raise Conflict("No deletion of this package is waiting for confirmation")
    first = str(asked.get("actor") or "")
    custody.record(session, ctx.node_id, "delete_kept", package.id, actor, reason=reason, requested_by=first)
    audit.record(
        session,
        actor,
        "evidence.package.delete_withdrawn",
        "evidence_package",
        package.id,
        detail={"requested_by": first},
    )


def delete(
    session: Session,
    ctx: Context,
    actor: Actor,
    package: EvidencePackage,
    reason: str,
    now: datetime | None = None,
) -> int | None:
    """Destroy the content (every chunk and the data key); the manifest and custody record remain.

    Irreversible, so two administrators: the first call records the request (custody and audit) and
    returns None; a second administrator's call, within ``DELETION_REQUEST_LIFETIME`` and unless the
    request was withdrawn, destroys and returns the objects removed."""
    reason = custody_reason(reason)
    readable(package)
    _lock_for_deletion(session, package)
    asked = pending_deletion(session, package, now)
    if asked is None:
        custody.record(session, ctx.node_id, "delete_asked", package.id, actor, reason=reason)
        audit.record(
            session,
            actor,
            "evidence.package.delete_requested",
            "evidence_package",
            package.id,
        )
        return None
    first = str(asked.get("actor") or "")
    if first == actor.username:
        raise Conflict("Four eyes: you asked for this deletion; another administrator must confirm it")
    removed = ctx.storage.delete_prefix(chunks.package_prefix(package.id))
    package.status = "deleted"
    # Crypto-shredding as a second line: even a backup of the chunks can no longer be decrypted.
    package.wrapped_key = b"\x00"
    session.flush()
    asked_by = {"by": first, "reason": (asked.get("detail") or {}).get("reason")}
    custody.record(
        session, ctx.node_id, "deleted", package.id, actor, reason=reason, objects=removed, requested=asked_by
    )
    audit.record(
        session,
        actor,
        "evidence.package.delete",
        "evidence_package",
        package.id,
        detail={"objects": removed, "requested_by": first},
    )
    return removed
