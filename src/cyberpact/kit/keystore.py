"""The node's own key pairs, private halves sealed under the node passphrase.

Decrypted keys are cached per process by key id: unlocking costs a deliberate ~60 ms of PBKDF2, which
must not be paid per request.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime
from typing import Any, Literal

from joserfc.jwk import OKPKey
from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cyberpact.kit import crypto
from cyberpact.kit.db import Base
from cyberpact.kit.errors import ConfigurationError
from cyberpact.kit.time import utcnow

Purpose = Literal["sig", "enc"]
_CURVE: dict[str, crypto.Curve] = {"sig": "Ed25519", "enc": "X25519"}


class NodeKey(Base):
    __tablename__ = "node_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(8), index=True)
    public_jwk: Mapped[dict[str, Any]]
    sealed_private: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]


class KeyStore:
    """Access to this node's keys; the only holder of the passphrase."""

    def __init__(self, passphrase: str, kdf_iterations: int = crypto.DEFAULT_KDF_ITERATIONS) -> None:
        if not passphrase:
            raise ConfigurationError("no key passphrase: set CYBERPACT_KEY_PASSPHRASE or ..._FILE")
        self._passphrase = passphrase
        self._iterations = kdf_iterations
        self._cache: dict[str, OKPKey] = {}
        self._secrets: dict[str, bytes] = {}  # unsealed symmetric keys (the KEK), by key id
        self._lock = threading.Lock()

    def create(self, session: Session, purpose: Purpose) -> NodeKey:
        key = crypto.generate_key(_CURVE[purpose])
        jwk = crypto.public_jwk(key)
        row = NodeKey(
            kid=jwk["kid"],
            purpose=purpose,
            public_jwk=jwk,
            sealed_private=crypto.seal_private_key(key, self._passphrase, self._iterations),
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        with self._lock:
            self._cache[row.kid] = key
        return row

    def current(self, session: Session, purpose: Purpose) -> NodeKey | None:
        return session.scalars(
            select(NodeKey)
            .where(NodeKey.purpose == purpose, NodeKey.retired_at.is_(None))
            .order_by(NodeKey.created_at.desc())
            .limit(1)
        ).first()

    def ensure(self, session: Session, purpose: Purpose) -> NodeKey:
        return self.current(session, purpose) or self.create(session, purpose)

    def private(self, row: NodeKey) -> OKPKey:
        with self._lock:
            cached = self._cache.get(row.kid)
        if cached is not None:
            return cached
        key = crypto.open_private_key(row.sealed_private, self._passphrase)
        with self._lock:
            self._cache[row.kid] = key
        return key

    def signing_key(self, session: Session) -> tuple[NodeKey, OKPKey]:
        row = self.ensure(session, "sig")
        return row, self.private(row)


def public_keys(session: Session, purpose: Purpose | None = None) -> list[NodeKey]:
    """This node's keys, oldest first: their public halves need no passphrase (a checker of signatures
    that must not hold one, such as the audit chain's background check, reads them here)."""
    query = select(NodeKey).order_by(NodeKey.created_at)
    if purpose:
        query = query.where(NodeKey.purpose == purpose)
    return list(session.scalars(query))


# --- the key-encryption key (purpose "kek") -----------------------------------------------------------
# Symmetric, so its "public" record carries only the key id. Sealed under the passphrase like the private
# keys above; a KMS- or HSM-backed node would implement crypto.KeyEncryptionKey instead of using these.

KEK_PURPOSE = "kek"


def _kek_row(session: Session, keys: KeyStore) -> NodeKey:
    row = session.scalars(
        select(NodeKey)
        .where(NodeKey.purpose == KEK_PURPOSE, NodeKey.retired_at.is_(None))
        .order_by(NodeKey.created_at.desc())
        .limit(1)
    ).first()
    if row is not None:
        return row
    raw = crypto.new_data_key()
    kid = "kek-" + secrets.token_hex(12)
    row = NodeKey(
        kid=kid,
        purpose=KEK_PURPOSE,
        public_jwk={"kty": "oct", "kid": kid, "use": KEK_PURPOSE},
        sealed_private=crypto.seal_secret_key(raw, keys._passphrase, keys._iterations),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    with keys._lock:
        keys._secrets[kid] = raw
    return row


def _kek_of(keys: KeyStore, row: NodeKey) -> crypto.LocalKek:
    with keys._lock:
        raw = keys._secrets.get(row.kid)
    if raw is None:
        raw = crypto.open_secret_key(row.sealed_private, keys._passphrase)
        with keys._lock:
            keys._secrets[row.kid] = raw
    return crypto.LocalKek(row.kid, raw)


def current_kek(session: Session, keys: KeyStore) -> crypto.LocalKek:
    """The KEK new data keys are wrapped with, created on first use."""
    return _kek_of(keys, _kek_row(session, keys))


def kek_by_id(session: Session, keys: KeyStore, kek_id: str) -> crypto.LocalKek:
    """The KEK that wrapped an existing data key, current or retired."""
    row = session.get(NodeKey, kek_id)
    if row is None or row.purpose != KEK_PURPOSE:
        raise ConfigurationError(f"the key-encryption key {kek_id!r} is not in this node's keystore")
    return _kek_of(keys, row)
