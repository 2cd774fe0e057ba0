"""Receiving: every envelope of a batch is checked, stored with its raw bytes and applied, or refused with a
reason, and answered by a receipt this node signs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from joserfc.jwk import OKPKey
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.config import Settings
from cyberpact.federation import envelope, handlers, peers
from cyberpact.federation.errors import EnvelopeRejected
from cyberpact.federation.models import ConversationEvent, InboxMessage, Peer, PeerKey
from cyberpact.kit.actor import Actor
from cyberpact.kit.canonical import sha256_hex
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.keystore import KeyStore, public_keys
from cyberpact.kit.text import first_unsafe
from cyberpact.kit.time import utcnow

log = logging.getLogger("cyberpact.federation.inbox")

RefreshPeer = Callable[[Session, Peer], bool]
"""Fetch a peer's card and follow a key rotation; returns whether new keys arrived."""


@dataclass(frozen=True)
class Outcome:
    message_id: str | None
    status: str  # accepted, duplicate, rejected
    reason: str | None
    receipt: str
    # For a duplicate: the envelope the receipt names and the signed message inside it, so a sender that
    # crashed before recording them can still prove what it sent.
    envelope: str | None = None
    signed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "message_id": self.message_id,
            "status": self.status,
            "reason": self.reason,
            "receipt": self.receipt,
        }
        if self.envelope is not None:
            out["envelope"], out["signed"] = self.envelope, self.signed
        return out


@dataclass(frozen=True)
class Opened:
    """An envelope decrypted and its signature verified, with the id of the key that signed it and the
    outer header it was routed by."""

    envelope: envelope.OpenedEnvelope
    kid: str
    outer: dict[str, Any]


@dataclass(frozen=True)
class _Known:
    """What answering a duplicate needs of a message already stored."""

    sender: str
    receipt: str
    envelope: str
    signed: str


class Inbox:
    """One batch's worth of receiving, in the caller's transaction; a handler that may refuse runs in a
    savepoint of its own so that its refusal undoes only its own changes."""

    def __init__(
        self, session: Session, keys: KeyStore, settings: Settings, refresh: RefreshPeer | None = None
    ) -> None:
        self.session = session
        self.settings = settings
        _, self.signing_key = keys.signing_key(session)
        self.recipient_keys: dict[str, OKPKey] = {
            row.kid: keys.private(row) for row in public_keys(session, "enc")
        }
        self.refresh = refresh
        self._refreshed: set[str] = set()
        self._public: dict[tuple[str, str], tuple[PeerKey, OKPKey]] = {}
        # Messages already stored, by id: prefetched for the batch, then every one this batch adds.
        self._known: dict[str, _Known] = {}
        self._looked_up: set[str] = set()
        # Rows of accepted messages and their timeline events, written together (see _write).
        self._inbox_rows: list[dict[str, Any]] = []
        self._event_rows: list[dict[str, Any]] = []

    def _receipt(
        self,
        sender: str,
        message_id: str | None,
        digest: str,
        status: envelope.ReceiptStatus,
        reason: str | None,
    ) -> str:
        return envelope.sign_receipt(
            signing_key=self.signing_key,
            receiver_node=self.settings.node_id,
            sender_node=sender,
            # A rejected envelope may have no readable id; the receipt then names the nil UUID.
            message_id=message_id or "00000000-0000-4000-8000-000000000000",
            envelope_digest=digest,
            status=status,
            reason=reason,
            at=utcnow(),
        )

    def _sender_key(self, peer: Peer, used: dict[str, PeerKey]) -> Callable[[str, str], OKPKey | None]:
        def lookup(node: str, kid: str) -> OKPKey | None:
            if node != peer.node_id:
                return None  # the signed sender must be the peer the outer header named
            cached = self._public.get((node, kid))
            if cached is not None:
                used["row"] = cached[0]
                return cached[1]
            row = peers.sender_key(self.session, node, kid)
            if row is None and self.refresh is not None and node not in self._refreshed:
                # An unknown key id from a trusted peer is most likely a rotation we have not seen yet.
                self._refreshed.add(node)
                try:
                    if self.refresh(self.session, peer):
                        row = peers.sender_key(self.session, node, kid)
                except CyberpactError as exc:
                    log.warning("could not follow %s's card: %s", node, exc)
            if row is None or row.use != "sig":
                return None
            used["row"] = row
            key = peers.public_key(row)
            self._public[(node, kid)] = (row, key)
            return key

        return lookup

    def open_batch(self, tokens: list[str]) -> dict[int, Opened]:
        """Decrypt and verify, by position, every envelope of a batch that passes, storing nothing.

        Meant for a read-only transaction before :meth:`receive_batch`: the public-key work, most of a
        batch's cost, then runs without the database's write lock, so on SQLite a second batch arriving
        meanwhile is not left waiting behind it. An envelope that fails here is simply checked again,
        with the whole reasoning (and a card refresh), in the write transaction.
        """
        out: dict[int, Opened] = {}
        for i, token in enumerate(tokens):
            try:
                header = envelope.peek(token)
                out[i] = self._open(token, header, self._peer(header["iss"]), {})
            except EnvelopeRejected:
                continue
        return out

    def receive_batch(self, tokens: list[str], opened: Mapping[int, Opened] | None = None) -> list[Outcome]:
        """Receive a batch in order, in the caller's transaction. Known message ids are looked up once for
        the whole batch, and the rows it adds are written together at its end (see :meth:`_write`).
        ``opened`` is what :meth:`open_batch` could already open, by position."""
        before = opened or {}
        ids = []
        for i, token in enumerate(tokens):
            if i in before:
                ids.append(before[i].envelope.message_id)
                continue
            try:
                ids.append(envelope.peek(token)["msg_id"])
            except EnvelopeRejected:
                continue
        self._looked_up.update(ids)
        if ids:
            self._known.update(self._lookup(InboxMessage.message_id.in_(set(ids))))
        outcomes = [self._receive(token, before.get(i)) for i, token in enumerate(tokens)]
        self._write()
        return outcomes

    def _lookup(self, where: Any) -> dict[str, _Known]:
        rows = self.session.execute(
            select(
                InboxMessage.message_id,
                InboxMessage.sender,
                InboxMessage.receipt,
                InboxMessage.envelope,
                InboxMessage.signed,
            ).where(where)
        )
        return {row[0]: _Known(*row[1:]) for row in rows}

    def _write(self) -> None:
        """Insert the accepted messages and their events held so far, one statement for each table.

        The unit of work cost more per row than the signature checks; the rows wait here until the batch
        ends or a handler that writes is about to run (it may read them, and its own events must not
        overtake those of earlier messages in the timeline, hence the flush first).
        """
        if not self._inbox_rows:
            return
        self.session.flush()
        self.session.execute(insert(InboxMessage), self._inbox_rows)
        self.session.execute(insert(ConversationEvent), self._event_rows)
        self._inbox_rows, self._event_rows = [], []

    def _peer(self, sender: str) -> Peer:
        peer = peers.find_peer(self.session, sender)
        if peer is None:
            raise EnvelopeRejected("unknown_sender", f"{sender!r} is not a trusted peer")
        if peer.status != "active":
            raise EnvelopeRejected(
                "sender_suspended" if peer.status == "suspended" else "sender_removed",
                f"{sender!r} is {peer.status}",
            )
        return peer

    def _open(self, token: str, header: dict[str, Any], peer: Peer, used: dict[str, PeerKey]) -> Opened:
        """Decrypt and verify (``header``: what peek found); ``used["row"]`` is then the signing key."""
        opened = envelope.open_envelope(
            token,
            outer=header,
            recipient_node=self.settings.node_id,
            recipient_keys=self.recipient_keys,
            sender_keys=self._sender_key(peer, used),
            now=utcnow(),
            max_age=timedelta(seconds=self.settings.max_message_age_seconds),
            max_skew=timedelta(seconds=self.settings.max_clock_skew_seconds),
            max_bytes=self.settings.max_envelope_bytes,
        )
        return Opened(opened, used["row"].kid, header)

    def _receive(self, token: str, before: Opened | None = None) -> Outcome:
        digest = sha256_hex(token.encode("utf-8", "surrogateescape"))
        sender, message_id = "unknown", None
        try:
            if len(token) > self.settings.max_envelope_bytes:
                raise EnvelopeRejected("too_large", f"over {self.settings.max_envelope_bytes} bytes")
            header = before.outer if before is not None else envelope.peek(token)
            sender, message_id = header["iss"], header["msg_id"]
            peer = self._peer(sender)
            # Opened before the write transaction: the peer's standing was checked again just above, and
            # the key it was signed with is looked up again here, as it stands now.
            used: dict[str, PeerKey] = {}
            if before is None or self._sender_key(peer, used)(before.envelope.sender, before.kid) is None:
                before = self._open(token, header, peer, used)
            opened, key = before.envelope, used["row"]
            if key.valid_until is not None and opened.created > key.valid_until:
                raise EnvelopeRejected("key_expired", f"key {key.kid} was rotated out at {key.valid_until}")
            previous = self._known.get(opened.message_id)
            if previous is None and opened.message_id not in self._looked_up:
                previous = self._lookup(InboxMessage.message_id == opened.message_id).get(opened.message_id)
            if previous is not None:
                if previous.sender != opened.sender:
                    raise EnvelopeRejected("refused", "message id already used by another node")
                return Outcome(
                    opened.message_id,
                    "duplicate",
                    None,
                    previous.receipt,
                    envelope=previous.envelope,
                    signed=previous.signed,
                )
            if unstorable := first_unsafe(opened.payload):
                # A character no database of ours keeps (NUL fails a PostgreSQL write outright): refused
                # for good with its reason, not answered by a 500 the sender would retry for a day.
                raise EnvelopeRejected("bad_payload", f"{unstorable[0]} {unstorable[1]}")
            handler = handlers.handler_for(opened.message_type)
            if handler is None:
                raise EnvelopeRejected("unsupported_type", f"this node does not take {opened.message_type!r}")
            return self._store(token, opened, handler)
        except EnvelopeRejected as exc:
            return Outcome(
                message_id,
                "rejected",
                exc.reason,
                self._receipt(sender, message_id, digest, "rejected", exc.reason),
            )

    def _apply(self, opened: envelope.OpenedEnvelope, handler: handlers.Handler) -> str:
        try:
            if handlers.is_pure(opened.message_type):
                return handler(self.session, opened)
            self._write()
            # The handler's changes are undone alone if it refuses; the rest of the batch stands.
            with self.session.begin_nested():
                return handler(self.session, opened)
        except EnvelopeRejected:
            raise
        except CyberpactError as exc:
            raise EnvelopeRejected("refused", f"{exc.code}: {exc.public_message}") from exc

    def _store(self, token: str, opened: envelope.OpenedEnvelope, handler: handlers.Handler) -> Outcome:
        summary = self._apply(opened, handler)
        receipt = self._receipt(opened.sender, opened.message_id, opened.digest, "accepted", None)
        self._inbox_rows.append(
            {
                "message_id": opened.message_id,
                "sender": opened.sender,
                "message_type": opened.message_type,
                "conversation_id": opened.conversation_id,
                "in_reply_to": opened.in_reply_to,
                "created_at": opened.created,
                "received_at": utcnow(),
                "envelope": token,
                "digest": opened.digest,
                "signed": opened.signed,
                "signing_kid": opened.signing_kid,
                "payload": opened.payload,
                "receipt": receipt,
            }
        )
        self._known[opened.message_id] = _Known(opened.sender, receipt, token, opened.signed)
        self._event_rows.append(
            handlers.event_values(
                conversation_id=opened.conversation_id,
                peer=opened.sender,
                direction="in",
                kind="received",
                message_id=opened.message_id,
                message_type=opened.message_type,
                summary=summary,
            )
        )
        audit.record(
            self.session,
            Actor(user_id=None, username=f"peer:{opened.sender}", source="federation"),
            "federation.message.receive",
            "message",
            opened.message_id,
            detail={
                "type": opened.message_type,
                "conversation": opened.conversation_id,
                "digest": opened.digest,
            },
        )
        return Outcome(opened.message_id, "accepted", None, receipt)
