"""The only module that touches key material.

Built on ``cryptography`` through the ``joserfc`` JOSE library: Ed25519 signatures with the fully
specified ``Ed25519`` JWS algorithm (RFC 9864), X25519 key agreement for JWE, and private keys kept at
rest as JWE objects encrypted under the node passphrase (PBES2-HS512+A256KW, RFC 7518 section 4.8), so a
stolen database or backup reveals no private key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from functools import lru_cache
from typing import Any, Literal, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey, OKPKey

from cyberpact.kit.canonical import canonical_json
from cyberpact.kit.errors import ConfigurationError, IntegrityFailure

SIG_ALG = "Ed25519"
KEY_WRAP_ALG = "PBES2-HS512+A256KW"
CONTENT_ENC = "A256GCM"
# OWASP's 2023 figure for PBKDF2-HMAC-SHA512; joserfc caps p2c at 300,000.
DEFAULT_KDF_ITERATIONS = 210_000

Curve = Literal["Ed25519", "X25519"]


def generate_key(curve: Curve) -> OKPKey:
    return OKPKey.generate_key(curve, private=True)


def public_jwk(key: OKPKey) -> dict[str, Any]:
    jwk = key.as_dict(private=False)
    jwk["kid"] = thumbprint(jwk)
    return {k: jwk[k] for k in ("kty", "crv", "x", "kid")}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url), used as key id and as the out-of-band fingerprint."""
    members = (jwk["crv"], jwk["kty"], jwk["x"])
    if all(isinstance(m, str) for m in members):
        return _thumbprint(*members)
    return _thumbprint.__wrapped__(*members)  # not a key anyone holds; nothing to cache


# Cached: a node seals and opens every message with the same few keys, and each envelope names its keys by
# thumbprint; recomputing it and re-importing the peer's key cost 5 % of sealing. Public values only.
@lru_cache(maxsize=1024)
def _thumbprint(crv: Any, kty: Any, x: Any) -> str:
    members = {"crv": crv, "kty": kty, "x": x}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def import_public(jwk: dict[str, Any]) -> OKPKey:
    try:
        members = (jwk["kty"], jwk["crv"], jwk["x"])
        return _import_public(*members)
    except (KeyError, TypeError) as exc:  # TypeError: a member that cannot be a cache key (a list)
        raise IntegrityFailure(f"not a usable OKP public key: {exc}") from exc


@lru_cache(maxsize=256)
def _import_public(kty: Any, crv: Any, x: Any) -> OKPKey:
    """One key object per public key, shared: joserfc keys are not changed after import."""
    try:
        key = OKPKey.import_key({"kty": kty, "crv": crv, "x": x})
    except (ValueError, TypeError, JoseError) as exc:
        raise IntegrityFailure(f"not a usable OKP public key: {exc}") from exc
    if key.is_private:
        raise IntegrityFailure("a public key was expected, a private key was given")
    return key


def seal_private_key(key: OKPKey, passphrase: str, iterations: int = DEFAULT_KDF_ITERATIONS) -> str:
    """Encrypt a private key under a passphrase as a compact JWE (PBES2)."""
    if not passphrase:
        raise ConfigurationError("an empty key passphrase cannot protect a private key")
    header = {"alg": KEY_WRAP_ALG, "enc": CONTENT_ENC, "p2c": iterations, "cty": "jwk+json"}
    payload = json.dumps(key.as_dict(private=True)).encode()
    return jwe.encrypt_compact(
        header, payload, OctKey.import_key(passphrase.encode()), algorithms=[KEY_WRAP_ALG, CONTENT_ENC]
    )


def open_private_key(sealed: str, passphrase: str) -> OKPKey:
    try:
        obj = jwe.decrypt_compact(
            sealed, OctKey.import_key(passphrase.encode()), algorithms=[KEY_WRAP_ALG, CONTENT_ENC]
        )
        assert obj.plaintext is not None
        return OKPKey.import_key(json.loads(obj.plaintext))
    except (JoseError, ValueError) as exc:
        raise ConfigurationError(
            "cannot unlock the node's private keys: wrong CYBERPACT_KEY_PASSPHRASE or damaged key record"
        ) from exc


AGREEMENT_ALG = "ECDH-ES+A256KW"


def wrap_for(recipient_jwk: dict[str, Any], secret: bytes, typ: str) -> str:
    """``secret`` as a compact JWE that only the holder of the recipient's X25519 private key opens
    (ECDH-ES+A256KW, A256GCM). For a key that travels inside a signed message and is then stored: the
    message's own encryption protects it on the wire, not in the outbox or the inbox."""
    key = import_public(recipient_jwk)
    kid = recipient_jwk.get("kid")
    if key.curve_name != "X25519" or not isinstance(kid, str):
        raise ValueError("the recipient key must be an X25519 public JWK with a kid")
    header = {"alg": AGREEMENT_ALG, "enc": CONTENT_ENC, "typ": typ, "kid": kid}
    return jwe.encrypt_compact(header, secret, key, algorithms=[AGREEMENT_ALG, CONTENT_ENC])


def wrapped_kid(token: str) -> str:
    """The recipient key id a :func:`wrap_for` token names, read before any key is looked up."""
    try:
        header = json.loads(base64.urlsafe_b64decode(token.split(".", 1)[0] + "=="))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityFailure(f"the wrapped key is not a compact JWE: {exc}") from exc
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str):
        raise IntegrityFailure("the wrapped key names no recipient key")
    return kid


def unwrap_with(private_key: OKPKey, token: str, typ: str) -> bytes:
    try:
        obj = jwe.decrypt_compact(token, private_key, algorithms=[AGREEMENT_ALG, CONTENT_ENC])
    except (JoseError, ValueError) as exc:
        raise IntegrityFailure(f"the wrapped key does not open with this node's key: {exc}") from exc
    if obj.protected.get("typ") != typ or obj.plaintext is None:
        raise IntegrityFailure(f"the wrapped key is not a {typ}")
    return bytes(obj.plaintext)


def sign_json(key: OKPKey, payload: Any, extra_header: dict[str, Any] | None = None) -> str:
    """Compact JWS (alg Ed25519) over the RFC 8785 canonical form of ``payload``."""
    header = {"alg": SIG_ALG, "kid": thumbprint(key.as_dict(private=False))}
    if extra_header:
        header.update(extra_header)
    return jws.serialize_compact(header, canonical_json(payload), key, algorithms=[SIG_ALG])


def verify_json(token: str, key: OKPKey) -> tuple[dict[str, Any], Any]:
    """Verify a compact JWS made by :func:`sign_json`; returns (protected header, payload)."""
    try:
        obj = jws.deserialize_compact(token, key, algorithms=[SIG_ALG])
        return dict(obj.protected), json.loads(obj.payload)
    except (JoseError, ValueError) as exc:
        raise IntegrityFailure(f"signature check failed: {exc}") from exc


def sign_json_multi(payload: Any, keys: list[OKPKey], typ: str) -> dict[str, Any]:
    """JWS general JSON serialization (RFC 7515 section 7.2.1): one payload, one signature per key.

    Used where a statement must be vouched for by two keys at once, such as a rotated node card signed
    by both the outgoing and the incoming key.
    """
    members: list[dict[str, Any]] = [
        {"protected": {"alg": SIG_ALG, "kid": thumbprint(k.as_dict(private=False)), "typ": typ}} for k in keys
    ]
    keyset = KeySet(
        [
            OKPKey.import_key({**k.as_dict(private=True), "kid": m["protected"]["kid"]})
            for k, m in zip(keys, members, strict=True)
        ]
    )
    return dict(jws.serialize_json(members, canonical_json(payload), keyset, algorithms=[SIG_ALG]))  # type: ignore[arg-type]


def signatures_of(obj: Any) -> tuple[Any, dict[str, str]]:
    """Split a general JWS JSON object into its decoded payload and a compact JWS per signing kid.

    Each compact form verifies on its own with :func:`verify_json`; nothing here is trusted yet.
    """
    try:
        payload_b64 = obj["payload"]
        compact: dict[str, str] = {}
        for sig in obj["signatures"]:
            header = json.loads(
                base64.urlsafe_b64decode(sig["protected"] + "=" * (-len(sig["protected"]) % 4))
            )
            compact[str(header["kid"])] = f"{sig['protected']}.{payload_b64}.{sig['signature']}"
        payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IntegrityFailure(f"not a JWS JSON object: {exc}") from exc
    return payload, compact


# --- symmetric keys: evidence data keys, their wrapping, and authenticated chunks -------------------------
# Evidence content is encrypted under a random 256-bit data key per package (and per transfer); the data
# key is stored only wrapped by a key-encryption key (KEK). AES-256-GCM throughout: with AES-NI it runs
# at several GB/s, an order of magnitude above SHA-256, so encryption never limits ingest.

DATA_KEY_BYTES = 32
AEAD_NONCE_BYTES = 12
AEAD_TAG_BYTES = 16
_WRAP_VERSION = b"\x01"


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


def chunk_cipher(key: bytes) -> AESGCM:
    """An AES-256-GCM instance for sealing many chunks under one data key (built once, used per chunk)."""
    if len(key) != DATA_KEY_BYTES:
        raise ValueError("a data key is 32 bytes")
    return AESGCM(key)


def seal_chunk(cipher: AESGCM, plaintext: bytes | bytearray, aad: bytes) -> bytearray:
    """nonce || ciphertext || tag. The 96-bit nonce is random, never derived from the chunk's position:
    a chunk re-written after a crash (same position, maybe other bytes) must never reuse a nonce, which
    for GCM would leak both plaintexts and the authentication key. Position is bound through ``aad``."""
    nonce = secrets.token_bytes(AEAD_NONCE_BYTES)
    # Encrypted in place behind the nonce: no second multi-megabyte copy per chunk.
    out = bytearray(AEAD_NONCE_BYTES + len(plaintext) + AEAD_TAG_BYTES)
    out[:AEAD_NONCE_BYTES] = nonce
    cipher.encrypt_into(nonce, plaintext, aad, memoryview(out)[AEAD_NONCE_BYTES:])
    return out


def open_chunk(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    """The plaintext of :func:`seal_chunk`'s output; ``IntegrityFailure`` when any byte or the AAD differs."""
    if len(sealed) < AEAD_NONCE_BYTES + AEAD_TAG_BYTES:
        raise IntegrityFailure("chunk too short to hold a nonce and a tag")
    view = memoryview(sealed)  # slicing bytes would copy the whole chunk once more
    try:
        return cipher.decrypt(view[:AEAD_NONCE_BYTES], view[AEAD_NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise IntegrityFailure("chunk failed authentication") from exc


class KeyEncryptionKey(Protocol):
    """Wraps data keys. A KMS or an HSM implements the same two calls; ``kek_id`` names the key used so
    that a rotated KEK can still unwrap what it wrapped."""

    @property
    def kek_id(self) -> str: ...

    def wrap(self, data_key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


class LocalKek:
    """A KEK held in this process, unsealed from the node keystore (which seals it under the passphrase).

    Wrapping is AES-256-GCM with ``context`` as associated data rather than RFC 3394 key wrap, so that a
    wrapped key moved to another package's row (other context) fails to unwrap instead of decrypting it.
    """

    def __init__(self, kek_id: str, key: bytes) -> None:
        if len(key) != DATA_KEY_BYTES:
            raise ValueError("a KEK is 32 bytes")
        self._id = kek_id
        self._aead = AESGCM(key)

    @property
    def kek_id(self) -> str:
        return self._id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(AEAD_NONCE_BYTES)
        return _WRAP_VERSION + nonce + self._aead.encrypt(nonce, data_key, _WRAP_VERSION + context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        if (
            len(wrapped) != 1 + AEAD_NONCE_BYTES + DATA_KEY_BYTES + AEAD_TAG_BYTES
            or wrapped[:1] != _WRAP_VERSION
        ):
            raise IntegrityFailure("the wrapped data key has the wrong form")
        try:
            return self._aead.decrypt(wrapped[1:13], wrapped[13:], _WRAP_VERSION + context)
        except InvalidTag as exc:
            raise IntegrityFailure(
                "the data key cannot be unwrapped: the wrapped key, its context or the KEK differs"
            ) from exc


def seal_secret_key(key: bytes, passphrase: str, iterations: int = DEFAULT_KDF_ITERATIONS) -> str:
    """Encrypt a symmetric key under the passphrase, exactly as :func:`seal_private_key` does for OKP keys."""
    if not passphrase:
        raise ConfigurationError("an empty key passphrase cannot protect a secret key")
    header = {"alg": KEY_WRAP_ALG, "enc": CONTENT_ENC, "p2c": iterations, "cty": "jwk+json"}
    payload = json.dumps(OctKey.import_key(key).as_dict(private=True)).encode()
    return jwe.encrypt_compact(
        header, payload, OctKey.import_key(passphrase.encode()), algorithms=[KEY_WRAP_ALG, CONTENT_ENC]
    )


def open_secret_key(sealed: str, passphrase: str) -> bytes:
    try:
        obj = jwe.decrypt_compact(
            sealed, OctKey.import_key(passphrase.encode()), algorithms=[KEY_WRAP_ALG, CONTENT_ENC]
        )
        assert obj.plaintext is not None
        k = json.loads(obj.plaintext)["k"]
        return base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            "cannot unlock the node's secret keys: wrong CYBERPACT_KEY_PASSPHRASE or damaged key record"
        ) from exc


def derive_key(key: bytes, purpose: bytes) -> bytes:
    """A subkey of ``key`` for one purpose (HKDF-SHA256, RFC 5869), so one shared secret never serves
    two algorithms."""
    return HKDF(algorithm=hashes.SHA256(), length=DATA_KEY_BYTES, salt=None, info=purpose).derive(key)


def mac(key: bytes, data: bytes) -> str:
    """HMAC-SHA256 of ``data``, base64url without padding."""
    tag = hmac.new(key, data, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(tag).decode("ascii").rstrip("=")


def check_mac(key: bytes, data: bytes, tag: str) -> None:
    if not hmac.compare_digest(mac(key, data), tag):
        raise IntegrityFailure("the request's authentication code is wrong")
