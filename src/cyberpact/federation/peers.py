"""Trusted peers: pinning by fingerprint, following key rotation, suspending and removing."""

from __future__ import annotations

import json
import ssl
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.config import Settings
from cyberpact.federation.identity import CardInfo, normalize_fingerprint, read_card
from cyberpact.federation.models import Peer, PeerKey
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import Conflict, IntegrityFailure, InvalidInput, NotFound, Problem
from cyberpact.kit.time import rfc3339, utcnow

CARD_PATH = "/.well-known/cyberpact/node-card"
# Clocks of two authorities disagree a little; a card issued a moment ago elsewhere is not "from the future".
CARD_CLOCK_SKEW = timedelta(minutes=5)
FEDERATION_ACTOR = Actor(user_id=None, username="system", source="federation")
STATUSES = ("active", "suspended", "removed")


def http_client(settings: Settings, timeout: float = 30.0) -> httpx.Client:
    """The one way this node makes outbound HTTP calls to peers: TLS verified against the configured CA
    bundle (or the system's), no redirects followed (a redirect could move a pinned peer elsewhere)."""
    verify: Any = (
        ssl.create_default_context(cafile=str(settings.tls_ca_bundle)) if settings.tls_ca_bundle else True
    )
    return httpx.Client(
        timeout=timeout,
        verify=verify,
        follow_redirects=False,
        headers={"User-Agent": f"cyberpact/{settings.node_id}"},
    )


def body_once(body: bytes) -> tuple[Iterator[bytes], dict[str, str]]:
    """A request body for :func:`http_client` calls that is let go as soon as it is sent.

    httpx keeps each request and its response in a reference cycle, so a plain ``content=`` body lives
    until the cycle collector next runs: a transfer sending 4 MiB chunks held 100 MB and more of sent
    chunks that way. A generator drops its reference when exhausted; the explicit ``Content-Length``
    keeps the request out of chunked encoding. Returns the ``content`` and the header to send.
    """

    return _once(body), {"Content-Length": str(len(body))}


def _once(data: bytes) -> Iterator[bytes]:
    yield data


def check_peer_url(settings: Settings, url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise InvalidInput("Bad peer URL", [Problem("url", "must be an http(s) URL")])
    if settings.tls_required and not url.startswith("https://"):
        raise InvalidInput("Bad peer URL", [Problem("url", "peers are reached over HTTPS only outside dev")])
    return url


def fetch_card_document(client: httpx.Client, base_url: str) -> dict[str, Any]:
    try:
        response = client.get(base_url + CARD_PATH)
    except httpx.HTTPError as exc:
        raise IntegrityFailure(
            f"cannot fetch the node card from {base_url}: {type(exc).__name__}: {exc}"
        ) from exc
    if response.status_code != 200:
        raise IntegrityFailure(f"{base_url} answered {response.status_code} for its node card")
    try:
        doc = response.json()
    except ValueError as exc:
        raise IntegrityFailure(f"{base_url} served a node card that is not JSON") from exc
    if not isinstance(doc, dict) or "card" not in doc:
        raise IntegrityFailure(f"{base_url} served no node card")
    return doc


def refresh_card(session: Session, settings: Settings, client: httpx.Client, peer: Peer) -> bool:
    """Fetch the peer's card from where it lives and follow any rotation it announces; whether it moved.

    Both directions need this: the inbox when an envelope is signed by a key it does not know yet, the
    outbox when a receipt is."""
    doc = fetch_card_document(client, peer.base_url)
    return follow_rotation(session, FEDERATION_ACTOR, settings, peer, doc)


def _check_current(settings: Settings, info: CardInfo) -> None:
    """A card is trusted only while in force, and only for a URL the transport policy allows: the card,
    not the URL an administrator typed, decides where messages go from then on."""
    now = utcnow()
    if info.valid_until <= now:
        raise IntegrityFailure(f"{info.node_id}'s node card expired at {rfc3339(info.valid_until)}")
    if info.valid_from > now + CARD_CLOCK_SKEW:
        raise IntegrityFailure(f"{info.node_id}'s node card is not valid before {rfc3339(info.valid_from)}")
    try:
        check_peer_url(settings, info.base_url)
    except InvalidInput as exc:
        raise IntegrityFailure(
            f"{info.node_id}'s node card names an unusable URL: {exc.problems[0].message}"
        ) from None


def _retire_keys(session: Session, node_id: str, at: datetime, keep: Collection[str] = ()) -> None:
    """End every key of the peer still in force at ``at`` but those in ``keep``, which are in force again.

    A peer removed and pinned anew (rebuilt after a compromise, or a new identity at the same node id)
    trusts the keys of the card just checked by fingerprint and no other: an old key left open would still
    verify messages and, tying on card_seq, could even be chosen to encrypt to. Ended rather than deleted,
    so that what the old keys signed before still verifies in proofs."""
    for key in session.scalars(select(PeerKey).where(PeerKey.peer_id == node_id)):
        if key.kid in keep:
            key.valid_until = None
        elif key.valid_until is None or key.valid_until > at:
            key.valid_until = at


def _store_keys(session: Session, peer: Peer, info: CardInfo) -> None:
    for use, jwk in (("sig", info.sig_jwk), ("enc", info.enc_jwk)):
        if session.get(PeerKey, (peer.node_id, jwk["kid"])) is None:
            session.add(
                PeerKey(
                    peer_id=peer.node_id,
                    kid=jwk["kid"],
                    use=use,
                    jwk=jwk,
                    card_seq=info.seq,
                    valid_from=info.valid_from,
                    valid_until=None,
                )
            )


def add_peer(
    session: Session,
    actor: Actor,
    settings: Settings,
    doc: dict[str, Any],
    url: str,
    expected_fingerprint: str,
) -> Peer:
    """Trust the node whose card is ``doc``, only if its key matches the fingerprint checked out of band."""
    info = read_card(doc["card"])
    if normalize_fingerprint(expected_fingerprint) != info.fingerprint:
        raise IntegrityFailure(
            f"fingerprint mismatch: the card at {url} has {info.fingerprint}, not "
            f"{normalize_fingerprint(expected_fingerprint)}; do not trust it until you know why"
        )
    _check_current(settings, info)
    if info.node_id == settings.node_id:
        raise InvalidInput("Cannot add this node as its own peer", [Problem("url", "that is this node")])
    existing = session.get(Peer, info.node_id)
    if existing is not None and existing.status != "removed":
        raise Conflict(f"{info.node_id} is already a peer ({existing.status})")
    now = utcnow()
    if existing is None:
        existing = Peer(node_id=info.node_id, added_at=now)
        session.add(existing)
    existing.name, existing.country, existing.authority = info.name, info.country, info.authority
    existing.roles, existing.base_url, existing.status = info.roles, info.base_url, "active"
    existing.pinned_fingerprint, existing.card_seq = info.fingerprint, info.seq
    existing.card, existing.updated_at = _dump(doc["card"]), now
    session.flush()
    _retire_keys(session, existing.node_id, now, keep={info.sig_jwk["kid"], info.enc_jwk["kid"]})
    _store_keys(session, existing, info)
    session.flush()
    audit.record(
        session,
        actor,
        "federation.peer.add",
        "peer",
        info.node_id,
        detail={"url": url, "fingerprint": info.fingerprint, "seq": info.seq},
    )
    return existing


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def follow_rotation(
    session: Session, actor: Actor, settings: Settings, peer: Peer, doc: dict[str, Any]
) -> bool:
    """Walk the peer's newer cards, each vouched for by the signing key of the one before.

    Old keys stay, with the end of their validity, so that history still verifies. Returns whether the
    peer's card moved forward. The newest card must be in force and state a URL this node may use; the
    cards before it are links of the chain and may have expired since.
    """
    cards = [read_card(c) for c in [*doc.get("history", []), doc["card"]]]
    newer = sorted((c for c in cards if c.seq > peer.card_seq), key=lambda c: c.seq)
    if not newer:
        return False
    _check_current(settings, newer[-1])
    trusted = [
        k.jwk
        for k in session.scalars(
            select(PeerKey).where(
                PeerKey.peer_id == peer.node_id, PeerKey.use == "sig", PeerKey.valid_until.is_(None)
            )
        )
    ]
    for card in newer:
        info = read_card(card.raw, trusted)
        if info.node_id != peer.node_id:
            raise IntegrityFailure(f"{peer.node_id}'s card chain names another node ({info.node_id})")
        if info.sig_jwk["kid"] not in {k["kid"] for k in trusted}:
            for old in session.scalars(
                select(PeerKey).where(PeerKey.peer_id == peer.node_id, PeerKey.valid_until.is_(None))
            ):
                old.valid_until = info.valid_from
        _store_keys(session, peer, info)
        session.flush()
        trusted = [info.sig_jwk]
        peer.card_seq, peer.card = info.seq, json.dumps(card.raw, separators=(",", ":"))
        peer.base_url, peer.name, peer.roles = info.base_url, info.name, info.roles
    peer.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor,
        "federation.peer.rotate",
        "peer",
        peer.node_id,
        detail={"seq": peer.card_seq, "sig_kid": newer[-1].sig_jwk["kid"]},
    )
    return True


def get_peer(session: Session, node_id: str) -> Peer:
    peer = session.get(Peer, node_id)
    if peer is None:
        raise NotFound(f"No peer {node_id}")
    return peer


def named(peer: Peer) -> str:
    """A peer as messages to people name it: its name, and the id that tells two of one State apart."""
    return f"{peer.name} ({peer.node_id})"


def find_peer(session: Session, node_id: str) -> Peer | None:
    """The peer's row, loaded once per transaction however often it is asked for.

    The session's identity map holds rows only weakly, so a row nobody keeps is dropped and loaded again
    at the next ``session.get`` (which first flushes everything pending): once per message when queueing
    or receiving a batch. Kept here, in ``session.info``, for the session's life; status changes made in
    the same session are seen, since it is the same object.
    """
    known: dict[str, Peer | None] = session.info.setdefault("cyberpact.peers", {})
    if node_id not in known:
        known[node_id] = session.get(Peer, node_id)
    return known[node_id]


def list_peers(session: Session, include_removed: bool = False) -> list[Peer]:
    query = select(Peer).order_by(Peer.node_id)
    if not include_removed:
        query = query.where(Peer.status != "removed")
    return list(session.scalars(query))


@dataclass(frozen=True)
class KeyInForce:
    """What an administrator reads out to compare with a peer's: the fingerprint of the card in force.

    The pinned fingerprint is the one checked at first contact; each rotation the peer announced since
    (followed without asking anyone, each card vouched for by the one before) moved its key on, and a
    person comparing by telephone with the pinned one would read a stale key and take the peer for an
    impostor."""

    fingerprint: str
    pinned: str
    # When the signing key in force took over from the pinned one; None while the pinned one is in force.
    rotated_at: datetime | None


def keys_in_force(session: Session, rows: Iterable[Peer]) -> dict[str, KeyInForce]:
    """Each peer's :class:`KeyInForce`, by node id."""
    rows = list(rows)
    since = {
        (k.peer_id, k.kid): k.valid_from
        for k in session.scalars(
            select(PeerKey).where(PeerKey.peer_id.in_([p.node_id for p in rows]), PeerKey.use == "sig")
        )
    }
    found: dict[str, KeyInForce] = {}
    for peer in rows:
        # The card kept is the one whose signatures were checked when it was taken, pinned or followed.
        info = read_card(json.loads(peer.card))
        rotated = None
        if info.fingerprint != peer.pinned_fingerprint:
            rotated = since.get((peer.node_id, info.sig_jwk["kid"]), info.valid_from)
        found[peer.node_id] = KeyInForce(info.fingerprint, peer.pinned_fingerprint, rotated)
    return found


def set_status(session: Session, actor: Actor, node_id: str, status: str) -> Peer:
    if status not in STATUSES:
        raise InvalidInput("Unknown peer status", [Problem("status", f"one of {', '.join(STATUSES)}")])
    peer = get_peer(session, node_id)
    before = peer.status
    if before == "removed" and status != "removed":
        raise Conflict(f"{node_id} was removed; add it again with its fingerprint")
    peer.status, peer.updated_at = status, utcnow()
    if status == "removed":
        # Whatever the removed node signs from now on is no longer its word, even replayed within the
        # freshness window after it is pinned again.
        _retire_keys(session, node_id, peer.updated_at)
    session.flush()
    audit.record(
        session,
        actor,
        f"federation.peer.{status}",
        "peer",
        node_id,
        detail={"before": before, "after": status},
    )
    return peer


def sender_key(session: Session, node_id: str, kid: str) -> PeerKey | None:
    return session.get(PeerKey, (node_id, kid))


def encryption_jwk(session: Session, node_id: str) -> dict[str, Any]:
    key = session.scalars(
        select(PeerKey)
        .where(PeerKey.peer_id == node_id, PeerKey.use == "enc", PeerKey.valid_until.is_(None))
        .order_by(PeerKey.card_seq.desc())
        .limit(1)
    ).first()
    if key is None:
        raise NotFound(f"No current encryption key for peer {node_id}")
    return dict(key.jwk)


def public_key(row: PeerKey) -> OKPKey:
    return crypto.import_public(row.jwk)
