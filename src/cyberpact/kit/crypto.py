"""The only module that touches key material.

Built on ``cryptography`` through the ``joserfc`` JOSE library: Ed25519 signatures with the fully
specified ``Ed25519`` JWS algorithm (RFC 9864), X25519 key agreement for JWE, and private keys kept at
rest as JWE objects encrypted under the node passphrase (PBES2-HS512+A256KW, RFC 7518 section 4.8), so a
stolen database or backup reveals no private key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Literal

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
    members = {k: jwk[k] for k in ("crv", "kty", "x")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def import_public(jwk: dict[str, Any]) -> OKPKey:
    try:
        key = OKPKey.import_key({k: jwk[k] for k in ("kty", "crv", "x")})
    except (KeyError, ValueError, TypeError, JoseError) as exc:
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
