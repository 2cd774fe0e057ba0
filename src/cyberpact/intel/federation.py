"""Intel over the federation channel: what a shared collection pushes to peers, and pulling what was
missed. What a peer's messages may do here is :mod:`cyberpact.intel.inbound`.

Three message types, all in one conversation per collection (``intel:<collection id>``), so that the
outbox delivers them in order: a deletion never overtakes the object it deletes, nor a revocation the
version it revokes.

``intel.objects`` ``{collection: {id, title}, objects: [...], next_after?}``
    STIX objects, queued in the transaction that stored them (store.add_objects calls ``push_objects``),
    to each peer that ``policy.recipients`` allows for each object, in batches well under the envelope
    limit. The receiver validates every object again and stores the valid ones (invalid ones are skipped
    and counted) in its mirror of the collection: same id, created on first receipt and marked as
    received from that first sender. Each object records ``source_peer``, the peer it came from, and is
    stored byte for byte as sent, so ``created_by_ref`` stays its author's across hops. A message is
    refused whole if it carries RED, names a collection of the receiver's own, or, coming from a peer
    other than the mirror's source (a node forwarding what it received), carries anything but GREEN or
    CLEAR, the only levels a node may forward.
``intel.delete`` ``{collection: {id, title}, deletions: [{id, versions}]}``
    Deletions (``versions`` null: every version). Applied only to what the sender itself contributed.
``intel.pull`` ``{collection_id, added_after}``
    Asks for what the requester may have of a collection, added (or deleted) after a time. Answered with
    the two types above, at most ``PULL_PAGE`` objects at a time; an answer that stops short ends with
    an ``intel.objects`` message carrying ``next_after``, and the requester asks again from there.

A revocation is a new version with ``revoked: true``: it is an object like any other.

Known limits. A deletion goes to the peers the policy sends the object to now: a peer taken out of the
sharing group after receiving it keeps its copy. A mirror is marked as received from the peer whose
message created it; should a forwarded copy arrive at a node before the origin's own first message, the
origin's AMBER objects for that collection are then refused there as a forwarder's would be.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.federation import outbox
from cyberpact.federation.models import OutboxMessage, Peer
from cyberpact.intel import service, stix
from cyberpact.intel.markings import TLP2_IDS, parse_tlp
from cyberpact.intel.models import IntelCollection, IntelObject, IntelTombstone
from cyberpact.intel.policy import SharingPolicy, recipients
from cyberpact.kit.actor import Actor
from cyberpact.kit.canonical import canonical_json
from cyberpact.kit.errors import Conflict, PermissionDenied

log = logging.getLogger("cyberpact.intel.federation")

OBJECTS = "intel.objects"
DELETE = "intel.delete"
PULL = "intel.pull"

# A sealed envelope is the payload base64url-encoded twice (signed, then encrypted): about 1.8 times its
# size. 64 KiB of objects seals to about 115 KiB, under half of the default 256 KiB limit, which leaves
# room for a peer configured lower. An object too large to travel alone under the limit is not sent.
BATCH_BYTES = 64 * 1024
MAX_OBJECT_BYTES = 96 * 1024
MAX_OBJECTS = 5000  # per received message: more cannot fit in an envelope anyway
MAX_DELETIONS = 1000
PULL_PAGE = 5000  # objects read per pull answer: one inbox transaction must stay short
_ROW_OVERHEAD = 1  # the comma between objects in the payload
# Integers beyond 2**53 have no RFC 8785 form and could not be sealed; only such long digit runs need
# the full check.
_LONG_DIGITS = re.compile(r"\d{16,}")


def conversation(collection_id: uuid.UUID) -> str:
    return f"intel:{collection_id}"


def _active_peers(session: Session) -> list[str]:
    # Suspended peers get nothing queued (the outbox refuses them); they pull what they missed.
    return list(session.scalars(select(Peer.node_id).where(Peer.status == "active")))


def allowed(
    policy: SharingPolicy, peers: Iterable[str], tlp: str | None, source_peer: str | None
) -> set[str]:
    """The peers that may receive a stored object (or learn of its deletion), from its stored level."""
    refs: list[str] = []
    if tlp is not None:
        level = parse_tlp(tlp)
        # A stored level this version cannot read is treated as the most restrictive, not as unmarked.
        refs.append(TLP2_IDS[level or "red"])
    return recipients(refs, policy, peers, source_peer=source_peer)


def _collection_ref(collection: IntelCollection) -> dict[str, Any]:
    return {"id": str(collection.id), "title": collection.title}


# --------------------------------------------------------------------------------------------- sending


@dataclass
class Pushed:
    """What ``push_objects`` queued: objects per peer, and objects that cannot travel at all."""

    per_peer: dict[str, int] = field(default_factory=dict)
    unsendable: list[str] = field(default_factory=list)


def _wire_size(obj: dict[str, Any], raw: str) -> int | None:
    size = len(raw.encode())
    if size > MAX_OBJECT_BYTES:
        return None
    if _LONG_DIGITS.search(raw):
        try:
            canonical_json(obj)
        except ValueError:
            return None
    return size + _ROW_OVERHEAD


def push_objects(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    items: Sequence[tuple[str | None, str | None, dict[str, Any], str]],
) -> Pushed:
    """Queue newly stored objects, each ``(tlp, source_peer, object, raw)``, to the peers policy allows."""
    pushed = Pushed()
    peers = _active_peers(session) if collection.federate else []
    if not peers:
        return pushed
    policy = service.policy_of(collection)
    per_peer: dict[str, list[tuple[dict[str, Any], int]]] = defaultdict(list)
    for tlp, source_peer, obj, raw in items:
        chosen = allowed(policy, peers, tlp, source_peer)
        if not chosen:
            continue
        size = _wire_size(obj, raw)
        if size is None:
            pushed.unsendable.append(str(obj.get("id")))
            continue
        for peer in chosen:
            per_peer[peer].append((obj, size))
    if pushed.unsendable:
        log.warning(
            "%d object(s) of collection %s cannot be federated (too large, or integers beyond 2**53): %s",
            len(pushed.unsendable),
            collection.id,
            ", ".join(pushed.unsendable[:5]),
        )
    for peer in sorted(per_peer):
        _send_objects(session, actor, collection, peer, per_peer[peer])
        pushed.per_peer[peer] = len(per_peer[peer])
    return pushed


def _batches(items: Sequence[tuple[Any, int]], limit_count: int) -> list[list[Any]]:
    out: list[list[Any]] = []
    current: list[Any] = []
    used = 0
    for item, size in items:
        if current and (used + size > BATCH_BYTES or len(current) >= limit_count):
            out.append(current)
            current, used = [], 0
        current.append(item)
        used += size
    if current:
        out.append(current)
    return out


def _send(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    peer: str,
    message_type: str,
    key: str,
    items: Sequence[tuple[Any, int]],
    limit_count: int,
    noun: str,
    in_reply_to: str | None,
) -> int:
    """Queue ``items`` (each with its size) to ``peer`` in as many messages as the limits require."""
    batches = _batches(items, limit_count)
    for batch in batches:
        outbox.enqueue(
            session,
            actor,
            recipient=peer,
            message_type=message_type,
            conversation_id=conversation(collection.id),
            in_reply_to=in_reply_to,
            payload={
                "collection": _collection_ref(collection),
                key: batch,
                "summary": f"{len(batch)} {noun} {collection.title}",
            },
        )
    return len(batches)


def _send_objects(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    peer: str,
    objects: Sequence[tuple[dict[str, Any], int]],
    *,
    in_reply_to: str | None = None,
) -> int:
    return _send(
        session,
        actor,
        collection,
        peer,
        OBJECTS,
        "objects",
        objects,
        MAX_OBJECTS,
        "STIX object(s) of",
        in_reply_to,
    )


def _send_deletions(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    peer: str,
    deletions: Sequence[dict[str, Any]],
    *,
    in_reply_to: str | None = None,
) -> int:
    sized = [(d, len(json.dumps(d)) + _ROW_OVERHEAD) for d in deletions]
    return _send(
        session,
        actor,
        collection,
        peer,
        DELETE,
        "deletions",
        sized,
        MAX_DELETIONS,
        "deletion(s) in",
        in_reply_to,
    )


def push_deletion(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    stix_id: str,
    versions: list[str] | None,
    origins: Iterable[tuple[str | None, str | None]],
) -> set[str]:
    """Queue a deletion to every peer that policy would have sent one of the deleted versions to; each
    of ``origins`` is a deleted version's ``(tlp, source_peer)``. Returns those peers."""
    peers = _active_peers(session) if collection.federate else []
    if not peers:
        return set()
    policy = service.policy_of(collection)
    chosen: set[str] = set()
    for tlp, source_peer in origins:
        chosen |= allowed(policy, peers, tlp, source_peer)
    for peer in sorted(chosen):
        _send_deletions(session, actor, collection, peer, [{"id": stix_id, "versions": versions}])
    return chosen


# ------------------------------------------------------------------------------------------- pulling


def ask(
    session: Session,
    actor: Actor,
    peer: str,
    collection_id: uuid.UUID,
    since: datetime | None,
    *,
    in_reply_to: str | None = None,
) -> OutboxMessage:
    stamp = stix.format_timestamp(since) if since is not None else None
    return outbox.enqueue(
        session,
        actor,
        recipient=peer,
        message_type=PULL,
        conversation_id=conversation(collection_id),
        in_reply_to=in_reply_to,
        payload={
            "collection_id": str(collection_id),
            "added_after": stamp,
            "summary": f"pull of collection {collection_id}" + (f" after {stamp}" if stamp else ""),
        },
    )


def request_pull(
    session: Session, actor: Actor, peer: str, collection_id: uuid.UUID, since: datetime | None = None
) -> OutboxMessage:
    """Ask ``peer`` for what it may share of its collection, added after ``since`` (default: all of it;
    what is here already is recognised and not stored twice)."""
    if not actor.has_any(*service.MANAGERS):
        raise PermissionDenied("Pulling a peer's collection needs the admin role")
    existing = session.get(IntelCollection, collection_id)
    if existing is not None and existing.source_peer is None:
        raise Conflict(f"Collection {collection_id} is this node's own; there is nothing to pull")
    row = ask(session, actor, peer, collection_id, since)
    audit.record(
        session,
        actor,
        "intel.collection.pull",
        "intel_collection",
        collection_id,
        detail={"peer": peer, "since": row.payload["added_after"], "message": row.message_id},
    )
    return row


@dataclass
class PullAnswer:
    objects: int = 0
    deletions: int = 0
    messages: int = 0
    next_after: datetime | None = None


def answer_pull(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    requester: str,
    added_after: datetime | None,
    *,
    in_reply_to: str | None = None,
) -> PullAnswer:
    """Queue to ``requester`` what policy lets it have of ``collection`` after ``added_after``: every
    version added since, and every deletion since, in the order they happened here.

    The order matters: a deletion replayed after a later re-addition of the same version would remove
    what this node still has. One answer covers at most ``PULL_PAGE`` objects; its last message then
    says where the next answer starts.
    """
    answer = PullAnswer()
    peers = _active_peers(session)
    policy = service.policy_of(collection)
    o = IntelObject.__table__.c
    stmt = select(o.seq, o.date_added, o.tlp, o.source_peer, o.raw).where(o.collection_id == collection.id)
    if added_after is not None:
        stmt = stmt.where(o.date_added > added_after)
    rows = list(session.execute(stmt.order_by(o.date_added, o.seq).limit(PULL_PAGE + 1)))
    if len(rows) > PULL_PAGE:
        rows = rows[:PULL_PAGE]
        last = rows[-1]
        # The next answer starts strictly after this time, so rows sharing it must all be in this one.
        rows += list(
            session.execute(stmt.where(o.date_added == last.date_added, o.seq > last.seq).order_by(o.seq))
        )
        answer.next_after = last.date_added
    t = IntelTombstone.__table__.c
    stones = select(t.seq, t.deleted_at, t.stix_id, t.version, t.tlp, t.source_peer).where(
        t.collection_id == collection.id
    )
    if added_after is not None:
        stones = stones.where(t.deleted_at > added_after)
    if answer.next_after is not None:
        stones = stones.where(t.deleted_at <= answer.next_after)

    # Both kinds in time order, then sent as runs: a run of objects, a run of deletions, ...
    events: list[tuple[datetime, int, int, Any]] = [
        (r.date_added, 1, r.seq, r) for r in rows if requester in allowed(policy, peers, r.tlp, r.source_peer)
    ]
    events += [
        (s.deleted_at, 0, s.seq, s)
        for s in session.execute(stones)
        if requester in allowed(policy, peers, s.tlp, s.source_peer)
    ]
    events.sort(key=lambda e: e[:3])
    runs: list[tuple[int, list[Any]]] = []
    for _when, kind, _seq, item in events:
        if not runs or runs[-1][0] != kind:
            runs.append((kind, []))
        runs[-1][1].append(item)
    for kind, items in runs:
        if kind == 1:
            fits = []
            for r in items:
                obj = json.loads(r.raw)
                size = _wire_size(obj, r.raw)
                if size is not None:
                    fits.append((obj, size))
            answer.messages += _send_objects(
                session, actor, collection, requester, fits, in_reply_to=in_reply_to
            )
            answer.objects += len(fits)
        else:
            deletions = _merge_tombstones(items)
            answer.messages += _send_deletions(
                session, actor, collection, requester, deletions, in_reply_to=in_reply_to
            )
            answer.deletions += len(deletions)
    if answer.next_after is not None:
        # Said in a message of its own, so that the requester asks again only once all of this answer
        # has arrived (the conversation is delivered in order).
        outbox.enqueue(
            session,
            actor,
            recipient=requester,
            message_type=OBJECTS,
            conversation_id=conversation(collection.id),
            in_reply_to=in_reply_to,
            payload={
                "collection": _collection_ref(collection),
                "objects": [],
                "next_after": stix.format_timestamp(answer.next_after),
                "summary": f"more of {collection.title} after this",
            },
        )
        answer.messages += 1
    return answer


def _merge_tombstones(stones: Sequence[Any]) -> list[dict[str, Any]]:
    """Consecutive tombstones as deletions, one per object: versions listed, or null for every version."""
    merged: dict[str, list[str] | None] = {}
    for s in stones:
        if s.version is None:
            merged[s.stix_id] = None
            continue
        current = merged.setdefault(s.stix_id, [])
        if current is not None:
            current.append(stix.format_timestamp(s.version))
    return [{"id": sid, "versions": versions} for sid, versions in merged.items()]
