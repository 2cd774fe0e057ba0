"""Judging a peer's answer to one sent message: only a receipt that verifies under the peer's own keys and
names both nodes settles it; anything else (forged, about another message or other nodes, a transport
error) leaves the message to be tried again, and a duplicate's handed-back original is kept only if this
node provably signed it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import OKPKey

from conftest import make_settings
from cyberpact.config import Settings
from cyberpact.federation import settle
from cyberpact.federation.envelope import SealedEnvelope, seal, sign_receipt
from cyberpact.federation.models import OutboxMessage
from cyberpact.kit.crypto import generate_key, public_jwk

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
ME, PEER = "vn-24x7", "au-24x7"


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.settings: Settings = make_settings(
            f"sqlite:///{tmp_path}/unused.db",
            tmp_path,
            node_id=ME,
            outbox_backoff_seconds=10,
            outbox_backoff_max_seconds=60,
        )
        self.mine, self.theirs, self.stranger = (generate_key("Ed25519") for _ in range(3))
        self.their_enc = public_jwk(generate_key("X25519"))
        self.row = OutboxMessage(
            message_id="6f1c2a44-5c3e-4a8e-9d2b-1f0e7c9b8a76",
            recipient=PEER,
            message_type="message.text",
            conversation_id="conv-1",
            in_reply_to=None,
            payload={"text": "preserve the account"},
            attempts=2,
            envelope=None,
        )
        self.sealed = self.seal(self.mine)
        self.parties = settle.Parties(
            ME, PEER, {_kid(self.theirs): self.theirs}, {_kid(self.mine): self.mine}
        )

    def seal(self, key: OKPKey) -> SealedEnvelope:
        return seal(
            payload=self.row.payload,
            sender_node=ME,
            recipient_node=PEER,
            message_type=self.row.message_type,
            conversation_id=self.row.conversation_id,
            in_reply_to=None,
            signing_key=key,
            recipient_enc_jwk=self.their_enc,
            message_id=self.row.message_id,
        )

    def receipt(self, key: OKPKey | None = None, **overrides: Any) -> str:
        args: dict[str, Any] = {
            "signing_key": key or self.theirs,
            "receiver_node": PEER,
            "sender_node": ME,
            "message_id": self.row.message_id,
            "envelope_digest": self.sealed.digest,
            "status": "accepted",
            "reason": None,
            "at": NOW,
        }
        return sign_receipt(**(args | overrides))

    def outcome(
        self, item: dict[str, Any] | None, error: str | None = None
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        kind, values, _ = settle.outcome(
            events, self.row, self.sealed, item, self.parties, self.settings, error, NOW
        )
        return kind, values, events


def _kid(key: OKPKey) -> str:
    return str(public_jwk(key)["kid"])


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _retried(world: World, values: dict[str, Any]) -> str:
    # The third attempt waits between half and all of 10 s * 2**2, and nothing says delivered.
    assert values["attempts"] == 3 and "status" not in values and "receipt" not in values
    assert NOW + timedelta(seconds=20) <= values["next_attempt_at"] <= NOW + timedelta(seconds=40)
    assert values["lease_owner"] is None
    return str(values["last_error"])


def test_a_receipt_from_the_peer_settles_the_message_with_our_proof(world: World) -> None:
    kind, values, events = world.outcome({"receipt": world.receipt(), "status": "accepted"})
    assert kind == "delivered"
    assert (values["status"], values["receipt_status"], values["delivered_at"]) == (
        "delivered",
        "accepted",
        NOW,
    )
    assert (values["envelope"], values["signed"], values["digest"]) == (
        world.sealed.token,
        world.sealed.signed,
        world.sealed.digest,
    )
    assert [e["kind"] for e in events] == ["delivered"]


def test_a_signed_refusal_is_final_and_says_why(world: World) -> None:
    item = {"receipt": world.receipt(status="rejected", reason="stale"), "status": "rejected"}
    kind, values, events = world.outcome(item)
    assert kind == "rejected" and values["status"] == "rejected"
    assert values["last_error"] == f"rejected by {PEER}: stale"
    assert [e["kind"] for e in events] == ["rejected"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda w: w.receipt(key=w.stranger), "unknown_sender_key"),
        (lambda w: w.receipt(receiver_node="pl-ca"), "receipt_mismatch"),
        (lambda w: w.receipt(sender_node="pl-ca"), "receipt_mismatch"),
        (lambda w: w.receipt(message_id="00000000-0000-4000-8000-000000000000"), "receipt_mismatch"),
        (lambda w: w.receipt(envelope_digest="cd" * 32), "receipt_mismatch"),
        (lambda w: w.receipt()[:-4] + "AAAA", "bad_signature"),
        (lambda w: "not a receipt", "malformed"),
        (lambda w: 42, "malformed"),
    ],
    ids=[
        "forged",
        "other-receiver",
        "other-sender",
        "other-message",
        "other-envelope",
        "tampered",
        "text",
        "number",
    ],
)
def test_a_receipt_that_does_not_hold_leaves_the_message_to_be_sent_again(
    world: World, make: Any, reason: str
) -> None:
    kind, values, events = world.outcome({"receipt": make(world), "status": "accepted"})
    assert kind == "failed" and events == []
    assert _retried(world, values).startswith(f"bad receipt: {reason}")


def test_no_answer_is_a_retry_with_backoff_capped(world: World) -> None:
    kind, values, _ = world.outcome(None, error="ConnectError: refused")
    assert kind == "failed" and _retried(world, values) == "ConnectError: refused"
    kind, values, _ = world.outcome(None)
    assert _retried(world, values) == "no receipt for this message"
    world.row.attempts = 30
    _, values, _ = world.outcome(None)
    assert values["next_attempt_at"] <= NOW + timedelta(seconds=60), "the longest delay is the configured one"


def test_a_duplicates_original_is_kept_only_if_we_signed_it(world: World) -> None:
    first = world.seal(world.mine)  # the envelope that arrived first, sealed before a crash we forgot it in

    def duplicate(original: SealedEnvelope, *, receipt_for: SealedEnvelope | None = None) -> dict[str, Any]:
        named = receipt_for or original
        return {
            "receipt": world.receipt(envelope_digest=named.digest),
            "status": "duplicate",
            "envelope": original.token,
            "signed": original.signed,
        }

    kind, values, _ = world.outcome(duplicate(first))
    assert kind == "delivered" and values["receipt_status"] == "duplicate"
    assert (values["envelope"], values["digest"]) == (first.token, first.digest)
    # An "original" the peer made up under its own key, or one the receipt does not name: ours stays.
    for forged in (duplicate(world.seal(world.theirs)), duplicate(world.seal(world.mine), receipt_for=first)):
        kind, values, _ = world.outcome(forged)
        assert kind == "delivered" and values["envelope"] == world.sealed.token
        assert values["digest"] == world.sealed.digest
    # A row that already keeps its proof keeps it rather than take this attempt's.
    world.row.envelope = "kept"
    _, values, _ = world.outcome(duplicate(world.seal(world.theirs)))
    assert "envelope" not in values and "digest" not in values
