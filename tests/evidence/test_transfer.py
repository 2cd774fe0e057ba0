"""Two real nodes: a package travels chunk by chunk, verified on arrival, with signed receipts and heads."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import DatabaseFactory, LiveNode, federation_node, pin
from cyberpact.evidence import bundle, custody, sending, transfer
from cyberpact.evidence.models import (
    CustodyAlert,
    CustodyEvent,
    CustodyNode,
    EvidencePackage,
    EvidenceTransfer,
)
from cyberpact.evidence.schemas import PeerReceiptAnswer
from cyberpact.federation import handlers, outbox
from cyberpact.federation.delivery import OutboxWorker
from cyberpact.federation.envelope import OpenedEnvelope
from cyberpact.federation.models import OutboxMessage
from cyberpact.federation.models import Peer as FederationPeer
from cyberpact.kit.actor import SYSTEM, Actor
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import utcnow
from evidence.helpers import (
    context,
    declare,
    incoming_request,
    make_package,
    put,
    random_bytes,
    sealed_package,
)
from web.helpers import person, text_of

CHUNK = 64 * 1024


@pytest.fixture
def pair(db_factory: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode]]:
    a = federation_node(db_factory, tmp_path, "vn-ca", node_country="VN", evidence_chunk_bytes=CHUNK)
    b = federation_node(db_factory, tmp_path, "pl-ca", node_country="PL", evidence_chunk_bytes=CHUNK)
    pin(a, b)
    pin(b, a)
    yield a, b
    a.stop()
    b.stop()


def deliver(node: LiveNode) -> None:
    s = node.settings
    w = OutboxWorker(node.db, KeyStore(s.key_passphrase_value(), s.key_kdf_iterations), s)
    while w.run_once().claimed:
        pass


def offer(a: LiveNode, files: dict[str, bytes]) -> tuple[dict, str]:
    client = a.client(a.admin_token)
    pkg = sealed_package(client, files)
    r = client.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"})
    assert r.status_code == 202, r.text
    deliver(a)
    return pkg, r.json()["id"]


def kinds(node: LiveNode, package_id: str) -> list[str]:
    with node.db.transaction(read_only=True) as s:
        return list(
            s.scalars(
                select(CustodyEvent.kind)
                .where(CustodyEvent.package_id == package_id)
                .order_by(CustodyEvent.seq)
            )
        )


def received(b: LiveNode) -> EvidencePackage:
    with b.db.transaction(read_only=True) as s:
        return s.scalars(select(EvidencePackage)).one()


def test_package_travels_with_receipt_heads_and_custody(
    pair: tuple[LiveNode, LiveNode], tmp_path: Path
) -> None:
    a, b = pair
    data = random_bytes(7 * CHUNK + 11)
    pkg, tid = offer(a, {"disk.img": data, "log.txt": b"hello"})
    with httpx.Client(timeout=30) as client:
        t = sending.push(a.db, context(a), tid, client)
    assert t.status == "accepted" and t.receipt
    got = received(b)
    assert got.status == "received" and got.origin_package_id == pkg["id"]
    assert got.manifest_digest == pkg["manifest_digest"]
    bc = b.client(b.admin_token)
    assert bc.get(f"/api/v1/evidence/packages/{got.id}/files/0/content").content == data
    assert kinds(a, pkg["id"]) == ["created", "sealed", "transferred"]
    assert kinds(b, str(got.id))[:2] == ["received", "verified"]
    # Each side now holds the other's signed head.
    with a.db.transaction(read_only=True) as s:
        assert custody.peer_latest(s, "pl-ca") is not None
    with b.db.transaction(read_only=True) as s:
        assert custody.peer_latest(s, "vn-ca") is not None
    # The receipt also arrives as a message; applying it again changes nothing.
    deliver(b)
    assert kinds(a, pkg["id"]) == ["created", "sealed", "transferred"]
    # Pushing again is a no-op too.
    with httpx.Client(timeout=30) as client:
        assert sending.push(a.db, context(a), tid, client).status == "accepted"
    assert kinds(b, str(got.id))[:2] == ["received", "verified"]
    # The receiver's court bundle carries the origin's custody, proven against the origin's head.
    with b.db.transaction() as s:
        out = bundle.export(
            s,
            context(b),
            Actor(None, "clerk"),
            s.get_one(EvidencePackage, got.id),
            tmp_path / "b.zip",
        )
    report = bundle.verify_bundle(out)
    assert report.ok, report.failures
    names = {c.name for c in report.checks}
    assert "custody/origin-events.jsonl" in names and any(n.startswith("receipts/") for n in names)

    # A second transfer: the heads exchanged now come with consistency proofs from the last ones.
    _pkg2, tid2 = offer(a, {"second.bin": b"x" * 1000})
    with httpx.Client(timeout=30) as client:
        assert sending.push(a.db, context(a), tid2, client).status == "accepted"
    with b.db.transaction(read_only=True) as s:
        sizes = sorted(h.size for h in s.scalars(select(custody.PeerTreeHead)))
        assert len(sizes) == 2 and sizes[0] < sizes[1]


def test_conditions_on_use_travel_with_the_package_and_bind_the_receivers_desk(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    a, b = pair
    conditions = {
        "purpose": "Trial of the Hanoi hospitals ransomware operators",
        "restrictions": ["Not for tax or customs proceedings"],
        "confidential": True,
        "onward_transfer": False,
        "until": "2027-12-31T23:59:59+07:00",
    }
    client = a.client(a.admin_token)
    pkg = sealed_package(client, {"mailbox.eml": b"From: x"}, use_conditions=conditions)
    r = client.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"})
    assert r.status_code == 202, r.text
    deliver(a)
    with httpx.Client(timeout=30) as http:
        assert sending.push(a.db, context(a), r.json()["id"], http).status == "accepted"
    got = received(b)
    assert got.use_conditions == pkg["use_conditions"] == conditions
    page = text_of(person(b, "lan", "officer").get(f"/desk/evidence/{got.id}").text)
    for shown in (
        "Set by vn-ca when it sealed the package",
        "May be used only in: Trial of the Hanoi hospitals ransomware operators",
        "Not for tax or customs proceedings",
        "Confidential: the fact and substance are to be kept confidential",
        "Not to be passed on to a third State or organization without the consent of vn-ca (art. 36).",
        "Usable until",
    ):
        assert shown in page, shown


def test_an_officer_sends_a_sealed_package_from_the_desk_and_sees_the_receipt(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    a, b = pair
    pkg = sealed_package(a.client(a.admin_token), {"image.dd": random_bytes(3 * CHUNK)})
    an = person(a, "an", "officer")
    page = an.get(f"/desk/evidence/{pkg['id']}").text
    assert '<option value="pl-ca">' in page

    # A peer this node does not trust: refused on the page, nothing queued.
    r = an.post(f"/desk/evidence/{pkg['id']}/send", {"peer": "nobody"})
    assert r.status_code == 404 and "Please correct the following" in r.text
    with a.db.transaction(read_only=True) as s:
        assert s.scalars(select(EvidenceTransfer)).all() == []

    r = an.post(f"/desk/evidence/{pkg['id']}/send", {"peer": "pl-ca"})
    assert r.status_code == 303, r.text
    assert re.search(
        r"pl-ca\s*:\s*Offered, waiting for the peer", text_of(an.get(r.headers["location"]).text)
    )
    deliver(a)
    with a.db.transaction(read_only=True) as s:
        tid = s.scalars(select(EvidenceTransfer.id)).one()
    with httpx.Client(timeout=30) as http:
        assert sending.push(a.db, context(a), tid, http).status == "accepted"
    shown = text_of(an.get(r.headers["location"]).text)
    assert re.search(r"pl-ca\s*:\s*Received and verified \(signed receipt\)", shown)
    # The receiver holds the copy; a received package is not sent on from the desk.
    got = received(b)
    assert "Send the package" not in person(b, "lan", "officer").get(f"/desk/evidence/{got.id}").text


def _peer_request(a: LiveNode, tid: str) -> tuple[bytes, dict]:
    with a.db.transaction(read_only=True) as s:
        t = transfer.get_transfer(s, tid)
        return transfer.transfer_key(s, context(a), t), t.offer


def test_hostile_chunks_are_refused_and_nothing_is_stored(pair: tuple[LiveNode, LiveNode]) -> None:
    a, b = pair
    _, tid = offer(a, {"disk.img": random_bytes(3 * CHUNK)})
    key, terms = _peer_request(a, tid)
    codec = transfer.transfer_codec(key, __import__("uuid").UUID(tid), terms["files"][0])
    c = b.client()
    url = f"/federation/v1/transfers/{tid}/files/0/chunks"
    hdr = {"X-Cyberpact-Node": "vn-ca"}
    good0 = bytes(codec.seal(0, random_bytes(CHUNK)))
    bad = bytearray(good0)
    bad[100] ^= 1
    r = c.put(f"{url}/0", content=bytes(bad), headers=hdr)
    assert r.status_code == 422 and r.json()["code"] == "tamper_detected" and "altered" in r.json()["detail"]
    r = c.put(f"{url}/0", content=bytes(codec.seal(1, random_bytes(CHUNK))), headers=hdr)
    assert r.status_code == 422 and "holds chunk 1" in r.json()["detail"]
    r = c.put(f"{url}/2", content=bytes(codec.seal(2, random_bytes(CHUNK))), headers=hdr)
    assert r.status_code == 409 and r.json()["expected_chunk"] == 0
    r = c.put(f"{url}/0", content=good0, headers={"X-Cyberpact-Node": "au-ca"})
    assert r.status_code == 404
    r = c.get(f"/federation/v1/transfers/{tid}", headers=hdr)
    assert r.status_code == 422 and "Transfer-Auth" in r.json()["detail"]
    path = f"/federation/v1/transfers/{tid}"
    forged = transfer.auth_value(b"k" * 32, "GET", path, b"")
    assert c.get(path, headers={**hdr, transfer.AUTH_HEADER: forged}).status_code == 422
    with b.db.transaction(read_only=True) as s:
        from cyberpact.evidence.models import EvidenceFile

        assert s.scalars(select(EvidenceFile.chunks_stored)).all() == [0]
    assert not list((b.settings.data_dir / "evidence").rglob("*/*/*"))


def test_receiver_rejects_content_that_does_not_match_the_manifest(pair: tuple[LiveNode, LiveNode]) -> None:
    import uuid

    a, b = pair
    _, tid = offer(a, {"disk.img": random_bytes(2 * CHUNK)})
    key, terms = _peer_request(a, tid)
    codec = transfer.transfer_codec(key, uuid.UUID(tid), terms["files"][0])
    c = b.client()
    for i in range(2):  # well-formed chunks under the right key, but not the signed content
        r = c.put(
            f"/federation/v1/transfers/{tid}/files/0/chunks/{i}",
            content=bytes(codec.seal(i, random_bytes(CHUNK))),
            headers={"X-Cyberpact-Node": "vn-ca"},
        )
        assert r.status_code == 200, r.text
    ctx = context(a)
    with a.db.transaction(read_only=True) as s:
        t = transfer.get_transfer(s, tid)
        body = sending._completion(s, ctx, "pl-ca", t.package_id, 0)  # type: ignore[arg-type]
    with httpx.Client(base_url=b.url) as client:
        r = sending._post_json(client, "", f"/federation/v1/transfers/{tid}/complete", key, body, "vn-ca")
    assert r.status_code == 200, r.text
    t = sending.apply_receipt(a.db, ctx, "pl-ca", PeerReceiptAnswer.model_validate(r.json()))
    assert t.status == "rejected" and "SHA-256" in (t.error or "")
    got = received(b)
    assert got.status == "deleted" and kinds(b, str(got.id)) == []
    assert not list((b.settings.data_dir / "evidence").rglob("*/*/*"))


def test_a_peer_rewriting_its_log_is_refused_and_flagged(pair: tuple[LiveNode, LiveNode]) -> None:
    a, b = pair
    _, tid = offer(a, {"one.bin": b"first"})
    with httpx.Client(timeout=30) as client:
        assert sending.push(a.db, context(a), tid, client).status == "accepted"
    # a now rewrites its own history (event 0) and re-signs: heads old and new cannot both be true.
    from cyberpact.evidence import merkle
    from cyberpact.evidence.models import CustodyHead
    from cyberpact.kit.canonical import canonical_json_floatless

    with a.db.transaction() as s:
        rows = list(s.scalars(select(CustodyEvent).order_by(CustodyEvent.seq)))
        doc = json.loads(rows[0].entry)
        doc["actor"] = "nobody"
        rows[0].entry = canonical_json_floatless(doc).decode()
        s.execute(CustodyNode.__table__.delete())
        s.execute(CustodyHead.__table__.delete())
        tree = merkle.MemoryTree([merkle.leaf_hash(r.entry.encode()) for r in rows])
        for level, hashes in enumerate(tree.levels):
            for idx, h in enumerate(hashes):
                s.add(CustodyNode(level=level, idx=idx, hash=h))
    _, tid2 = offer(a, {"two.bin": b"second"})
    with httpx.Client(timeout=30) as client, pytest.raises(sending.TransferPending, match="not consistent"):
        sending.push(a.db, context(a), tid2, client)
    with b.db.transaction(read_only=True) as s:
        alert = s.scalars(select(CustodyAlert)).one()
        assert alert.peer == "vn-ca"
        assert s.get_one(EvidenceTransfer, __import__("uuid").UUID(tid2)).status == "refused"
    r = b.client(b.admin_token).get("/api/v1/evidence/custody/alerts")
    assert r.status_code == 200 and r.json()[0]["peer"] == "vn-ca"


def test_only_sealed_own_packages_travel(pair: tuple[LiveNode, LiveNode]) -> None:
    a, _ = pair
    client = a.client(a.admin_token)
    pkg = client.post("/api/v1/evidence/packages", json={"case_ref": "C", "title": "open"}).json()
    r = client.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"})
    assert r.status_code == 409 and r.json()["code"] == "package_sealed"
    sealed = sealed_package(client, {"a": b"1"})
    r = client.post(f"/api/v1/evidence/packages/{sealed['id']}/transfers", json={"peer": "nobody"})
    assert r.status_code == 404


def test_evidence_for_one_state_s_request_is_not_sent_to_another(pair: tuple[LiveNode, LiveNode]) -> None:
    # Gathered for Australia's request: sending it to Poland is a slip of the list or a disclosure
    # Australia never agreed to (art. 36). Refused, and nothing is queued.
    a, _ = pair
    client = a.client(a.admin_token)
    rid = incoming_request(a, "au-24x7")
    pkg = sealed_package(client, {"mail.eml": b"for Australia"}, request_ref=rid)
    r = client.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"})
    assert r.status_code == 422 and "au-24x7" in r.json()["errors"][0]["message"], r.text
    with a.db.transaction(read_only=True) as s:
        assert s.scalars(select(EvidenceTransfer)).all() == []


def test_a_package_citing_a_request_the_sender_is_not_part_of_is_refused(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    # Poland holds a request from Australia; Viet Nam, knowing its id, files a package under it. Request
    # ids are shared only by the two nodes of a request: Poland refuses the offer and stores nothing.
    import uuid

    from cyberpact.federation.models import OutboxMessage

    a, b = pair
    rid = uuid.uuid4()
    incoming_request(b, "au-24x7", rid=rid)
    incoming_request(a, "pl-ca", rid=rid)  # so that Viet Nam's own node lets the package be filed
    client = a.client(a.admin_token)
    ours = uuid.uuid4()  # the control: a request that is between the two
    incoming_request(b, "vn-ca", rid=ours)
    incoming_request(a, "pl-ca", rid=ours)
    for ref, body in ((rid, b"planted"), (ours, b"answer")):
        pkg = sealed_package(client, {"mail.eml": body}, request_ref=str(ref))
        r = client.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"})
        assert r.status_code == 202, r.text
    deliver(a)
    with a.db.transaction(read_only=True) as s:
        query = select(OutboxMessage).where(OutboxMessage.message_type == "evidence.offer")
        statuses = [m.receipt_status for m in s.scalars(query.order_by(OutboxMessage.seq))]
    assert statuses == ["rejected", "accepted"]
    with b.db.transaction(read_only=True) as s:
        assert [p.request_ref for p in s.scalars(select(EvidencePackage))] == [str(ours)]


def test_the_transfer_key_is_stored_only_wrapped_to_the_receiver(pair: tuple[LiveNode, LiveNode]) -> None:
    # Both nodes keep the offer's payload in clear for proof (outbox, inbox, the signed inner JWS); the
    # key that opens every chunk of the transfer must not be readable there.
    import base64
    import uuid

    from cyberpact.federation.models import InboxMessage, OutboxMessage

    a, b = pair
    _pkg, tid = offer(a, {"mail.eml": b"the evidence"})
    with a.db.transaction(read_only=True) as s:
        key = transfer.transfer_key(s, context(a), s.get_one(EvidenceTransfer, uuid.UUID(tid)))
        sent = s.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "evidence.offer")).one()
    with b.db.transaction(read_only=True) as s:
        got = s.scalars(select(InboxMessage).where(InboxMessage.message_type == "evidence.offer")).one()
    assert sent.receipt_status == "accepted" and "key" not in got.payload
    signed = base64.urlsafe_b64decode(got.signed.split(".")[1] + "==").decode()
    for form in (
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        key.hex(),
    ):
        for stored in (json.dumps(sent.payload), json.dumps(got.payload), signed):
            assert form not in stored
    # The receiver opens it with its own key and the transfer completes.
    with httpx.Client(timeout=30) as client:
        assert sending.push(a.db, context(a), tid, client).status == "accepted"


def test_an_offer_whose_key_does_not_open_with_the_receiver_s_key_is_refused(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    from cyberpact.federation.models import OutboxMessage
    from cyberpact.kit import crypto
    from cyberpact.kit.keystore import NodeKey

    a, b = pair
    with b.db.transaction(read_only=True) as s:
        enc_kid = s.scalars(select(NodeKey.kid).where(NodeKey.purpose == "enc")).first()
    stranger = crypto.public_jwk(crypto.generate_key("X25519"))
    client = a.client(a.admin_token)
    bad_keys = [
        crypto.wrap_for(stranger, b"k" * 32, transfer.KEY_TYP),  # to a key b does not have
        crypto.wrap_for({**stranger, "kid": enc_kid}, b"k" * 32, transfer.KEY_TYP),  # b's kid, not b's key
        "not-a-jwe",
    ]
    for bad in bad_keys:
        pkg = sealed_package(client, {"x.bin": b"x"})
        assert client.post(
            f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"}
        ).is_success
        with a.db.transaction() as s:
            row = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending")).one()
            row.payload = {**row.payload, "key_jwe": bad}
        deliver(a)
    with a.db.transaction(read_only=True) as s:
        query = select(OutboxMessage.receipt_status).where(OutboxMessage.message_type == "evidence.offer")
        assert list(s.scalars(query)) == ["rejected"] * len(bad_keys)
    with b.db.transaction(read_only=True) as s:
        assert s.scalars(select(EvidencePackage)).all() == []
        assert s.scalars(select(EvidenceTransfer)).all() == []


def test_a_peer_answering_nonsense_leaves_the_transfer_to_resume_and_changes_nothing(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    """What a peer answers is input: each shape below is a transfer left pending with a reason, not an
    exception that ends the worker's round for the transfers to every other peer."""
    a, _ = pair
    pkg, tid = offer(a, {"disk.img": random_bytes(2 * CHUNK)})
    answers: list[tuple[int, bytes]] = []

    class Peer(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, body = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = _answer

        def log_message(self, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Peer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with a.db.transaction() as s:  # pl-ca's software, as far as vn-ca can tell, now answers from here
        s.get_one(FederationPeer, "pl-ca").base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    receiving = {"status": "receiving", "files": [{"index": 0, "chunks_stored": 0}], "peer_head_size": 0}
    hostile: list[tuple[list[tuple[int, Any]], str]] = [
        ([(200, [])], "not understood: the body: Input should be an object"),
        ([(200, "not json")], "not understood: the body: Invalid JSON"),
        (
            [(200, {"status": "receiving", "files": 5})],
            "not understood: files: Input should be a valid array",
        ),
        (
            [(200, {"status": "receiving", "files": [{"index": -1, "chunks_stored": 0}]})],
            "not understood: files.0.index: Input should be greater than or equal to 0",
        ),
        (
            [(200, {"status": "done", "receipt": 42})],
            "not understood: receipt: Input should be a valid string",
        ),
        ([(200, {"status": "done", "receipt": "not.a.receipt"})], "not a compact JWS"),
        ([(503, [1, 2])], "HTTP 503"),
        ([(200, receiving), (200, {"chunks_stored": "many"})], "file 0 chunk 0: the peer's answer"),
        (
            [(200, receiving), (200, {"chunks_stored": 1}), (200, {"chunks_stored": 2}), (200, {})],
            "completion: the peer's answer is not understood: receipt: Field required",
        ),
    ]
    try:
        for bodies, reason in hostile:
            answers.extend(
                (status, body.encode() if isinstance(body, str) else json.dumps(body).encode())
                for status, body in bodies
            )
            with httpx.Client(timeout=30) as client, pytest.raises(CyberpactError) as caught:
                sending.push(a.db, context(a), tid, client)
            assert reason in str(caught.value), (bodies, str(caught.value))
            assert answers == [], "the sender stopped before asking what it should have"
        # The background worker takes the same answers in its stride.
        answers.append((200, b"[]"))
        with httpx.Client(timeout=30) as client:
            assert sending.TransferWorker(a.db, context(a), client).run_once() == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    with a.db.transaction(read_only=True) as s:
        assert transfer.get_transfer(s, tid).status in ("offered", "sending")
    assert kinds(a, pkg["id"]) == ["created", "sealed"], "nothing was recorded as transferred"


@pytest.mark.parametrize(
    "payload",
    [{}, {"receipt": 5}, {"receipt": "x", "consistency": "abc"}, {"receipt": "x", "from_size": -1}],
    ids=["empty", "number", "proof-not-a-list", "negative-size"],
)
def test_a_receipt_message_that_is_not_one_is_refused(pair: tuple[LiveNode, LiveNode], payload: dict) -> None:
    a, b = pair
    with b.db.transaction() as s:
        message_id = outbox.enqueue(
            s, SYSTEM, recipient="vn-ca", message_type=transfer.RECEIPT, payload=payload
        ).message_id
    deliver(b)
    with b.db.transaction(read_only=True) as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.message_id == message_id)).one()
    # Refused whole, in a signed receipt, rather than failing the inbox's batch (a 500, sent again forever).
    assert (row.receipt_status, row.last_error) == ("rejected", "rejected by vn-ca: refused")
    handler = handlers.handler_for(transfer.RECEIPT)
    assert handler is not None
    message = OpenedEnvelope(
        message_id=message_id,
        sender="pl-ca",
        recipient="vn-ca",
        created=utcnow(),
        message_type=transfer.RECEIPT,
        conversation_id="c",
        in_reply_to=None,
        payload=payload,
        digest="0" * 64,
        signing_kid="k",
        signed="",
    )
    with (
        pytest.raises(CyberpactError, match="Not an evidence receipt"),
        a.db.transaction() as s,
    ):
        handler(s, message)
    with a.db.transaction(read_only=True) as s:
        assert s.scalars(select(EvidenceTransfer)).all() == []


def test_a_package_with_a_withdrawn_file_travels_with_its_gap(
    pair: tuple[LiveNode, LiveNode], tmp_path: Path
) -> None:
    # File 0 was declared with a wrong digest and withdrawn; the manifest lists only file 1, under its own
    # index, and the receiver stores and verifies it under that index.
    a, b = pair
    client = a.client(a.admin_token)
    pkg = make_package(client)
    declare(client, pkg["id"], "wrong.bin", 5, sha256="0" * 64)
    r = client.delete(f"/api/v1/evidence/packages/{pkg['id']}/files/0", params={"reason": "wrong digest"})
    assert r.status_code == 204, r.text
    data = random_bytes(2 * CHUNK + 3)
    declare(client, pkg["id"], "right.bin", len(data), sha256=hashlib.sha256(data).hexdigest())
    assert put(client, pkg["id"], 1, data).json()["complete"]
    sealed = client.post(f"/api/v1/evidence/packages/{pkg['id']}/seal").json()
    assert [f["index"] for f in sealed["files"]] == [1]
    r = client.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"})
    assert r.status_code == 202, r.text
    deliver(a)
    with httpx.Client(timeout=30) as http:
        assert sending.push(a.db, context(a), r.json()["id"], http).status == "accepted"
    got = received(b)
    assert got.manifest_digest == sealed["manifest_digest"]
    bc = b.client(b.admin_token)
    assert bc.get(f"/api/v1/evidence/packages/{got.id}/files/1/content").content == data
    assert bc.get(f"/api/v1/evidence/packages/{got.id}/files/0/content").status_code == 404
    with b.db.transaction() as s:
        out = bundle.export(
            s, context(b), Actor(None, "clerk"), s.get_one(EvidencePackage, got.id), tmp_path / "gap.zip"
        )
    report = bundle.verify_bundle(out)
    assert report.ok, report.failures


def test_a_receipt_applied_twice_at_once_is_recorded_once(
    pair: tuple[LiveNode, LiveNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The receipt comes in the peer's answer to the completion and again as a message, and the two can be
    # applied at the same moment (on PostgreSQL, by different workers). The second must wait for the first
    # and then find the transfer accepted: one "transferred" in the custody log, not two.
    a, _b = pair
    if a.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time")
    caught: list[PeerReceiptAnswer] = []
    monkeypatch.setattr(sending, "apply_receipt", lambda _db, _ctx, _peer, answer: caught.append(answer))
    pkg, tid = offer(a, {"log.txt": b"twice"})
    with httpx.Client(timeout=30) as client:
        sending.push(a.db, context(a), tid, client)
    monkeypatch.undo()
    [answer] = caught
    ctx = context(a)
    second: list[str] = []

    def apply_again() -> None:
        try:
            second.append(sending.apply_receipt(a.db, ctx, "pl-ca", answer).status)
        except Exception as exc:  # shown by the assertion below rather than lost with the thread
            second.append(repr(exc))

    with a.db.transaction() as s:
        assert sending._apply_receipt(s, ctx, "pl-ca", answer).status == "accepted"
        other = threading.Thread(target=apply_again)
        other.start()
        other.join(1.0)  # it waits for this transaction to end
        assert other.is_alive(), "the second application did not wait for the first"
    other.join(30)
    assert second == ["accepted"]
    assert kinds(a, pkg["id"]) == ["created", "sealed", "transferred"]


def _rewrite(src: Path, dst: Path, change: Any) -> Path:
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            body = change(info.filename, zin.read(info))
            if body is not None:
                zout.writestr(info, body)
    return dst


def test_a_received_package_s_bundle_is_bound_to_the_exporting_node_s_signed_records(
    pair: tuple[LiveNode, LiveNode], tmp_path: Path
) -> None:
    import base64
    import zipfile

    from cyberpact.federation import identity
    from cyberpact.kit import crypto
    from cyberpact.kit.canonical import canonical_json

    a, b = pair
    _pkg, tid = offer(a, {"mailbox.eml": b"From: suspect\n\nthe plan\n"})
    with httpx.Client(timeout=30) as http:
        assert sending.push(a.db, context(a), tid, http).status == "accepted"
    with b.db.transaction() as s:
        out = bundle.export(
            s,
            context(b),
            Actor(None, "clerk"),
            s.get_one(EvidencePackage, received(b).id),
            tmp_path / "b.zip",
        )
    genuine = bundle.verify_bundle(out)
    assert genuine.ok, genuine.failures
    checks = {c.name: c.detail for c in genuine.checks}
    assert (
        "custody/origin-events.jsonl" in checks
        and "cards/vn-ca.json" in checks
        and "cards/pl-ca.json" in checks
    )
    with zipfile.ZipFile(out) as zf:
        vn_key = json.loads(zf.read("keys/vn-ca.jwks.json"))["keys"][0]
        pl_key = json.loads(zf.read("keys/pl-ca.jwks.json"))["keys"][0]
        token = zf.read("manifest.jws").decode().strip()
        origin_head = zf.read("custody/origin-head.jws").decode().strip()
    assert set(genuine.signers["vn-ca"][identity.fingerprint(vn_key)]) == {
        "manifest.jws",
        "custody/origin-head.jws",
    }
    assert "custody/head.jws" in genuine.signers["pl-ca"][identity.fingerprint(pl_key)]

    def verdict(change: Any, name: str) -> list[tuple[str, str]]:
        bad = _rewrite(out, tmp_path / f"{name}.zip", change)
        report = bundle.verify_bundle(bad, tmp_path / name)
        assert not report.ok and not (tmp_path / name).exists()
        return [(c.name, c.detail) for c in report.failures]

    # D7: the origin's custody is required for a received package, and never left unchecked.
    failures = verdict(lambda n, body: None if n == "custody/origin-head.jws" else body, "nohead")
    assert ("custody/origin-head.jws", "missing") in failures
    assert ("custody/origin-events.jsonl", "not checked: no verified member vouches for it") in failures
    failures = verdict(lambda n, body: None if n == "custody/origin-events.jsonl" else body, "noevents")
    assert failures == [("custody/origin-events.jsonl", "missing")]

    # D5: file and manifest swapped, manifest and origin head re-signed with a fresh key put in keys/.
    evil = crypto.generate_key("Ed25519")
    evil_jwk = crypto.public_jwk(evil)
    p = token.split(".")[1]
    manifest = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    forged = b"From: attacker\n\nI confess.\n"
    manifest["files"][0].update(
        size=len(forged),
        sha256=hashlib.sha256(forged).hexdigest(),
        blake2b=hashlib.blake2b(forged).hexdigest(),
    )
    digest = hashlib.sha256(canonical_json(manifest)).hexdigest()
    hp = origin_head.split(".")[1]
    head_payload = json.loads(base64.urlsafe_b64decode(hp + "=" * (-len(hp) % 4)))

    def forge(n: str, body: bytes) -> bytes:
        if n == "manifest.jws":
            return crypto.sign_json(evil, manifest).encode()
        if n == "custody/origin-head.jws":
            return crypto.sign_json(evil, head_payload).encode()
        if n == "keys/vn-ca.jwks.json":
            return json.dumps({"keys": [evil_jwk]}).encode()
        if n == "bundle.json":
            return json.dumps({**json.loads(body), "manifest_digest": digest}).encode()
        if n.startswith("files/0000"):
            return forged
        return body

    failures = verdict(forge, "forged")
    names = [f[0] for f in failures]
    assert "manifest digest" in names and "cards/vn-ca.json" in names, failures
    assert any(f[0].startswith("receipts/") and "another head of the origin" in f[1] for f in failures)
    detail = dict(failures)["manifest digest"]
    assert f"the manifest hashes to {digest}" in detail and "received) records" in detail
    assert "is not in keys/vn-ca.jwks.json" in dict(failures)["cards/vn-ca.json"]

    # Cards that are not cards, or another node's, are named.
    failures = verdict(
        lambda n, body: (
            b'{"garbage": true}'
            if n == "cards/vn-ca.json"
            else b"not json"
            if n == "cards/pl-ca.json"
            else body
        ),
        "cards",
    )
    assert [f[0] for f in failures] == ["cards/pl-ca.json", "cards/vn-ca.json"], failures
    with zipfile.ZipFile(out) as zf:
        pl_card = zf.read("cards/pl-ca.json")
    failures = verdict(lambda n, body: pl_card if n == "cards/vn-ca.json" else body, "swapped")
    assert failures == [("cards/vn-ca.json", "the card is pl-ca's, not vn-ca's")]
