"""The roster check against generated hostile input: whatever arrives, it is either a roster whose every
claim was checked, or refused with one of the product's errors (a clear 4xx), and nothing is stored."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import DatabaseFactory, LiveNode, federation_node, pin
from cyberpact.federation import roster
from cyberpact.federation.models import RosterPublisher
from cyberpact.kit import crypto
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import utcnow

JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def pair_of(db_factory: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode]]:
    hub = federation_node(db_factory, tmp_path, "un-hub")
    pl = federation_node(db_factory, tmp_path, "pl-ca")
    pin(pl, hub)
    with pl.db.transaction() as s:
        roster.trust_publisher(s, SYSTEM, "un-hub")
    yield hub, pl
    hub.stop()
    pl.stop()


def _body(draw: st.DrawFn) -> Any:
    """Mostly a roster body with one thing wrong or odd, sometimes anything at all."""
    now = utcnow().replace(microsecond=0)
    body: dict[str, Any] = {
        "version": 1,
        "publisher": "un-hub",
        "serial": 5,
        "issued_at": now.isoformat(),
        "valid_until": (now + timedelta(days=1)).isoformat(),
        "nodes": [{"node_id": "vn-24x7", "base_url": "http://127.0.0.1:9", "fingerprint": "AAAA-BBBB-CCCC"}],
    }
    if draw(st.booleans()):
        return draw(JUNK)
    key = draw(st.sampled_from([*body, "extra", "nodes.0"]))
    if key == "nodes.0":
        body["nodes"][0][draw(st.sampled_from(["node_id", "base_url", "fingerprint", "x"]))] = draw(JUNK)
    else:
        body[key] = draw(JUNK)
    return body


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_roster_is_checked_whole_or_refused_with_a_reason(
    pair_of: tuple[LiveNode, LiveNode], data: st.DataObject
) -> None:
    hub, pl = pair_of
    with hub.db.transaction() as s:
        _, key = KeyStore(hub.settings.key_passphrase_value(), hub.settings.key_kdf_iterations).signing_key(s)
    kind = data.draw(st.sampled_from(["text", "segments", "signed", "header"]))
    if kind == "text":
        token = data.draw(st.text(max_size=200))
    elif kind == "segments":
        parts = data.draw(st.lists(st.binary(max_size=60), min_size=1, max_size=4))
        token = ".".join(_b64(p) for p in parts)
    elif kind == "header":
        # A header that passes the first look (our publisher's kid) over a forged signature, or anything.
        kid = crypto.thumbprint(key.as_dict(private=False))
        header = data.draw(st.sampled_from([{"alg": "Ed25519", "typ": roster.ROSTER_TYP, "kid": kid}, None]))
        header = header or data.draw(JUNK)
        payload = json.dumps(_body(data.draw)).encode()
        token = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}.{_b64(b'x' * 64)}"
    else:
        try:
            token = crypto.sign_json(key, _body(data.draw), {"typ": roster.ROSTER_TYP})
        except ValueError:  # not representable in RFC 8785 (a float too large, ...): never sent
            return
    with pl.db.transaction(read_only=True) as s:
        try:
            checked = roster.check(s, token)
        except CyberpactError as exc:
            assert 400 <= exc.status < 500 and str(exc)
            event(f"{kind}: {type(exc).__name__}")
        else:
            # Only a roster that passed every rule gets here: by our trusted publisher, in force, well formed.
            assert checked.body.publisher == "un-hub" and checked.body.valid_until > utcnow()
            assert all(e.node_id for e in checked.body.nodes)
            event(f"{kind}: accepted")
    with pl.db.transaction(read_only=True) as s:
        assert s.get_one(RosterPublisher, "un-hub").last_serial == 0
