"""Envelopes and receipts: round trips, another JOSE library's view of them, and hostile input."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.jwk import OKPKey
from jwcrypto import jwe as jc_jwe
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws

from cyberpact.federation.envelope import (
    BINDING_HEADERS,
    ENVELOPE_TYP,
    KEY_AGREEMENT_ALG,
    MESSAGE_TYP,
    RECEIPT_TYP,
    open_envelope,
    peek,
    seal,
    sign_receipt,
    verify_receipt,
)
from cyberpact.federation.errors import EnvelopeRejected
from cyberpact.kit.canonical import canonical_json
from cyberpact.kit.crypto import generate_key, public_jwk
from cyberpact.kit.errors import IntegrityFailure, InvalidInput
from cyberpact.kit.time import rfc3339

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MAX_AGE = timedelta(hours=24)
MAX_SKEW = timedelta(minutes=5)
PAYLOAD = {"request": "preserve", "accounts": ["a@example.org"], "urgent": True}


@dataclass(frozen=True)
class Nodes:
    sender: OKPKey
    sender_kid: str
    recipient: OKPKey
    recipient_jwk: dict[str, Any]
    recipient_kid: str


@pytest.fixture(scope="module")
def nodes() -> Nodes:
    sender = generate_key("Ed25519")
    recipient = generate_key("X25519")
    rjwk = public_jwk(recipient)
    return Nodes(sender, public_jwk(sender)["kid"], recipient, rjwk, rjwk["kid"])


def _seal(nodes: Nodes, payload: dict[str, Any] | None = None, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "payload": PAYLOAD if payload is None else payload,
        "sender_node": "node-a",
        "recipient_node": "node-b",
        "message_type": "preservation.request",
        "conversation_id": "conv-1",
        "in_reply_to": None,
        "signing_key": nodes.sender,
        "recipient_enc_jwk": nodes.recipient_jwk,
        "created": T0,
    }
    args.update(overrides)
    return seal(**args)


def _open(nodes: Nodes, token: str | bytes, **overrides: Any) -> Any:
    def sender_keys(node: str, kid: str) -> OKPKey | None:
        return nodes.sender if (node, kid) == ("node-a", nodes.sender_kid) else None

    args: dict[str, Any] = {
        "recipient_node": "node-b",
        "recipient_keys": {nodes.recipient_kid: nodes.recipient},
        "sender_keys": sender_keys,
        "now": T0 + timedelta(seconds=2),
        "max_age": MAX_AGE,
        "max_skew": MAX_SKEW,
        "max_bytes": 1_000_000,
    }
    args.update(overrides)
    return open_envelope(token, **args)


def _reason(call: Callable[[], object]) -> str:
    with pytest.raises(EnvelopeRejected) as info:
        call()
    return info.value.reason


# Hand-made JOSE objects, so that tests can build what the product would never emit.


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def binding(**overrides: Any) -> dict[str, Any]:
    out = {
        "msg_id": str(uuid.uuid4()),
        "iss": "node-a",
        "aud": "node-b",
        "created": rfc3339(T0),
        "msg_type": "preservation.request",
        "conv_id": "conv-1",
        "reply_to": None,
    }
    out.update(overrides)
    return out


def raw_jws(header: dict[str, Any], payload: bytes, key: OKPKey) -> str:
    """Sign with the raw Ed25519 key, whatever the header claims, with exactly these payload bytes."""
    private = key.private_key
    assert isinstance(private, Ed25519PrivateKey)
    signing_input = f"{b64json(header)}.{b64(payload)}"
    return f"{signing_input}.{b64(private.sign(signing_input.encode()))}"


def bound(header: dict[str, Any]) -> dict[str, Any]:
    return {k: header[k] for k in BINDING_HEADERS}


def inner_header(nodes: Nodes, **overrides: Any) -> dict[str, Any]:
    return {"alg": "Ed25519", "typ": MESSAGE_TYP, "kid": nodes.sender_kid, **binding(**overrides)}


# A permissive registry: the test plays a peer that may send headers the product never would.
_LAX_JWE = jwe.JWERegistry(algorithms=[KEY_AGREEMENT_ALG, "A256GCM"], strict_check_header=False)


def wrap(nodes: Nodes, inner: str, outer_binding: dict[str, Any], **extra: Any) -> str:
    header = {
        "alg": KEY_AGREEMENT_ALG,
        "enc": "A256GCM",
        "typ": ENVELOPE_TYP,
        "cty": MESSAGE_TYP,
        "kid": nodes.recipient_kid,
        **outer_binding,
        **extra,
    }
    public = OKPKey.import_key(nodes.recipient_jwk)
    return jwe.encrypt_compact(header, inner, public, registry=_LAX_JWE)


def handmade(nodes: Nodes, payload: bytes = b'{"a":1}', **overrides: Any) -> str:
    """A well-formed envelope built outside the product; the baseline the hostile variants deviate from."""
    header = inner_header(nodes, **overrides)
    return wrap(nodes, raw_jws(header, payload, nodes.sender), bound(header))


def replace_part(token: str, index: int, new: str) -> str:
    parts = token.split(".")
    parts[index] = new
    return ".".join(parts)


def flip_first_char(segment: str) -> str:
    # The first character, not the last: changing the last could leave non-canonical base64 and be
    # refused as malformed before the check the test is aiming at.
    return ("B" if segment[0] == "A" else "A") + segment[1:]


# --- round trips --------------------------------------------------------------------------------------


def test_round_trip(nodes: Nodes) -> None:
    reply_to = str(uuid.uuid4())
    sealed = _seal(nodes, in_reply_to=reply_to)
    opened = _open(nodes, sealed.token)
    assert opened.payload == PAYLOAD
    assert (opened.message_id, opened.sender, opened.recipient) == (sealed.message_id, "node-a", "node-b")
    assert (opened.message_type, opened.conversation_id, opened.in_reply_to) == (
        "preservation.request",
        "conv-1",
        reply_to,
    )
    assert opened.created == T0
    assert opened.digest == sealed.digest == hashlib.sha256(sealed.token.encode()).hexdigest()
    assert opened.signing_kid == nodes.sender_kid
    assert uuid.UUID(sealed.message_id).version == 4
    # The inbox hands over the raw request body; bytes open the same way.
    assert _open(nodes, sealed.token.encode()).payload == opened.payload


def test_given_message_id_is_kept(nodes: Nodes) -> None:
    message_id = str(uuid.uuid4())
    assert _open(nodes, _seal(nodes, message_id=message_id).token).message_id == message_id


def test_peek_exposes_the_routing_headers_without_keys(nodes: Nodes) -> None:
    sealed = _seal(nodes)
    header = peek(sealed.token)
    assert header["alg"] == "ECDH-ES+A256KW" and header["enc"] == "A256GCM"
    assert header["typ"] == ENVELOPE_TYP and header["cty"] == MESSAGE_TYP
    assert header["kid"] == nodes.recipient_kid
    assert header["epk"]["crv"] == "X25519"
    assert header["msg_id"] == sealed.message_id
    assert (header["iss"], header["aud"], header["created"]) == ("node-a", "node-b", rfc3339(T0))
    assert header["created"] == "2026-03-01T12:00:00.123456Z"
    assert (header["msg_type"], header["conv_id"]) == ("preservation.request", "conv-1")
    assert header["reply_to"] is None


def test_binding_headers_are_equal_on_both_layers(nodes: Nodes) -> None:
    sealed = _seal(nodes, in_reply_to=str(uuid.uuid4()))
    outer = peek(sealed.token)
    inner_jws = jwe.decrypt_compact(sealed.token, nodes.recipient, registry=_LAX_JWE).plaintext
    assert inner_jws is not None
    inner = json.loads(unb64(inner_jws.decode().split(".")[0]))
    assert inner["alg"] == "Ed25519" and inner["typ"] == MESSAGE_TYP and inner["kid"] == nodes.sender_kid
    assert bound(inner) == bound(outer)
    assert len(BINDING_HEADERS) == len(set(BINDING_HEADERS)) == 7


# --- another JOSE implementation ----------------------------------------------------------------------
# jwcrypto 1.6 knows the fully specified "Ed25519" algorithm of RFC 9864 natively, so no registry patching
# is needed; the allowed lists below pin both sides to exactly the algorithms the product uses.


def test_jwcrypto_decrypts_the_envelope_and_verifies_signature_and_receipt(nodes: Nodes) -> None:
    sealed = _seal(nodes)
    recipient_private = jc_jwk.JWK(**nodes.recipient.as_dict(private=True))
    sender_public = jc_jwk.JWK(**public_jwk(nodes.sender))

    envelope = jc_jwe.JWE()
    envelope.allowed_algs = [KEY_AGREEMENT_ALG, "A256GCM"]
    envelope.deserialize(sealed.token, key=recipient_private)
    outer = envelope.jose_header
    assert outer["alg"] == KEY_AGREEMENT_ALG and outer["enc"] == "A256GCM"

    signed = jc_jws.JWS()
    signed.allowed_algs = ["Ed25519"]
    signed.deserialize(envelope.payload.decode(), key=sender_public)
    assert signed.jose_header["alg"] == "Ed25519"
    assert bound(signed.jose_header) == bound(outer)
    assert json.loads(signed.payload) == PAYLOAD

    receipt_token = sign_receipt(
        signing_key=nodes.sender,
        receiver_node="node-a",
        sender_node="node-b",
        message_id=sealed.message_id,
        envelope_digest=sealed.digest,
        status="accepted",
        reason=None,
        at=T0,
    )
    receipt = jc_jws.JWS()
    receipt.allowed_algs = ["Ed25519"]
    receipt.deserialize(receipt_token, key=sender_public)
    assert receipt.jose_header["typ"] == RECEIPT_TYP
    assert json.loads(receipt.payload)["envelope_digest"] == sealed.digest


def test_product_opens_what_jwcrypto_seals(nodes: Nodes) -> None:
    header = inner_header(nodes)
    signer = jc_jws.JWS(canonical_json({"z": [1, 2], "a": "ü"}))
    signer.add_signature(jc_jwk.JWK(**nodes.sender.as_dict(private=True)), protected=json.dumps(header))
    inner = signer.serialize(compact=True)
    outer = {
        "alg": KEY_AGREEMENT_ALG,
        "enc": "A256GCM",
        "typ": ENVELOPE_TYP,
        "cty": MESSAGE_TYP,
        "kid": nodes.recipient_kid,
        **bound(header),
    }
    envelope = jc_jwe.JWE(inner.encode(), protected=json.dumps(outer))
    envelope.add_recipient(jc_jwk.JWK(**nodes.recipient_jwk))
    opened = _open(nodes, envelope.serialize(compact=True))
    assert opened.payload == {"z": [1, 2], "a": "ü"}
    assert opened.message_id == header["msg_id"]


# --- hostile envelopes --------------------------------------------------------------------------------


def test_rejection_is_an_integrity_failure_with_its_reason_in_extra(nodes: Nodes) -> None:
    with pytest.raises(IntegrityFailure) as info:
        _open(nodes, "a.b")
    assert isinstance(info.value, EnvelopeRejected)
    assert info.value.extra == {"reason": "malformed"}
    assert info.value.code == "envelope_rejected"


def test_handmade_baseline_opens(nodes: Nodes) -> None:
    # Guards the hostile tests below: each differs from this in one respect only.
    assert _open(nodes, handmade(nodes)).payload == {"a": 1}


def test_tampered_ciphertext(nodes: Nodes) -> None:
    token = _seal(nodes).token
    tampered = replace_part(token, 3, flip_first_char(token.split(".")[3]))
    assert _reason(lambda: _open(nodes, tampered)) == "decrypt_failed"


def test_tampered_tag(nodes: Nodes) -> None:
    token = _seal(nodes).token
    tampered = replace_part(token, 4, flip_first_char(token.split(".")[4]))
    assert _reason(lambda: _open(nodes, tampered)) == "decrypt_failed"


def test_tampered_outer_header(nodes: Nodes) -> None:
    token = _seal(nodes).token
    header = peek(token)
    header["msg_type"] = "mla.request"  # still well formed, so only the AEAD can notice
    assert _reason(lambda: _open(nodes, replace_part(token, 0, b64json(header)))) == "decrypt_failed"


def test_tampered_inner_signature(nodes: Nodes) -> None:
    header = inner_header(nodes)
    head, body, signature = raw_jws(header, b'{"a":1}', nodes.sender).split(".")
    bad = bytearray(unb64(signature))
    bad[5] ^= 0x01
    token = wrap(nodes, f"{head}.{body}.{b64(bytes(bad))}", bound(header))
    assert _reason(lambda: _open(nodes, token)) == "bad_signature"


def test_inner_payload_swapped_under_a_valid_header(nodes: Nodes) -> None:
    header = inner_header(nodes)
    head, _, signature = raw_jws(header, b'{"a":1}', nodes.sender).split(".")
    swapped = b64(b'{"a":2}')
    token = wrap(nodes, f"{head}.{swapped}.{signature}", bound(header))
    assert _reason(lambda: _open(nodes, token)) == "bad_signature"


@pytest.mark.parametrize(
    ("name", "outer_value"),
    [
        ("aud", "node-b"),  # a message node-a signed for node-c, forwarded to node-b
        ("iss", "node-x"),
        ("msg_id", "0b7a3c2e-6f0d-4e53-9a51-2d8f4c6b1e90"),
        ("created", rfc3339(T0 + timedelta(seconds=1))),
        ("msg_type", "mla.request"),
        ("conv_id", "conv-2"),
        ("reply_to", "5d1e9f47-3a2b-4c8d-8e6f-7a9b0c1d2e3f"),
    ],
)
def test_inner_and_outer_headers_disagree(nodes: Nodes, name: str, outer_value: Any) -> None:
    header = inner_header(nodes, aud="node-c") if name == "aud" else inner_header(nodes)
    outer = bound(header) | {name: outer_value}
    token = wrap(nodes, raw_jws(header, b'{"a":1}', nodes.sender), outer)
    assert _reason(lambda: _open(nodes, token)) == "header_mismatch"


def test_wrong_recipient(nodes: Nodes) -> None:
    token = _seal(nodes, recipient_node="node-c").token
    assert _reason(lambda: _open(nodes, token)) == "wrong_recipient"


def test_unknown_recipient_key(nodes: Nodes) -> None:
    token = _seal(nodes).token
    assert _reason(lambda: _open(nodes, token, recipient_keys={})) == "unknown_recipient_key"


def test_unknown_sender_key(nodes: Nodes) -> None:
    token = _seal(nodes).token
    assert _reason(lambda: _open(nodes, token, sender_keys=lambda node, kid: None)) == "unknown_sender_key"
    # A signer known under another node id does not count for this one.
    assert _reason(lambda: _open(nodes, _seal(nodes, sender_node="node-z").token)) == "unknown_sender_key"


def test_sender_lookup_returning_another_key(nodes: Nodes) -> None:
    other = generate_key("Ed25519")
    token = _seal(nodes).token
    assert _reason(lambda: _open(nodes, token, sender_keys=lambda node, kid: other)) == "unknown_sender_key"


def test_signed_by_a_different_key_than_its_kid_names(nodes: Nodes) -> None:
    header = inner_header(nodes)
    token = wrap(nodes, raw_jws(header, b"{}", generate_key("Ed25519")), bound(header))
    assert _reason(lambda: _open(nodes, token)) == "bad_signature"


def test_too_old_and_in_the_future(nodes: Nodes) -> None:
    token = _seal(nodes).token
    tick = timedelta(microseconds=1)
    assert _reason(lambda: _open(nodes, token, now=T0 + MAX_AGE + tick)) == "stale"
    assert _open(nodes, token, now=T0 + MAX_AGE).message_id
    assert _reason(lambda: _open(nodes, token, now=T0 - MAX_SKEW - tick)) == "future"
    assert _open(nodes, token, now=T0 - MAX_SKEW).message_id


def test_over_size(nodes: Nodes) -> None:
    token = _seal(nodes).token
    assert _reason(lambda: _open(nodes, token, max_bytes=len(token) - 1)) == "too_large"
    assert _open(nodes, token, max_bytes=len(token)).message_id


def _outer_header(nodes: Nodes, **changes: Any) -> dict[str, Any]:
    header = peek(_seal(nodes).token)
    header.update(changes)
    return {k: v for k, v in header.items() if v is not ...}


def _with_outer_header(nodes: Nodes, header: dict[str, Any] | str) -> str:
    token = _seal(nodes).token
    segment = header if isinstance(header, str) else b64json(header)
    return replace_part(token, 0, segment)


def _length_4n_plus_1(segment: str) -> str:
    """No byte string encodes to this length, yet every character is in the alphabet."""
    return segment + "A" * ((1 - len(segment)) % 4)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda t: "a.b.c.d", "malformed"),
        (lambda t: t + ".AAAA", "malformed"),
        (lambda t: t.rsplit(".", 1)[0], "malformed"),
        (lambda t: replace_part(t, 0, "!!!not-base64!!!"), "malformed"),
        (lambda t: replace_part(t, 0, t.split(".")[0] + "="), "malformed"),
        (lambda t: replace_part(t, 3, _length_4n_plus_1(t.split(".")[3])), "malformed"),
        (lambda t: replace_part(t, 2, b64(b"short")), "malformed"),
        (lambda t: replace_part(t, 4, ""), "malformed"),
        (lambda t: replace_part(t, 0, b64(b"[1, 2]")), "malformed"),
        (lambda t: replace_part(t, 0, b64(b'"header"')), "malformed"),
        (lambda t: replace_part(t, 0, b64(b"{not json")), "malformed"),
        (lambda t: replace_part(t, 0, b64(b"\xff\xfe")), "malformed"),
        (lambda t: replace_part(t, 0, "A" * 8000), "malformed"),
        (lambda t: t.replace(".", ".é", 1), "malformed"),
    ],
)
def test_structurally_broken(nodes: Nodes, make: Callable[[str], str], reason: str) -> None:
    token = make(_seal(nodes).token)
    assert _reason(lambda: peek(token)) == reason
    assert _reason(lambda: _open(nodes, token)) == reason


def test_non_canonical_base64_in_the_tag(nodes: Nodes) -> None:
    # 16 bytes leave 4 unused bits in the last of 22 characters; setting one of them changes the text
    # but not the bytes, which would give a second digest for the same envelope.
    token = _seal(nodes).token
    tag = token.split(".")[4]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = tag[:-1] + alphabet[alphabet.index(tag[-1]) ^ 1]
    assert unb64(twin) == unb64(tag)
    assert _reason(lambda: _open(nodes, replace_part(token, 4, twin))) == "malformed"


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("part", [1, 2, 3, 4])
def test_non_canonical_base64_in_any_binary_part(nodes: Nodes, part: int) -> None:
    # Every length of segment an envelope has: the key (40 bytes), IV (12), ciphertext (any) and tag (16).
    token = _seal(nodes).token
    segment = token.split(".")[part]
    if len(segment) % 4 == 0:
        twin = segment + "A"  # no unused bits to set: a sixth bit-group alone is never valid
    else:
        twin = segment[:-1] + _B64_ALPHABET[_B64_ALPHABET.index(segment[-1]) ^ 1]
    assert _reason(lambda: peek(replace_part(token, part, twin))) == "malformed"


@settings(max_examples=400)
@given(st.text(alphabet=_B64_ALPHABET + "=+/ ", max_size=12))
def test_base64_check_accepts_exactly_the_canonical_spelling(segment: str) -> None:
    # The reference: decode, encode again, and compare; the product checks without decoding.
    from cyberpact.federation.envelope import _b64length

    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == segment
    except ValueError:
        canonical = False
    try:
        length = _b64length(segment, "test")
    except EnvelopeRejected:
        assert not canonical, segment
    else:
        assert canonical and length == len(raw), segment


def test_duplicate_header_member(nodes: Nodes) -> None:
    header = json.dumps(peek(_seal(nodes).token))
    duplicated = header[:-1] + ', "aud": "node-b"}'
    assert _reason(lambda: peek(_with_outer_header(nodes, b64(duplicated.encode())))) == "malformed"


@pytest.mark.parametrize(
    "changes",
    [
        {"zip": "DEF"},
        {"crit": ["msg_id"]},
        {"apu": b64(b"alice")},
        {"jku": "https://attacker.example/keys"},
        {"reply_to": ...},  # missing
        {"msg_id": "not-a-uuid"},
        {"msg_id": "c232ab00-9414-11ec-b3c8-9f6bdeced846"},  # a version 1 UUID
        {"msg_id": "0B7A3C2E-6F0D-4E53-9A51-2D8F4C6B1E90"},
        {"created": "2026-03-01T12:00:00Z"},  # valid RFC 3339, but not the one spelling we sign
        {"created": 1772366400000},
        {"iss": ""},
        {"aud": ["node-b"]},
        {"reply_to": 7},
        {"typ": "JWT"},
        {"cty": "JWT"},
        {"kid": None},
        {"epk": "X25519"},
    ],
)
def test_outer_header_of_the_wrong_shape(nodes: Nodes, changes: dict[str, Any]) -> None:
    assert _reason(lambda: peek(_with_outer_header(nodes, _outer_header(nodes, **changes)))) == "malformed"


@pytest.mark.parametrize(
    "changes",
    [
        {"alg": "none"},
        {"alg": "dir"},
        {"alg": "RSA-OAEP-256"},
        {"alg": "RSA1_5"},
        {"alg": "ECDH-ES"},
        {"alg": "ECDH-ES+A128KW"},
        {"alg": "PBES2-HS512+A256KW"},
        {"enc": "A128CBC-HS256"},
        {"enc": "A128GCM"},
        {"epk": {"kty": "EC", "crv": "P-256", "x": b64(bytes(32)), "y": b64(bytes(32))}},
        {"epk": {"kty": "OKP", "crv": "X448", "x": b64(bytes(56))}},
    ],
)
def test_outer_algorithms_other_than_ours(nodes: Nodes, changes: dict[str, Any]) -> None:
    token = _with_outer_header(nodes, _outer_header(nodes, **changes))
    assert _reason(lambda: peek(token)) == "unsupported_algorithm"


def test_outer_alg_missing(nodes: Nodes) -> None:
    token = _with_outer_header(nodes, _outer_header(nodes, alg=...))
    assert _reason(lambda: peek(token)) == "malformed"


def test_inner_alg_none(nodes: Nodes) -> None:
    header = inner_header(nodes) | {"alg": "none"}
    inner = f"{b64json(header)}.{b64(b'{}')}."
    token = wrap(nodes, inner, bound(header))
    assert _reason(lambda: _open(nodes, token)) == "unsupported_algorithm"


def test_inner_alg_eddsa(nodes: Nodes) -> None:
    # The deprecated polymorphic name (RFC 9864) for the very same signature: refused all the same.
    header = inner_header(nodes) | {"alg": "EdDSA"}
    token = wrap(nodes, raw_jws(header, b"{}", nodes.sender), bound(header))
    assert _reason(lambda: _open(nodes, token)) == "unsupported_algorithm"


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256", "PS256", "Ed448", "ML-DSA-44"])
def test_inner_other_algorithms(nodes: Nodes, alg: str) -> None:
    header = inner_header(nodes) | {"alg": alg}
    token = wrap(nodes, raw_jws(header, b"{}", nodes.sender), bound(header))
    assert _reason(lambda: _open(nodes, token)) == "unsupported_algorithm"


@pytest.mark.parametrize(
    "changes",
    [{"b64": False}, {"typ": "JWT"}, {"jwk": {"kty": "OKP"}}, {"x5u": "https://attacker.example/"}],
)
def test_inner_header_of_the_wrong_shape(nodes: Nodes, changes: dict[str, Any]) -> None:
    header = inner_header(nodes) | changes
    token = wrap(nodes, raw_jws(header, b"{}", nodes.sender), bound(header))
    assert _reason(lambda: _open(nodes, token)) == "malformed"


def test_plaintext_not_a_jws(nodes: Nodes) -> None:
    assert _reason(lambda: _open(nodes, wrap(nodes, "hello", binding()))) == "malformed"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"b":1,"a":2}',  # keys out of order
        b'{"a": 1}',  # white space
        b'{"a":1.0}',  # 1.0 is spelled 1
        b'{"a":"\\u0041"}',  # needless escape
        b'{"a":1,"a":2}',  # duplicate member
        b"[1,2]",  # not an object
        b'"text"',
        b"null",
        b'{"a":NaN}',
        b'{"a":9007199254740993}',  # beyond 2**53: no RFC 8785 form
        b"\xff",
        b"",
    ],
)
def test_payload_not_canonical_json_object(nodes: Nodes, payload: bytes) -> None:
    assert _reason(lambda: _open(nodes, handmade(nodes, payload))) == "bad_payload"


# --- sealing refuses what it cannot bind --------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"message_id": "1"},
        {"in_reply_to": "not-an-id"},
        {"sender_node": ""},
        {"created": datetime(2026, 1, 1)},  # naive on purpose
        {"payload": [1, 2]},
    ],
)
def test_seal_refuses_bad_arguments(nodes: Nodes, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _seal(nodes, **overrides)


def test_seal_refuses_keys_of_the_wrong_kind(nodes: Nodes) -> None:
    with pytest.raises(ValueError):
        _seal(nodes, signing_key=generate_key("X25519"))
    with pytest.raises(ValueError):
        _seal(nodes, recipient_enc_jwk=public_jwk(generate_key("Ed25519")))
    with pytest.raises(ValueError):
        _seal(nodes, recipient_enc_jwk={k: v for k, v in nodes.recipient_jwk.items() if k != "kid"})


def test_seal_refuses_a_payload_without_canonical_form(nodes: Nodes) -> None:
    with pytest.raises(InvalidInput):
        _seal(nodes, payload={"n": 2**60})


# --- receipts -----------------------------------------------------------------------------------------


def _receipt(nodes: Nodes, **overrides: Any) -> str:
    args: dict[str, Any] = {
        "signing_key": nodes.sender,  # the receiving node's key; any Ed25519 key will do here
        "receiver_node": "node-b",
        "sender_node": "node-a",
        "message_id": "6f1c2a44-5c3e-4a8e-9d2b-1f0e7c9b8a76",
        "envelope_digest": "ab" * 32,
        "status": "accepted",
        "reason": None,
        "at": T0,
    }
    args.update(overrides)
    return sign_receipt(**args)


def _lookup(nodes: Nodes) -> Callable[[str], OKPKey | None]:
    return lambda kid: nodes.sender if kid == nodes.sender_kid else None


def test_receipt_round_trip(nodes: Nodes) -> None:
    token = _receipt(nodes, status="rejected", reason="stale")
    receipt = verify_receipt(
        token,
        _lookup(nodes),
        expected_message_id="6f1c2a44-5c3e-4a8e-9d2b-1f0e7c9b8a76",
        expected_digest="ab" * 32,
    )
    assert (receipt.receiver_node, receipt.sender_node, receipt.status, receipt.reason) == (
        "node-b",
        "node-a",
        "rejected",
        "stale",
    )
    assert receipt.at == T0 and receipt.signing_kid == nodes.sender_kid
    header = json.loads(unb64(token.split(".")[0]))
    assert header == {"alg": "Ed25519", "typ": RECEIPT_TYP, "kid": nodes.sender_kid}


def test_receipt_with_a_flipped_byte(nodes: Nodes) -> None:
    head, body, signature = _receipt(nodes).split(".")
    raw = bytearray(unb64(body))
    raw[raw.index(b"accepted")] ^= 0x01
    assert _reason(lambda: verify_receipt(f"{head}.{b64(bytes(raw))}.{signature}", _lookup(nodes))) == (
        "bad_signature"
    )
    bad = bytearray(unb64(signature))
    bad[0] ^= 0x80
    assert _reason(lambda: verify_receipt(f"{head}.{body}.{b64(bytes(bad))}", _lookup(nodes))) == (
        "bad_signature"
    )


def test_receipt_for_another_message_or_digest(nodes: Nodes) -> None:
    token = _receipt(nodes)
    other_id = str(uuid.uuid4())
    assert _reason(lambda: verify_receipt(token, _lookup(nodes), expected_message_id=other_id)) == (
        "receipt_mismatch"
    )
    assert _reason(lambda: verify_receipt(token, _lookup(nodes), expected_digest="cd" * 32)) == (
        "receipt_mismatch"
    )


def test_receipt_from_an_unknown_key(nodes: Nodes) -> None:
    assert _reason(lambda: verify_receipt(_receipt(nodes), lambda kid: None)) == "unknown_sender_key"


def test_an_envelope_signature_is_not_a_receipt(nodes: Nodes) -> None:
    inner = raw_jws(inner_header(nodes), b"{}", nodes.sender)
    assert _reason(lambda: verify_receipt(inner, _lookup(nodes))) == "malformed"


@pytest.mark.parametrize(
    ("header_changes", "fields", "reason"),
    [
        ({"alg": "EdDSA"}, None, "unsupported_algorithm"),
        ({"alg": "none"}, None, "unsupported_algorithm"),
        ({"typ": MESSAGE_TYP}, None, "malformed"),
        ({}, {"status": "lost"}, "bad_payload"),
        ({}, {"envelope_digest": "AB" * 32}, "bad_payload"),
        ({}, {"extra": 1}, "bad_payload"),
        ({}, {"at": "yesterday"}, "bad_payload"),
    ],
)
def test_receipt_of_the_wrong_shape(
    nodes: Nodes, header_changes: dict[str, Any], fields: dict[str, Any] | None, reason: str
) -> None:
    header = {"alg": "Ed25519", "typ": RECEIPT_TYP, "kid": nodes.sender_kid} | header_changes
    body = {
        "receiver_node": "node-b",
        "sender_node": "node-a",
        "message_id": str(uuid.uuid4()),
        "envelope_digest": "ab" * 32,
        "status": "accepted",
        "reason": None,
        "at": rfc3339(T0),
    } | (fields or {})
    token = raw_jws(header, canonical_json(body), nodes.sender)
    assert _reason(lambda: verify_receipt(token, _lookup(nodes))) == reason


def test_receipt_too_large(nodes: Nodes) -> None:
    assert _reason(lambda: verify_receipt("A" * 10_000, _lookup(nodes))) == "too_large"


# --- property -----------------------------------------------------------------------------------------

_SAFE_INT = 2**53 - 1
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-_SAFE_INT, _SAFE_INT) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(st.text(), _json, max_size=8))
def test_any_json_object_round_trips_exactly(nodes: Nodes, payload: dict[str, Any]) -> None:
    opened = _open(nodes, _seal(nodes, payload=payload).token)
    assert opened.payload == payload
    assert canonical_json(opened.payload) == canonical_json(payload)


# The product takes a fast path to RFC 8785 where the standard library provably agrees with it; these two
# properties hold it to rfc8785 on everything, floats and characters beyond the BMP included.
_any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-_SAFE_INT, _SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_any_object = st.dictionaries(st.text(), _any_json, max_size=6)


def _signed_payload(nodes: Nodes, token: str) -> bytes:
    plaintext = jwe.decrypt_compact(token, nodes.recipient, registry=_LAX_JWE).plaintext
    assert plaintext is not None
    return unb64(plaintext.decode().split(".")[1])


@settings(max_examples=100, deadline=None)
@given(payload=_any_object)
def test_signed_payload_bytes_are_rfc8785(nodes: Nodes, payload: dict[str, Any]) -> None:
    sealed = _seal(nodes, payload=payload)
    assert _signed_payload(nodes, sealed.token) == canonical_json(payload)
    assert canonical_json(_open(nodes, sealed.token).payload) == canonical_json(payload)


@settings(max_examples=100, deadline=None)
@given(
    payload=_any_object,
    sort_keys=st.booleans(),
    compact=st.booleans(),
    ensure_ascii=st.booleans(),
)
def test_only_the_rfc8785_spelling_opens(
    nodes: Nodes, payload: dict[str, Any], sort_keys: bool, compact: bool, ensure_ascii: bool
) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    raw = json.dumps(payload, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii).encode()
    token = handmade(nodes, raw)
    if raw == canonical_json(payload):
        assert canonical_json(_open(nodes, token).payload) == raw
    else:
        assert _reason(lambda: _open(nodes, token)) == "bad_payload"


def test_large_doubles_keep_their_rfc8785_spelling(nodes: Nodes) -> None:
    # RFC 8785 writes the double 1e16 as 10000000000000000, which Python reads back as an int.
    assert _open(nodes, _seal(nodes, payload={"n": 1e16}).token).payload == {"n": 1e16}
    assert _open(nodes, handmade(nodes, b'{"n":10000000000000000}')).payload == {"n": 1e16}
