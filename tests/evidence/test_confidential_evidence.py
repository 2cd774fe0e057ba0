"""Evidence of a confidential matter is seen only by those who may see the matter, by every way in: the
custody log, transfers, packages filed by case reference, packages received from a peer, and whatever
address a client claims to come from."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import LiveNode, start_node
from cyberpact.audit.models import AuditRecord
from cyberpact.cases.models import Case, Request
from cyberpact.config import Settings
from cyberpact.evidence import custody, sending
from cyberpact.evidence.models import EvidencePackage
from cyberpact.federation.delivery import OutboxWorker
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.keystore import KeyStore
from evidence.helpers import context, declare, incoming_request, make_package, put, sealed_package
from web.helpers import person


def denials(node: LiveNode, username: str) -> list[AuditRecord]:
    with node.db.transaction(read_only=True) as s:
        query = select(AuditRecord).where(AuditRecord.actor == username, AuditRecord.outcome == "denied")
        return list(s.scalars(query.order_by(AuditRecord.seq)))


def confidential_package(node: LiveNode, files: dict[str, bytes], **extra: Any) -> tuple[dict[str, Any], str]:
    """A package the 24/7 contact point files under a request Australia sent in confidence."""
    rid = incoming_request(node, "au-24x7", "fact_and_substance")
    channel = node.client(node.user("cp1", "contact_point"))
    return sealed_package(channel, files, request_ref=rid, **extra), rid


# --- the client's address is no credential ---------------------------------------------------------------


@pytest.fixture
def proxied(settings: Settings) -> Iterator[LiveNode]:
    """A node behind a reverse proxy on loopback: X-Forwarded-For is taken as the client's address."""
    live = start_node(settings, proxy_headers=True)
    yield live
    live.stop()


def test_a_forwarded_address_naming_the_command_line_opens_nothing(proxied: LiveNode) -> None:
    pkg, rid = confidential_package(proxied, {"a.txt": b"secret"})
    plain = proxied.client(proxied.user("o3", "officer"))
    url = f"/api/v1/evidence/packages/{pkg['id']}/files/0/content"
    ordinary = plain.get(url)
    assert ordinary.status_code == 404
    for forged in ("cli", "system"):
        spoofed = {"X-Forwarded-For": forged}
        r = plain.get(url, headers=spoofed)
        assert (r.status_code, r.json()) == (404, ordinary.json()) and b"secret" not in r.content
        listed = plain.get("/api/v1/evidence/packages", headers=spoofed).json()["items"]
        assert pkg["id"] not in [p["id"] for p in listed]
        sent = plain.post(
            f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "au-24x7"}, headers=spoofed
        )
        assert sent.status_code == 404
        filed = plain.post(
            "/api/v1/evidence/packages",
            json={"case_ref": "C", "title": "t", "request_ref": rid},
            headers=spoofed,
        )
        assert filed.status_code == 422 and filed.json()["errors"][0]["field"] == "request_ref"
    # Each refused look is on the record, under the address the proxy passed on.
    refused = [(d.action, d.source) for d in denials(proxied, "o3") if d.object_id == pkg["id"]]
    assert refused == [
        ("evidence.package.read", "127.0.0.1"),
        ("evidence.package.read", "cli"),
        ("evidence.package.send", "cli"),
        ("evidence.package.read", "system"),
        ("evidence.package.send", "system"),
    ]


def test_served_directly_a_forwarded_address_is_not_taken(node: LiveNode) -> None:
    # As `cyberpact serve` and `make demo` run: no proxy, so no header names the client's address.
    pkg, _ = confidential_package(node, {"a.txt": b"secret"})
    plain = node.client(node.user("o3", "officer"))
    r = plain.get(f"/api/v1/evidence/packages/{pkg['id']}", headers={"X-Forwarded-For": "cli"})
    assert r.status_code == 404
    assert [d.source for d in denials(node, "o3")] == ["127.0.0.1"]


# --- the custody log, event by event ---------------------------------------------------------------------


def test_the_custody_log_read_event_by_event_hides_what_the_package_hides(node: LiveNode) -> None:
    pkg, rid = confidential_package(node, {"secret-mailbox-export.eml": b"x"}, case_ref="IN-au-SECRET")
    channel = node.client(node.user("cp2", "contact_point"))
    plain = node.client(node.user("o3", "officer"))
    channel.get(f"/api/v1/evidence/packages/{pkg['id']}/files/0/content")  # a read, with the file's name
    with node.db.transaction() as s:
        # An event of no package (a transfer whose package is gone): the log's own, readable by all.
        loose = custody.record(s, node.settings.node_id, "transferred", None, SYSTEM, peer="au-24x7")
    size = plain.get("/api/v1/evidence/custody/head").json()["size"]
    assert size == loose + 1

    def event(client: httpx.Client, seq: int) -> httpx.Response:
        return client.get(f"/api/v1/evidence/custody/events/{seq}", params={"tree_size": size})

    theirs = [seq for seq in range(size) if event(channel, seq).json()["entry"]["package"] == pkg["id"]]
    assert len(theirs) == 3  # created, sealed, downloaded
    missing = event(plain, size + 1)
    for seq in theirs:
        r = event(plain, seq)
        assert r.status_code == 404
        assert r.json() == {
            **missing.json(),
            "detail": f"no custody event {seq} in a tree of {size}",
            "instance": f"/api/v1/evidence/custody/events/{seq}",
        }
        for secret in (pkg["id"], rid, "IN-au-SECRET", "secret-mailbox-export"):
            assert secret not in r.text
    assert event(plain, loose).json()["entry"]["detail"] == {"peer": "au-24x7"}
    refused = [d for d in denials(node, "o3") if d.object_id == pkg["id"]]
    assert [(d.action, d.detail["path"]) for d in refused] == [
        ("evidence.package.read", "/api/v1/evidence/custody/events/{seq}")
    ] * len(theirs)
    # Those who may see the package read its events, and their reads are recorded as before.
    assert all(event(channel, seq).status_code == 200 for seq in theirs)


# --- transfers -------------------------------------------------------------------------------------------


def test_a_transfer_is_read_only_by_those_who_may_see_its_package(pair: tuple[LiveNode, LiveNode]) -> None:
    a, _ = pair
    pkg, _ = confidential_package(a, {"x.bin": b"x"}, title="Suspect X mailbox")
    channel = a.client(a.user("cp2", "contact_point"))
    plain = a.client(a.user("o3", "officer"))
    r = channel.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "au-24x7"})
    assert r.status_code == 202, r.text
    tid = r.json()["id"]

    hidden = plain.get(f"/api/v1/evidence/transfers/{tid}")
    unknown = "0b5a6c1e-1111-4222-8333-944455556666"
    nothing = plain.get(f"/api/v1/evidence/transfers/{unknown}")
    assert hidden.status_code == nothing.status_code == 404
    assert hidden.json() == {
        **nothing.json(),
        "detail": f"No transfer {tid}",
        "instance": f"/api/v1/evidence/transfers/{tid}",
    }
    assert pkg["id"] not in hidden.text and "au-24x7" not in hidden.text
    refused = [d for d in denials(a, "o3") if d.object_id == pkg["id"]]
    assert [(d.action, d.detail["path"]) for d in refused] == [
        ("evidence.package.read", "/api/v1/evidence/transfers/{transfer_id}")
    ]
    # Those who may see the package read the transfer, and the read is recorded.
    shown = channel.get(f"/api/v1/evidence/transfers/{tid}")
    assert shown.status_code == 200 and shown.json()["package_id"] == pkg["id"]
    with a.db.transaction(read_only=True) as s:
        reads = s.scalars(select(AuditRecord).where(AuditRecord.action == "evidence.transfer.read")).all()
        assert [(r.actor, r.object_id, r.detail) for r in reads] == [("cp2", pkg["id"], {"transfer": tid})]


# --- packages filed by case reference --------------------------------------------------------------------


def case_of(node: LiveNode, rid: str) -> tuple[str, str]:
    with node.db.transaction(read_only=True) as s:
        case = s.get_one(Case, s.get_one(Request, uuid.UUID(rid)).case_id)
        return case.reference, str(case.id)


def test_a_package_filed_by_a_hidden_case_s_reference_is_as_hidden_as_the_case(node: LiveNode) -> None:
    confidential, _ = case_of(node, incoming_request(node, "au-24x7", "fact_and_substance"))
    ordinary, _ = case_of(node, incoming_request(node, "au-24x7"))
    channel = node.client(node.user("cp1", "contact_point"))
    plain = node.client(node.user("o3", "officer"))
    desk = person(node, "o4", "officer")
    secret = sealed_package(channel, {"intercept.pcap": b"secret bytes"}, case_ref=confidential)
    other = sealed_package(channel, {"mail.eml": b"open"}, case_ref=ordinary)  # a case the officer sees
    own = sealed_package(plain, {"note.txt": b"mine"})  # a reference that names no case of this node

    def listed(client: httpx.Client, **params: str) -> list[str]:
        r = client.get("/api/v1/evidence/packages", params=params)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert listed(channel) == [own["id"], other["id"], secret["id"]]
    assert listed(channel, case_ref=confidential) == [secret["id"]]
    assert listed(plain) == [own["id"], other["id"]]
    assert listed(plain, case_ref=confidential) == []
    page = desk.get("/desk/evidence")
    assert page.status_code == 200 and other["id"] in page.text
    assert secret["id"] not in page.text and confidential not in page.text

    base = f"/api/v1/evidence/packages/{secret['id']}"
    for path in (base, f"{base}/manifest", f"{base}/custody", f"{base}/files/0/content"):
        r = plain.get(path)
        assert r.status_code == 404 and b"secret bytes" not in r.content, path
    assert desk.get(f"/desk/evidence/{secret['id']}").status_code == 404
    assert plain.post(f"{base}/transfers", json={"peer": "au-24x7"}).status_code == 404
    refused = [(d.action, d.actor) for d in denials(node, "o3") + denials(node, "o4")]
    assert refused.count(("evidence.package.read", "o3")) == 4
    assert ("evidence.package.send", "o3") in refused and ("evidence.package.read", "o4") in refused

    assert plain.get(f"/api/v1/evidence/packages/{other['id']}/files/0/content").content == b"open"
    assert channel.get(f"{base}/files/0/content").content == b"secret bytes"


def test_evidence_is_not_filed_under_a_case_hidden_from_its_filer(node: LiveNode) -> None:
    confidential, case_id = case_of(node, incoming_request(node, "au-24x7", "fact_and_substance"))
    plain = node.client(node.user("o3", "officer"))
    desk = person(node, "o4", "officer")

    def stored() -> tuple[int, int]:
        with node.db.transaction(read_only=True) as s:
            packages = len(s.scalars(select(EvidencePackage.id)).all())
        return packages, plain.get("/api/v1/evidence/custody/head").json()["size"]

    before = stored()
    r = plain.post("/api/v1/evidence/packages", json={"case_ref": confidential, "title": "Mailbox"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "field": "case_ref",
            "code": "invalid",
            "message": f"no case {confidential} on this node that you may see",
        }
    ]
    # Told as a request's id the filer may not see is told, and naming nothing of the case they did not type.
    hidden_request = plain.post(
        "/api/v1/evidence/packages", json={"case_ref": "C", "title": "t", "request_ref": str(uuid.uuid4())}
    )
    assert {k: r.json()[k] for k in ("status", "code", "title", "detail")} == {
        k: hidden_request.json()[k] for k in ("status", "code", "title", "detail")
    } | {"detail": "Unknown case"}
    assert case_id not in r.text
    desk.get("/desk/evidence/new")
    page = desk.post("/desk/evidence/new", {"case_ref": confidential, "title": "Mailbox"})
    assert page.status_code == 422 and case_id not in page.text
    assert stored() == before, "nothing stored: no package, no custody event"
    refused = [
        (d.actor, d.action, d.object_type, d.object_id) for d in denials(node, "o3") + denials(node, "o4")
    ]
    assert refused == [
        ("o3", "evidence.package.create", "case", case_id),
        ("o4", "evidence.package.create", "case", case_id),
    ]

    # Whoever may see the case files under it; the officer files under a reference that names no case.
    channel = node.client(node.user("cp1", "contact_point"))
    assert make_package(channel, confidential)["case_ref"] == confidential
    assert make_package(plain, "PAPER-12")["case_ref"] == "PAPER-12"


# --- packages received from a peer -----------------------------------------------------------------------


def deliver(node: LiveNode) -> None:
    s = node.settings
    worker = OutboxWorker(node.db, KeyStore(s.key_passphrase_value(), s.key_kdf_iterations), s)
    while worker.run_once().claimed:
        pass


def test_a_received_package_citing_a_request_in_capitals_is_filed_under_that_request(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    # Australia asked Viet Nam in confidence; Viet Nam's answer cites the request's id in capitals (as
    # another implementation may write it). Australia files it under the request all the same: on its
    # page, in its list, and hidden from whoever may not see the request.
    vn, au = pair
    rid = str(uuid.uuid4())
    incoming_request(au, "vn-24x7", "fact_and_substance", rid=uuid.UUID(rid))
    incoming_request(vn, "au-24x7", rid=uuid.UUID(rid))
    sender = vn.client(vn.admin_token)
    pkg = make_package(sender, request_ref=rid)
    declare(sender, pkg["id"], "mail.eml", 6)
    assert put(sender, pkg["id"], 0, b"answer").status_code == 200
    with vn.db.transaction() as s:
        s.get_one(EvidencePackage, uuid.UUID(pkg["id"])).request_ref = rid.upper()
    base = f"/api/v1/evidence/packages/{pkg['id']}"
    sealed = sender.post(f"{base}/seal").json()
    assert sender.get(f"{base}/manifest").json()["manifest"]["request_ref"] == rid.upper()
    tid = sender.post(f"{base}/transfers", json={"peer": "au-24x7"}).json()["id"]
    deliver(vn)
    with httpx.Client(timeout=30) as client:
        assert sending.push(vn.db, context(vn), tid, client).status == "accepted"

    channel = au.client(au.user("cp1", "contact_point"))
    plain = au.client(au.user("o3", "officer"))
    got = channel.get("/api/v1/evidence/packages", params={"request_ref": rid}).json()["items"]
    assert [(p["manifest_digest"], p["request_ref"]) for p in got] == [(sealed["manifest_digest"], rid)]
    received = got[0]["id"]
    assert plain.get("/api/v1/evidence/packages").json()["items"] == []
    assert channel.post(f"/api/v1/evidence/packages/{received}/verify").json()["ok"]
    page = person(au, "cp-desk", "contact_point").get(f"/desk/requests/{rid}")
    assert page.status_code == 200 and received in page.text


# --- the audit record, which administrators read ---------------------------------------------------------


def test_the_audit_record_keeps_no_file_name_digest_or_reason_of_evidence(node: LiveNode) -> None:
    officer = node.client(node.user("o1", "officer"))
    admin, second = (node.client(node.user(name, "admin")) for name in ("root1", "root2"))
    kept, wrong, mismatched = b"the mailbox", b"another disk", b"not what was declared"
    secrets = {
        "mailbox-export-minh.eml",
        "disk-of-le-van-tam.img",
        "victim-photos.zip",
        hashlib.sha256(kept).hexdigest(),
        hashlib.sha256(wrong).hexdigest(),
        hashlib.sha256(mismatched).hexdigest(),
        "Wrong disk: it belongs to the witness",
        "Hanoi People's Court, judge Tran",
        "For trial 2026/77",
        "Court order 55 to destroy",
        "The appeal is pending",
    }
    pkg = make_package(officer)
    base = f"/api/v1/evidence/packages/{pkg['id']}"
    for index, (name, data) in enumerate(
        (("mailbox-export-minh.eml", kept), ("disk-of-le-van-tam.img", wrong))
    ):
        declare(officer, pkg["id"], name, len(data), sha256=hashlib.sha256(data).hexdigest())
        assert put(officer, pkg["id"], index, data).json()["complete"]
    declare(officer, pkg["id"], "victim-photos.zip", len(mismatched), sha256=hashlib.sha256(kept).hexdigest())
    assert put(officer, pkg["id"], 2, mismatched).json()["code"] == "digest_mismatch"
    for index in (1, 2):
        r = officer.delete(
            f"{base}/files/{index}", params={"reason": "Wrong disk: it belongs to the witness"}
        )
        assert r.status_code == 204, r.text
    assert officer.post(f"{base}/seal").status_code == 200
    assert officer.get(f"{base}/files/0/content").content == kept
    release = {"to": "Hanoi People's Court, judge Tran", "reason": "For trial 2026/77"}
    assert officer.post(f"{base}/release", json=release).status_code == 204
    assert admin.delete(base, params={"reason": "Court order 55 to destroy"}).status_code == 202
    r = second.delete(f"{base}/deletion-request", params={"reason": "The appeal is pending"})
    assert r.status_code == 204

    records = admin.get("/api/v1/audit", params={"object_id": pkg["id"], "limit": 1000})
    assert records.status_code == 200
    actions = {r["action"] for r in records.json()["items"]}
    assert {
        "evidence.file.declare",
        "evidence.file.complete",
        "evidence.file.digest_mismatch",
        "evidence.file.withdraw",
        "evidence.file.downloaded",
        "evidence.package.release",
        "evidence.package.delete_requested",
        "evidence.package.delete_withdrawn",
    } <= actions
    assert [s for s in secrets if s in records.text] == []
    withdrawn = [r["detail"] for r in records.json()["items"] if r["action"] == "evidence.file.withdraw"]
    assert sorted(withdrawn, key=lambda d: d["file"]) == [
        {"file": 1, "size": len(wrong), "status": "complete", "objects": 1},
        {"file": 2, "size": len(mismatched), "status": "uploading", "objects": 0},
    ]
    # The custody log, read by those who may see the package, keeps them: all but the digest of content
    # refused on arrival, of which nothing was kept (its uploader was told).
    log = officer.get(f"{base}/custody")
    assert log.status_code == 200
    assert [s for s in secrets if s not in log.text] == [hashlib.sha256(mismatched).hexdigest()]
