"""Every bad envelope is refused with a reason code, answered by a signed receipt, and leaves nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from conftest import DatabaseFactory, LiveNode, federation_node, pin
from cyberpact.audit.models import AuditRecord
from cyberpact.federation import envelope, identity
from cyberpact.federation.models import InboxMessage, OutboxMessage, PeerKey
from cyberpact.kit import crypto
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import parse_rfc3339, rfc3339, utcnow

from .test_channel import send, worker


@pytest.fixture
def trio(db_factory: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode, LiveNode]]:
    a = federation_node(db_factory, tmp_path, "vn-24x7")
    b = federation_node(db_factory, tmp_path, "au-24x7")
    c = federation_node(db_factory, tmp_path, "xx-stranger")
    pin(a, b)
    pin(b, a)
    pin(c, b)  # c trusts b, but b does not trust c
    yield a, b, c
    for n in (a, b, c):
        n.stop()


def keys_of(node: LiveNode) -> KeyStore:
    return KeyStore(node.settings.key_passphrase_value(), node.settings.key_kdf_iterations)


def seal_from(
    a: LiveNode,
    to: LiveNode,
    *,
    text: str = "hello",
    message_type: str = "note",
    payload: dict | None = None,
    recipient_node: str | None = None,
    created_delta: timedelta = timedelta(0),
    signing_kid: str | None = None,
) -> envelope.SealedEnvelope:
    ks = keys_of(a)
    with a.db.transaction(read_only=True) as s:
        row = ks.current(s, "sig") if signing_kid is None else s.get_one(ks_row_type(), signing_kid)
        assert row is not None
        signing = ks.private(row)
    with to.db.transaction(read_only=True) as s:
        card = identity.read_card(json.loads(identity.current_card(s).card))  # type: ignore[union-attr]
    return envelope.seal(
        payload=payload or {"text": text},
        sender_node=a.settings.node_id,
        recipient_node=recipient_node or to.settings.node_id,
        message_type=message_type,
        conversation_id="c1",
        in_reply_to=None,
        signing_key=signing,
        recipient_enc_jwk=card.enc_jwk,
        created=utcnow() + created_delta,
    )


def ks_row_type() -> type:
    from cyberpact.kit.keystore import NodeKey

    return NodeKey


def post(to: LiveNode, *tokens: str) -> list[dict]:
    r = to.client().post("/federation/v1/inbox", json={"envelopes": list(tokens)})
    assert r.status_code == 200, r.text
    receipts = r.json()["receipts"]
    for item in receipts:
        body = json.loads(base64.urlsafe_b64decode(item["receipt"].split(".")[1] + "=="))
        # A duplicate is answered with the original receipt, which says "accepted".
        assert body["status"] == ("accepted" if item["status"] == "duplicate" else item["status"])
        assert body["receiver_node"] == to.settings.node_id
    return receipts


def stored(node: LiveNode) -> tuple[int, int]:
    with node.db.transaction(read_only=True) as s:
        return (
            int(s.scalar(select(func.count()).select_from(InboxMessage)) or 0),
            int(s.scalar(select(func.count()).select_from(AuditRecord)) or 0),
        )


def flip(token: str, part: int, at: int = 5) -> str:
    parts = token.split(".")
    seg = parts[part]
    ch = "A" if seg[at] != "A" else "B"
    parts[part] = seg[:at] + ch + seg[at + 1 :]
    return ".".join(parts)


def test_tampering_is_refused_with_reasons(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    a, b, _ = trio
    before = stored(b)
    good = seal_from(a, b).token
    header = json.loads(base64.urlsafe_b64decode(good.split(".")[0] + "=="))
    header["conv_id"] = "other"
    forged_header = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    cases = {
        "ciphertext": (flip(good, 3), "decrypt_failed"),
        "tag": (flip(good, 4, 2), "decrypt_failed"),
        "protected header": (".".join([forged_header, *good.split(".")[1:]]), "decrypt_failed"),
        "encrypted key": (flip(good, 1), "decrypt_failed"),
        "not JOSE": ("this.is.not.a.jwe", "malformed"),
        "garbage": ("%%%", "malformed"),
    }
    results = post(b, *(t for t, _ in cases.values()))
    assert [r["reason"] for r in results] == [reason for _, reason in cases.values()]
    assert all(r["status"] == "rejected" for r in results)
    assert stored(b) == before
    # The untouched envelope still goes through afterwards: nothing was consumed by the failures.
    assert post(b, good)[0]["status"] == "accepted"


def test_wrong_recipient_stale_future_and_oversize(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    a, b, _ = trio
    before = stored(b)
    cases = [
        (seal_from(a, b, recipient_node="pl-ca").token, "wrong_recipient"),
        (seal_from(a, b, created_delta=timedelta(hours=-1)).token, "stale"),
        (seal_from(a, b, created_delta=timedelta(minutes=10)).token, "future"),
        (seal_from(a, b, text="x" * 300_000).token, "too_large"),
    ]
    assert [r["reason"] for r in post(b, *(t for t, _ in cases))] == [r for _, r in cases]
    assert stored(b) == before


def test_unknown_suspended_and_removed_senders(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    a, b, c = trio
    before = stored(b)
    assert post(b, seal_from(c, b).token)[0]["reason"] == "unknown_sender"
    admin = b.client(b.admin_token)
    assert admin.post("/api/v1/federation/peers/vn-24x7/suspend").json()["status"] == "suspended"
    assert post(b, seal_from(a, b).token)[0]["reason"] == "sender_suspended"
    # Refused for now, not for good: the sender keeps it and tries again, and once resumed it lands
    # (taken as final, a suspension left the two sides out of step for good).
    send(a, "au-24x7", "while suspended")
    result = worker(a).run_once()
    assert (result.rejected, result.delivered) == (0, 0)
    with a.db.transaction() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "note")).one()
        assert row.status == "pending" and "refuses this node for now: sender_suspended" in (
            row.last_error or ""
        )
        row.next_attempt_at = utcnow()  # the backoff, run out
    assert admin.post("/api/v1/federation/peers/vn-24x7/resume").json()["status"] == "active"
    assert worker(a).run_once().delivered == 1
    before = stored(b)
    assert admin.post("/api/v1/federation/peers/vn-24x7/remove").json()["status"] == "removed"
    assert post(b, seal_from(a, b).token)[0]["reason"] == "sender_removed"
    assert admin.post("/api/v1/federation/peers/vn-24x7/resume").status_code == 409
    assert stored(b)[0] == before[0]


def test_replayed_envelope_is_a_duplicate(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    a, b, _ = trio
    token = seal_from(a, b).token
    first = post(b, token)[0]
    after = stored(b)
    again = post(b, token, token)
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    assert all(r["receipt"] == first["receipt"] for r in again)
    assert stored(b) == after


def test_a_message_twice_in_one_batch_is_stored_once(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    """The batch's rows are written together at its end; a repeat inside the batch must still be known."""
    from cyberpact.federation.models import ConversationEvent

    a, b, _ = trio
    token = seal_from(a, b, text="once").token
    before = stored(b)
    first, again = post(b, token, token)
    assert (first["status"], again["status"]) == ("accepted", "duplicate")
    assert again["receipt"] == first["receipt"]
    assert stored(b) == (before[0] + 1, before[1] + 1)
    with b.db.transaction(read_only=True) as s:
        kinds = s.scalars(
            select(ConversationEvent.kind).where(ConversationEvent.message_id == first["message_id"])
        ).all()
    assert kinds == ["received"]


def test_a_handler_that_refuses_mid_batch_undoes_only_its_own_message(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    """Rows of the messages before a handler that writes are written before it runs; its refusal rolls
    back its own savepoint only, and the messages on either side stay stored with their timeline events."""
    import uuid

    from cyberpact.federation.models import ConversationEvent

    a, b, _ = trio
    before = stored(b)
    step = {"request_id": str(uuid.uuid4()), "action": "withdraw", "data": {"reason": "x"}}
    tokens = [
        seal_from(a, b, text="first").token,
        seal_from(a, b, message_type="cp.step", payload=step).token,
        seal_from(a, b, text="last").token,
    ]
    receipts = post(b, *tokens)
    assert [r["status"] for r in receipts] == ["accepted", "rejected", "accepted"]
    assert receipts[1]["reason"] == "refused"  # by the request handler: no such request here
    assert stored(b)[0] == before[0] + 2
    with b.db.transaction(read_only=True) as s:
        texts = s.scalars(
            select(InboxMessage.payload).where(
                InboxMessage.message_id.in_([receipts[0]["message_id"], receipts[2]["message_id"]])
            )
        ).all()
        received = set(
            s.scalars(select(ConversationEvent.message_id).where(ConversationEvent.kind == "received"))
        )
    assert sorted(t["text"] for t in texts) == ["first", "last"]
    assert {receipts[0]["message_id"], receipts[2]["message_id"]} <= received
    assert receipts[1]["message_id"] not in received


def test_transport_level_bad_input(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    _, b, _ = trio
    before = stored(b)
    c = b.client()
    assert (
        c.post(
            "/federation/v1/inbox", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    assert c.post("/federation/v1/inbox", json={"envelopes": "x"}).status_code == 400
    assert c.post("/federation/v1/inbox", json={"envelopes": ["a"], "more": 1}).status_code == 400
    assert c.post("/federation/v1/inbox", json={"envelopes": [1]}).status_code == 400
    r = c.post("/federation/v1/inbox", content=b'{"envelopes": []}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.headers["content-type"].startswith("application/problem+json")
    big = json.dumps({"envelopes": ["x" * (17 * 1024 * 1024)]}).encode()
    assert (
        c.post("/federation/v1/inbox", content=big, headers={"content-type": "application/json"}).status_code
        == 413
    )
    assert stored(b) == before


def test_rotation_is_followed_and_retired_key_expires(trio: tuple[LiveNode, LiveNode, LiveNode]) -> None:
    a, b, _ = trio
    ks = keys_of(a)
    send(a, "au-24x7", "before rotation")
    assert worker(a).run_once().delivered == 1
    with a.db.transaction() as s:
        old_kid = ks.current(s, "sig").kid  # type: ignore[union-attr]
        identity.rotate(s, ks, a.settings, SYSTEM)
    # b learns the new key by itself when the first message signed with it arrives.
    send(a, "au-24x7", "after rotation")
    assert worker(a).run_once().delivered == 1
    with b.db.transaction(read_only=True) as s:
        keys = {k.kid: k for k in s.scalars(select(PeerKey).where(PeerKey.peer_id == "vn-24x7"))}
        signed = {m.signing_kid: m.signed for m in s.scalars(select(InboxMessage))}
    assert keys[old_kid].valid_until is not None and len(keys) == 4
    # A message signed with the retired key after its retirement is refused...
    before = stored(b)
    late = seal_from(a, b, signing_kid=old_kid)
    assert post(b, late.token)[0]["reason"] == "key_expired"
    assert stored(b)[0] == before[0]
    # ...but what it signed before still verifies, with the key b kept.
    assert set(signed) == {old_kid, *(set(keys) - {old_kid}) & set(signed)} and len(signed) == 2
    header, payload = envelope.verify_signed(signed[old_kid], lambda kid: crypto.import_public(keys[kid].jwk))
    assert header["kid"] == old_kid and json.loads(payload) == {"text": "before rotation"}


def test_a_receiver_that_rotates_is_followed_through_its_receipts(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    """b rotates and never writes to a: a learns b's new key from b's card when b's receipts name it,
    instead of retrying a delivered message until it dies."""
    a, b, _ = trio
    ks = keys_of(b)
    with b.db.transaction() as s:
        identity.rotate(s, ks, b.settings, SYSTEM)
        new_kid = ks.current(s, "sig").kid  # type: ignore[union-attr]
    message_id = send(a, "au-24x7", "to a rotated receiver")["message_id"]
    result = worker(a).run_once()
    assert (result.delivered, result.failed) == (1, 0)
    with a.db.transaction(read_only=True) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_id == message_id)).one()
        kids = set(s.scalars(select(PeerKey.kid).where(PeerKey.peer_id == "au-24x7")))
    assert row.status == "delivered" and row.receipt_status == "accepted" and new_kid in kids
    receipt = envelope.verify_receipt(row.receipt, lambda kid: crypto.import_public(_peer_key(a, kid)))
    assert receipt.signing_kid == new_kid and receipt.message_id == message_id


def _peer_key(node: LiveNode, kid: str) -> dict:
    with node.db.transaction(read_only=True) as s:
        return s.scalars(select(PeerKey.jwk).where(PeerKey.kid == kid)).one()


def test_a_receipt_naming_a_key_its_card_does_not_vouch_for_is_not_trusted(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    """A receipt signed by a key the peer's card does not name fails verification; the message stays
    pending for a retry, and the peer's card is looked at once, not once per batch."""
    from cyberpact.federation.delivery import OutboxWorker

    a, _, _ = trio
    message_id = send(a, "au-24x7", "receipt by a stranger key")["message_id"]
    stranger = crypto.generate_key("Ed25519")
    w = worker(a)
    real_post = w._post

    def forged(to, rows, sealed):  # type: ignore[no-untyped-def]
        answers, error = real_post(to, rows, sealed)
        for item in answers.values():
            body = json.loads(base64.urlsafe_b64decode(item["receipt"].split(".")[1] + "=="))
            item["receipt"] = envelope.sign_receipt(
                signing_key=stranger, **{**body, "at": parse_rfc3339(body["at"])}
            )
        return answers, error

    w._post = forged  # type: ignore[method-assign]
    assert isinstance(w, OutboxWorker)
    assert w.run_once().failed == 1
    looked = dict(w._card_looked)
    with a.db.transaction() as s:
        s.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    assert w.run_once().failed == 1
    assert w._card_looked == looked and set(looked) == {"au-24x7"}
    with a.db.transaction(read_only=True) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_id == message_id)).one()
    assert row.status == "pending" and "unknown_sender_key" in (row.last_error or "")


def test_a_card_not_vouched_for_by_the_pinned_key_is_not_followed(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    a, b, _ = trio
    from cyberpact.federation import peers
    from cyberpact.kit import crypto
    from cyberpact.kit.errors import IntegrityFailure

    with a.db.transaction(read_only=True) as s:
        genuine, _ = crypto.signatures_of(json.loads(identity.current_card(s).card))  # type: ignore[union-attr]
    evil_sig, evil_enc = crypto.generate_key("Ed25519"), crypto.generate_key("X25519")
    forged = {
        **genuine,
        "seq": genuine["seq"] + 1,
        "base_url": "http://127.0.0.1:9",
        "keys": [
            {**crypto.public_jwk(evil_sig), "use": "sig", "alg": "Ed25519"},
            {**crypto.public_jwk(evil_enc), "use": "enc", "alg": "ECDH-ES+A256KW"},
        ],
    }
    doc = {"card": crypto.sign_json_multi(forged, [evil_sig], "cyberpact-node-card+jws"), "history": []}
    with b.db.transaction() as s, pytest.raises(IntegrityFailure, match="vouched"):
        peers.follow_rotation(s, SYSTEM, b.settings, peers.get_peer(s, "vn-24x7"), doc)
    with b.db.transaction(read_only=True) as s:
        peer = peers.get_peer(s, "vn-24x7")
        assert peer.card_seq == genuine["seq"] and peer.base_url == a.url


def test_a_card_near_its_end_is_renewed_while_the_node_runs_and_peers_follow(
    db_factory: DatabaseFactory, tmp_path: Path
) -> None:
    from cyberpact.app import _renew_card
    from cyberpact.federation import peers

    a = federation_node(db_factory, tmp_path, "vn-24x7", card_validity_days=3)
    b = federation_node(db_factory, tmp_path, "au-24x7")
    try:
        pin(b, a)
        with a.db.transaction(read_only=True) as s:
            first = identity.current_card(s)
            assert first is not None
        _renew_card(a.db, keys_of(a), a.settings)  # what the running node does every few hours
        with a.db.transaction(read_only=True) as s:
            renewed = identity.current_card(s)
            assert renewed is not None
        assert renewed.seq == first.seq + 1 and renewed.sig_kid == first.sig_kid
        with b.db.transaction() as s, peers.http_client(b.settings) as client:
            assert peers.refresh_card(s, b.settings, client, peers.get_peer(s, "vn-24x7"))
        with b.db.transaction(read_only=True) as s:
            peer = peers.get_peer(s, "vn-24x7")
            valid_until = identity.read_card(json.loads(peer.card)).valid_until
        assert peer.card_seq == renewed.seq and valid_until > utcnow() + timedelta(days=2)
    finally:
        a.stop()
        b.stop()


def _card(
    node_id: str, base_url: str, valid: tuple[timedelta, timedelta], *, seq: int = 1, sig: Any = None
) -> tuple[dict, Any]:
    """A node card document as a node serves it, valid from ``now + valid[0]`` to ``now + valid[1]``."""
    sig = sig or crypto.generate_key("Ed25519")
    enc = crypto.generate_key("X25519")
    now = utcnow()
    payload = {
        "typ": "cyberpact-node-card",
        "v": identity.CARD_VERSION,
        "node_id": node_id,
        "name": node_id.upper(),
        "country": None,
        "authority": None,
        "roles": [],
        "base_url": base_url,
        "seq": seq,
        "keys": [
            {**crypto.public_jwk(sig), "use": "sig", "alg": "Ed25519"},
            {**crypto.public_jwk(enc), "use": "enc", "alg": "ECDH-ES+A256KW"},
        ],
        "prev_sig_kid": None,
        "valid_from": rfc3339(now + valid[0]),
        "valid_until": rfc3339(now + valid[1]),
    }
    return {"card": crypto.sign_json_multi(payload, [sig], identity.CARD_TYP), "history": []}, sig


def test_a_card_out_of_force_or_naming_plain_http_in_prod_is_not_pinned(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    from cyberpact.config import Environment
    from cyberpact.federation import peers
    from cyberpact.federation.models import Peer
    from cyberpact.kit.errors import IntegrityFailure

    _, b, _ = trio
    prod = b.settings.model_copy(update={"env": Environment.prod})
    year = timedelta(days=365)
    cases = {
        "expired": (b.settings, "http://127.0.0.1:9", (-2 * year, -timedelta(days=1)), "expired"),
        "not yet valid": (b.settings, "http://127.0.0.1:9", (timedelta(days=2), year), "not valid before"),
        "plain http in prod": (prod, "http://cert.example.org", (-timedelta(hours=1), year), "HTTPS"),
    }
    with b.db.transaction(read_only=True) as s:
        before = s.scalar(select(func.count()).select_from(Peer))
    for name, (settings, url, valid, why) in cases.items():
        doc, sig = _card("zz-newcomer", url, valid)
        fingerprint = identity.fingerprint(crypto.public_jwk(sig))
        with b.db.transaction() as s, pytest.raises(IntegrityFailure, match=why):
            peers.add_peer(s, SYSTEM, settings, doc, url, fingerprint)
        with b.db.transaction(read_only=True) as s:
            assert s.scalar(select(func.count()).select_from(Peer)) == before, name
    # The same card, in force and over HTTPS, is pinned in prod.
    doc, sig = _card("zz-newcomer", "https://cert.example.org", (-timedelta(hours=1), year))
    with b.db.transaction() as s:
        peer = peers.add_peer(
            s, SYSTEM, prod, doc, "https://cert.example.org", identity.fingerprint(crypto.public_jwk(sig))
        )
        assert peer.base_url == "https://cert.example.org"


def test_a_rotation_to_a_card_out_of_force_or_to_plain_http_in_prod_is_not_followed(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    """The pinned key vouches for the newer card, but the card itself is unusable: b keeps what it had."""
    from cyberpact.config import Environment
    from cyberpact.federation import peers
    from cyberpact.kit.errors import IntegrityFailure

    a, b, _ = trio
    ks = keys_of(a)
    with a.db.transaction(read_only=True) as s:
        signing = ks.private(ks.current(s, "sig"))  # type: ignore[arg-type]
    with b.db.transaction(read_only=True) as s:
        seq = peers.get_peer(s, "vn-24x7").card_seq
    prod = b.settings.model_copy(update={"env": Environment.prod})
    year = timedelta(days=365)
    for settings, url, valid, why in (
        (b.settings, a.url, (-2 * year, -timedelta(days=1)), "expired"),
        (prod, "http://127.0.0.1:9", (-timedelta(hours=1), year), "HTTPS"),
    ):
        doc, _ = _card("vn-24x7", url, valid, seq=seq + 1, sig=signing)
        with b.db.transaction() as s, pytest.raises(IntegrityFailure, match=why):
            peers.follow_rotation(s, SYSTEM, settings, peers.get_peer(s, "vn-24x7"), doc)
        with b.db.transaction(read_only=True) as s:
            peer = peers.get_peer(s, "vn-24x7")
            assert (peer.card_seq, peer.base_url) == (seq, a.url)


def test_what_was_opened_before_the_write_is_checked_again_when_stored(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    """The inbox decrypts and verifies a batch before its write transaction; a sender suspended in
    between must still be refused, and an envelope opened then must be stored exactly as if it had been
    opened inside."""
    from cyberpact.federation.inbox import Inbox
    from cyberpact.federation.models import Peer

    a, b, _ = trio
    before = stored(b)
    tokens = [seal_from(a, b, text=f"m{i}").token for i in range(3)]
    ks = keys_of(b)
    with b.db.transaction(read_only=True) as s:
        opened = Inbox(s, ks, b.settings).open_batch([*tokens, "junk"])
    assert sorted(opened) == [0, 1, 2]  # the junk is left for the write transaction to refuse
    with b.db.transaction() as s:
        s.get_one(Peer, "vn-24x7").status = "suspended"
    with b.db.transaction() as s:
        outcomes = Inbox(s, ks, b.settings).receive_batch([*tokens, "junk"], opened)
    assert [o.reason for o in outcomes] == ["sender_suspended"] * 3 + ["malformed"]
    assert stored(b)[0] == before[0]

    with b.db.transaction() as s:
        s.get_one(Peer, "vn-24x7").status = "active"
    with b.db.transaction() as s:
        outcomes = Inbox(s, ks, b.settings).receive_batch(tokens, opened)
    assert [o.status for o in outcomes] == ["accepted"] * 3
    with b.db.transaction(read_only=True) as s:
        texts = sorted(m.payload["text"] for m in s.scalars(select(InboxMessage)))
    assert texts[-3:] == ["m0", "m1", "m2"]


def test_a_payload_no_database_can_keep_is_refused_for_good(
    trio: tuple[LiveNode, LiveNode, LiveNode],
) -> None:
    # PostgreSQL refuses a NUL in any text: the whole batch failed with a 500, and the sender retried the
    # message for a day. It is now refused alone, with its reason, and the rest of the batch lands.
    a, b, _ = trio
    before = stored(b)
    bad = seal_from(a, b, payload={"text": "abc\x00def"}).token
    nested = seal_from(a, b, payload={"text": "ok", "extra": {"k": ["fine", "\x1b[31m"]}}).token
    good = seal_from(a, b, text="fine").token
    results = post(b, bad, nested, good)
    assert [(r["status"], r["reason"]) for r in results[:2]] == [("rejected", "bad_payload")] * 2
    assert results[2]["status"] == "accepted"
    assert stored(b)[0] == before[0] + 1


def test_a_peer_pinned_anew_after_removal_is_trusted_only_with_its_new_keys(
    trio: tuple[LiveNode, LiveNode, LiveNode], db_factory: DatabaseFactory, tmp_path: Path
) -> None:
    # The 3 a.m. procedure after a peer's key is compromised: remove it, the peer is rebuilt with new
    # keys, pin its new fingerprint. Whoever holds the old key must then be neither heard nor written to.
    a, b, _ = trio
    admin = b.client(b.admin_token)
    assert admin.post("/api/v1/federation/peers/vn-24x7/remove").json()["status"] == "removed"
    rebuilt = federation_node(db_factory, tmp_path / "rebuilt", "vn-24x7")
    try:
        pin(b, rebuilt)
        pin(rebuilt, b)
        old = seal_from(a, b, text="signed with the old key").token
        new = seal_from(rebuilt, b, text="signed with the new key").token
        assert [(r["status"], r["reason"]) for r in post(b, old, new)] == [
            ("rejected", "key_expired"),
            ("accepted", None),
        ]
        with b.db.transaction(read_only=True) as s:
            from cyberpact.federation import peers

            enc = peers.encryption_jwk(s, "vn-24x7")
        with rebuilt.db.transaction(read_only=True) as s:
            card = identity.read_card(json.loads(identity.current_card(s).card))  # type: ignore[union-attr]
        assert enc["kid"] == card.enc_jwk["kid"]  # what b seals next only the rebuilt node opens
        # Pinned again with the same key, a peer's keys are in force again.
        assert admin.post("/api/v1/federation/peers/vn-24x7/remove").status_code == 200
        pin(b, rebuilt)
        again = seal_from(rebuilt, b, text="after the second pinning").token
        assert post(b, again)[0]["status"] == "accepted"
    finally:
        rebuilt.stop()
