"""What a peer's intel messages may do here (the message types and their rules are in
:mod:`cyberpact.intel.federation`): each is checked whole before anything is stored, and a message that
breaks the sharing rules is refused whole, with the reason in its receipt."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cyberpact.federation import handlers
from cyberpact.federation.envelope import OpenedEnvelope
from cyberpact.intel import query, service, stix, store
from cyberpact.intel.federation import (
    DELETE,
    MAX_DELETIONS,
    MAX_OBJECTS,
    OBJECTS,
    PULL,
    answer_pull,
    ask,
)
from cyberpact.intel.markings import effective
from cyberpact.intel.models import IntelCollection
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import InvalidInput, NotFound, PermissionDenied, Problem
from cyberpact.kit.ids import parse_uuid


def _peer_actor(peer: str) -> Actor:
    return Actor(user_id=None, username=f"peer:{peer}", source="federation")


def _refuse(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(f"Not an intel message: {field_name} {message}", [Problem(field_name, message)])


def _uuid(value: Any, field_name: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise _refuse(field_name, "must be a UUID")
    return parsed


def _bounded_list(payload: dict[str, Any], name: str, most: int, what: str) -> list[Any]:
    value = payload.get(name)
    if not isinstance(value, list) or len(value) > most:
        raise _refuse(name, f"must be a list of at most {most} {what}")
    return value


def _timestamp(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return stix.parse_timestamp(value)
    except ValueError:
        raise _refuse(field_name, "must be a STIX timestamp or null") from None


def _sent_collection(payload: dict[str, Any]) -> tuple[uuid.UUID, str]:
    ref = payload.get("collection")
    if not isinstance(ref, dict):
        raise _refuse("collection", "must be an object with id and title")
    title = ref.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        raise _refuse("collection.title", "must be 1 to 200 characters")
    return _uuid(ref.get("id"), "collection.id"), title


def _continue(session: Session, message: OpenedEnvelope, collection_id: uuid.UUID) -> bool:
    """Ask for the next part of a pull answer that said there is more."""
    after = _timestamp(message.payload.get("next_after"), "next_after")
    if after is None:
        return False
    ask(
        session,
        _peer_actor(message.sender),
        message.sender,
        collection_id,
        after,
        in_reply_to=message.message_id,
    )
    return True


def _check_levels(
    session: Session, collection: IntelCollection, sender: str, prepared: store.Prepared
) -> None:
    """Refuse, whole, a message that breaks the sharing rules: storing the rest of it would hide that.

    RED never leaves its node. A peer that is not the one this collection was received from is
    forwarding, and a node forwards only what the community may have: GREEN and CLEAR (``policy``).
    """
    definitions = store.definitions_for(session, collection.id, prepared)
    levels = {c.stix_id: effective(c.markings, definitions)[0] for c, _ in prepared.accepted}
    red = [sid for sid, level in levels.items() if level == "red"]
    if red:
        raise PermissionDenied(
            f"{len(red)} object(s) marked TLP:RED, e.g. {red[0]}: RED is never shared between nodes"
        )
    if collection.source_peer != sender:
        kept = [sid for sid, level in levels.items() if level not in ("green", "clear")]
        if kept:
            raise PermissionDenied(
                f"{len(kept)} object(s) not marked GREEN or CLEAR, e.g. {kept[0]}, in collection "
                f"{collection.id} received from {collection.source_peer}: {sender} may only forward "
                "GREEN and CLEAR into it"
            )


@handlers.register(OBJECTS)
def receive_objects(session: Session, message: OpenedEnvelope) -> str:
    payload = message.payload
    collection_id, title = _sent_collection(payload)
    objects = _bounded_list(payload, "objects", MAX_OBJECTS, "STIX objects")
    sender = message.sender
    if not objects:
        # Only the end of a pull answer that says there is more: no mirror is made for nothing.
        existing = session.get(IntelCollection, collection_id)
        if existing is not None and existing.source_peer is None:
            raise PermissionDenied(f"Collection {collection_id} here is not one received from {sender}")
        summary = f"{title}: nothing new"
    else:
        collection = service.mirror_collection(session, sender, collection_id, title)
        prepared = store.prepare(objects)
        _check_levels(session, collection, sender, prepared)
        result = store.add_objects(session, _peer_actor(sender), collection, prepared, source_peer=sender)
        summary = (
            f"{collection.title}: {result.stored} stored, {result.duplicates} already here, "
            f"{len(result.failures)} invalid skipped"
        )
    if _continue(session, message, collection_id):
        summary += "; asked for more"
    return summary


@handlers.register(DELETE)
def receive_delete(session: Session, message: OpenedEnvelope) -> str:
    payload = message.payload
    collection_id, _title = _sent_collection(payload)
    raw = _bounded_list(payload, "deletions", MAX_DELETIONS, "deletions")
    deletions: list[tuple[str, tuple[str, ...]]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not stix.is_identifier(item.get("id")):
            raise _refuse(f"deletions[{i}].id", "must be a STIX identifier")
        versions = item.get("versions")
        if versions is None:
            deletions.append((item["id"], ("all",)))
            continue
        if (
            not isinstance(versions, list)
            or not versions
            or len(versions) > 1000
            or not all(isinstance(v, str) for v in versions)
        ):
            raise _refuse(f"deletions[{i}].versions", "must be null or a list of 1 to 1000 timestamps")
        stamps = []
        for v in versions:
            when = _timestamp(v, f"deletions[{i}].versions")
            assert when is not None  # a string, checked above
            stamps.append(stix.format_timestamp(when))
        deletions.append((item["id"], tuple(stamps)))
    sender = message.sender
    collection = session.get(IntelCollection, collection_id)
    deleted = ignored = 0
    if collection is None or collection.source_peer is None:
        # Not a collection any peer writes into: nothing there came from the sender.
        ignored = len(deletions)
    else:
        actor = _peer_actor(sender)
        for stix_id, versions in deletions:
            try:
                deleted += store.delete_object(
                    session, actor, collection, stix_id, query.Filters(versions=versions), only_from=sender
                )
            except NotFound:
                ignored += 1
    return f"{deleted} version(s) deleted, {ignored} deletion(s) ignored"


@handlers.register(PULL)
def receive_pull(session: Session, message: OpenedEnvelope) -> str:
    payload = message.payload
    collection_id = _uuid(payload.get("collection_id"), "collection_id")
    added_after = _timestamp(payload.get("added_after"), "added_after")
    collection = session.get(IntelCollection, collection_id)
    if collection is None or not collection.federate:
        # Whether it exists at all is not the requester's business.
        raise NotFound(f"No collection {collection_id} is shared with {message.sender}")
    answer = answer_pull(
        session,
        _peer_actor(message.sender),
        collection,
        message.sender,
        added_after,
        in_reply_to=message.message_id,
    )
    more = "; more to follow" if answer.next_after else ""
    return (
        f"{collection.title}: answered with {answer.objects} object(s) and {answer.deletions} deletion(s)"
        f" in {answer.messages} message(s){more}"
    )
