"""Packages over the API: chunked, resumable upload; sealing; download; every read audited and in custody."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from conftest import LiveNode, make_settings, start_node
from cyberpact.audit.models import AuditRecord
from cyberpact.config import Settings
from cyberpact.evidence.models import CustodyEvent, EvidenceFile
from cyberpact.kit.time import parse_rfc3339, rfc3339, utcnow
from evidence.helpers import (
    ACQUISITION,
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
def small_chunks(db_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(db_url, tmp_path, evidence_chunk_bytes=CHUNK)


@pytest.fixture
def enode(small_chunks: Settings):  # type: ignore[no-untyped-def]
    live = start_node(small_chunks)
    yield live
    live.stop()


@pytest.fixture
def officer(enode: LiveNode) -> httpx.Client:
    return enode.client(enode.user("officer1", "officer"))


def kinds(node: LiveNode, pid: str) -> list[str]:
    with node.db.transaction(read_only=True) as s:
        return list(
            s.scalars(
                select(CustodyEvent.kind).where(CustodyEvent.package_id == pid).order_by(CustodyEvent.seq)
            )
        )


def audits(node: LiveNode, action: str) -> int:
    with node.db.transaction(read_only=True) as s:
        return int(
            s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == action)) or 0
        )


def test_upload_seal_download_round_trip(enode: LiveNode, officer: httpx.Client) -> None:
    data = random_bytes(5 * CHUNK + 123)
    pkg = sealed_package(officer, {"disk.img": data, "empty.txt": b""})
    assert pkg["status"] == "sealed" and len(pkg["manifest_digest"]) == 64
    assert [f["sha256"] for f in pkg["files"]] == [
        hashlib.sha256(data).hexdigest(),
        hashlib.sha256(b"").hexdigest(),
    ]
    r = officer.get(f"/api/v1/evidence/packages/{pkg['id']}/files/0/content")
    assert r.status_code == 200 and r.content == data
    assert r.headers["repr-digest"].startswith("sha-256=:")
    assert officer.get(f"/api/v1/evidence/packages/{pkg['id']}/files/1/content").content == b""
    m = officer.get(f"/api/v1/evidence/packages/{pkg['id']}/manifest").json()
    assert m["manifest"]["files"][0]["acquisition"]["tool"] == "ewfacquire"
    assert m["manifest"]["case_ref"] == "CASE-1"
    v = officer.post(f"/api/v1/evidence/packages/{pkg['id']}/verify")
    assert v.status_code == 200 and v.json()["ok"], v.text
    assert kinds(enode, pkg["id"]) == ["created", "sealed", "downloaded", "downloaded", "viewed", "verified"]
    assert audits(enode, "evidence.file.downloaded") == 2 and audits(enode, "evidence.package.view") == 1


def test_every_read_is_audited_and_in_custody(enode: LiveNode, officer: httpx.Client) -> None:
    pkg = sealed_package(officer, {"a.bin": b"abc"})
    before = kinds(enode, pkg["id"])
    officer.get(f"/api/v1/evidence/packages/{pkg['id']}")
    custody_list = officer.get(f"/api/v1/evidence/packages/{pkg['id']}/custody").json()
    assert kinds(enode, pkg["id"]) == [*before, "viewed", "viewed"]
    assert [e["entry"]["kind"] for e in custody_list] == [*before, "viewed", "viewed"]
    listing = officer.get("/api/v1/evidence/packages", params={"case_ref": "CASE-1"}).json()
    assert [p["id"] for p in listing["items"]] == [pkg["id"]]
    assert audits(enode, "evidence.package.list") == 1


def test_upload_resumes_after_a_cut_connection(enode: LiveNode, officer: httpx.Client) -> None:
    data = random_bytes(10 * CHUNK + 7)
    pkg = make_package(officer)
    declare(officer, pkg["id"], "big.img", len(data))
    # The first request sends 3.5 chunks and stops: the three whole chunks are kept, the half is not.
    r = put(officer, pkg["id"], 0, data[: 3 * CHUNK + CHUNK // 2])
    assert r.status_code == 200 and r.json() == {
        "offset": 3 * CHUNK,
        "size": len(data),
        "complete": False,
        "sha256": None,
    }
    state = officer.get(f"/api/v1/evidence/packages/{pkg['id']}/files/0/upload").json()
    assert state["offset"] == 3 * CHUNK
    wrong = put(officer, pkg["id"], 0, data[CHUNK:], offset=CHUNK)
    assert wrong.status_code == 409 and wrong.json()["expected_offset"] == 3 * CHUNK

    # A connection cut mid-body: the server keeps whatever whole chunks it stored.
    def gen():  # type: ignore[no-untyped-def]
        yield data[3 * CHUNK : 6 * CHUNK]
        raise httpx.ReadError("cable cut")

    with pytest.raises(httpx.HTTPError):
        officer.put(
            f"/api/v1/evidence/packages/{pkg['id']}/files/0/content",
            content=gen(),
            headers={"Upload-Offset": str(3 * CHUNK)},
        )
    import time

    for _ in range(100):
        offset = officer.get(f"/api/v1/evidence/packages/{pkg['id']}/files/0/upload").json()["offset"]
        # The lease is released when the server notices the cut; wait for that.
        r = put(officer, pkg["id"], 0, data[offset:], offset=offset)
        if r.status_code != 409 or "in progress" not in r.text:
            break
        time.sleep(0.1)
    assert r.status_code == 200 and r.json()["complete"], r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert officer.get(f"/api/v1/evidence/packages/{pkg['id']}/files/0/content").content == data


def test_declared_digest_mismatch_keeps_nothing(enode: LiveNode, officer: httpx.Client) -> None:
    data = random_bytes(3 * CHUNK)
    pkg = make_package(officer)
    declare(officer, pkg["id"], "x.bin", len(data), sha256=hashlib.sha256(b"something else").hexdigest())
    r = put(officer, pkg["id"], 0, data)
    assert r.status_code == 422 and r.json()["code"] == "digest_mismatch", r.text
    assert "nothing was kept" in r.json()["detail"]
    with enode.db.transaction(read_only=True) as s:
        f = s.scalars(select(EvidenceFile)).one()
        assert (f.chunks_stored, f.status, f.sha256) == (0, "uploading", None)
    assert not list((enode.settings.data_dir / "evidence").rglob(f"{pkg['id']}/*/*"))
    assert officer.post(f"/api/v1/evidence/packages/{pkg['id']}/seal").status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "../etc/passwd", "size": 1}, "name"),
        ({"name": "a/b", "size": 1}, "name"),
        ({"name": "ok", "size": -1}, "size"),
        ({"name": "ok", "size": 1, "sha256": "ABC"}, "sha256"),
        ({"name": "ok", "size": 1, "media_type": "not a type"}, "media_type"),
    ],
)
def test_bad_file_declarations_are_refused(officer: httpx.Client, body: dict, field: str) -> None:
    pkg = make_package(officer)
    from evidence.helpers import ACQUISITION

    r = officer.post(
        f"/api/v1/evidence/packages/{pkg['id']}/files", json={**body, "acquisition": ACQUISITION}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text


@pytest.mark.parametrize(
    "at",
    [
        "2027-11-30T03:00:00Z",  # the exploratory tester's: a year ahead
        timedelta(minutes=6),  # from now: just beyond the clock skew allowed
        "9999-12-31T23:59:59+14:00",
    ],
)
def test_an_acquisition_in_the_future_is_refused_and_nothing_is_kept(
    enode: LiveNode, officer: httpx.Client, at: str | timedelta
) -> None:
    if isinstance(at, timedelta):
        at = rfc3339(utcnow() + at)
    pkg = make_package(officer)
    declared_before = audits(enode, "evidence.file.declare")
    r = officer.post(
        f"/api/v1/evidence/packages/{pkg['id']}/files",
        json={"name": "late.bin", "size": 1, "acquisition": {**ACQUISITION, "at": at}},
    )
    assert r.status_code == 422, r.text
    assert [(e["field"], e["message"]) for e in r.json()["errors"]] == [
        ("acquisition.at", "Value error, a past moment with its time zone")
    ]
    assert officer.get(f"/api/v1/evidence/packages/{pkg['id']}").json()["files"] == []
    assert audits(enode, "evidence.file.declare") == declared_before


def test_an_acquisition_a_moment_ahead_of_our_clock_is_taken(officer: httpx.Client) -> None:
    # The acquiring workstation's clock may run a little fast: within the skew the moment is taken as given.
    pkg = make_package(officer)
    at = rfc3339(utcnow() + timedelta(minutes=3))
    f = declare(officer, pkg["id"], "now.bin", 1, acquisition={**ACQUISITION, "at": at})
    assert parse_rfc3339(f["acquisition"]["at"]) == parse_rfc3339(at)


def test_more_bytes_than_declared_is_refused(enode: LiveNode, officer: httpx.Client) -> None:
    pkg = make_package(officer)
    declare(officer, pkg["id"], "x.bin", 10)
    r = put(officer, pkg["id"], 0, b"x" * 11)
    assert r.status_code == 422 and "More bytes than declared" in r.text


def test_sealed_package_takes_no_more_files(officer: httpx.Client) -> None:
    pkg = sealed_package(officer, {"a": b"1"})
    from evidence.helpers import ACQUISITION

    r = officer.post(
        f"/api/v1/evidence/packages/{pkg['id']}/files",
        json={"name": "b", "size": 1, "acquisition": ACQUISITION},
    )
    assert r.status_code == 409 and r.json()["code"] == "package_sealed"


def test_roles_and_unknown_packages(enode: LiveNode) -> None:
    nobody = enode.client(enode.user("viewer", "auditor"))
    assert nobody.get("/api/v1/evidence/packages").status_code == 403
    officer = enode.client(enode.user("o2", "officer"))
    assert officer.get("/api/v1/evidence/packages/not-a-uuid").status_code == 404
    pkg = sealed_package(officer, {"a": b"1"})
    assert officer.delete(f"/api/v1/evidence/packages/{pkg['id']}", params={"reason": "x"}).status_code == 403


def test_release_and_delete(enode: LiveNode, officer: httpx.Client) -> None:
    admin = enode.client(enode.user("boss", "admin"))
    pkg = sealed_package(officer, {"a": b"payload"})
    r = officer.post(
        f"/api/v1/evidence/packages/{pkg['id']}/release", json={"to": "Prosecutor", "reason": "trial"}
    )
    assert r.status_code == 204
    url = f"/api/v1/evidence/packages/{pkg['id']}"
    content = f"{url}/files/0/content"
    # Irreversible, so four eyes: the first administrator only asks; the same one cannot confirm.
    r = admin.delete(url, params={"reason": "retention ended"})
    assert r.status_code == 202 and r.json()["status"] == "deletion_requested"
    assert officer.get(content).content == b"payload", "nothing is destroyed on one person's word"
    r = admin.delete(url, params={"reason": "retention ended"})
    assert r.status_code == 409 and "another administrator" in r.json()["detail"]
    second = enode.client(enode.user("boss2", "admin"))
    assert second.delete(url, params={"reason": "checked the retention schedule"}).status_code == 204
    assert officer.get(content).status_code == 409
    assert kinds(enode, pkg["id"])[-4:] == ["released", "delete_asked", "downloaded", "deleted"]
    entries = [e["entry"] for e in officer.get(f"{url}/custody").json()]
    deleted = next(e for e in entries if e["kind"] == "deleted")
    assert (deleted["actor"], deleted["detail"]["requested"]["by"]) == ("boss2", "boss")
    assert not list((enode.settings.data_dir / "evidence").rglob(f"{pkg['id']}/*/*"))
    first = officer.get("/api/v1/evidence/custody/events/0").json()
    assert first["entry"]["kind"] == "created" and first["tree_size"] == 7


def test_a_deletion_request_can_be_withdrawn_and_lapses_after_seven_days(
    enode: LiveNode, officer: httpx.Client
) -> None:
    from datetime import timedelta

    from cyberpact.evidence import deletion, service
    from cyberpact.kit.actor import Actor

    admin = enode.client(enode.user("boss", "admin"))
    second = enode.client(enode.user("boss2", "admin"))
    pkg = sealed_package(officer, {"a": b"payload"})
    url = f"/api/v1/evidence/packages/{pkg['id']}"
    content = f"{url}/files/0/content"
    withdraw = f"{url}/deletion-request"
    # Nothing to withdraw yet; an officer may not withdraw what only administrators decide.
    assert second.delete(withdraw, params={"reason": "x"}).status_code == 409
    assert admin.delete(url, params={"reason": "retention ended"}).status_code == 202
    # The custodians see it coming on the desk, while it can still be withdrawn.
    desk = person(enode, "lan", "officer")
    notice = "boss asked for this package's content to be destroyed"
    page = text_of(desk.get(f"/desk/evidence/{pkg['id']}").text)
    assert notice in page and "retention ended" in page
    assert officer.delete(withdraw, params={"reason": "x"}).status_code == 403
    assert second.delete(withdraw, params={"reason": ""}).status_code == 422
    # Another administrator withdraws it: the next call only asks again, and destroys nothing.
    assert second.delete(withdraw, params={"reason": "the appeal is pending"}).status_code == 204
    assert audits(enode, "evidence.package.delete_withdrawn") == 1
    assert notice not in text_of(desk.get(f"/desk/evidence/{pkg['id']}").text)
    r = second.delete(url, params={"reason": "retention ended"})
    assert r.status_code == 202, "a withdrawn request cannot be confirmed"
    assert officer.get(content).content == b"payload"
    kept = [e["entry"] for e in officer.get(f"{url}/custody").json() if e["entry"]["kind"] == "delete_kept"]
    assert [(k["actor"], k["detail"]["requested_by"]) for k in kept] == [("boss2", "boss")]

    # boss2's fresh request, confirmed by boss more than seven days later, is a new request instead.
    ctx = context(enode)
    later = service.utcnow() + deletion.DELETION_REQUEST_LIFETIME + timedelta(minutes=1)
    boss = Actor(user_id=None, username="boss", roles=frozenset({"admin"}))
    with enode.db.transaction() as s:
        package = service.get_package(s, pkg["id"])
        assert deletion.pending_deletion(s, package) is not None
        assert deletion.delete(s, ctx, boss, package, "retention ended", now=later) is None
    assert officer.get(content).content == b"payload"
    steps = [k for k in kinds(enode, pkg["id"]) if k.startswith("delete")]
    assert steps == ["delete_asked", "delete_kept", "delete_asked", "delete_asked"]
    # Within the week, the other administrator's confirmation destroys.
    assert second.delete(url, params={"reason": "checked the schedule"}).status_code == 204
    assert officer.get(content).status_code == 409


def test_administrators_ask_confirm_and_withdraw_a_deletion_on_the_desk(
    enode: LiveNode, officer: httpx.Client
) -> None:
    from cyberpact.evidence import service

    pkg = sealed_package(officer, {"a": b"payload"})
    title = "Export of the seized server"
    with enode.db.transaction() as s:
        service.get_package(s, pkg["id"]).title = title
    page, content = f"/desk/evidence/{pkg['id']}", f"/api/v1/evidence/packages/{pkg['id']}/files/0/content"
    boss = person(enode, "boss", "admin", "officer")
    kim = person(enode, "kim", "admin", "officer")
    ops = person(enode, "ops", "admin")  # runs the node; sees no evidence
    lan = person(enode, "lan", "officer")

    boss.get(page)
    assert "Ask to destroy the content" in text_of(boss.page)
    # A reason is required, and nothing is asked without one.
    r = boss.post(f"{page}/destroy", {"reason": "  ", "back": "package"})
    assert r.status_code == 422 and "Missing" in text_of(r.text)
    assert boss.post(f"{page}/destroy", {"reason": "x" * 2001}).status_code == 422
    assert boss.post(f"{page}/destroy", {"reason": "no token"}, csrf="").status_code == 403
    assert boss.post("/desk/evidence/not-a-package/destroy", {"reason": "x"}).status_code == 404
    assert "delete_asked" not in kinds(enode, pkg["id"])
    r = boss.post(f"{page}/destroy", {"reason": "retention ended", "back": "package"})
    assert r.status_code == 303 and r.headers["location"] == page
    shown = text_of(boss.get(page).text)
    assert "boss asked for this package's content to be destroyed" in shown
    # The one who asked may withdraw, not confirm: the form is not offered, and a forged post is refused.
    assert "Withdraw the request" in shown and "Confirm: destroy the content" not in shown
    r = boss.post(f"{page}/destroy", {"reason": "sure", "back": "package"})
    assert r.status_code == 409 and "another administrator must confirm" in text_of(r.text)
    assert officer.get(content).content == b"payload"
    # An officer sees the notice but no form, and may not post one.
    assert "Withdraw the request" not in text_of(lan.get(page).text)
    assert lan.post(f"{page}/destroy", {"reason": "x"}).status_code == 403

    # Administrators find it on Today and on their own page; one who may not see the package learns
    # neither its title nor its case.
    assert "Evidence packages whose destruction waits for a second administrator: 1." in text_of(
        kim.get("/desk").text
    )
    listed = text_of(kim.get("/desk/admin/deletions").text)
    assert title in listed and "retention ended" in listed and "Confirm: destroy the content" in listed
    hidden = text_of(ops.get("/desk/admin/deletions").text)
    assert title not in hidden and "Title and case hidden: your roles do not open this package." in hidden
    assert pkg["id"] in hidden
    # ops withdraws it from there, and is sent back there.
    r = ops.post(f"{page}/destroy/withdraw", {"reason": "the appeal is pending", "back": "admin"})
    assert r.status_code == 303 and r.headers["location"] == "/desk/admin/deletions"
    assert "No deletion is waiting for confirmation." in text_of(ops.get("/desk/admin/deletions").text)
    assert audits(enode, "evidence.package.delete_withdrawn") == 1
    r = ops.post(f"{page}/destroy/withdraw", {"reason": "again", "back": "admin"})
    assert r.status_code == 409, "nothing is waiting any more"

    # Asked again by boss; kim confirms from the administrators' page: the content is destroyed.
    boss.get(page)
    assert boss.post(f"{page}/destroy", {"reason": "retention ended", "back": "package"}).status_code == 303
    kim.get("/desk/admin/deletions")
    r = kim.post(f"{page}/destroy", {"reason": "checked the schedule", "back": "admin"})
    assert r.status_code == 303
    assert officer.get(content).status_code == 409
    steps = [k for k in kinds(enode, pkg["id"]) if k.startswith("delete")]
    assert steps == ["delete_asked", "delete_kept", "delete_asked", "deleted"]
    assert "Ask to destroy the content" not in text_of(boss.get(page).text)
    assert audits(enode, "evidence.package.list") >= 3  # each look at the administrators' page is recorded


def test_a_confirmation_racing_a_withdrawal_waits_for_it_and_destroys_nothing(
    enode: LiveNode, officer: httpx.Client
) -> None:
    import threading

    from cyberpact.evidence import deletion, service
    from cyberpact.kit.actor import Actor

    if enode.db.engine.dialect.name != "postgresql":
        pytest.skip("needs two concurrent writers; SQLite serialises them whole")
    pkg = sealed_package(officer, {"a": b"payload"})
    url = f"/api/v1/evidence/packages/{pkg['id']}"
    assert enode.client(enode.user("boss", "admin")).delete(url, params={"reason": "x"}).status_code == 202
    ctx = context(enode)
    locked, release = threading.Event(), threading.Event()
    outcome: list[int | None] = []

    def withdraw() -> None:
        kim = Actor(user_id=None, username="kim", roles=frozenset({"admin"}))
        with enode.db.transaction() as s:
            deletion.withdraw_deletion(s, ctx, kim, service.get_package(s, pkg["id"]), "appeal pending")
            locked.set()
            release.wait(30)

    def confirm() -> None:
        lee = Actor(user_id=None, username="lee", roles=frozenset({"admin"}))
        with enode.db.transaction() as s:
            outcome.append(deletion.delete(s, ctx, lee, service.get_package(s, pkg["id"]), "confirmed"))

    first = threading.Thread(target=withdraw)
    first.start()
    assert locked.wait(30)
    second = threading.Thread(target=confirm)
    second.start()
    second.join(1.0)
    assert second.is_alive(), "the confirmation waits for the withdrawal in progress"
    release.set()
    first.join(30)
    second.join(30)
    # It then sees the withdrawal: its call is a new request, and the content is there.
    assert outcome == [None]
    assert officer.get(f"{url}/files/0/content").content == b"payload"


def test_custody_proofs_over_the_api_verify_and_nothing_is_proved_beyond_the_log(
    enode: LiveNode, officer: httpx.Client
) -> None:
    """Each proof is fetched with the log's size in one statement; a proof for a tree, an event or a
    second head beyond what the log holds is a 404, never a proof over hashes that do not exist yet."""
    from cyberpact.evidence import custody, merkle

    sealed_package(officer, {"a": b"one"})
    first = officer.get("/api/v1/evidence/custody/head").json()
    sealed_package(officer, {"b": b"two", "c": b"three"})
    second = officer.get("/api/v1/evidence/custody/head").json()
    assert 0 < first["size"] < second["size"]
    root1, root2 = custody.unb64(first["root"], "root"), custody.unb64(second["root"], "root")

    r = officer.get(
        "/api/v1/evidence/custody/consistency", params={"first": first["size"], "second": second["size"]}
    )
    assert r.status_code == 200
    proof = [custody.unb64(p, "proof") for p in r.json()["proof"]]
    merkle.verify_consistency(first["size"], second["size"], root1, root2, proof)

    with enode.db.transaction(read_only=True) as s:
        entries = {e.seq: e.entry for e in s.scalars(select(CustodyEvent))}
    for seq in (0, first["size"] - 1, second["size"] - 1):
        r = officer.get(f"/api/v1/evidence/custody/events/{seq}", params={"tree_size": second["size"]})
        assert r.status_code == 200
        proof = [custody.unb64(p, "proof") for p in r.json()["proof"]]
        leaf = merkle.leaf_hash(entries[seq].encode())
        merkle.verify_inclusion(seq, second["size"], leaf, proof, root2)

    size = second["size"]
    beyond = [
        ("/api/v1/evidence/custody/consistency", {"first": 1, "second": size + 1}),
        ("/api/v1/evidence/custody/events/0", {"tree_size": size + 1}),
        (f"/api/v1/evidence/custody/events/{size}", {"tree_size": size + 1}),
        (f"/api/v1/evidence/custody/events/{size}", {}),
        ("/api/v1/evidence/custody/events/5", {"tree_size": 5}),
    ]
    for path, params in beyond:
        assert officer.get(path, params=params).status_code == 404, (path, params)


def test_evidence_under_a_confidential_request_is_as_confidential_as_the_request(enode: LiveNode) -> None:
    rid = incoming_request(enode, "au-24x7", "fact_and_substance")
    channel = enode.client(enode.user("cp1", "contact_point"))
    plain = enode.client(enode.user("o3", "officer"))
    admin = enode.client(enode.user("root", "admin"))
    pkg = sealed_package(channel, {"mail.eml": b"the answer"}, request_ref=rid)
    own = sealed_package(plain, {"note.txt": b"open"})
    base = f"/api/v1/evidence/packages/{pkg['id']}"

    assert [p["id"] for p in channel.get("/api/v1/evidence/packages").json()["items"]] == [
        own["id"],
        pkg["id"],
    ]
    assert [p["id"] for p in plain.get("/api/v1/evidence/packages").json()["items"]] == [own["id"]]
    # Every way in answers as if the package did not exist, and each refused look is on the record.
    denied_before = audits(enode, "evidence.package.read")
    for path in (base, f"{base}/manifest", f"{base}/custody", f"{base}/files/0/content"):
        assert plain.get(path).status_code == 404, path
    assert plain.post(f"{base}/transfers", json={"peer": "au-24x7"}).status_code == 404
    with enode.db.transaction(read_only=True) as s:
        refused = s.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.action == "evidence.package.read", AuditRecord.outcome == "denied")
        )
    assert refused == 4 and audits(enode, "evidence.package.read") == denied_before + 4
    assert channel.get(f"{base}/files/0/content").content == b"the answer"
    # Running the node is no reason to read case material.
    assert admin.get("/api/v1/evidence/packages").status_code == 403
    assert admin.get(base).status_code == 403
    # A request id must name a request of this node the person may see.
    # Written in any spelling, kept in the one the request's pages look it up by.
    r = channel.post(
        "/api/v1/evidence/packages", json={"case_ref": "C", "title": "t", "request_ref": rid.upper()}
    )
    assert r.status_code == 201 and r.json()["request_ref"] == rid
    r = plain.post("/api/v1/evidence/packages", json={"case_ref": "C", "title": "t", "request_ref": rid})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "request_ref"
    unknown = "0b5a6c1e-1111-4222-8333-944455556666"
    r = channel.post(
        "/api/v1/evidence/packages", json={"case_ref": "C", "title": "t", "request_ref": unknown}
    )
    assert r.status_code == 422
    assert (
        channel.post(
            "/api/v1/evidence/packages", json={"case_ref": "C", "title": "t", "request_ref": "PAPER-12"}
        ).status_code
        == 201
    )


def test_every_custody_kind_fits_its_column() -> None:
    # SQLite does not enforce VARCHAR lengths; PostgreSQL refuses the event, and with it the step.
    from cyberpact.evidence import custody
    from cyberpact.evidence.models import CustodyEvent

    assert max(len(k) for k in custody.KINDS) <= CustodyEvent.__table__.c.kind.type.length
