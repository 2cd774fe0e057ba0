"""Federation endpoints: the public node card, the inbox peers post to, and the administrators' API."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cyberpact.accounts.api import require_roles
from cyberpact.config import Settings
from cyberpact.federation import conversations, handlers, identity, outbox, peers, roster
from cyberpact.federation.inbox import Inbox
from cyberpact.federation.models import Peer
from cyberpact.federation.schemas import (
    EventOut,
    IssuedRosterOut,
    MessageSend,
    NodeOut,
    OutboxOut,
    PeerAdd,
    PeerOut,
    PublisherAdd,
    PublisherOut,
    RosterImport,
    RosterOutcomeOut,
    RosterSign,
    RosterSigned,
)
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import MalformedInput, PayloadTooLarge, PermissionDenied, UnsupportedMediaType
from cyberpact.kit.http import ReadSession, WriteSession, get_database, read_limited
from cyberpact.kit.keystore import KeyStore

public = APIRouter(tags=["federation"])
router = APIRouter(prefix="/api/v1/federation", tags=["federation"])
Admin = Annotated[Actor, Depends(require_roles("admin"))]
Sender = Annotated[Actor, Depends(require_roles("admin", "officer", "contact_point", "central_authority"))]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


@public.get("/.well-known/cyberpact/node-card")
def node_card(session: ReadSession) -> JSONResponse:
    """This node's current card and every earlier one, each vouched for by its predecessor's key."""
    return JSONResponse(identity.card_document(session), headers={"Cache-Control": "max-age=60"})


def _parse_batch(body: bytes) -> list[str]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedInput("The batch is not JSON") from exc
    envelopes = doc.get("envelopes") if isinstance(doc, dict) else None
    if not isinstance(envelopes, list) or not envelopes or set(doc) != {"envelopes"}:
        raise MalformedInput('The batch must be {"envelopes": [<compact JWE>, ...]}')
    if len(envelopes) > 1000:
        raise PayloadTooLarge("at most 1,000 envelopes per batch")
    if not all(isinstance(e, str) for e in envelopes):
        raise MalformedInput("every envelope must be a string (compact JWE)")
    return envelopes


@public.post("/federation/v1/inbox")
async def inbox(request: Request) -> JSONResponse:
    """Take a batch of envelopes; answer one signed receipt per envelope, in order."""
    settings = _settings(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != outbox.BATCH_MEDIA_TYPE:
        raise UnsupportedMediaType(f"send {outbox.BATCH_MEDIA_TYPE}, not {media or 'nothing'}")
    tokens = _parse_batch(await read_limited(request, settings.max_batch_bytes))
    db, keys = get_database(request), _keys(request)

    def refresh(session: Session, peer: Peer) -> bool:
        with peers.http_client(settings, timeout=5) as client:
            return peers.refresh_card(session, settings, client, peer)

    def receive() -> list[dict[str, Any]]:
        with db.transaction(read_only=True) as session:
            opened = Inbox(session, keys, settings).open_batch(tokens)
        for attempt in range(2):
            try:
                with db.transaction() as session:
                    inbox = Inbox(session, keys, settings, refresh)
                    return [o.as_dict() for o in inbox.receive_batch(tokens, opened)]
            except IntegrityError:
                # Another request stored one of these messages meanwhile (a sender retrying after a
                # timeout); the second pass finds it and answers it as a duplicate.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    return JSONResponse({"receipts": await run_in_threadpool(receive)})


@router.get("/node", response_model=NodeOut)
def node(_: Admin, session: ReadSession) -> NodeOut:
    card = identity.current_card(session)
    assert card is not None
    payload = identity.read_card(json.loads(card.card))
    return NodeOut(
        node_id=payload.node_id,
        name=payload.name,
        base_url=payload.base_url,
        fingerprint=payload.fingerprint,
        card_seq=card.seq,
        sig_kid=card.sig_kid,
        enc_kid=card.enc_kid,
    )


@router.get("/peers", response_model=list[PeerOut])
def list_peers(_: Admin, session: ReadSession) -> list[PeerOut]:
    return _peers_out(session, peers.list_peers(session))


@router.post("/peers", status_code=201, response_model=PeerOut)
def add_peer(body: PeerAdd, actor: Admin, session: WriteSession, request: Request) -> PeerOut:
    settings = _settings(request)
    url = peers.check_peer_url(settings, body.url)
    with peers.http_client(settings, timeout=10) as client:
        doc = peers.fetch_card_document(client, url)
    return _peers_out(session, [peers.add_peer(session, actor, settings, doc, url, body.fingerprint)])[0]


@router.post("/roster", response_model=RosterOutcomeOut)
def import_roster(body: RosterImport, actor: Admin, request: Request) -> RosterOutcomeOut:
    """Pin the nodes a trusted publisher's signed roster lists (see ``roster.take``)."""
    result = roster.take(get_database(request), actor, _settings(request), body.roster)
    return RosterOutcomeOut(**result.as_dict())


@router.post("/roster/signed", status_code=201, response_model=RosterSigned)
def sign_roster(body: RosterSign, actor: Admin, session: WriteSession, request: Request) -> RosterSigned:
    """Sign, as this node, a roster of the nodes it vouches for (by default its active peers)."""
    nodes = body.nodes if body.nodes is not None else roster.entries_from_peers(session)
    signed = roster.sign(session, _keys(request), _settings(request), actor, nodes, days=body.days)
    return RosterSigned(roster=signed.token, nodes=len(nodes), serial=signed.serial)


@router.get("/roster/signed", response_model=list[IssuedRosterOut])
def list_signed_rosters(
    _: Admin, session: ReadSession, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[IssuedRosterOut]:
    """The rosters this node signed, newest first."""
    return [IssuedRosterOut.model_validate(r) for r in roster.list_issued(session, limit)]


@router.get("/roster/publishers", response_model=list[PublisherOut])
def list_publishers(_: Admin, session: ReadSession) -> list[PublisherOut]:
    return [PublisherOut.model_validate(p) for p in roster.list_publishers(session)]


@router.post("/roster/publishers", status_code=201, response_model=PublisherOut)
def trust_publisher(body: PublisherAdd, actor: Admin, session: WriteSession) -> PublisherOut:
    return PublisherOut.model_validate(roster.trust_publisher(session, actor, body.node_id))


@router.delete("/roster/publishers/{node_id}", status_code=204)
def distrust_publisher(node_id: str, actor: Admin, session: WriteSession) -> None:
    roster.distrust_publisher(session, actor, node_id)


@router.post("/peers/{node_id}/{action}", response_model=PeerOut)
def peer_status(node_id: str, action: str, actor: Admin, session: WriteSession) -> PeerOut:
    status = {"suspend": "suspended", "resume": "active", "remove": "removed"}.get(action)
    if status is None:
        raise MalformedInput("action must be suspend, resume or remove")
    return _peers_out(session, [peers.set_status(session, actor, node_id, status)])[0]


def _peers_out(session: Session, rows: Sequence[Peer]) -> list[PeerOut]:
    in_force = peers.keys_in_force(session, rows)
    stored = PeerOut.model_fields.keys() - {"fingerprint", "rotated_at"}
    return [
        PeerOut(
            **{name: getattr(p, name) for name in stored},
            fingerprint=in_force[p.node_id].fingerprint,
            rotated_at=in_force[p.node_id].rotated_at,
        )
        for p in rows
    ]


@router.post("/messages", status_code=202, response_model=OutboxOut)
def send(body: MessageSend, actor: Sender, session: WriteSession, request: Request) -> OutboxOut:
    if handlers.handler_for(body.message_type) is not None and not handlers.is_direct(body.message_type):
        # A request, a step of its life cycle, evidence or intel written by hand would reach the peer
        # signed by this node without the approval, role and state checks of the feature that owns it.
        raise PermissionDenied(
            f"{body.message_type} messages are sent by their own feature (requests, evidence, intel), "
            "never written by hand"
        )
    conversations.check_note(session, actor, body.recipient, body.conversation_id, body.in_reply_to)
    row = outbox.enqueue(
        session,
        actor,
        recipient=body.recipient,
        message_type=body.message_type,
        payload=body.payload,
        conversation_id=body.conversation_id,
        in_reply_to=body.in_reply_to,
    )
    outbox.wake_workers(request.app)
    return OutboxOut.model_validate(row)


@router.get("/outbox", response_model=list[OutboxOut])
def list_outbox(
    _: Admin,
    session: ReadSession,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[OutboxOut]:
    return [OutboxOut.model_validate(m) for m in outbox.list_messages(session, status, limit)]


@router.post("/outbox/{message_id}/retry", response_model=OutboxOut)
def retry(message_id: str, actor: Admin, session: WriteSession) -> OutboxOut:
    return OutboxOut.model_validate(outbox.retry(session, actor, message_id))


@router.get("/conversations/{conversation_id}/events", response_model=list[EventOut])
def events(conversation_id: str, actor: Sender, session: WriteSession) -> list[EventOut]:
    return [EventOut.model_validate(r) for r in conversations.read_events(session, actor, conversation_id)]
