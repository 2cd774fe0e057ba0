"""Collections, their sharing policy and per-user grants, and the identity-to-State mapping.

Services flush; the caller's unit of work commits. Every change is recorded in the audit chain, and so is
every read of a collection's content (``record_read``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from cyberpact.accounts.models import User
from cyberpact.audit import service as audit
from cyberpact.intel import correlate
from cyberpact.intel.markings import TLP_ORDER, parse_tlp
from cyberpact.intel.models import IntelCollection, IntelGrant, IntelIdentity, IntelObservation
from cyberpact.intel.policy import SharingPolicy
from cyberpact.intel.stix import is_identifier
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Problem
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.time import utcnow

_ALIAS_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_STATE_RE = re.compile(r"[A-Z]{2}")
MANAGERS = ("admin", "system")


@dataclass(frozen=True)
class Access:
    can_read: bool
    can_write: bool

    @property
    def any(self) -> bool:
        return self.can_read or self.can_write


FULL = Access(True, True)
NONE = Access(False, False)


def _require_manager(actor: Actor) -> None:
    if not actor.has_any(*MANAGERS):
        raise PermissionDenied("Managing intel collections needs the admin role")


def _check_tlp(value: str) -> str:
    level = parse_tlp(value)
    if level is None:
        raise InvalidInput(
            "Unknown TLP level", [Problem("default_tlp", f"one of {', '.join(TLP_ORDER)}, not {value!r}")]
        )
    return level


def create_collection(
    session: Session,
    actor: Actor,
    *,
    title: str,
    description: str | None = None,
    alias: str | None = None,
    federate: bool = False,
    sharing_group: Iterable[str] = (),
    strict_recipient: str | None = None,
    default_tlp: str = "amber",
) -> IntelCollection:
    _require_manager(actor)
    if not title.strip():
        raise InvalidInput("A collection needs a title", [Problem("title", "must not be empty")])
    if alias is not None:
        if _ALIAS_RE.fullmatch(alias) is None:
            raise InvalidInput("Bad alias", [Problem("alias", "lower-case letters, digits, '.', '_', '-'")])
        if session.scalar(select(IntelCollection.id).where(IntelCollection.alias == alias)) is not None:
            raise Conflict(
                "Alias taken", [Problem("alias", f"{alias!r} already names a collection", "duplicate")]
            )
    row = IntelCollection(
        title=title.strip(),
        description=description,
        alias=alias,
        federate=federate,
        sharing_group=sorted(set(sharing_group)),
        strict_recipient=strict_recipient,
        default_tlp=_check_tlp(default_tlp),
        created_at=utcnow(),
        created_by=actor.username,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "intel.collection.create",
        "intel_collection",
        row.id,
        detail={"title": row.title, "alias": alias, "federate": federate, "default_tlp": row.default_tlp},
    )
    return row


def mirror_collection(session: Session, peer: str, collection_id: uuid.UUID, title: str) -> IntelCollection:
    """The local copy of a peer's collection (same id), created on its first message and marked as
    received from that peer.

    It starts as it must stay unless an administrator decides otherwise: not federated, and readable by
    managers only until they grant users on it. Refused when the id names a collection of this node: no
    peer writes into those. A mirror first received from another peer is returned as it is (a collection
    reaches a node directly from its origin and forwarded by others); what a peer that is not its source
    may add there is the caller's to check.
    """
    row = session.get(IntelCollection, collection_id)
    if row is not None:
        if row.source_peer is None:
            raise PermissionDenied(f"Collection {collection_id} here is not one received from {peer}")
        return row
    row = IntelCollection(
        id=collection_id,
        title=title.strip()[:200] or str(collection_id),
        description=f"Received from peer {peer}",
        alias=None,
        federate=False,
        sharing_group=[],
        strict_recipient=None,
        default_tlp="amber",
        created_at=utcnow(),
        created_by=f"peer:{peer}",
        source_peer=peer,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        Actor(user_id=None, username=f"peer:{peer}", source="federation"),
        "intel.collection.mirror",
        "intel_collection",
        row.id,
        detail={"title": row.title, "source_peer": peer},
    )
    return row


def update_policy(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    *,
    federate: bool | None = None,
    sharing_group: Iterable[str] | None = None,
    strict_recipient: str | None = None,
    default_tlp: str | None = None,
) -> IntelCollection:
    _require_manager(actor)
    before = policy_of(collection)
    if federate is not None:
        collection.federate = federate
    if sharing_group is not None:
        collection.sharing_group = sorted(set(sharing_group))
    if strict_recipient is not None:
        collection.strict_recipient = strict_recipient or None
    if default_tlp is not None:
        collection.default_tlp = _check_tlp(default_tlp)
    session.flush()
    after = policy_of(collection)
    audit.record(
        session,
        actor,
        "intel.collection.policy",
        "intel_collection",
        collection.id,
        detail={"before": _policy_dict(before), "after": _policy_dict(after)},
    )
    return collection


def _policy_dict(policy: SharingPolicy) -> dict[str, object]:
    return {
        "federate": policy.federate,
        "sharing_group": sorted(policy.sharing_group),
        "strict_recipient": policy.strict_recipient,
        "default_tlp": policy.default_tlp,
    }


def policy_of(collection: IntelCollection) -> SharingPolicy:
    tlp = parse_tlp(collection.default_tlp) or "amber"
    return SharingPolicy(
        federate=collection.federate,
        sharing_group=frozenset(collection.sharing_group or ()),
        strict_recipient=collection.strict_recipient,
        default_tlp=tlp,
    )


def get_collection(session: Session, ref: str | uuid.UUID) -> IntelCollection:
    """By id, or by alias (TAXII lets a collection's alias stand for its id)."""
    collection_id = parse_uuid(ref)
    row = session.get(IntelCollection, collection_id) if collection_id else None
    if row is None and isinstance(ref, str):
        row = session.scalar(select(IntelCollection).where(IntelCollection.alias == ref))
    if row is None:
        raise NotFound(f"No collection {ref}")
    return row


def access(session: Session, actor: Actor, collection_id: uuid.UUID) -> Access:
    if actor.has_any(*MANAGERS):
        return FULL
    if actor.user_id is None:
        return NONE
    grant = session.get(IntelGrant, (collection_id, actor.user_id))
    return Access(grant.can_read, grant.can_write) if grant else NONE


def visible_collections(session: Session, actor: Actor) -> list[tuple[IntelCollection, Access]]:
    """The collections an actor may read or write, each with that actor's access, oldest first."""
    if actor.has_any(*MANAGERS):
        rows = session.scalars(
            select(IntelCollection).order_by(IntelCollection.created_at, IntelCollection.id)
        )
        return [(c, FULL) for c in rows]
    if actor.user_id is None:
        return []
    query = (
        select(IntelCollection, IntelGrant)
        .join(IntelGrant, IntelGrant.collection_id == IntelCollection.id)
        .where(IntelGrant.user_id == actor.user_id, or_(IntelGrant.can_read, IntelGrant.can_write))
        .order_by(IntelCollection.created_at, IntelCollection.id)
    )
    return [(c, Access(g.can_read, g.can_write)) for c, g in session.execute(query)]


def readable_collection_ids(session: Session, actor: Actor) -> set[uuid.UUID] | None:
    """None means every collection (managers)."""
    if actor.has_any(*MANAGERS):
        return None
    return {c.id for c, a in visible_collections(session, actor) if a.can_read}


def record_read(
    session: Session,
    actor: Actor,
    collection_id: uuid.UUID | None,
    view: str,
    returned: int,
    **detail: object,
) -> None:
    """Who read what: one record per page, object or export, never one per object, so that an inspector
    can say who saw a TLP:RED report and when. ``collection_id`` None: a read across collections
    (correlations), limited to those the reader may read."""
    action = "intel.objects.read" if collection_id is not None else "intel.correlations.read"
    audit.record(
        session,
        actor,
        action,
        "intel_collection",
        collection_id,
        detail={"view": view, "returned": returned, **{k: v for k, v in detail.items() if v}},
    )


def grant(
    session: Session, actor: Actor, collection: IntelCollection, user: User, *, read: bool, write: bool
) -> IntelGrant | None:
    """Set a user's access to a collection; read and write both false removes the grant."""
    _require_manager(actor)
    row = session.get(IntelGrant, (collection.id, user.id))
    if not read and not write:
        if row is not None:
            session.delete(row)
        row = None
    elif row is None:
        row = IntelGrant(
            collection_id=collection.id, user_id=user.id, can_read=read, can_write=write, granted_at=utcnow()
        )
        session.add(row)
    else:
        row.can_read, row.can_write, row.granted_at = read, write, utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "intel.collection.grant",
        "intel_collection",
        collection.id,
        detail={"user": user.username, "read": read, "write": write},
    )
    return row


def list_grants(session: Session, collection: IntelCollection) -> list[tuple[str, IntelGrant]]:
    query = (
        select(User.username, IntelGrant)
        .join(User, User.id == IntelGrant.user_id)
        .where(IntelGrant.collection_id == collection.id)
        .order_by(User.username)
    )
    return [(name, g) for name, g in session.execute(query)]


def set_identity(
    session: Session, actor: Actor, reporter: str, state: str, name: str | None = None
) -> IntelIdentity:
    """Say which State a reporter (a STIX identity, or ``peer:<id>``) speaks for, and re-derive the
    correlations its past reports take part in."""
    _require_manager(actor)
    if not (is_identifier(reporter, frozenset({"identity"})) or reporter.startswith("peer:")):
        raise InvalidInput("Bad reporter", [Problem("reporter", "an identity--<uuid> or peer:<peer id>")])
    state = state.upper()
    if _STATE_RE.fullmatch(state) is None:
        raise InvalidInput("Bad State code", [Problem("state", "an ISO 3166-1 alpha-2 code")])
    row = session.get(IntelIdentity, reporter)
    before = row.state if row else None
    if row is None:
        row = IntelIdentity(reporter=reporter, state=state, name=name, updated_at=utcnow())
        session.add(row)
    else:
        row.state, row.updated_at = state, utcnow()
        if name is not None:
            row.name = name
    session.flush()
    if before != state:
        session.execute(
            update(IntelObservation).where(IntelObservation.reporter == reporter).values(state=state)
        )
        correlate.refresh_reporter(session, reporter)
    audit.record(
        session,
        actor,
        "intel.identity.set",
        "intel_identity",
        reporter,
        detail={"before": before, "state": state},
    )
    return row


def list_identities(session: Session) -> list[IntelIdentity]:
    return list(session.scalars(select(IntelIdentity).order_by(IntelIdentity.reporter)))
