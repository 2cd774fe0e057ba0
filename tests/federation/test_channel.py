"""Two real nodes over loopback: pinning, delivery with signed receipts, duplicates, timelines, proofs."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jwcrypto import jwk, jws
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from conftest import DatabaseFactory, LiveNode, federation_node, pin
from cyberpact.federation.delivery import OutboxWorker
from cyberpact.federation.models import ConversationEvent, InboxMessage, OutboxMessage, Peer
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import utcnow


def worker(node: LiveNode) -> OutboxWorker:
    s = node.settings
    return OutboxWorker(node.db, KeyStore(s.key_passphrase_value(), s.key_kdf_iterations), s)


def send(node: LiveNode, to: str, text: str, conversation: str | None = None) -> dict:
    body = {"recipient": to, "payload": {"text": text}, "conversation_id": conversation}
    r = node.client(node.admin_token).post("/api/v1/federation/messages", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def count(node: LiveNode, model: type, *where: object) -> int:
    with node.db.transaction(read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_pinning_refuses_a_wrong_fingerprint(db_factory: DatabaseFactory, tmp_path: Path) -> None:
    a = federation_node(db_factory, tmp_path, "pl-ca")
    b = federation_node(db_factory, tmp_path, "vn-24x7")
    try:
        wrong = "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH"
        r = a.client(a.admin_token).post(
            "/api/v1/federation/peers", json={"url": b.url, "fingerprint": wrong}
        )
        assert r.status_code == 422
        assert "fingerprint mismatch" in r.json()["detail"]
        assert count(a, Peer) == 0
        pin(a, b)
        peers = a.client(a.admin_token).get("/api/v1/federation/peers").json()
        assert [p["node_id"] for p in peers] == ["vn-24x7"]
        again = a.client(a.admin_token).post(
            "/api/v1/federation/peers", json={"url": b.url, "fingerprint": peers[0]["pinned_fingerprint"]}
        )
        assert again.status_code == 409
    finally:
        a.stop()
        b.stop()


def test_message_delivered_with_verified_receipt_on_both_timelines(pair: tuple[LiveNode, LiveNode]) -> None:
    a, b = pair
    queued = send(a, "au-24x7", "Please preserve account X", conversation="case-1")
    result = worker(a).run_once()
    assert (result.claimed, result.delivered) == (1, 1), result
    with b.db.transaction(read_only=True) as s:
        got = s.get_one(InboxMessage, queued["message_id"])
        assert got.payload == {"text": "Please preserve account X"}
        assert got.sender == "vn-24x7" and got.conversation_id == "case-1"
    with a.db.transaction(read_only=True) as s:
        sent = s.scalars(select(OutboxMessage)).one()
        assert sent.status == "delivered" and sent.receipt_status == "accepted"
        assert sent.receipt == got.receipt and sent.digest == got.digest
    kinds_a = [
        e["kind"]
        for e in a.client(a.admin_token).get("/api/v1/federation/conversations/case-1/events").json()
    ]
    kinds_b = [
        e["kind"]
        for e in b.client(b.admin_token).get("/api/v1/federation/conversations/case-1/events").json()
    ]
    assert kinds_a == ["queued", "delivered"] and kinds_b == ["received"]


@pytest.mark.parametrize("message_type", ["cp.request", "cp.step", "evidence.offer", "intel.objects"])
def test_a_feature_s_message_cannot_be_written_by_hand(
    pair: tuple[LiveNode, LiveNode], message_type: str
) -> None:
    # A hand-written request would reach the peer signed by this node and "approved" by whoever the
    # payload names, with no four-eyes check here: only the feature that owns the type may send it.
    a, _ = pair
    request_id = "7d1e2a5c-3b4f-4e6a-9c8d-0f1e2d3c4b5a"
    body = {
        "recipient": "au-24x7",
        "message_type": message_type,
        "conversation_id": request_id,
        "payload": {
            "request_id": request_id,
            "type": "preservation",
            "header": {},
            "fields": {},
            "approval": {"drafted_by": "mallory", "approved_by": "bob"},
        },
    }
    r = a.client(a.admin_token).post("/api/v1/federation/messages", json=body)
    assert r.status_code == 403, r.text
    assert "never written by hand" in r.json()["detail"]
    assert count(a, OutboxMessage) == 0 and count(a, ConversationEvent) == 0
    assert send(a, "au-24x7", "a note still goes")["message_type"] == "note"


def test_duplicate_gets_original_receipt_and_changes_nothing(pair: tuple[LiveNode, LiveNode]) -> None:
    a, b = pair
    send(a, "au-24x7", "once")
    worker(a).run_once()
    with b.db.transaction(read_only=True) as s:
        original = s.scalars(select(InboxMessage)).one()
    before = (count(b, InboxMessage), count(b, ConversationEvent))
    r = b.client().post("/federation/v1/inbox", json={"envelopes": [original.envelope]})
    assert r.status_code == 200
    (item,) = r.json()["receipts"]
    assert item["status"] == "duplicate" and item["receipt"] == original.receipt
    assert (count(b, InboxMessage), count(b, ConversationEvent)) == before


def test_order_is_kept_within_a_conversation(pair: tuple[LiveNode, LiveNode]) -> None:
    a, b = pair
    ids = [send(a, "au-24x7", f"step {i}", conversation="ordered")["message_id"] for i in range(12)]
    w = worker(a)
    while w.run_once().claimed:
        pass
    with b.db.transaction(read_only=True) as s:
        got = [m.message_id for m in s.scalars(select(InboxMessage).order_by(InboxMessage.received_at))]
        events = [e.message_id for e in s.scalars(select(ConversationEvent).order_by(ConversationEvent.seq))]
    assert got == ids and events == ids


class _InboxTap(httpx.HTTPTransport):
    """Notes each inbox post (envelopes and body bytes) on its way; with ``lose_post=n`` the n-th post is
    lost, as a dropped connection would lose it. Everything else passes."""

    def __init__(self, lose_post: int | None = None) -> None:
        super().__init__()
        self.lose_post = lose_post
        self.posts: list[int] = []
        self.bodies: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/federation/v1/inbox":
            body = request.read()
            self.posts.append(len(json.loads(body)["envelopes"]))
            self.bodies.append(len(body))
            if len(self.posts) == self.lose_post:
                raise httpx.ReadError("connection reset by the test")
        return super().handle_request(request)


def tapped_worker(node: LiveNode, tap: _InboxTap) -> OutboxWorker:
    s = node.settings
    return OutboxWorker(
        node.db,
        KeyStore(s.key_passphrase_value(), s.key_kdf_iterations),
        s,
        client=httpx.Client(transport=tap),
    )


class _SlowTap(_InboxTap):
    """Holds each inbox post for ``delay`` seconds, noting first the lease of every message still leased."""

    def __init__(self, node: LiveNode, delay: float) -> None:
        super().__init__()
        self.node, self.delay = node, delay
        self.leases: list[dict[str, datetime]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/federation/v1/inbox":
            with self.node.db.transaction(read_only=True) as s:
                rows = s.execute(
                    select(OutboxMessage.message_id, OutboxMessage.lease_until).where(
                        OutboxMessage.lease_owner.is_not(None)
                    )
                )
                self.leases.append(dict(rows.all()))
            time.sleep(self.delay)
        return super().handle_request(request)


@pytest.mark.parametrize(("lease", "delay", "renewed"), [(60, 0.0, False), (2, 1.1, True)])
def test_a_claim_renews_its_later_leases_once_half_the_lease_is_gone(
    pair: tuple[LiveNode, LiveNode], lease: int, delay: float, renewed: bool
) -> None:
    """A quick claim leaves its later messages' leases alone (renewing rewrote every later row after every
    batch); a slow one renews them before they run out, so no other worker may take them meanwhile."""
    a, b = pair
    a.settings.outbox_batch_size = 2  # 6 messages: three batches in one claim
    a.settings.outbox_lease_seconds = lease
    ids = [send(a, "au-24x7", f"step {i}", conversation="slow")["message_id"] for i in range(6)]
    tap = _SlowTap(a, delay)
    result = tapped_worker(a, tap).run_once()
    assert (result.delivered, tap.posts) == (6, [2, 2, 2])
    last = ids[4:]
    at_first, at_last = tap.leases[0], tap.leases[2]
    assert all(at_last[m] > at_first[m] for m in last) is renewed
    assert all(at_last[m] == at_first[m] for m in last) is not renewed
    if renewed:  # three posts of 1.1 s outlast the 2 s the claim took, yet nobody else could take them
        assert all(at_last[m] > utcnow() - timedelta(seconds=lease) for m in last)
    assert count(b, InboxMessage) == 6


def test_a_pipelined_claim_stops_at_the_first_lost_batch_and_keeps_order(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    a, b = pair
    a.settings.outbox_batch_size = 4  # 10 messages: batches of 4, 4 and 2 in one claim
    ids = [send(a, "au-24x7", f"step {i}", conversation="ordered")["message_id"] for i in range(10)]
    cut = _InboxTap(lose_post=2)
    first = tapped_worker(a, cut).run_once()
    # The first batch arrived; the second was lost, so the third was never sent (it would overtake it).
    assert cut.posts == [4, 4]
    assert (first.delivered, first.failed) == (4, 6)
    assert count(b, InboxMessage) == 4
    with a.db.transaction(read_only=True) as session:
        held = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending")).all()
        assert {m.last_error for m in held if m.message_id in ids[8:]} == {
            "held back: an earlier batch to this peer was not delivered"
        }
        session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
    w = worker(a)
    while w.run_once().claimed:
        pass
    with b.db.transaction(read_only=True) as session:
        got = [m.message_id for m in session.scalars(select(InboxMessage).order_by(InboxMessage.received_at))]
    assert got == ids


def test_two_workers_split_a_backlog_by_whole_conversations_and_keep_each_in_order(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    """A backlog larger than a batch is shared between the process's workers by conversation, so that two
    batches are in flight to one peer at once; no conversation is split between two claims."""
    a, b = pair
    a.settings.outbox_batch_size = 4
    assert a.settings.outbox_workers == 2
    sent: dict[str, list[str]] = {}
    for i in range(5):
        for conv in ("c1", "c2", "c3"):
            message = send(a, "au-24x7", f"{conv} {i}", conversation=conv)
            sent.setdefault(conv, []).append(message["message_id"])
    conversation_of = {mid: conv for conv, ids in sent.items() for mid in ids}
    nudged: list[str] = []
    first, second = worker(a), worker(a)
    first.on_left_over = second.on_left_over = lambda: nudged.append("wake the others")
    claim_a = first._claim(utcnow())
    assert nudged == ["wake the others"]  # so that the second need not wait out its poll
    claim_b = second._claim(utcnow())  # while the first claim's leases are held
    assert len(nudged) == 1  # it took the rest: nothing left over
    convs_a = {conversation_of[r.message_id] for r in claim_a}
    convs_b = {conversation_of[r.message_id] for r in claim_b}
    assert (len(convs_a), len(convs_b)) == (2, 1)  # ceil(3 conversations / 2 workers), then the rest
    assert convs_a.isdisjoint(convs_b)
    for claim in (claim_a, claim_b):
        # Each claim holds a conversation's messages from its first pending one, in order.
        for conv in {conversation_of[r.message_id] for r in claim}:
            mine = [r.message_id for r in claim if conversation_of[r.message_id] == conv]
            assert mine == sent[conv][: len(mine)]
    with a.db.transaction() as s:  # let the claims go, as a crashed worker's would once their lease ends
        s.execute(update(OutboxMessage).values(lease_owner=None, lease_until=None))
    while first.run_once().claimed + second.run_once().claimed:
        pass
    assert count(a, OutboxMessage, OutboxMessage.status == "delivered") == 15
    with b.db.transaction(read_only=True) as s:
        got = [m.message_id for m in s.scalars(select(InboxMessage).order_by(InboxMessage.received_at))]
    for conv, ids in sent.items():
        assert [m for m in got if conversation_of[m] == conv] == ids


def test_a_backlog_that_fits_one_batch_is_not_split(pair: tuple[LiveNode, LiveNode]) -> None:
    a, _ = pair
    ids = {send(a, "au-24x7", f"note {i}", conversation=f"c{i}")["message_id"] for i in range(3)}
    nudged: list[bool] = []
    w = worker(a)
    w.on_left_over = lambda: nudged.append(True)
    claim = w._claim(utcnow())
    assert {r.message_id for r in claim} == ids and not nudged


def test_batches_stay_under_the_inbox_body_limit(pair: tuple[LiveNode, LiveNode]) -> None:
    # Thirty envelopes of about 110 KB would make a 3 MB batch, which an inbox taking 1 MiB refuses whole
    # (and would keep refusing at every retry); the worker cuts the claim into batches that fit.
    a, b = pair
    a.settings.max_batch_bytes = b.settings.max_batch_bytes = 1024 * 1024
    client = a.client(a.admin_token)
    ids = []
    for i in range(30):
        body = {
            "recipient": "au-24x7",
            "payload": {"text": f"{i}", "annex": "x" * 60_000},
            "conversation_id": "big",
        }
        r = client.post("/api/v1/federation/messages", json=body)
        assert r.status_code == 202, r.text
        ids.append(r.json()["message_id"])
    rec = _InboxTap()
    w = tapped_worker(a, rec)
    while w.run_once().claimed:
        pass
    assert len(rec.bodies) > 3 and max(rec.bodies) <= 1024 * 1024
    assert count(a, OutboxMessage, OutboxMessage.status == "delivered") == 30
    with b.db.transaction(read_only=True) as session:
        got = [m.message_id for m in session.scalars(select(InboxMessage).order_by(InboxMessage.received_at))]
    assert got == ids


def test_proof_verifies_offline_with_another_jose_library(
    pair: tuple[LiveNode, LiveNode], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from cyberpact.cli import app

    a, b = pair
    message_id = send(a, "au-24x7", "proof please")["message_id"]
    worker(a).run_once()
    for node, side in ((a, "sender"), (b, "receiver")):
        s = node.settings
        for k, v in {
            "CYBERPACT_ENV": "test",
            "CYBERPACT_SECRET_KEY": s.secret_key.get_secret_value(),
            "CYBERPACT_KEY_PASSPHRASE": "test-passphrase-long-enough",
            "CYBERPACT_DATABASE_URL": s.sqlalchemy_url,
            "CYBERPACT_NODE_ID": s.node_id,
        }.items():
            monkeypatch.setenv(k, v)
        out = tmp_path / side
        r = CliRunner().invoke(app, ["messages", "prove", message_id, "--out", str(out)])
        assert r.exit_code == 0, r.output
        envelope = (out / "envelope.jwe").read_text().strip()
        receipt = jws.JWS()
        receipt.deserialize((out / "receipt.jws").read_text().strip())
        receiver_keys = jwk.JWKSet.from_json((out / "receiver.jwks.json").read_text())
        receipt.verify(receiver_keys.get_key(receipt.jose_header["kid"]), alg="Ed25519")
        body = json.loads(receipt.payload)
        assert body["message_id"] == message_id and body["status"] == "accepted"
        assert body["envelope_digest"] == hashlib.sha256(envelope.encode()).hexdigest()
        message = jws.JWS()
        message.deserialize((out / "message.jws").read_text().strip())
        sender_keys = jwk.JWKSet.from_json((out / "sender.jwks.json").read_text())
        message.verify(sender_keys.get_key(message.jose_header["kid"]), alg="Ed25519")
        assert json.loads(message.payload) == {"text": "proof please"}
        assert message.jose_header["msg_id"] == message_id and message.jose_header["aud"] == "au-24x7"


def test_a_recipient_suspended_mid_transaction_takes_no_more_messages(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    # enqueue remembers recipients for the transaction; what it remembers must not go stale.
    from cyberpact.federation import outbox
    from cyberpact.kit.actor import SYSTEM
    from cyberpact.kit.errors import Conflict

    a, _ = pair
    with a.db.transaction() as s:
        outbox.enqueue(s, SYSTEM, recipient="au-24x7", message_type="note", payload={"text": "first"})
        s.get_one(Peer, "au-24x7").status = "suspended"
        with pytest.raises(Conflict, match="suspended"):
            outbox.enqueue(s, SYSTEM, recipient="au-24x7", message_type="note", payload={"text": "second"})
        s.rollback()
    assert count(a, OutboxMessage) == 0


def test_a_message_settled_while_another_worker_claims_it_is_not_taken(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    """A lease ran out; worker B sees the message as claimable, but worker A settles it before B's lease
    is written. B must not take (and later send and settle again) a message already delivered."""
    from sqlalchemy import event

    from cyberpact.kit.db import Database

    a, _ = pair
    if a.db.engine.dialect.name != "postgresql":
        pytest.skip("needs two concurrent writers; SQLite serialises a claim against every other write")
    mid = send(a, "au-24x7", "raced")["message_id"]
    other = Database(a.settings.sqlalchemy_url)
    fired: list[str] = []

    def settle_first(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE OUTBOX_MESSAGES SET LEASE_OWNER") and not fired:
            fired.append(statement)
            with other.transaction() as s:  # worker A settles it meanwhile
                s.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.message_id == mid)
                    .values(status="delivered", lease_owner=None, lease_until=None)
                )

    event.listen(a.db.engine, "before_cursor_execute", settle_first)
    try:
        claimed = worker(a)._claim(utcnow())
    finally:
        event.remove(a.db.engine, "before_cursor_execute", settle_first)
        other.dispose()
    assert fired, "the claim did not write a lease"
    assert claimed == []
    with a.db.transaction(read_only=True) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_id == mid)).one()
    assert (row.status, row.lease_owner) == ("delivered", None)


def test_two_workers_settling_the_first_batch_to_a_peer_both_record_their_receipts(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    """Worker A finds no circuit-breaker row for the peer yet; worker B creates it before A's transaction
    ends. A must still settle its batch: were its transaction lost on the key, its messages would be
    sent again a lease later and answered as duplicates."""
    from sqlalchemy import delete, event

    from cyberpact.federation.models import PeerLink
    from cyberpact.kit.db import Database

    a, _ = pair
    if a.db.engine.dialect.name != "postgresql":
        pytest.skip("needs two concurrent writers; SQLite serialises a settlement against every other write")
    with a.db.transaction() as s:
        s.execute(delete(PeerLink))
    mid = send(a, "au-24x7", "first of all")["message_id"]
    other = Database(a.settings.sqlalchemy_url)
    fired: list[str] = []

    def create_it_meanwhile(conn: object, cursor: object, statement: str, *args: object) -> None:
        looked = "FROM peer_links" in statement and "consecutive_failures" in statement
        if looked and not fired:
            fired.append(statement)
            with other.transaction() as s:  # worker B, settling its own batch to the same peer
                s.add(PeerLink(peer_id="au-24x7", consecutive_failures=0))

    event.listen(a.db.engine, "after_cursor_execute", create_it_meanwhile)
    try:
        result = worker(a).run_once()
    finally:
        event.remove(a.db.engine, "after_cursor_execute", create_it_meanwhile)
        other.dispose()
    assert fired, "the worker never looked up the peer's link"
    assert result.delivered == 1
    with a.db.transaction(read_only=True) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_id == mid)).one()
        link = s.get_one(PeerLink, "au-24x7")
    assert (row.status, row.receipt_status, row.attempts) == ("delivered", "accepted", 1)
    assert link.last_success_at is not None


def test_an_idle_worker_polls_without_taking_the_write_lock(pair: tuple[LiveNode, LiveNode]) -> None:
    from sqlalchemy import event

    a, _ = pair
    w = worker(a)
    w.run_once()  # the first round also looks for dead letters, which needs the claim transaction
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(a.db.engine, "before_cursor_execute", seen)
    try:
        for _ in range(5):
            assert w.run_once().claimed == 0
        assert statements, "the idle rounds looked at the outbox"
        assert not [x for x in statements if "IMMEDIATE" in x or "advisory" in x or x.startswith("UPDATE")]
        # As soon as there is something to send, the next round claims and delivers it.
        send(a, "au-24x7", "after the quiet")
        assert w.run_once().delivered == 1
    finally:
        event.remove(a.db.engine, "before_cursor_execute", seen)
