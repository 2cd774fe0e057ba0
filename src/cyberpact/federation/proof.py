"""`cyberpact messages prove`: everything a third party needs to check, offline and with any JOSE tool,
who sent a message, what it said, and that the recipient acknowledged exactly those bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.federation import conversations, identity
from cyberpact.federation.models import InboxMessage, OutboxMessage, Peer, PeerKey
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import Conflict, NotFound
from cyberpact.kit.keystore import NodeKey

HOW_TO = """\
Proof of message {message_id}
from {sender} to {recipient}

Files
  envelope.jwe       the envelope exactly as it crossed the wire (compact JWE, ECDH-ES+A256KW / A256GCM)
  message.jws        the sender's signed message, decrypted (compact JWS, alg Ed25519, RFC 9864),
                     over the RFC 8785 canonical JSON of the payload
  receipt.jws        the recipient's signed receipt (compact JWS, alg Ed25519)
  sender.jwks.json   the sender's public signing keys     receiver.jwks.json  the recipient's
  cards.json         both nodes' node cards (self-signed JWS JSON) binding those keys to the nodes

Check
  1. sha256sum envelope.jwe        must equal receipt.jws's payload field "envelope_digest"
                                   ({digest})
  2. verify message.jws with the key in sender.jwks.json whose "kid" is the JWS header's "kid";
     its protected header's msg_id, iss, aud and created bind it to this message.
  3. verify receipt.jws with receiver.jwks.json; its payload names message_id {message_id}
     and status "{status}".
  For example with Python's jwcrypto:
     from jwcrypto import jwk, jws
     keys = jwk.JWKSet.from_json(open("sender.jwks.json").read())
     token = jws.JWS(); token.deserialize(open("message.jws").read().strip())
     token.verify(keys.get_key(token.jose_header["kid"]), alg="Ed25519"); print(token.payload)
"""


def _jwks(keys: list[dict[str, Any]]) -> str:
    return json.dumps({"keys": keys}, indent=2)


@dataclass(frozen=True)
class Proof:
    """The files of one message's proof, read and not yet written."""

    message_id: str
    message_type: str
    conversation_id: str
    files: dict[str, str]

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, content in self.files.items():
            path = out / name
            path.write_text(content, encoding="utf-8")
            written.append(path)
        return written


def prove(session: Session, actor: Actor, message_id: str, out: Path) -> Proof:
    """The proof of a message, its read recorded in the caller's transaction: ``message.jws`` is the whole
    signed message (a request's header and fields, a package's manifest), so taking it out of the node is a
    read of what the conversation is about, recorded against that object like any other. Write the files
    only once the caller has committed, so that none exist without their record."""
    made = _gather(session, message_id)
    about = conversations.locate(session, made.conversation_id)
    object_type, object_id = (
        (about.object_type, about.object_id)
        if about is not None and about.object_id is not None
        else ("message", message_id)
    )
    audit.record(
        session,
        actor,
        "federation.message.prove",
        object_type,
        object_id,
        detail={
            "message": message_id,
            "type": made.message_type,
            "conversation": made.conversation_id,
            "to": str(out),
        },
    )
    return made


def _gather(session: Session, message_id: str) -> Proof:
    received = session.get(InboxMessage, message_id)
    own_card = identity.current_card(session)
    if own_card is None:
        raise Conflict("this node has no card yet")
    own_id = identity.read_card(json.loads(own_card.card)).node_id
    own_sig = [dict(k.public_jwk) for k in session.scalars(select(NodeKey).where(NodeKey.purpose == "sig"))]
    row: InboxMessage | OutboxMessage
    if received is not None:
        row = received
        peer = session.get_one(Peer, received.sender)
        peer_sig = [
            dict(k.jwk)
            for k in session.scalars(
                select(PeerKey).where(PeerKey.peer_id == peer.node_id, PeerKey.use == "sig")
            )
        ]
        sender, recipient = peer.node_id, own_id
        envelope, signed, receipt, digest = (
            received.envelope,
            received.signed,
            received.receipt,
            received.digest,
        )
        sender_keys, receiver_keys = peer_sig, own_sig
        cards = [json.loads(peer.card), json.loads(own_card.card)]
        status = "accepted"
    else:
        sent = session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == message_id))
        if sent is None:
            raise NotFound(f"No message {message_id} in the inbox or outbox")
        if sent.status not in ("delivered", "rejected") or not (
            sent.envelope and sent.signed and sent.receipt
        ):
            raise Conflict(f"{message_id} has no receipt yet ({sent.status})")
        row = sent
        peer = session.get_one(Peer, sent.recipient)
        peer_sig = [
            dict(k.jwk)
            for k in session.scalars(
                select(PeerKey).where(PeerKey.peer_id == peer.node_id, PeerKey.use == "sig")
            )
        ]
        sender = own_id
        recipient = peer.node_id
        envelope, signed, receipt, digest = sent.envelope, sent.signed, sent.receipt, sent.digest or ""
        sender_keys, receiver_keys = own_sig, peer_sig
        cards = [json.loads(own_card.card), json.loads(peer.card)]
        status = sent.receipt_status or ""
    files = {
        "envelope.jwe": envelope + "\n",
        "message.jws": signed + "\n",
        "receipt.jws": receipt + "\n",
        "sender.jwks.json": _jwks(sender_keys),
        "receiver.jwks.json": _jwks(receiver_keys),
        "cards.json": json.dumps({"sender": cards[0], "receiver": cards[1]}, indent=2),
        "README.txt": HOW_TO.format(
            message_id=message_id, sender=sender, recipient=recipient, digest=digest, status=status
        ),
    }
    return Proof(message_id, row.message_type, row.conversation_id, files)
