"""This node's identity: its node card, its fingerprint, and key rotation with a continuity chain.

A card is a JWS (general JSON serialization) over the RFC 8785 form of the card. The first card is signed
by its own signing key; every later card is signed by its own key *and* by the signing key of the card
before it, so a peer that pinned any earlier card can follow the chain to the current one without asking
a person again.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.config import Settings
from cyberpact.federation.models import NodeCard
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import IntegrityFailure
from cyberpact.kit.keystore import KeyStore, NodeKey
from cyberpact.kit.time import parse_rfc3339, rfc3339, utcnow

CARD_TYP = "cyberpact-node-card+jws"
CARD_VERSION = 1


def fingerprint(sig_jwk: dict[str, Any]) -> str:
    """A short, speakable form of a signing key's RFC 7638 thumbprint, for comparison by phone.

    160 bits in base32, in groups of four: long enough that a collision is out of reach, short enough to
    read aloud.
    """
    digest = base64.urlsafe_b64decode(crypto.thumbprint(sig_jwk) + "=")
    text = base64.b32encode(digest[:20]).decode()
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def normalize_fingerprint(value: str) -> str:
    raw = "".join(ch for ch in value.upper() if ch.isalnum())
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@dataclass(frozen=True)
class CardInfo:
    """A card whose signatures have been checked."""

    node_id: str
    name: str
    country: str | None
    authority: str | None
    roles: list[str]
    base_url: str
    seq: int
    sig_jwk: dict[str, Any]
    enc_jwk: dict[str, Any]
    valid_from: datetime
    valid_until: datetime
    prev_sig_kid: str | None
    raw: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.sig_jwk)


def _card_payload(
    settings: Settings, seq: int, sig: NodeKey, enc: NodeKey, prev_kid: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "typ": "cyberpact-node-card",
        "v": CARD_VERSION,
        "node_id": settings.node_id,
        "name": settings.node_name,
        "country": settings.node_country,
        "authority": settings.node_authority,
        "roles": settings.roles,
        "base_url": settings.base_url.rstrip("/"),
        "seq": seq,
        "keys": [
            {**sig.public_jwk, "use": "sig", "alg": crypto.SIG_ALG},
            {**enc.public_jwk, "use": "enc", "alg": "ECDH-ES+A256KW"},
        ],
        "prev_sig_kid": prev_kid,
        "valid_from": rfc3339(now),
        "valid_until": rfc3339(now + timedelta(days=settings.card_validity_days)),
    }


def current_card(session: Session) -> NodeCard | None:
    return session.scalars(select(NodeCard).order_by(NodeCard.seq.desc()).limit(1)).first()


def card_history(session: Session) -> list[NodeCard]:
    return list(session.scalars(select(NodeCard).order_by(NodeCard.seq)))


def _issue(
    session: Session,
    keys: KeyStore,
    settings: Settings,
    actor: Actor,
    signers: list[OKPKey],
    prev_kid: str | None,
) -> NodeCard:
    sig, enc = keys.ensure(session, "sig"), keys.ensure(session, "enc")
    last = current_card(session)
    seq = (last.seq + 1) if last else 1
    now = utcnow()
    payload = _card_payload(settings, seq, sig, enc, prev_kid, now)
    obj = crypto.sign_json_multi(payload, [keys.private(sig), *signers], CARD_TYP)
    row = NodeCard(
        seq=seq, card=json.dumps(obj, separators=(",", ":")), sig_kid=sig.kid, enc_kid=enc.kid, issued_at=now
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "federation.card.issue",
        "node_card",
        seq,
        detail={"sig_kid": sig.kid, "enc_kid": enc.kid, "fingerprint": fingerprint(sig.public_jwk)},
    )
    return row


def ensure_card(session: Session, keys: KeyStore, settings: Settings, actor: Actor) -> NodeCard:
    """The current card, re-issued (same keys) when the settings it states have changed or it nears expiry."""
    last = current_card(session)
    sig, enc = keys.ensure(session, "sig"), keys.ensure(session, "enc")
    if last is not None and last.sig_kid == sig.kid and last.enc_kid == enc.kid:
        payload, _ = crypto.signatures_of(json.loads(last.card))
        fresh = _card_payload(settings, last.seq, sig, enc, payload.get("prev_sig_kid"), utcnow())
        same = all(
            payload.get(k) == fresh[k]
            for k in ("node_id", "name", "country", "authority", "roles", "base_url")
        )
        expiring = parse_rfc3339(payload["valid_until"]) - utcnow() < timedelta(days=7)
        if same and not expiring:
            return last
    prev_kid = last.sig_kid if last is not None and last.sig_kid != sig.kid else None
    signers = [keys.private(session.get_one(NodeKey, prev_kid))] if prev_kid else []
    return _issue(session, keys, settings, actor, signers, prev_kid)


def rotate(session: Session, keys: KeyStore, settings: Settings, actor: Actor) -> NodeCard:
    """New signing and encryption keys, announced by a card the old signing key vouches for."""
    old_sig = keys.ensure(session, "sig")
    old_enc = keys.ensure(session, "enc")
    old_private = keys.private(old_sig)
    now = utcnow()
    old_sig.retired_at = now
    old_enc.retired_at = now
    session.flush()
    keys.create(session, "sig")
    keys.create(session, "enc")
    audit.record(session, actor, "federation.keys.rotate", "node_key", old_sig.kid)
    return _issue(session, keys, settings, actor, [old_private], old_sig.kid)


def read_card(obj: Any, trusted_sig_jwks: list[dict[str, Any]] | None = None) -> CardInfo:
    """Check a card's self-signature and, when ``trusted_sig_jwks`` is given, that one of them vouches.

    Raises :class:`IntegrityFailure` naming what is wrong.
    """
    payload, compact = crypto.signatures_of(obj)
    if not isinstance(payload, dict) or payload.get("typ") != "cyberpact-node-card":
        raise IntegrityFailure("not a cyberpact node card")
    try:
        keys = {k["use"]: k for k in payload["keys"]}
        sig_jwk, enc_jwk = keys["sig"], keys["enc"]
        info = CardInfo(
            node_id=str(payload["node_id"]),
            name=str(payload["name"]),
            country=payload.get("country"),
            authority=payload.get("authority"),
            roles=list(payload.get("roles") or []),
            base_url=str(payload["base_url"]),
            seq=int(payload["seq"]),
            sig_jwk={k: sig_jwk[k] for k in ("kty", "crv", "x", "kid")},
            enc_jwk={k: enc_jwk[k] for k in ("kty", "crv", "x", "kid")},
            valid_from=parse_rfc3339(payload["valid_from"]),
            valid_until=parse_rfc3339(payload["valid_until"]),
            prev_sig_kid=payload.get("prev_sig_kid"),
            raw=obj,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityFailure(f"node card is incomplete: {exc}") from exc
    if sig_jwk.get("crv") != "Ed25519" or enc_jwk.get("crv") != "X25519":
        raise IntegrityFailure("node card keys must be Ed25519 (sig) and X25519 (enc)")
    for jwk in (info.sig_jwk, info.enc_jwk):
        if crypto.thumbprint(jwk) != jwk["kid"]:
            raise IntegrityFailure("node card key id is not the key's thumbprint")
    own = compact.get(info.sig_jwk["kid"])
    if own is None:
        raise IntegrityFailure("node card is not signed by its own key")
    crypto.verify_json(own, crypto.import_public(info.sig_jwk))
    if trusted_sig_jwks is not None:
        for jwk in trusted_sig_jwks:
            token = compact.get(jwk["kid"])
            if token is not None:
                crypto.verify_json(token, crypto.import_public(jwk))
                break
        else:
            raise IntegrityFailure("node card is not vouched for by any key already trusted for this node")
    return info


def card_document(session: Session) -> dict[str, Any]:
    """What ``/.well-known/cyberpact/node-card`` serves: the current card and the ones before it."""
    history = card_history(session)
    if not history:
        raise IntegrityFailure("this node has no card yet")
    return {"card": json.loads(history[-1].card), "history": [json.loads(c.card) for c in history[:-1]]}


def card_digest(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
