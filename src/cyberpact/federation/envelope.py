"""Envelopes, the only thing that crosses a border, and the signed receipts that answer them.

Sign, then encrypt: the canonical payload is signed (compact JWS, Ed25519) and that JWS is encrypted to
the recipient (compact JWE, ECDH-ES+A256KW on X25519, A256GCM), so the receiver keeps a signature over the
plaintext as proof while the wire hides who signed what. Sign-then-encrypt alone lets a recipient re-encrypt
a signed message to a third node (surreptitious forwarding), so sender, recipient, id, time and type are
signed in the JWS header and repeated in the JWE protected header (authenticated as AAD): a receiver routes
and refuses on them before paying for a decrypt, and afterwards proves that both layers agree.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, NoReturn, get_args

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from joserfc.registry import HeaderParameter

from cyberpact.federation.errors import EnvelopeRejected, RejectReason
from cyberpact.kit.canonical import canonical_bytes, canonical_object, json_object, sha256_hex
from cyberpact.kit.crypto import CONTENT_ENC, SIG_ALG, import_public, thumbprint
from cyberpact.kit.errors import InvalidInput
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.time import parse_rfc3339, rfc3339, utcnow

__all__ = [
    "BINDING_HEADERS",
    "ENVELOPE_TYP",
    "KEY_AGREEMENT_ALG",
    "MESSAGE_TYP",
    "RECEIPT_TYP",
    "OpenedEnvelope",
    "Receipt",
    "ReceiptStatus",
    "SealedEnvelope",
    "open_envelope",
    "peek",
    "receipt_kid",
    "seal",
    "sign_receipt",
    "verify_receipt",
    "verify_signed",
]

KEY_AGREEMENT_ALG: Final = "ECDH-ES+A256KW"
MESSAGE_TYP: Final = "cyberpact-msg+jws"
# Explicit typing (RFC 8725 section 3.11) keeps an envelope from being mistaken for any other JWE we make.
ENVELOPE_TYP: Final = "cyberpact-env+jwe"
RECEIPT_TYP: Final = "cyberpact-receipt+jws"

# Signed in the JWS and repeated in the JWE protected header. ``iss`` and ``aud`` are the sender and
# recipient node ids, replicated as header parameters in the sense of RFC 7519 section 5.3. The creation
# time is ``created``, an RFC 3339 UTC string with microseconds (kit.time.rfc3339), not ``iat``, because a
# JWT ``iat`` is a NumericDate in seconds and a reader would misread any other form under that name.
BINDING_HEADERS: Final = ("msg_id", "iss", "aud", "created", "msg_type", "conv_id", "reply_to")

ReceiptStatus = Literal["accepted", "duplicate", "rejected"]
_RECEIPT_STATUSES: Final = frozenset(get_args(ReceiptStatus))

_OUTER_HEADERS: Final = frozenset({"alg", "enc", "typ", "cty", "kid", "epk", *BINDING_HEADERS})
_INNER_HEADERS: Final = frozenset({"alg", "typ", "kid", *BINDING_HEADERS})
_RECEIPT_HEADERS: Final = frozenset({"alg", "typ", "kid"})
_RECEIPT_FIELDS: Final = frozenset(
    {"receiver_node", "sender_node", "message_id", "envelope_digest", "status", "reason", "at"}
)

_MAX_FIELD = 256  # node ids, types and conversation ids; generous, but keeps headers small
_MAX_HEADER_SEGMENT = 4096
# The per-call ``max_bytes`` is the real limit; this only lifts joserfc's own defaults (64 KB of ciphertext)
# out of its way, while still bounding what any caller can make us parse.
_HARD_LIMIT = 64 * 1024 * 1024
_MAX_RECEIPT_BYTES = 8192
# Sizes fixed by the algorithms: a wrapped 256-bit CEK (A256KW), a 96-bit GCM IV, a 128-bit GCM tag.
_EK_BYTES, _IV_BYTES, _TAG_BYTES, _X25519_BYTES = 40, 12, 16, 32

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# base64url digits whose low 4 (after 2 data characters) or 2 (after 3) bits are zero.
_CANONICAL_LAST: Final = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_FIELD


def _is_message_id(value: Any) -> bool:
    """Canonical lower-case UUID4 text only, so one message has exactly one id string."""
    parsed = parse_uuid(value)
    return parsed is not None and parsed.version == 4 and str(parsed) == value


def _is_time(value: Any) -> bool:
    """Only the exact text kit.time.rfc3339 emits, so the signed string has one spelling."""
    if not isinstance(value, str) or len(value) != 27:
        return False
    try:
        return rfc3339(parse_rfc3339(value)) == value
    except ValueError:
        return False


def _validator(check: Callable[[Any], bool]) -> Callable[[Any], None]:
    def validate(value: Any) -> None:
        if not check(value):
            raise ValueError("has the wrong form")

    return validate


_BINDING_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "msg_id": _is_message_id,
    "iss": _is_text,
    "aud": _is_text,
    "created": _is_time,
    "msg_type": _is_text,
    "conv_id": _is_text,
    "reply_to": lambda v: v is None or _is_message_id(v),
}

# joserfc refuses header names it does not know; registering ours keeps that strictness on. Built once
# here because joserfc builds a fresh registry on every call that passes ``algorithms=`` instead. Only the
# JSON type is checked here: every path checks the full form (_BINDING_CHECKS) before joserfc sees a
# header (seal before signing, peek and _check_binding before decrypting or verifying), and running those
# checks again in both layers cost 6 % of a seal and of an open.
_JSON_TEXT_OR_NULL = _validator(lambda v: v is None or isinstance(v, str))
_HEADER_PARAMS = {
    name: HeaderParameter(f"cyberpact binding header {name}", _JSON_TEXT_OR_NULL) for name in _BINDING_CHECKS
}
_JWS_REGISTRY: Final = jws.JWSRegistry(header_registry=_HEADER_PARAMS, algorithms=[SIG_ALG])
_JWS_REGISTRY.max_header_length = _MAX_HEADER_SEGMENT
_JWS_REGISTRY.max_payload_length = _HARD_LIMIT
_JWE_REGISTRY: Final = jwe.JWERegistry(
    header_registry=_HEADER_PARAMS, algorithms=[KEY_AGREEMENT_ALG, CONTENT_ENC]
)
_JWE_REGISTRY.max_protected_header_length = _MAX_HEADER_SEGMENT
_JWE_REGISTRY.max_ciphertext_length = _HARD_LIMIT


@dataclass(frozen=True)
class SealedEnvelope:
    message_id: str
    token: str
    digest: str  # SHA-256 hex of the token's ASCII bytes; receipts and de-duplication refer to it
    signed: str  # the inner compact JWS: the sender's own proof of what it sent


@dataclass(frozen=True)
class OpenedEnvelope:
    message_id: str
    sender: str
    recipient: str
    created: datetime
    message_type: str
    conversation_id: str
    in_reply_to: str | None
    payload: dict[str, Any]
    digest: str
    signing_kid: str
    signed: str  # the inner compact JWS, verifiable offline with the sender's public key


@dataclass(frozen=True)
class Receipt:
    receiver_node: str
    sender_node: str
    message_id: str
    envelope_digest: str
    status: ReceiptStatus
    reason: str | None
    at: datetime
    signing_kid: str


# --- sealing ------------------------------------------------------------------------------------------


def seal(
    *,
    payload: dict[str, Any],
    sender_node: str,
    recipient_node: str,
    message_type: str,
    conversation_id: str,
    in_reply_to: str | None,
    signing_key: OKPKey,
    recipient_enc_jwk: dict[str, Any],
    message_id: str | None = None,
    created: datetime | None = None,
) -> SealedEnvelope:
    """Sign ``payload`` with the sender's Ed25519 key and encrypt it to the recipient's X25519 key.

    Bad arguments are bugs in the caller and raise ``ValueError``; a payload that has no RFC 8785 form
    (floats out of range, integers beyond 2**53, non-string keys) raises ``InvalidInput``.
    """
    message_id = str(uuid.uuid4()) if message_id is None else message_id
    if created is None:
        created = utcnow()
    elif created.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    binding: dict[str, Any] = {
        "msg_id": message_id,
        "iss": sender_node,
        "aud": recipient_node,
        "created": rfc3339(created),
        "msg_type": message_type,
        "conv_id": conversation_id,
        "reply_to": in_reply_to,
    }
    for name, check in _BINDING_CHECKS.items():
        if not check(binding[name]):
            raise ValueError(f"{name} has the wrong form: {binding[name]!r}")
    if not isinstance(payload, dict):
        raise ValueError("the payload must be a JSON object")
    try:
        body = canonical_bytes(payload)
    except ValueError as exc:
        raise InvalidInput(f"the message payload has no canonical JSON form: {exc}") from exc

    if not signing_key.is_private or signing_key.curve_name != "Ed25519":
        raise ValueError("signing_key must be a private Ed25519 key")
    signing_kid = thumbprint(signing_key.as_dict(private=False))
    inner = jws.serialize_compact(
        {"alg": SIG_ALG, "typ": MESSAGE_TYP, "kid": signing_kid, **binding},
        body,
        signing_key,
        registry=_JWS_REGISTRY,
    )

    recipient_key = import_public(recipient_enc_jwk)
    recipient_kid = recipient_enc_jwk.get("kid")
    if recipient_key.curve_name != "X25519" or not _is_text(recipient_kid):
        raise ValueError("recipient_enc_jwk must be an X25519 public JWK with a kid")
    outer_header = {
        "alg": KEY_AGREEMENT_ALG,
        "enc": CONTENT_ENC,
        "typ": ENVELOPE_TYP,
        "cty": MESSAGE_TYP,
        "kid": recipient_kid,
        **binding,
    }
    token = jwe.encrypt_compact(outer_header, inner, recipient_key, registry=_JWE_REGISTRY)
    return SealedEnvelope(
        message_id=message_id, token=token, digest=sha256_hex(token.encode("ascii")), signed=inner
    )


# --- opening ------------------------------------------------------------------------------------------


def _reject(reason: RejectReason, detail: str) -> NoReturn:
    raise EnvelopeRejected(reason, detail)


def _text_token(token: str | bytes) -> str:
    if isinstance(token, bytes):
        try:
            return token.decode("ascii")
        except UnicodeDecodeError:
            _reject("malformed", "the token is not ASCII")
    if not token.isascii():
        _reject("malformed", "the token is not ASCII")
    return token


def _b64length(segment: str, what: str) -> int:
    """The number of bytes ``segment`` encodes, after checking it is canonical unpadded base64url.

    Only the canonical spelling is accepted (no padding, no stray bits in the last character): otherwise
    one envelope would have several byte forms and several digests, and de-duplication by digest breaks.
    Checked without decoding, so that segments the JOSE library decodes anyway are not decoded twice.
    """
    tail = len(segment) % 4
    if tail == 1 or not _B64URL.fullmatch(segment):
        _reject("malformed", f"the {what} is not base64url")
    # The last character of a 2- or 3-character tail carries 4 or 2 bits beyond the data, which must be 0.
    if tail and segment[-1] not in _CANONICAL_LAST[tail]:
        _reject("malformed", f"the {what} is not canonical base64url")
    return len(segment) // 4 * 3 + max(tail - 1, 0)


def _b64decode(segment: str, what: str) -> bytes:
    _b64length(segment, what)
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _header(segment: str, what: str) -> dict[str, Any]:
    if len(segment) > _MAX_HEADER_SEGMENT:
        _reject("malformed", f"the {what} header is too long")
    header = json_object(_b64decode(segment, f"{what} header"))
    if header is None:
        _reject("malformed", f"the {what} header is not a JSON object")
    return header


def _check_header_names(header: dict[str, Any], expected: frozenset[str], what: str) -> None:
    if header.keys() != expected:
        extra, missing = sorted(header.keys() - expected), sorted(expected - header.keys())
        _reject("malformed", f"the {what} header has unexpected {extra} or lacks {missing}")


def _check_binding(header: dict[str, Any], what: str) -> None:
    for name, check in _BINDING_CHECKS.items():
        if not check(header[name]):
            _reject("malformed", f"the {what} header {name!r} has the wrong form")


def _check_epk(epk: Any) -> None:
    if not isinstance(epk, dict):
        _reject("malformed", "the ephemeral key is not a JWK")
    if epk.get("kty") != "OKP" or epk.get("crv") != "X25519":
        _reject("unsupported_algorithm", "the ephemeral key is not on X25519")
    if epk.keys() != {"kty", "crv", "x"}:
        _reject("malformed", "the ephemeral key is not a bare OKP public JWK")
    if not isinstance(epk["x"], str) or _b64length(epk["x"], "ephemeral key") != _X25519_BYTES:
        _reject("malformed", "the ephemeral key has the wrong length")


def peek(token: str | bytes) -> dict[str, Any]:
    """The outer protected header, after strict structural checks and without decrypting anything.

    Nothing returned here is authenticated yet: it is good for routing and for refusing early, and
    :func:`open_envelope` later proves it through the AEAD and against the signed inner header.
    """
    text = _text_token(token)
    parts = text.split(".")
    if len(parts) != 5:
        _reject("malformed", f"a compact JWE has 5 parts, this has {len(parts)}")
    header = _header(parts[0], "outer")
    alg, enc = header.get("alg"), header.get("enc")
    if not isinstance(alg, str) or not isinstance(enc, str):
        _reject("malformed", "the outer header lacks alg or enc")
    if alg != KEY_AGREEMENT_ALG or enc != CONTENT_ENC:
        _reject("unsupported_algorithm", f"only {KEY_AGREEMENT_ALG}/{CONTENT_ENC} is accepted")
    _check_header_names(header, _OUTER_HEADERS, "outer")
    if header["typ"] != ENVELOPE_TYP or header["cty"] != MESSAGE_TYP:
        _reject("malformed", "the outer header has the wrong typ or cty")
    if not _is_text(header["kid"]):
        _reject("malformed", "the outer header kid has the wrong form")
    _check_epk(header["epk"])
    _check_binding(header, "outer")
    for segment, what, size in (
        (parts[1], "encrypted key", _EK_BYTES),
        (parts[2], "initialization vector", _IV_BYTES),
        (parts[4], "authentication tag", _TAG_BYTES),
    ):
        if _b64length(segment, what) != size:
            _reject("malformed", f"the {what} has the wrong length")
    if not _b64length(parts[3], "ciphertext"):
        _reject("malformed", "the ciphertext is empty")
    return header


def _split_jws(text: str, what: str) -> tuple[dict[str, Any], str]:
    parts = text.split(".")
    if len(parts) != 3:
        _reject("malformed", f"the {what} is not a compact JWS")
    header = _header(parts[0], what)
    alg = header.get("alg")
    if not isinstance(alg, str):
        _reject("malformed", f"the {what} header lacks alg")
    if alg != SIG_ALG:
        _reject("unsupported_algorithm", f"only {SIG_ALG} signatures are accepted, not {alg!r}")
    # Checked by joserfc too, but the canonical form matters here for the same reason as in _b64decode.
    _b64length(parts[1], f"{what} payload")
    _b64length(parts[2], f"{what} signature")
    if not _is_text(header.get("kid")):
        _reject("malformed", f"the {what} kid has the wrong form")
    return header, header["kid"]


def _verify_jws(text: str, key: OKPKey | None, kid: str) -> bytes:
    if key is None:
        _reject("unknown_sender_key", f"no known signing key {kid!r}")
    # A lookup that hands back some other key would make ``signing_kid`` name a key we did not use.
    if key.curve_name != "Ed25519" or thumbprint(key.as_dict(private=False)) != kid:
        _reject("unknown_sender_key", f"the key found for {kid!r} is not that key")
    try:
        obj = jws.deserialize_compact(text, key, registry=_JWS_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise EnvelopeRejected("bad_signature", f"signature check failed: {exc}") from exc
    return obj.payload


def verify_signed(text: str, key_lookup: Callable[[str], OKPKey | None]) -> tuple[dict[str, Any], bytes]:
    """Check a signed message (the inner JWS of an envelope) on its own; returns (header, payload).

    Used by a sender to recognise its own signature on an envelope a receiver hands back.
    """
    header, kid = _split_jws(text, "signed message")
    _check_header_names(header, _INNER_HEADERS, "signed message")
    _check_binding(header, "signed message")
    return header, _verify_jws(text, key_lookup(kid), kid)


def open_envelope(
    token: str | bytes,
    *,
    recipient_node: str,
    recipient_keys: Mapping[str, OKPKey],
    sender_keys: Callable[[str, str], OKPKey | None],
    now: datetime,
    max_age: timedelta,
    max_skew: timedelta,
    max_bytes: int,
    outer: dict[str, Any] | None = None,
) -> OpenedEnvelope:
    """Check, decrypt and verify an envelope; raise :class:`EnvelopeRejected` on the first failure.

    The cheap checks (size, structure, recipient, time, key id) run before any public-key operation so a
    flood of junk costs little. ``sender_keys(sender_node, kid)`` is asked with the signed sender id.
    ``outer``: what :func:`peek` already returned for this very token (a receiver peeks first to route),
    so that its checks are not paid twice.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if len(token) > max_bytes:
        _reject("too_large", f"the envelope exceeds {max_bytes} bytes")
    text = _text_token(token)
    if outer is None:
        outer = peek(text)
    if outer["aud"] != recipient_node:
        _reject("wrong_recipient", f"the envelope is for {outer['aud']!r}")
    created = parse_rfc3339(outer["created"])
    if created < now - max_age:
        _reject("stale", f"the envelope was created at {outer['created']}, older than {max_age}")
    if created > now + max_skew:
        _reject("future", f"the envelope was created at {outer['created']}, beyond the allowed skew")
    recipient_key = recipient_keys.get(outer["kid"])
    if recipient_key is None:
        _reject("unknown_recipient_key", f"no decryption key {outer['kid']!r} on this node")

    try:
        plaintext = jwe.decrypt_compact(text, recipient_key, registry=_JWE_REGISTRY).plaintext
    except (JoseError, ValueError) as exc:
        raise EnvelopeRejected("decrypt_failed", f"decryption failed: {exc}") from exc
    assert plaintext is not None
    try:
        inner_text = plaintext.decode("ascii")
    except UnicodeDecodeError:
        _reject("malformed", "the inner JWS is not ASCII")
    inner, kid = _split_jws(inner_text, "inner JWS")
    _check_header_names(inner, _INNER_HEADERS, "inner JWS")
    if inner["typ"] != MESSAGE_TYP:
        _reject("malformed", "the inner JWS has the wrong typ")
    _check_binding(inner, "inner JWS")
    # Verified first, so that header_mismatch always means a genuine signature on a re-addressed message:
    # evidence of forwarding by a peer rather than noise.
    body = _verify_jws(inner_text, sender_keys(inner["iss"], kid), kid)
    for name in BINDING_HEADERS:
        if inner[name] != outer[name]:
            _reject("header_mismatch", f"{name!r} differs between the signed and the encrypted layer")
    payload = canonical_object(body)
    if payload is None:
        _reject("bad_payload", "the payload is not an RFC 8785 canonical JSON object")

    return OpenedEnvelope(
        message_id=inner["msg_id"],
        sender=inner["iss"],
        recipient=inner["aud"],
        created=created,
        message_type=inner["msg_type"],
        conversation_id=inner["conv_id"],
        in_reply_to=inner["reply_to"],
        payload=payload,
        digest=sha256_hex(text.encode("ascii")),
        signing_kid=kid,
        signed=inner_text,
    )


# --- receipts -----------------------------------------------------------------------------------------


def _receipt_problem(fields: dict[str, Any]) -> str | None:
    if fields.keys() != _RECEIPT_FIELDS:
        return "wrong set of fields"
    for name in ("receiver_node", "sender_node"):
        if not _is_text(fields[name]):
            return f"{name} has the wrong form"
    if not _is_message_id(fields["message_id"]):
        return "message_id is not a UUID4"
    if not isinstance(fields["envelope_digest"], str) or not _HEX64.fullmatch(fields["envelope_digest"]):
        return "envelope_digest is not a lower-case SHA-256 hex digest"
    if fields["status"] not in _RECEIPT_STATUSES:
        return f"status must be one of {sorted(_RECEIPT_STATUSES)}"
    if fields["reason"] is not None and not _is_text(fields["reason"]):
        return "reason has the wrong form"
    if not _is_time(fields["at"]):
        return "at is not an RFC 3339 UTC time"
    return None


def sign_receipt(
    *,
    signing_key: OKPKey,
    receiver_node: str,
    sender_node: str,
    message_id: str,
    envelope_digest: str,
    status: ReceiptStatus,
    reason: str | None,
    at: datetime,
) -> str:
    """A compact JWS by the receiving node over the RFC 8785 form of what it did with one envelope."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    fields: dict[str, Any] = {
        "receiver_node": receiver_node,
        "sender_node": sender_node,
        "message_id": message_id,
        "envelope_digest": envelope_digest,
        "status": status,
        "reason": reason,
        "at": rfc3339(at),
    }
    problem = _receipt_problem(fields)
    if problem:
        raise ValueError(f"cannot sign this receipt: {problem}")
    if not signing_key.is_private or signing_key.curve_name != "Ed25519":
        raise ValueError("signing_key must be a private Ed25519 key")
    header = {"alg": SIG_ALG, "typ": RECEIPT_TYP, "kid": thumbprint(signing_key.as_dict(private=False))}
    return jws.serialize_compact(header, canonical_bytes(fields), signing_key, registry=_JWS_REGISTRY)


def receipt_kid(token: Any) -> str | None:
    """The key id a receipt claims to be signed with, unverified; None when it is not a receipt's form.

    Lets a sender notice that a peer signs with a key it has not learnt yet (the peer rotated) before it
    verifies, so that it can follow the peer's card first."""
    if not isinstance(token, str) or len(token) > _MAX_RECEIPT_BYTES:
        return None
    try:
        return _split_jws(token, "receipt")[1]
    except EnvelopeRejected:
        return None


def verify_receipt(
    token: str | bytes,
    key_lookup: Callable[[str], OKPKey | None],
    *,
    expected_message_id: str | None = None,
    expected_digest: str | None = None,
) -> Receipt:
    """Verify a receipt; the caller still compares ``receiver_node`` with the peer it asked."""
    if not isinstance(token, str | bytes):
        # A peer's answer is JSON: its "receipt" may be a number or an object, which must not escape as a
        # TypeError and abort the settling of the rest of the batch.
        _reject("malformed", f"a receipt is a compact JWS, not {type(token).__name__}")
    if len(token) > _MAX_RECEIPT_BYTES:
        _reject("too_large", f"a receipt is at most {_MAX_RECEIPT_BYTES} bytes")
    text = _text_token(token)
    header, kid = _split_jws(text, "receipt")
    _check_header_names(header, _RECEIPT_HEADERS, "receipt")
    if header["typ"] != RECEIPT_TYP:
        _reject("malformed", "the receipt has the wrong typ")
    fields = canonical_object(_verify_jws(text, key_lookup(kid), kid))
    if fields is None:
        _reject("bad_payload", "the receipt is not an RFC 8785 canonical JSON object")
    problem = _receipt_problem(fields)
    if problem:
        _reject("bad_payload", f"the receipt is not well formed: {problem}")
    if expected_message_id is not None and fields["message_id"] != expected_message_id:
        _reject("receipt_mismatch", "the receipt is for another message")
    if expected_digest is not None and fields["envelope_digest"] != expected_digest:
        _reject("receipt_mismatch", "the receipt is for other envelope bytes")
    return Receipt(
        receiver_node=fields["receiver_node"],
        sender_node=fields["sender_node"],
        message_id=fields["message_id"],
        envelope_digest=fields["envelope_digest"],
        status=fields["status"],
        reason=fields["reason"],
        at=parse_rfc3339(fields["at"]),
        signing_kid=kid,
    )
