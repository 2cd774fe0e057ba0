"""A node's identity as its operators and peers rely on it: keys sealed at rest, a self-signed card, the
`init` / `keys` / `peers` commands, trust that suspension takes away and resumption gives back, forged
signatures refused, and retries that back off."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import OKPKey
from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner, Result

from conftest import DatabaseFactory, LiveNode, federation_node, free_port, start_node
from cyberpact.cli import app
from cyberpact.config import Settings
from cyberpact.federation import envelope, identity
from cyberpact.federation.models import InboxMessage, OutboxMessage, Peer
from cyberpact.kit import crypto
from cyberpact.kit.canonical import canonical_json
from cyberpact.kit.cli import console as cli_console
from cyberpact.kit.errors import ConfigurationError, IntegrityFailure
from cyberpact.kit.keystore import KeyStore, NodeKey
from cyberpact.kit.time import parse_rfc3339, rfc3339, utcnow

from .test_channel import send, worker
from .test_envelope import Nodes, b64, bound, inner_header, raw_jws, unb64, wrap
from .test_inbox_hostile import keys_of, post, stored

CARD_PATH = "/.well-known/cyberpact/node-card"
FINGERPRINT = re.compile(r"fingerprint: ([A-Z2-7]{4}(?:-[A-Z2-7]{4})+)")
runner = CliRunner()


def own_node(node: LiveNode) -> dict[str, Any]:
    """What the node's administrators' API says about the node itself."""
    if not node.admin_token:
        node.admin_token = node.user("root", "admin")
    r = node.client(node.admin_token).get("/api/v1/federation/node")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def served_card(node: LiveNode) -> dict[str, Any]:
    r = node.client().get(CARD_PATH)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


# --- 1. keys at rest ----------------------------------------------------------------------------------


def test_private_keys_are_sealed_under_the_passphrase(node: LiveNode, tmp_path: Path) -> None:
    passphrase = node.settings.key_passphrase_value()
    with node.db.transaction(read_only=True) as s:
        rows = {r.purpose: r for r in s.scalars(select(NodeKey).where(NodeKey.purpose.in_(["sig", "enc"])))}
        # Every column of the table as the database holds it, not as the model reads it back.
        table = repr(s.execute(text("SELECT * FROM node_keys")).all())
    assert set(rows) == {"sig", "enc"}
    # Every file the node's test left on disk: the data directory and, on SQLite, the database and its WAL.
    on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())

    for purpose, curve in (("sig", "Ed25519"), ("enc", "X25519")):
        row = rows[purpose]
        header = json.loads(unb64(row.sealed_private.split(".")[0]))
        assert header["alg"] == "PBES2-HS512+A256KW" and header["enc"] == "A256GCM"
        assert header["p2c"] == node.settings.key_kdf_iterations

        opened = crypto.open_private_key(row.sealed_private, passphrase)
        assert opened.is_private
        assert crypto.public_jwk(opened) == row.public_jwk
        assert row.public_jwk["crv"] == curve and row.kid == crypto.thumbprint(row.public_jwk)

        d = str(opened.as_dict(private=True)["d"])
        raw = unb64(d)
        assert len(raw) == 32
        for spelling in (d, base64.b64encode(raw).decode().rstrip("="), raw.hex()):
            assert spelling not in row.sealed_private
            assert spelling not in table
            assert spelling.encode() not in on_disk
        assert raw not in on_disk
        # Nor in any decoded part of the sealed JWE: the key is encrypted, not merely encoded.
        for part in row.sealed_private.split("."):
            assert raw not in unb64(part) and d.encode() not in unb64(part)

        with pytest.raises(ConfigurationError, match="wrong CYBERPACT_KEY_PASSPHRASE"):
            crypto.open_private_key(row.sealed_private, passphrase + "!")
        # A fresh key store (no cached keys) given the wrong passphrase cannot use the key either.
        wrong = KeyStore("another-passphrase-long-enough", node.settings.key_kdf_iterations)
        with pytest.raises(ConfigurationError, match="wrong CYBERPACT_KEY_PASSPHRASE"):
            wrong.private(row)
        right = KeyStore(passphrase, node.settings.key_kdf_iterations).private(row)
        assert crypto.public_jwk(right) == row.public_jwk

    # The card announces exactly the public halves of the keys that were sealed.
    card = identity.read_card(served_card(node)["card"])
    assert card.sig_jwk == rows["sig"].public_jwk and card.enc_jwk == rows["enc"].public_jwk


# --- 2. the node card ---------------------------------------------------------------------------------


def _rfc7638(jwk: dict[str, Any]) -> str:
    """RFC 7638 written out here, not taken from the product: required members, sorted, no spaces."""
    members = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).decode().rstrip("=")


def _with_payload(card: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The card with its payload replaced and its signatures kept."""
    return {**copy.deepcopy(card), "payload": b64(canonical_json(payload))}


def test_node_card_states_the_settings_and_verifies(db_factory: DatabaseFactory, tmp_path: Path) -> None:
    n = federation_node(
        db_factory,
        tmp_path,
        "au-24x7",
        node_country="AU",
        node_authority="Australian Federal Police",
        node_roles="contact_point_24_7,competent_authority",
    )
    try:
        r = n.client().get(CARD_PATH)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        doc = r.json()
        assert doc["history"] == []
        card = doc["card"]
        info = identity.read_card(card)
        s = n.settings
        assert (info.node_id, info.name, info.country, info.authority) == (
            "au-24x7",
            "AU-24X7",
            "AU",
            "Australian Federal Police",
        )
        assert info.roles == ["contact_point_24_7", "competent_authority"]
        assert info.base_url == s.base_url == n.url
        assert info.seq == 1 and info.prev_sig_kid is None
        now = utcnow()
        assert info.valid_from <= now < info.valid_until
        assert info.valid_until - info.valid_from == timedelta(days=s.card_validity_days)

        payload = json.loads(unb64(card["payload"]))
        keys = {k["use"]: k for k in payload["keys"]}
        assert (keys["sig"]["kty"], keys["sig"]["crv"], keys["sig"]["alg"]) == ("OKP", "Ed25519", "Ed25519")
        assert (keys["enc"]["kty"], keys["enc"]["crv"]) == ("OKP", "X25519")
        for use in ("sig", "enc"):
            assert keys[use]["kid"] == _rfc7638(keys[use])
            assert keys[use]["kid"] == jc_jwk.JWK(**keys[use]).thumbprint()
        api = own_node(n)
        assert api["fingerprint"] == info.fingerprint
        assert (api["sig_kid"], api["enc_kid"]) == (keys["sig"]["kid"], keys["enc"]["kid"])

        # Another JOSE library verifies the self-signature with the key the card states.
        signed = jc_jws.JWS()
        signed.allowed_algs = ["Ed25519"]
        signed.deserialize(json.dumps(card))
        signed.verify(jc_jwk.JWK(**keys["sig"]))
        assert json.loads(signed.payload) == payload

        # Re-encoding the untouched payload gives the very bytes that were signed...
        assert _with_payload(card, payload)["payload"] == card["payload"]
        identity.read_card(_with_payload(card, payload))
        # ...so each change below is refused for the change alone.
        other_enc = {
            **crypto.public_jwk(crypto.generate_key("X25519")),
            "use": "enc",
            "alg": "ECDH-ES+A256KW",
        }
        changes: dict[str, Any] = {
            "typ": "cyberpact-node-card-v2",
            "v": payload["v"] + 1,
            "node_id": "pl-ca",
            "name": "Somebody Else",
            "country": "FR",
            "authority": "Not the Australian Federal Police",
            "roles": [*payload["roles"], "central_authority"],
            "base_url": "http://127.0.0.1:9",
            "seq": payload["seq"] + 1,
            "keys": [keys["sig"], other_enc],
            "prev_sig_kid": keys["sig"]["kid"],
            "valid_from": rfc3339(now - timedelta(days=3650)),
            "valid_until": rfc3339(now + timedelta(days=3650)),
        }
        assert set(changes) == set(payload), "every field of the card is tampered with below"
        for name, value in changes.items():
            assert payload[name] != value
            with pytest.raises(IntegrityFailure):
                identity.read_card(_with_payload(card, {**payload, name: value}))
        # A dropped field, and a signature from a key the card does not state, are refused as well.
        with pytest.raises(IntegrityFailure):
            identity.read_card(_with_payload(card, {k: v for k, v in payload.items() if k != "authority"}))
        forged = crypto.sign_json_multi(payload, [crypto.generate_key("Ed25519")], identity.CARD_TYP)
        with pytest.raises(IntegrityFailure, match="not signed by its own key"):
            identity.read_card(forged)
    finally:
        n.stop()


# --- 3. the command line ------------------------------------------------------------------------------


def cli(*args: str, ok: bool = True) -> Result:
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def printed_fingerprint(result: Result) -> str:
    found = FINGERPRINT.findall(result.output)
    assert len(found) == 1, result.output
    return str(found[0])


def listed(result: Result) -> dict[str, list[str]]:
    """`peers list` as rows of cells, by node id."""
    rows: dict[str, list[str]] = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if len(cells) == 7 and cells[0] not in ("", "node"):
            rows[cells[0]] = cells
    return rows


@pytest.fixture
def wide_cli(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # Wide enough that no table cell (a URL, a fingerprint) is cut to fit a terminal. The console took its
    # width when imported (pytest-xdist workers set COLUMNS=80), so COLUMNS alone does not do.
    monkeypatch.setattr(cli_console, "_width", 250)
    return cli_env


def test_init_show_and_rotate_print_the_fingerprint_the_api_reports(
    wide_cli: dict[str, str], settings: Settings
) -> None:
    first = cli("init")
    fp = printed_fingerprint(first)
    assert "node cyberpact-dev (test-node)" in first.output and "card #1" in first.output

    live = start_node(settings)
    try:
        api = own_node(live)
        assert api["fingerprint"] == fp and api["card_seq"] == 1
        shown = cli("keys", "show")
        assert printed_fingerprint(shown) == fp
        assert f"signing key {api['sig_kid']}" in shown.output
        assert f"encryption key {api['enc_kid']}" in shown.output
        old = identity.read_card(served_card(live)["card"])

        rotated = cli("keys", "rotate")
        new_fp = printed_fingerprint(rotated)
        assert new_fp != fp and "card #2" in rotated.output
        api = own_node(live)
        assert api["fingerprint"] == new_fp and api["card_seq"] == 2
        assert api["sig_kid"] != old.sig_jwk["kid"] and api["enc_kid"] != old.enc_jwk["kid"]
        assert printed_fingerprint(cli("keys", "show")) == new_fp

        doc = served_card(live)
        card = identity.read_card(doc["card"])
        assert card.fingerprint == new_fp and card.seq == 2
        assert card.prev_sig_kid == old.sig_jwk["kid"]
        # The old key vouches for the new card, so a peer that pinned the old one can follow it...
        identity.read_card(doc["card"], trusted_sig_jwks=[old.sig_jwk])
        assert [identity.read_card(c).fingerprint for c in doc["history"]] == [fp]
        # ...and a key it never trusted does not.
        stranger = crypto.public_jwk(crypto.generate_key("Ed25519"))
        with pytest.raises(IntegrityFailure, match="vouched"):
            identity.read_card(doc["card"], trusted_sig_jwks=[stranger])
    finally:
        live.stop()


def test_peers_commands_pin_and_change_what_list_shows(
    wide_cli: dict[str, str], settings: Settings, db_factory: DatabaseFactory, tmp_path: Path
) -> None:
    from cyberpact.kit.db import Database

    cli("init")
    peer = federation_node(db_factory, tmp_path, "au-24x7", node_country="AU")
    db = Database(settings.sqlalchemy_url)
    try:
        right = own_node(peer)["fingerprint"]
        # One character off: the near miss a mistyped or substituted key gives.
        wrong = right[:-1] + ("A" if right[-1] != "A" else "B")
        refused = cli("peers", "add", peer.url, "--fingerprint", wrong, ok=False)
        assert refused.exit_code == 1
        assert "fingerprint mismatch" in refused.stderr
        assert right in refused.stderr and wrong in refused.stderr
        assert "Traceback" not in refused.output
        with db.transaction(read_only=True) as s:
            assert s.scalar(select(func.count()).select_from(Peer)) == 0
        assert listed(cli("peers", "list")) == {}

        # Case and grouping do not matter when read out over the phone.
        added = cli("peers", "add", peer.url + "/", "--fingerprint", right.replace("-", " ").lower())
        assert f"trusted au-24x7 (AU-24X7, AU) at {peer.url}" in added.output
        row = listed(cli("peers", "list"))["au-24x7"]
        assert row[1:] == ["AU-24X7", "AU", "active", peer.url, right, "1"]

        assert "au-24x7: suspended" in cli("peers", "suspend", "au-24x7").output
        assert listed(cli("peers", "list"))["au-24x7"][3] == "suspended"
        assert "au-24x7: active" in cli("peers", "resume", "au-24x7").output
        assert listed(cli("peers", "list"))["au-24x7"][3] == "active"
        assert "au-24x7: removed" in cli("peers", "remove", "au-24x7").output
        assert listed(cli("peers", "list")) == {}
        assert listed(cli("peers", "list", "--all"))["au-24x7"][3] == "removed"
        # A removed peer is not brought back by `resume`; only pinning it again does.
        again = cli("peers", "resume", "au-24x7", ok=False)
        assert again.exit_code == 1 and "add it again" in again.stderr
        assert listed(cli("peers", "list", "--all"))["au-24x7"][3] == "removed"
    finally:
        db.dispose()
        peer.stop()


def test_after_a_peer_rotates_its_keys_the_list_the_show_and_the_desk_give_the_keys_in_force(
    wide_cli: dict[str, str],
    settings: Settings,
    db_factory: DatabaseFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An administrator compares fingerprints by telephone: the peer's reads out the key it uses now, and
    this node must show that one, not the one pinned before the peer rotated."""
    from cyberpact.federation import peers
    from cyberpact.kit.actor import SYSTEM
    from cyberpact.kit.db import Database
    from cyberpact.kit.i18n import translator
    from web.helpers import person, text_of

    cli("init")
    peer = federation_node(db_factory, tmp_path, "au-24x7", node_country="AU")
    db = Database(settings.sqlalchemy_url)
    live = start_node(settings)
    try:
        pinned = own_node(peer)["fingerprint"]
        cli("peers", "add", peer.url, "--fingerprint", pinned)
        assert "changed since pinned" not in cli("peers", "list").output
        assert "pinned at first contact" not in cli("peers", "show", "au-24x7").output

        with peer.db.transaction() as s:
            identity.rotate(s, keys_of(peer), peer.settings, SYSTEM)
        current = own_node(peer)["fingerprint"]
        assert current != pinned
        # Followed as on the next message: the new card is vouched for by the pinned key.
        with db.transaction() as s, peers.http_client(settings) as client:
            assert peers.refresh_card(s, settings, client, peers.get_peer(s, "au-24x7"))
        rotated = identity.read_card(served_card(peer)["card"]).valid_from

        listing = cli("peers", "list")
        assert listed(listing)["au-24x7"][5] == current
        assert f"changed since pinned: keys rotated {rotated:%Y-%m-%d}" in listing.output
        assert pinned not in listing.output
        shown = cli("peers", "show", "au-24x7").output.splitlines()
        assert f"fingerprint: {current}" in shown
        assert f"changed since pinned: keys rotated {rotated:%Y-%m-%d}" in shown
        assert f"pinned at first contact: {pinned}" in shown
        assert "No peer nobody" in cli("peers", "show", "nobody", ok=False).stderr
        # In 80 columns too: the node's id whole on one line, its address and fingerprint folded but whole.
        monkeypatch.setattr(cli_console, "_width", 80)
        narrow = cli("peers", "list").output
        assert max(len(line) for line in narrow.splitlines()) <= 80, narrow
        rows = [line.split("│")[1:-1] for line in narrow.splitlines() if line.startswith("│")]
        columns = ["".join(cell.strip() for cell in column) for column in zip(*rows, strict=True)]
        assert columns[0] == "au-24x7" and columns[4] == peer.url and columns[5].startswith(current), narrow

        page = text_of(person(live, "ops", "admin").get("/desk/admin/peers").text)
        day = translator("en").format_date(rotated.date(), "medium")
        assert f"{current} Changed since it was pinned The peer rotated its keys on {day}." in page
        assert f"Pinned at first contact: {pinned}" in page
        (api,) = live.client(live.user("root", "admin")).get("/api/v1/federation/peers").json()
        assert (api["fingerprint"], api["pinned_fingerprint"]) == (current, pinned)
        assert api["rotated_at"] is not None and parse_rfc3339(api["rotated_at"]) == rotated
    finally:
        live.stop()
        db.dispose()
        peer.stop()


# --- 4. suspension and resumption, end to end ---------------------------------------------------------


def test_a_resumed_sender_is_trusted_again(pair: tuple[LiveNode, LiveNode]) -> None:
    a, b = pair
    admin = b.client(b.admin_token)
    before = stored(b)
    assert admin.post("/api/v1/federation/peers/vn-24x7/suspend").json()["status"] == "suspended"
    refused = send(a, "au-24x7", "while suspended")
    result = worker(a).run_once()
    # Refused for now, not for good: kept, and tried again with the usual backoff.
    assert (result.claimed, result.rejected, result.delivered) == (1, 0, 0)
    with a.db.transaction() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_id == refused["message_id"])).one()
        assert (row.status, row.receipt_status) == ("pending", None)
        assert row.last_error == "au-24x7 refuses this node for now: sender_suspended"
        row.next_attempt_at = row.created_at  # the backoff, run out
    assert stored(b)[0] == before[0]

    assert admin.post("/api/v1/federation/peers/vn-24x7/resume").json()["status"] == "active"
    accepted = send(a, "au-24x7", "after resume")
    # The message refused earlier goes through with the new one, with nobody retrying it by hand.
    result = worker(a).run_once()
    assert (result.claimed, result.delivered, result.rejected) == (2, 2, 0)
    with b.db.transaction(read_only=True) as s:
        got = {m.message_id: m.payload["text"] for m in s.scalars(select(InboxMessage))}
    assert got == {accepted["message_id"]: "after resume", refused["message_id"]: "while suspended"}
    with a.db.transaction(read_only=True) as s:
        statuses = set(s.scalars(select(OutboxMessage.receipt_status)))
    assert statuses == {"accepted"}


# --- 5. a forged inner signature ----------------------------------------------------------------------


def test_a_tampered_inner_signature_is_refused_and_nothing_stored(pair: tuple[LiveNode, LiveNode]) -> None:
    a, b = pair
    ks = keys_of(a)
    with a.db.transaction(read_only=True) as s:
        sig_row = ks.current(s, "sig")
        assert sig_row is not None
        signing = ks.private(sig_row)
    card = identity.read_card(served_card(b)["card"])
    nodes = Nodes(
        sender=signing,
        sender_kid=sig_row.kid,
        recipient=OKPKey.import_key(card.enc_jwk),
        recipient_jwk=card.enc_jwk,
        recipient_kid=card.enc_jwk["kid"],
    )

    def header() -> dict[str, Any]:
        return inner_header(
            nodes,
            iss="vn-24x7",
            aud="au-24x7",
            created=rfc3339(utcnow()),
            msg_type="note",
            conv_id="forged",
        )

    payload = canonical_json({"text": "genuine"})
    genuine_header = header()
    head, body, signature = raw_jws(genuine_header, payload, signing).split(".")
    flipped = bytearray(unb64(signature))
    flipped[5] ^= 0x01
    swapped_header = header()
    s_head, _, s_signature = raw_jws(swapped_header, payload, signing).split(".")
    stranger_header = header()  # names a's key, signed by another
    tampered = [
        wrap(nodes, f"{head}.{body}.{b64(bytes(flipped))}", bound(genuine_header)),
        wrap(
            nodes, f"{s_head}.{b64(canonical_json({'text': 'changed'}))}.{s_signature}", bound(swapped_header)
        ),
        wrap(
            nodes,
            raw_jws(stranger_header, payload, crypto.generate_key("Ed25519")),
            bound(stranger_header),
        ),
    ]
    before = stored(b)
    receipts = post(b, *tampered)
    assert [(r["status"], r["reason"]) for r in receipts] == [("rejected", "bad_signature")] * 3
    ids = [genuine_header["msg_id"], swapped_header["msg_id"], stranger_header["msg_id"]]
    assert [r["message_id"] for r in receipts] == ids
    b_sig = crypto.import_public(card.sig_jwk)
    for token, item, message_id in zip(tampered, receipts, ids, strict=True):
        receipt = envelope.verify_receipt(
            item["receipt"],
            lambda kid: b_sig if kid == card.sig_jwk["kid"] else None,
            expected_message_id=message_id,
            expected_digest=hashlib.sha256(token.encode()).hexdigest(),
        )
        assert (receipt.status, receipt.reason) == ("rejected", "bad_signature")
        assert (receipt.receiver_node, receipt.sender_node) == ("au-24x7", "vn-24x7")
    assert stored(b) == before

    # The same envelope with its signature intact is taken: the refusals were for the tampering alone,
    # and consumed nothing (the first one's message id is still free).
    genuine = wrap(nodes, f"{head}.{body}.{signature}", bound(genuine_header))
    (item,) = post(b, genuine)
    assert (item["status"], item["message_id"]) == ("accepted", genuine_header["msg_id"])
    with b.db.transaction(read_only=True) as s:
        assert s.get_one(InboxMessage, genuine_header["msg_id"]).payload == {"text": "genuine"}
    assert stored(b)[0] == before[0] + 1


# --- 6. backoff -----------------------------------------------------------------------------------------


def test_retry_delays_grow_exponentially_with_jitter_up_to_the_cap(pair: tuple[LiveNode, LiveNode]) -> None:
    a, _ = pair
    base, cap = 10.0, 40.0  # long against a round's duration, so the bounds below need no slack
    a.settings.outbox_backoff_seconds = base
    a.settings.outbox_backoff_max_seconds = cap
    a.settings.breaker_threshold = 1000  # the circuit breaker is another test's subject
    with a.db.transaction() as s:
        s.get_one(Peer, "au-24x7").base_url = f"http://127.0.0.1:{free_port()}"  # nobody listens
    ids = [send(a, "au-24x7", f"m{i}")["message_id"] for i in range(8)]
    w = worker(a)
    try:
        for attempts in range(5):
            with a.db.transaction() as s:  # due now, as if the previous delay had passed
                s.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
            t0 = utcnow()
            result = w.run_once()
            t1 = utcnow()
            assert (result.claimed, result.failed) == (len(ids), len(ids)), result
            with a.db.transaction(read_only=True) as s:
                rows = list(s.scalars(select(OutboxMessage)))
            assert {r.message_id for r in rows} == set(ids)
            assert all(r.status == "pending" and r.attempts == attempts + 1 for r in rows)
            assert all((r.last_error or "").startswith("ConnectError") for r in rows), rows[0].last_error
            expected = min(base * 2**attempts, cap)
            for r in rows:
                # The delay was added to a time between t0 and t1.
                longest = (r.next_attempt_at - t0).total_seconds()
                shortest = (r.next_attempt_at - t1).total_seconds()
                assert longest >= 0.5 * expected and shortest <= expected, (attempts, shortest, longest)
                assert shortest <= cap  # the longest delay configured is a bound, jitter included
            # All rows of one round are settled at one time, so different times are different delays.
            assert len({r.next_attempt_at for r in rows}) > 1, f"no jitter in round {attempts}"
    finally:
        w.stop()
