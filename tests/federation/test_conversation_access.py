"""Who may read a conversation's timeline or write a note into it: the rule of what it is about (a request,
an evidence transfer's package, an intel collection), over real HTTP between two live nodes, with the
refusals in the audit record and nothing reaching the peer."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import LiveNode
from cyberpact.federation import outbox
from cyberpact.federation.delivery import OutboxWorker
from cyberpact.federation.models import InboxMessage, OutboxMessage
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.keystore import KeyStore
from evidence.helpers import incoming_request, sealed_package
from intel.helpers import TAXII, indicator

A, B = "vn-24x7", "au-24x7"
TITLE = "Suspect X mailbox"


def deliver(node: LiveNode) -> None:
    s = node.settings
    w = OutboxWorker(node.db, KeyStore(s.key_passphrase_value(), s.key_kdf_iterations), s)
    while w.run_once().claimed:
        pass


def events(client: httpx.Client, conversation: str) -> httpx.Response:
    return client.get(f"/api/v1/federation/conversations/{conversation}/events")


def note(client: httpx.Client, to: str = B, **body: Any) -> httpx.Response:
    return client.post(
        "/api/v1/federation/messages", json={"recipient": to, "payload": {"text": "x"}, **body}
    )


def audit(node: LiveNode, **params: str) -> list[dict[str, Any]]:
    auditor = node.client(node.user(f"aud-{uuid.uuid4().hex[:6]}", "auditor"))
    r = auditor.get("/api/v1/audit", params={"limit": "1000", **params})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def outbox_count(node: LiveNode, *where: object) -> int:
    with node.db.transaction(read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(OutboxMessage).where(*where)) or 0)


def inbox_count(node: LiveNode) -> int:
    with node.db.transaction(read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(InboxMessage)) or 0)


class People:
    """On one node: the 24/7 channel (sees confidential requests), a plain officer (does not), an
    administrator (reads no case material or evidence)."""

    def __init__(self, node: LiveNode) -> None:
        tag = node.settings.node_id[:2]
        self.channel = node.client(node.user(f"{tag}-cp", "contact_point"))
        self.plain = node.client(node.user(f"{tag}-officer", "officer"))
        self.admin = node.client(node.user(f"{tag}-root", "admin"))


def hidden_transfer(a: LiveNode, people: People) -> tuple[str, str, str]:
    """A package filed under a confidential request from B, offered to B: (request, package, transfer)."""
    rid = incoming_request(a, B, "fact_and_substance")
    pkg = sealed_package(people.channel, {"x.bin": b"x"}, title=TITLE, request_ref=rid)
    r = people.channel.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": B})
    assert r.status_code == 202, r.text
    return rid, pkg["id"], r.json()["id"]


def test_an_evidence_transfer_s_conversation_is_as_hidden_as_its_package(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    a, b = pair
    people = People(a)
    _rid, pid, tid = hidden_transfer(a, people)
    conversation = f"evidence-transfer:{tid}"
    assert people.plain.get(f"/api/v1/evidence/packages/{pid}").status_code == 404
    seen = events(people.channel, conversation)
    assert seen.status_code == 200 and TITLE in seen.text
    for client in (people.plain, people.admin):
        r = events(client, conversation)
        assert r.status_code == 404, r.text
        assert TITLE not in r.text and pid not in r.text
    # The same answer for a transfer that does not exist: a refusal tells nothing.
    assert (
        events(people.plain, f"evidence-transfer:{uuid.uuid4()}")
        .json()["detail"]
        .startswith("No conversation evidence-transfer:")
    )
    records = audit(a, object_type="evidence_package", object_id=pid)
    assert {(r["actor"], r["action"], r["outcome"]) for r in records} >= {
        ("vn-officer", "evidence.package.read", "denied"),
        ("vn-root", "evidence.package.read", "denied"),
        ("vn-cp", "federation.conversation.read", "allowed"),
    }
    # On the receiving node the offer's summary names the package too; its administrator reads no evidence.
    deliver(a)
    other = People(b)
    r = events(other.admin, conversation)
    assert r.status_code == 404 and TITLE not in r.text
    seen = events(other.plain, conversation)
    assert seen.status_code == 200 and f"evidence offered: {TITLE}" in seen.text


def test_an_intel_conversation_needs_a_read_grant_on_its_collection(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    a, _b = pair
    manager = a.client(a.admin_token)
    r = manager.post(
        "/api/v1/intel/collections", json={"title": "Ransomware C2", "federate": True, "sharing_group": [B]}
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = manager.post(
        f"/taxii2/intel/collections/{cid}/objects/",
        json={"objects": [indicator("198.51.100.7")]},
        headers={"Accept": TAXII, "Content-Type": TAXII},
    )
    assert r.status_code == 202, r.text
    clients = {}
    for name, grant in {
        "reader": {"read": True, "write": False},
        "reporter": {"read": False, "write": True},
        "outsider": None,
    }.items():
        clients[name] = a.client(a.user(name, "officer"))
        if grant is not None:
            r = manager.put(f"/api/v1/intel/collections/{cid}/grants/{name}", json=grant)
            assert r.status_code == 200, r.text
    conversation = f"intel:{cid}"
    seen = events(clients["reader"], conversation)
    assert seen.status_code == 200 and "Ransomware C2" in seen.text
    assert "Ransomware C2" in events(manager, conversation).text  # administrators manage every collection
    for name in ("reporter", "outsider"):
        r = events(clients[name], conversation)
        assert r.status_code == 404 and "Ransomware C2" not in r.text
        assert note(clients[name], conversation_id=conversation).status_code == 404
    records = audit(a, object_type="intel_collection", object_id=cid)
    got = {(r["actor"], r["action"], r["outcome"]) for r in records}
    assert got >= {
        ("outsider", "intel.collection.read", "denied"),
        ("reporter", "intel.collection.read", "denied"),
        ("outsider", "intel.collection.message", "denied"),
        ("reader", "federation.conversation.read", "allowed"),
    }
    assert outbox_count(a, OutboxMessage.message_type == "note") == 0


def test_hostile_conversation_ids_get_404_and_unknown_kinds_are_read_by_nobody(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    a, b = pair
    people = People(a)
    rid, _pid, tid = hidden_transfer(a, people)
    # A peer's note under a kind this node does not know (a newer version's, a forger's): its timeline
    # exists here, but no rule says who may read it, so nobody does.
    with b.db.transaction() as s:
        outbox.enqueue(
            s, SYSTEM, recipient=A, message_type="note", payload={"text": "secret"}, conversation_id="x:1"
        )
    deliver(b)
    assert inbox_count(a) == 1
    # B's own collection: A holds nothing under that id.
    theirs = b.client(b.admin_token).post("/api/v1/intel/collections", json={"title": "B only"})
    assert theirs.status_code == 201, theirs.text
    for conversation in [
        "x:1",
        "evidence-transfer:not-a-uuid",
        f"evidence-transfer:{uuid.uuid4()}",
        f"evidence-transfer:{tid.upper()}",
        f"evidence-transfer:{tid}:again",
        "intel:not-a-uuid",
        f"intel:{theirs.json()['id']}",
        rid.upper(),
    ]:
        r = events(people.plain, conversation)
        assert r.status_code == 404, (conversation, r.text)
        assert TITLE not in r.text
    for client in (people.admin, people.channel):
        assert events(client, "x:1").status_code == 404
        assert note(client, conversation_id="x:1").status_code == 404
    assert {r["outcome"] for r in audit(a, object_type="conversation", object_id="x:1")} == {"denied"}
    # Free conversations of notes stay open to those who may send notes.
    assert events(people.plain, "case-1").status_code == 200
    assert events(people.plain, str(uuid.uuid4())).json() == []


def test_nobody_writes_a_note_into_a_conversation_they_may_not_see(pair: tuple[LiveNode, LiveNode]) -> None:
    a, b = pair
    people = People(a)
    rid, _pid, tid = hidden_transfer(a, people)
    seen = note(people.channel, conversation_id=rid)
    assert seen.status_code == 202, seen.text
    in_request = seen.json()["message_id"]
    attempts = [
        {"conversation_id": rid},
        {"conversation_id": rid.upper()},
        {"in_reply_to": rid},
        {"in_reply_to": in_request},  # a reply to a message of the request's conversation
        {"conversation_id": f"evidence-transfer:{tid}"},
        {"in_reply_to": tid},
    ]
    for body in attempts:
        for client in (people.plain, people.admin):
            r = client.post(
                "/api/v1/federation/messages", json={"recipient": B, "payload": {"text": "planted"}, **body}
            )
            assert r.status_code == 404, (body, r.text)
            # It names only what the caller gave, never the conversation a replied-to message is in.
            assert r.json()["detail"] == f"No conversation {next(iter(body.values()))}"
    denied = audit(a, object_type="request", object_id=rid, outcome="denied")
    assert {(r["actor"], r["action"]) for r in denied} >= {
        ("vn-officer", "cases.request.message"),
        ("vn-root", "cases.request.message"),
    }
    assert outbox_count(a, OutboxMessage.message_type == "note") == 1
    deliver(a)
    with b.db.transaction(read_only=True) as s:
        notes = [
            m.payload["text"]
            for m in s.scalars(select(InboxMessage).where(InboxMessage.message_type == "note"))
        ]
    assert notes == ["x"]


def test_a_note_about_a_request_goes_only_to_its_counterpart(pair: tuple[LiveNode, LiveNode]) -> None:
    a, _b = pair
    people = People(a)
    # A request between this node and a third State: its id is not B's to learn.
    third = incoming_request(a, "fr-ocl")
    for body in ({"conversation_id": third}, {"in_reply_to": third}):
        r = note(people.channel, **body)
        assert r.status_code == 422, r.text
        assert "fr-ocl" in r.text
    assert outbox_count(a) == 0
    assert note(people.channel, to=B, conversation_id=incoming_request(a, B)).status_code == 202


def test_a_message_s_proof_is_a_recorded_read(
    pair: tuple[LiveNode, LiveNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cyberpact.cli import app

    a, _b = pair
    people = People(a)
    rid = incoming_request(a, B, "fact_and_substance")
    message_id = note(people.channel, conversation_id=rid).json()["message_id"]
    deliver(a)
    s = a.settings
    for k, v in {
        "CYBERPACT_ENV": "test",
        "CYBERPACT_SECRET_KEY": s.secret_key.get_secret_value(),
        "CYBERPACT_KEY_PASSPHRASE": "test-passphrase-long-enough",
        "CYBERPACT_DATABASE_URL": s.sqlalchemy_url,
        "CYBERPACT_NODE_ID": s.node_id,
    }.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "proof"
    r = CliRunner().invoke(app, ["messages", "prove", message_id, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "message.jws").exists()
    (record,) = audit(a, object_type="request", object_id=rid, action="federation.message.prove")
    assert record["actor"].startswith("cli:") and record["outcome"] == "allowed"
    assert record["detail"]["message"] == message_id and record["detail"]["to"] == str(out)
    # A message that is not there writes nothing and records nothing.
    missing = str(uuid.uuid4())
    r = CliRunner().invoke(app, ["messages", "prove", missing, "--out", str(tmp_path / "none")])
    assert r.exit_code == 1 and not (tmp_path / "none").exists()
    assert audit(a, action="federation.message.prove", object_id=missing) == []
