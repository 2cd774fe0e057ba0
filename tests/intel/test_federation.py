"""Intel federation between live nodes: what crosses the wire (every envelope posted is captured and
decrypted with the recipient's key), what the receivers store, deletions, revocations, pulls, and what a
hostile peer cannot do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import DatabaseFactory, LiveNode, federation_node, pin
from cyberpact.federation import envelope, handlers, outbox
from cyberpact.federation.delivery import OutboxWorker
from cyberpact.federation.envelope import OpenedEnvelope
from cyberpact.federation.models import ConversationEvent, InboxMessage, OutboxMessage
from cyberpact.intel import federation, service, store
from cyberpact.intel.markings import TLP2_IDS
from cyberpact.intel.models import IntelCollection, IntelObject, IntelTombstone
from cyberpact.kit import crypto
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.keystore import KeyStore, public_keys
from cyberpact.kit.time import utcnow
from intel.helpers import IDENTITY, TAXII, identity, indicator

A, B, C = "vn-24x7", "au-24x7", "fr-ocl"
H = {"Accept": TAXII, "Content-Type": TAXII}


@pytest.fixture
def trio(db_factory: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode, LiveNode]]:
    a = federation_node(db_factory, tmp_path, A, node_country="VN")
    b = federation_node(db_factory, tmp_path, B, node_country="AU")
    c = federation_node(db_factory, tmp_path, C, node_country="FR")
    for x, y in ((a, b), (b, a), (a, c), (c, a), (b, c), (c, b)):
        pin(x, y)
    yield a, b, c
    for n in (a, b, c):
        n.stop()


# --------------------------------------------------------------------------------------------- the wire


class Wire:
    """Every envelope the nodes' outbox workers post, as posted."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def hook(self, request: httpx.Request) -> None:
        if request.url.path == "/federation/v1/inbox":
            # The outbox streams its body (see peers.body_once); reading it here buffers it for sending.
            self.tokens += json.loads(request.read())["envelopes"]


def _keys(node: LiveNode) -> KeyStore:
    return KeyStore(node.settings.key_passphrase_value(), node.settings.key_kdf_iterations)


def deliver(wire: Wire, *nodes: LiveNode) -> None:
    """Run every node's outbox until a whole round moves nothing (answers to pulls included)."""
    workers = [
        OutboxWorker(
            n.db, _keys(n), n.settings, client=httpx.Client(timeout=30, event_hooks={"request": [wire.hook]})
        )
        for n in nodes
    ]
    try:
        for _ in range(100):
            if sum([w.run_once().claimed for w in workers]) == 0:
                return
        raise AssertionError("the outboxes did not drain")
    finally:
        for w in workers:
            w.client.close()


def opened(wire: Wire, *nodes: LiveNode) -> list[OpenedEnvelope]:
    """The captured envelopes, decrypted with each recipient's private key and verified."""
    by_id = {n.settings.node_id: n for n in nodes}
    out = []
    for token in wire.tokens:
        outer = envelope.peek(token)
        recipient, sender = by_id[outer["aud"]], by_id[outer["iss"]]
        ks = _keys(recipient)
        with recipient.db.transaction(read_only=True) as s:
            enc = {row.kid: ks.private(row) for row in public_keys(s, "enc")}
        with sender.db.transaction(read_only=True) as s:
            sig = {(outer["iss"], k.kid): crypto.import_public(k.public_jwk) for k in public_keys(s, "sig")}
        out.append(
            envelope.open_envelope(
                token,
                recipient_node=outer["aud"],
                recipient_keys=enc,
                sender_keys=lambda node, kid, keys=sig: keys.get((node, kid)),
                now=utcnow(),
                max_age=timedelta(hours=1),
                max_skew=timedelta(minutes=5),
                max_bytes=10**8,
            )
        )
    return out


def object_ids(messages: list[OpenedEnvelope], to: str | None = None) -> list[str]:
    return [
        o["id"]
        for m in messages
        if m.message_type == federation.OBJECTS and (to is None or m.recipient == to)
        for o in m.payload["objects"]
    ]


# ------------------------------------------------------------------------------------------------ helpers


def create(node: LiveNode, **body: Any) -> str:
    r = node.client(node.admin_token).post("/api/v1/intel/collections", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def post(node: LiveNode, cid: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    r = node.client(node.admin_token).post(
        f"/taxii2/intel/collections/{cid}/objects/", json={"objects": objects}, headers=H
    )
    assert r.status_code == 202, r.text
    assert r.json()["failure_count"] == 0, r.text
    return dict(r.json())


def stored(node: LiveNode, cid: str) -> list[IntelObject]:
    with node.db.transaction(read_only=True) as s:
        rows = s.scalars(
            select(IntelObject).where(IntelObject.collection_id == uuid.UUID(cid)).order_by(IntelObject.seq)
        )
        return list(rows)


def latest(node: LiveNode, cid: str) -> dict[str, dict[str, Any]]:
    return {r.stix_id: json.loads(r.raw) for r in stored(node, cid) if r.is_latest}


def sent_by(node: LiveNode, message_type: str) -> list[OutboxMessage]:
    with node.db.transaction(read_only=True) as s:
        query = select(OutboxMessage).where(OutboxMessage.message_type == message_type)
        return list(s.scalars(query.order_by(OutboxMessage.seq)))


def received_summary(node: LiveNode, message_id: str) -> str:
    with node.db.transaction(read_only=True) as s:
        event = s.scalars(
            select(ConversationEvent).where(
                ConversationEvent.message_id == message_id, ConversationEvent.kind == "received"
            )
        ).one()
        return event.summary


def red_custom_definition() -> dict[str, Any]:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": f"marking-definition--{uuid.uuid4()}",
        "created": "2024-01-01T00:00:00.000Z",
        "name": "TLP:RED",
        "definition_type": "statement",
        "definition": {"statement": "Our own spelling of TLP:RED"},
    }


# ----------------------------------------------------------------------------------------------- policy


def test_red_never_leaves_and_amber_strict_reaches_only_the_named_peer(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    a, b, c = trio
    wire = Wire()
    cid = create(a, title="Ransomware C2", federate=True, sharing_group=[B, C], strict_recipient=B)
    clear, green, amber = (
        indicator(f"198.51.100.{i}", tlp=t) for i, t in enumerate(("clear", "green", "amber"))
    )
    strict = indicator("198.51.100.10", tlp="amber+strict")
    red = indicator("203.0.113.66", tlp="red")
    # RED by a granular marking, and by a definition of the sender's own, stored by an earlier envelope.
    red_granular = indicator(
        "203.0.113.67",
        tlp=None,
        description="seen at the ministry",
        granular_markings=[{"marking_ref": TLP2_IDS["red"], "selectors": ["description"]}],
    )
    custom = red_custom_definition()
    post(a, cid, [identity(), clear, green, amber, strict, red, red_granular, custom])
    red_custom = indicator("203.0.113.68", tlp=None, object_marking_refs=[custom["id"]])
    post(a, cid, [red_custom])
    deliver(wire, a, b, c)

    messages = opened(wire, a, b, c)
    assert messages and {m.message_type for m in messages} == {federation.OBJECTS}
    reds = {red["id"], red_granular["id"], red_custom["id"]}
    assert reds.isdisjoint(object_ids(messages))
    for m in messages:  # not even a value of theirs, in any field
        assert not any(v in json.dumps(m.payload) for v in ("203.0.113.66", "203.0.113.67", "203.0.113.68"))
    shared = {identity()["id"], clear["id"], green["id"], amber["id"], custom["id"]}
    assert set(object_ids(messages, to=B)) == shared | {strict["id"]}
    assert set(object_ids(messages, to=C)) == shared
    assert object_ids(messages).count(strict["id"]) == 1

    # What the receivers stored is exactly what crossed, and all of it was accepted.
    for node in (b, c):
        with node.db.transaction(read_only=True) as s:
            inbox = {m.message_id: m.payload for m in s.scalars(select(InboxMessage))}
        assert inbox == {m.message_id: m.payload for m in messages if m.recipient == node.settings.node_id}
    assert {m.receipt_status for m in sent_by(a, federation.OBJECTS)} == {"accepted"}

    # The mirror: same id and title, marked as A's, objects as A's author wrote them and as from A.
    with b.db.transaction(read_only=True) as s:
        mirror = s.get_one(IntelCollection, uuid.UUID(cid))
        assert (mirror.title, mirror.source_peer, mirror.federate) == ("Ransomware C2", A, False)
    a_raw = {r.stix_id: r.raw for r in stored(a, cid)}
    b_rows = stored(b, cid)
    assert {r.stix_id for r in b_rows} == shared | {strict["id"]}
    for r in b_rows:
        assert r.source_peer == A and r.raw == a_raw[r.stix_id]
        assert r.created_by_ref == (IDENTITY if r.stix_type == "indicator" else None)
    assert {r.stix_id: r.tlp for r in b_rows}[strict["id"]] == "amber+strict"

    # Readable on B only by those an administrator grants it to.
    officer = b.client(b.user("olga", "officer"))
    assert officer.get(f"/taxii2/intel/collections/{cid}/objects/", headers=H).status_code == 404
    r = b.client(b.admin_token).put(f"/api/v1/intel/collections/{cid}/grants/olga", json={"read": True})
    assert r.status_code == 200, r.text
    got = officer.get(f"/taxii2/intel/collections/{cid}/objects/", headers=H).json()
    assert {o["id"] for o in got["objects"]} == shared | {strict["id"]}
    listed = b.client(b.admin_token).get("/api/v1/intel/collections").json()
    assert [x["source_peer"] for x in listed if x["id"] == cid] == [A]


def test_an_object_held_for_an_unknown_marking_goes_out_only_once_its_definition_says_it_may(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    """A custom definition sent after the objects it marks: until it arrives they are held as RED and
    nothing crosses; a GREEN definition then releases them to the sharing group, a RED one keeps them."""
    a, _, _ = trio
    wire = Wire()
    cid = create(a, title="Late markings", federate=True, sharing_group=[B], default_tlp="green")
    green_def = dict(red_custom_definition(), name="TLP:GREEN", definition={"statement": "our GREEN"})
    red_def = red_custom_definition()
    early = indicator("192.0.2.80", tlp=None, object_marking_refs=[green_def["id"]])
    kept = indicator("192.0.2.81", tlp=None, object_marking_refs=[red_def["id"]])
    both = indicator("192.0.2.82", tlp=None, object_marking_refs=[green_def["id"], red_def["id"]])
    post(a, cid, [identity(), early, kept, both])
    deliver(wire, a, *trio[1:])
    assert {r.stix_id: r.tlp for r in stored(a, cid)}[early["id"]] == "red"
    assert object_ids(opened(wire, *trio)) == [identity()["id"]]

    wire.tokens.clear()
    status = post(a, cid, [green_def])
    assert status["success_count"] == 1
    deliver(wire, a, *trio[1:])
    crossed = object_ids(opened(wire, *trio), to=B)
    assert sorted(crossed) == sorted([green_def["id"], early["id"]])  # `both` still names an unread one
    levels = {r.stix_id: r.tlp for r in stored(a, cid)}
    assert (levels[early["id"]], levels[kept["id"]], levels[both["id"]]) == ("green", "red", "red")

    wire.tokens.clear()
    post(a, cid, [red_def])
    deliver(wire, a, *trio[1:])
    assert object_ids(opened(wire, *trio)) == [red_def["id"]]  # the definition only: what it marks is RED
    levels = {r.stix_id: r.tlp for r in stored(a, cid)}
    assert (levels[kept["id"]], levels[both["id"]]) == ("red", "red")


def test_received_objects_are_forwarded_only_as_policy_allows(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    a, b, c = trio
    wire = Wire()
    cid = create(a, title="Phishing", federate=True, sharing_group=[B])
    post(a, cid, [indicator("192.0.2.1", tlp="green")])
    deliver(wire, a, b, c)
    # B's administrator lets the mirror go on to C.
    r = b.client(b.admin_token).patch(
        f"/api/v1/intel/collections/{cid}/policy", json={"federate": True, "sharing_group": [A, C]}
    )
    assert r.status_code == 200, r.text
    green = indicator(
        "192.0.2.2", tlp="green", created_by_ref="identity--0b6c1a4e-5f1e-4b7a-9d2c-3e4f5a6b7c8d"
    )
    amber, clear = indicator("192.0.2.3", tlp="amber"), indicator("192.0.2.4", tlp="clear")
    post(a, cid, [green, amber, clear])
    deliver(wire, a, b, c)

    messages = opened(wire, a, b, c)
    assert set(object_ids(messages, to=C)) == {green["id"], clear["id"]}  # received AMBER stays at B
    assert not [m for m in messages if m.sender == B and m.recipient == A]  # never back to its source
    rows = {r.stix_id: r for r in stored(c, cid)}
    # CLEAR also went to C straight from A, first: the mirror is A's, and B's copy was a duplicate there.
    assert rows[clear["id"]].source_peer == A
    with c.db.transaction(read_only=True) as s:
        assert s.get_one(IntelCollection, uuid.UUID(cid)).source_peer == A
    assert rows[green["id"]].source_peer == B  # the hop it came from...
    assert rows[green["id"]].created_by_ref == green["created_by_ref"]  # ...and still its author's
    assert rows[green["id"]].raw == {r.stix_id: r.raw for r in stored(a, cid)}[green["id"]]


# ----------------------------------------------------------------------------------- deletion, revocation


def test_deletion_and_revocation_propagate(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    a, b, _ = trio
    wire = Wire()
    cid = create(a, title="Botnet", federate=True, sharing_group=[B])
    keep = indicator("192.0.2.10", tlp="green")
    gone = indicator("192.0.2.11", tlp="green")
    versioned = indicator("192.0.2.12", tlp="green")
    v2 = dict(versioned, modified="2024-06-01T00:00:00.000Z")
    post(a, cid, [keep, gone, versioned, v2])
    deliver(wire, a, b)
    assert set(latest(b, cid)) == {keep["id"], gone["id"], versioned["id"]}

    revoked = dict(keep, modified="2024-07-01T00:00:00.000Z", revoked=True)
    post(a, cid, [revoked])
    admin = a.client(a.admin_token)
    assert (
        admin.delete(f"/taxii2/intel/collections/{cid}/objects/{gone['id']}/", headers=H).status_code == 200
    )
    r = admin.delete(
        f"/taxii2/intel/collections/{cid}/objects/{versioned['id']}/",
        params={"match[version]": "2024-06-01T00:00:00.000Z"},
        headers=H,
    )
    assert r.status_code == 200
    deliver(wire, a, b)

    now = latest(b, cid)
    assert set(now) == {keep["id"], versioned["id"]}
    assert now[keep["id"]]["revoked"] is True
    assert now[versioned["id"]]["modified"] == versioned["modified"]  # only the deleted version went
    deletions = [m.payload["deletions"] for m in opened(wire, a, b) if m.message_type == federation.DELETE]
    assert deletions == [
        [{"id": gone["id"], "versions": None}],
        [{"id": versioned["id"], "versions": ["2024-06-01T00:00:00.000Z"]}],
    ]
    with b.db.transaction(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(IntelTombstone)) == 2


def test_batches_stay_well_under_the_envelope_limit_and_share_the_ingest_transaction(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    a, b, _ = trio
    wire = Wire()
    cid = create(a, title="Bulk", federate=True, sharing_group=[B])
    many = [indicator(f"10.0.{i // 250}.{i % 250}", tlp="green", description="x" * 600) for i in range(400)]
    post(a, cid, many)
    queued = len(sent_by(a, federation.OBJECTS))
    assert queued >= 4
    # An ingest that does not commit queues nothing: the messages are written in its transaction.
    with pytest.raises(RuntimeError), a.db.transaction() as s:
        store.add_objects(s, SYSTEM, service.get_collection(s, cid), [indicator("10.9.9.9", tlp="green")])
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == queued + 1
        raise RuntimeError("rolled back")
    assert len(sent_by(a, federation.OBJECTS)) == queued
    deliver(wire, a, b)
    assert len(wire.tokens) >= 4
    assert max(len(t) for t in wire.tokens) < a.settings.max_envelope_bytes // 2
    assert set(latest(b, cid)) == {o["id"] for o in many}


# ------------------------------------------------------------------------------------------------- pull


def test_pull_after_a_missed_push_brings_what_was_missed_without_duplicates(
    trio: tuple[LiveNode, LiveNode, LiveNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = trio
    wire = Wire()
    cid = create(a, title="Missed", federate=True, sharing_group=[B])
    first = [indicator(f"192.0.2.{i}", tlp="green") for i in range(4)]
    post(a, cid, first)
    deliver(wire, a, b)

    admin_a = a.client(a.admin_token)
    assert admin_a.post(f"/api/v1/federation/peers/{B}/suspend").status_code == 200
    later = [indicator(f"198.51.100.{i}", tlp="green") for i in range(5)]
    revoked = dict(first[0], modified="2024-08-01T00:00:00.000Z", revoked=True)
    red = indicator("203.0.113.9", tlp="red")
    post(a, cid, [*later, revoked, red])
    assert (
        admin_a.delete(f"/taxii2/intel/collections/{cid}/objects/{first[1]['id']}/", headers=H).status_code
        == 200
    )
    queued = len(sent_by(a, federation.OBJECTS))
    assert admin_a.post(f"/api/v1/federation/peers/{B}/resume").status_code == 200
    deliver(wire, a, b)
    assert set(latest(b, cid)) == {o["id"] for o in first}  # B missed all of it

    monkeypatch.setattr(federation, "PULL_PAGE", 3)  # several answers, each asking for the next
    r = b.client(b.admin_token).post(f"/api/v1/intel/collections/{cid}/pull", json={})
    assert r.status_code == 202, r.text
    assert r.json()["peer"] == A
    deliver(wire, a, b)

    want = {o["id"] for o in first + later} - {first[1]["id"]}
    now = latest(b, cid)
    assert set(now) == want and now[first[0]["id"]]["revoked"] is True
    assert red["id"] not in object_ids(opened(wire, a, b))
    versions = [(r.stix_id, r.version) for r in stored(b, cid)]
    assert len(versions) == len(set(versions))  # nothing stored twice
    assert len(sent_by(b, federation.PULL)) > 2
    assert {m.receipt_status for m in sent_by(b, federation.PULL)} == {"accepted"}
    assert len(sent_by(a, federation.OBJECTS)) > queued

    # C is not in the sharing group: asking gets it nothing. A node's own collection is not pulled.
    r = c.client(c.admin_token).post(f"/api/v1/intel/collections/{cid}/pull", json={"peer": A})
    assert r.status_code == 202, r.text
    own = create(b, title="B's own")
    assert b.client(b.admin_token).post(f"/api/v1/intel/collections/{own}/pull", json={}).status_code == 422
    r = b.client(b.admin_token).post(f"/api/v1/intel/collections/{own}/pull", json={"peer": A})
    assert r.status_code == 409
    deliver(wire, a, b, c)
    assert stored(c, cid) == []
    pulls = [m.receipt_status for m in sent_by(c, federation.PULL)]
    assert len(pulls) > 1 and set(pulls) == {"accepted"}  # paged through all the same
    with c.db.transaction(read_only=True) as s:
        assert s.get(IntelCollection, uuid.UUID(cid)) is None  # and no empty mirror made for it

    # Again, through the CLI, from the start: everything arrives again and nothing is stored twice.
    before = len(stored(b, cid))
    s = b.settings
    env = {
        "CYBERPACT_ENV": "test",
        "CYBERPACT_SECRET_KEY": s.secret_key.get_secret_value(),
        "CYBERPACT_KEY_PASSPHRASE": "test-passphrase-long-enough",
        "CYBERPACT_KEY_KDF_ITERATIONS": "1000",
        "CYBERPACT_DATA_DIR": str(s.data_dir),
        "CYBERPACT_DATABASE_URL": s.sqlalchemy_url,
        "CYBERPACT_NODE_ID": s.node_id,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from cyberpact.cli import app

    out = CliRunner().invoke(app, ["intel", "pull", A, cid, "--since", "2000-01-01T00:00:00Z"])
    assert out.exit_code == 0, out.output
    seen = len(wire.tokens)
    deliver(wire, a, b)
    assert len(stored(b, cid)) == before
    answers = [
        m
        for m in opened(wire, a, b, c)[seen:]
        if m.message_type == federation.OBJECTS and m.payload["objects"]
    ]
    assert len(answers) >= 3
    for m in answers:
        assert f"0 stored, {len(m.payload['objects'])} already here" in received_summary(b, m.message_id)


# --------------------------------------------------------------------------------------------- hostile


def forged(node: LiveNode, to: str, message_type: str, payload: dict[str, Any]) -> str:
    """A message a peer's software could send: queued straight into its outbox."""
    with node.db.transaction() as s:
        return outbox.enqueue(s, SYSTEM, recipient=to, message_type=message_type, payload=payload).message_id


def outcome(node: LiveNode, message_id: str) -> tuple[str | None, str | None]:
    with node.db.transaction(read_only=True) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_id == message_id)).one()
        return row.receipt_status, row.last_error


def refusal(node: LiveNode, message_id: str, sender: LiveNode) -> str:
    """Why ``node``'s handler refuses a message ``sender`` queued, applied directly and rolled back."""
    with sender.db.transaction(read_only=True) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_id == message_id)).one()
        message = OpenedEnvelope(
            message_id=str(uuid.uuid4()),
            sender=sender.settings.node_id,
            recipient=node.settings.node_id,
            created=utcnow(),
            message_type=row.message_type,
            conversation_id=row.conversation_id,
            in_reply_to=None,
            payload=row.payload,
            digest="0" * 64,
            signing_kid="k",
            signed="",
        )
    handler = handlers.handler_for(message.message_type)
    assert handler is not None
    with pytest.raises(CyberpactError) as caught, node.db.transaction() as s:
        handler(s, message)
    return str(caught.value)


def test_hostile_peer_messages(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    a, b, c = trio
    wire = Wire()
    own = create(a, title="A's own")
    ref = {"id": str(uuid.uuid4()), "title": "From B"}
    bad_id = dict(indicator("192.0.2.30"), id="indicator--not-a-uuid")
    backwards = indicator("192.0.2.31", modified="2023-01-01T00:00:00.000Z")  # modified before created
    good = [indicator("192.0.2.32"), indicator("192.0.2.33")]
    forwarded = indicator("192.0.2.34", tlp="clear")
    c_cid = create(c, title="C's", federate=True, sharing_group=[A])
    from_c = indicator("192.0.2.40", tlp="green")
    post(c, c_cid, [from_c])
    deliver(wire, c)
    ids = {
        "into A's own collection": forged(
            b, A, federation.OBJECTS, {"collection": {"id": own, "title": "x"}, "objects": good}
        ),
        "AMBER into C's mirror": forged(
            b,
            A,
            federation.OBJECTS,
            {"collection": {"id": c_cid, "title": "C's"}, "objects": [indicator("192.0.2.41", tlp="amber")]},
        ),
        "GREEN into C's mirror": forged(
            b,
            A,
            federation.OBJECTS,
            {"collection": {"id": c_cid, "title": "C's"}, "objects": [forwarded]},
        ),
        "invalid among valid": forged(
            b, A, federation.OBJECTS, {"collection": ref, "objects": [bad_id, good[0], backwards, good[1], 7]}
        ),
        "RED": forged(
            b,
            A,
            federation.OBJECTS,
            {
                "collection": {"id": str(uuid.uuid4()), "title": "r"},
                "objects": [indicator("192.0.2.50", tlp="red")],
            },
        ),
        "not a list": forged(b, A, federation.OBJECTS, {"collection": ref, "objects": "everything"}),
        "no collection": forged(b, A, federation.OBJECTS, {"objects": good}),
        "delete C's objects": forged(
            b,
            A,
            federation.DELETE,
            {
                "collection": {"id": c_cid, "title": "C's"},
                "deletions": [{"id": from_c["id"], "versions": None}],
            },
        ),
        "bad deletion": forged(
            b, A, federation.DELETE, {"collection": ref, "deletions": [{"id": "x", "versions": None}]}
        ),
        "pull unshared": forged(b, A, federation.PULL, {"collection_id": own, "added_after": None}),
        "collection id not a UUID": forged(
            b, A, federation.OBJECTS, {"collection": {"id": "../" + own, "title": "x"}, "objects": good}
        ),
        "collection id a number": forged(
            b, A, federation.DELETE, {"collection": {"id": 7, "title": "x"}, "deletions": []}
        ),
        "pull with a forged id": forged(
            b, A, federation.PULL, {"collection_id": f"{own}' OR '1'='1", "added_after": None}
        ),
        "pull from a bad time": forged(
            b, A, federation.PULL, {"collection_id": c_cid, "added_after": "yesterday"}
        ),
        "title too long": forged(
            b,
            A,
            federation.OBJECTS,
            {"collection": {"id": str(uuid.uuid4()), "title": "t" * 201}, "objects": good},
        ),
    }
    deliver(wire, a, b)

    status = {name: outcome(b, mid) for name, mid in ids.items()}
    accepted = {"invalid among valid", "delete C's objects", "GREEN into C's mirror"}
    for name, (receipt, error) in status.items():
        assert receipt == ("accepted" if name in accepted else "rejected"), (name, error)
        if receipt == "rejected":
            assert error == f"rejected by {A}: refused", error
    # The receipt carries only the reason code; the handler's own words, asked directly:
    assert "TLP:RED" in refusal(a, ids["RED"], b)
    assert "not one received from au-24x7" in refusal(a, ids["into A's own collection"], b)
    assert "objects must be a list" in refusal(a, ids["not a list"], b)
    assert "may only forward GREEN and CLEAR" in refusal(a, ids["AMBER into C's mirror"], b)
    assert "2 stored" in received_summary(a, ids["invalid among valid"])
    assert "3 invalid skipped" in received_summary(a, ids["invalid among valid"])
    assert "1 deletion(s) ignored" in received_summary(a, ids["delete C's objects"])
    assert "collection.id must be a UUID" in refusal(a, ids["collection id not a UUID"], b)
    assert "collection.id must be a UUID" in refusal(a, ids["collection id a number"], b)
    assert "collection_id must be a UUID" in refusal(a, ids["pull with a forged id"], b)
    assert "added_after must be a STIX timestamp" in refusal(a, ids["pull from a bad time"], b)
    assert "collection.title must be 1 to 200 characters" in refusal(a, ids["title too long"], b)

    assert stored(a, own) == []
    # C's objects untouched; what B forwarded into C's collection is marked as B's.
    assert {r.stix_id: r.source_peer for r in stored(a, c_cid)} == {from_c["id"]: C, forwarded["id"]: B}
    assert {r.stix_id for r in stored(a, ref["id"])} == {g["id"] for g in good}
    with a.db.transaction(read_only=True) as s:  # the refused messages left nothing behind
        assert set(s.scalars(select(IntelCollection.source_peer))) == {None, B, C}
        assert s.scalar(select(func.count()).select_from(IntelCollection)) == 3

    # In its own mirror too, B deletes only what came from B.
    local = indicator("192.0.2.60")
    with a.db.transaction() as s:
        store.add_objects(s, SYSTEM, service.get_collection(s, ref["id"]), [local])
    mid = forged(
        b,
        A,
        federation.DELETE,
        {
            "collection": ref,
            "deletions": [{"id": local["id"], "versions": None}, {"id": good[0]["id"], "versions": None}],
        },
    )
    deliver(wire, a, b)
    assert outcome(b, mid)[0] == "accepted"
    assert {r.stix_id for r in stored(a, ref["id"])} == {local["id"], good[1]["id"]}


def test_objects_that_cannot_be_sealed_are_not_queued() -> None:
    small = indicator("192.0.2.1")
    raw = json.dumps(small)
    assert federation._wire_size(small, raw) == len(raw) + 1
    huge_int = dict(small, x_count=2**60)
    assert federation._wire_size(huge_int, json.dumps(huge_int)) is None  # no RFC 8785 form
    big = dict(small, description="x" * federation.MAX_OBJECT_BYTES)
    assert federation._wire_size(big, json.dumps(big)) is None


def _command(node: LiveNode, *args: str) -> subprocess.CompletedProcess[str]:
    """``cyberpact ARGS`` in a fresh interpreter at ``node``'s database, as its operator would run it."""
    s = node.settings
    env = {
        **os.environ,
        "CYBERPACT_ENV": s.env,
        "CYBERPACT_SECRET_KEY": s.secret_key.get_secret_value(),
        "CYBERPACT_KEY_PASSPHRASE": "test-passphrase-long-enough",
        "CYBERPACT_KEY_KDF_ITERATIONS": str(s.key_kdf_iterations),
        "CYBERPACT_DATA_DIR": str(s.data_dir),
        "CYBERPACT_DATABASE_URL": s.sqlalchemy_url,
        "CYBERPACT_NODE_ID": s.node_id,
        "CYBERPACT_NODE_COUNTRY": s.node_country or "",
        "CYBERPACT_BASE_URL": s.base_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "cyberpact", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_command_line_shares_and_pulls_as_the_api_does(
    trio: tuple[LiveNode, LiveNode, LiveNode], tmp_path: Path
) -> None:
    # A fresh interpreter imports only what the command needs: the intel messages it sends must still be
    # known there (they once were only where the API had been imported).
    a, b, _c = trio
    cid = create(a, title="Shared", alias="shared", federate=True, sharing_group=[B])
    bundle = tmp_path / "bundle.json"
    shared = indicator("192.0.2.60", tlp="green")
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [shared]}))
    done = _command(a, "intel", "import", str(bundle), "-c", "shared")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [m.recipient for m in sent_by(a, federation.OBJECTS)] == [B]
    assert [r.stix_id for r in stored(a, cid)] == [shared["id"]]

    done = _command(b, "intel", "pull", A, cid)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(m.recipient, m.payload["collection_id"]) for m in sent_by(b, federation.PULL)] == [(A, cid)]
