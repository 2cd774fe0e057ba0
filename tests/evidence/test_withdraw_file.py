"""Withdrawing a file from a package that is not sealed yet: a declaration with a wrong digest or size no
longer blocks the seal for ever, the chain of custody says who took what out and why, and nothing else moves.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from conftest import LiveNode, make_settings, start_node
from cyberpact.audit.models import AuditRecord
from cyberpact.config import Settings
from cyberpact.evidence import bundle, custody, service
from cyberpact.evidence.models import CustodyEvent
from cyberpact.kit.actor import Actor
from evidence.helpers import context, declare, incoming_request, make_package, put

CHUNK = 64 * 1024


@pytest.fixture
def enode(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    live = start_node(make_settings(db_url, tmp_path, evidence_chunk_bytes=CHUNK))
    yield live
    live.stop()


@pytest.fixture
def officer(enode: LiveNode) -> httpx.Client:
    return enode.client(enode.user("officer1", "officer"))


def stored(node: LiveNode, pid: str, index: int) -> list[Path]:
    settings: Settings = node.settings
    return sorted((settings.data_dir / "evidence").rglob(f"{pid}/{index:05d}/*"))


def events(node: LiveNode, pid: str) -> list[dict]:
    with node.db.transaction(read_only=True) as s:
        rows = s.scalars(
            select(CustodyEvent).where(CustodyEvent.package_id == pid).order_by(CustodyEvent.seq)
        )
        return [json.loads(e.entry) for e in rows]


def state(node: LiveNode, client: httpx.Client, pid: str) -> tuple[object, ...]:
    """What a refused withdrawal must leave as it was: the package, its files, its custody, its bytes."""
    shown = client.get(f"/api/v1/evidence/packages/{pid}").json()
    kinds = [e["kind"] for e in events(node, pid) if e["kind"] != "viewed"]
    return shown["status"], shown["files"], kinds, [stored(node, pid, i) for i in range(4)]


def test_a_mis_declared_file_is_withdrawn_and_the_package_seals_with_the_rest(
    enode: LiveNode, officer: httpx.Client, tmp_path: Path
) -> None:
    good, wrong, extra = b"a" * (CHUNK + 5), b"0123456789", b"c" * (2 * CHUNK)
    pkg = make_package(officer)
    pid, base = pkg["id"], f"/api/v1/evidence/packages/{pkg['id']}"
    declare(officer, pid, "a.bin", len(good), sha256=hashlib.sha256(good).hexdigest())
    assert put(officer, pid, 0, good).json()["complete"]
    mistyped = hashlib.sha256(b"not these bytes").hexdigest()
    declare(officer, pid, "b.bin", 10, sha256=mistyped)
    r = put(officer, pid, 1, wrong)
    assert r.status_code == 422 and r.json()["code"] == "digest_mismatch"
    assert officer.post(f"{base}/seal").json()["detail"] == "files [1] are still uploading"

    # A reason is required: the chain of custody must say why.
    assert officer.delete(f"{base}/files/1").status_code == 422
    assert officer.delete(f"{base}/files/1", params={"reason": ""}).status_code == 422
    r = officer.delete(f"{base}/files/1", params={"reason": "declared with a mistyped digest"})
    assert r.status_code == 204, r.text
    assert [f["name"] for f in officer.get(base).json()["files"]] == ["a.bin"]
    withdrawn = [e for e in events(enode, pid) if e["kind"] == "withdrawn"]
    assert len(withdrawn) == 1
    assert withdrawn[0]["actor"] == "officer1" and withdrawn[0]["at"]
    assert withdrawn[0]["detail"] == {
        "file": 1,
        "name": "b.bin",
        "size": 10,
        "media_type": "application/octet-stream",
        "declared_sha256": mistyped,
        "sha256": None,
        "blake2b": None,
        "status": "uploading",
        "objects": 0,
        "reason": "declared with a mistyped digest",
    }
    # Gone from every way in; a second withdrawal finds nothing.
    assert officer.get(f"{base}/files/1/upload").status_code == 404
    assert put(officer, pid, 1, wrong).status_code == 404
    assert officer.delete(f"{base}/files/1", params={"reason": "again"}).status_code == 404

    # Declared again under the same name, it is a new file with an index of its own.
    again = declare(officer, pid, "b.bin", len(wrong), sha256=hashlib.sha256(wrong).hexdigest())
    assert again["index"] == 2
    assert put(officer, pid, 2, wrong).json()["complete"]
    # A complete file can be withdrawn too while the package is open; its stored bytes go with it.
    declare(officer, pid, "c.bin", len(extra))
    assert put(officer, pid, 3, extra).json()["complete"]
    assert len(stored(enode, pid, 3)) == 2
    assert officer.delete(f"{base}/files/3", params={"reason": "outside the search order"}).status_code == 204
    assert stored(enode, pid, 3) == []
    last = [e for e in events(enode, pid) if e["kind"] == "withdrawn"][-1]["detail"]
    assert (last["name"], last["status"], last["objects"], last["sha256"]) == (
        "c.bin",
        "complete",
        2,
        hashlib.sha256(extra).hexdigest(),
    )

    r = officer.post(f"{base}/seal")
    assert r.status_code == 200, r.text
    assert [(f["index"], f["name"]) for f in r.json()["files"]] == [(0, "a.bin"), (2, "b.bin")]
    manifest = officer.get(f"{base}/manifest").json()["manifest"]
    assert [(f["index"], f["name"]) for f in manifest["files"]] == [(0, "a.bin"), (2, "b.bin")]
    assert officer.post(f"{base}/verify").json() == {
        "ok": True,
        "manifest_digest": r.json()["manifest_digest"],
        "files": 2,
    }
    assert officer.get(f"{base}/files/2/content").content == wrong
    # The custody chain still holds, the withdrawals in it, and so does a court bundle with its gap.
    ctx = context(enode)
    with enode.db.transaction() as s:
        custody.verify_log(s, ctx.keys)
        package = service.get_package(s, pid)
        out = bundle.export(
            s, ctx, Actor(user_id=None, username="clerk", roles=frozenset()), package, tmp_path / "b.zip"
        )
    report = bundle.verify_bundle(out)
    assert report.ok, report.failures
    with zipfile.ZipFile(out) as zf:
        lines = zf.read("custody/events.jsonl").decode().splitlines()
    assert [json.loads(json.loads(x)["entry"])["kind"] for x in lines].count("withdrawn") == 2

    # Once sealed, nothing is withdrawn: a file leaves only with its package, by two administrators.
    before = state(enode, officer, pid)
    r = officer.delete(f"{base}/files/0", params={"reason": "changed my mind"})
    assert r.status_code == 409 and r.json()["code"] == "package_sealed"
    assert state(enode, officer, pid) == before


@pytest.mark.parametrize(
    ("index", "status"),
    [
        ("-1", 422),
        ("2147483648", 422),
        ("99999999999999999999999999999999", 422),
        ("abc", 422),
        ("1.5", 422),
        ("0x1", 422),
        ("1e3", 422),
        ("%20", 422),
        ("7", 404),
    ],
)
def test_hostile_indexes_are_refused_and_nothing_changes(
    enode: LiveNode, officer: httpx.Client, index: str, status: int
) -> None:
    pkg = make_package(officer)
    declare(officer, pkg["id"], "a.bin", 3)
    assert put(officer, pkg["id"], 0, b"abc").json()["complete"]
    before = state(enode, officer, pkg["id"])
    r = officer.delete(f"/api/v1/evidence/packages/{pkg['id']}/files/{index}", params={"reason": "x"})
    assert r.status_code == status, r.text
    if status == 422:
        assert r.json()["errors"][0]["field"] == "index"
    assert state(enode, officer, pkg["id"]) == before


def test_only_those_who_may_add_files_withdraw_them(enode: LiveNode) -> None:
    rid = incoming_request(enode, "au-24x7", "fact_and_substance")
    channel = enode.client(enode.user("cp1", "contact_point"))
    plain = enode.client(enode.user("o3", "officer"))
    auditor = enode.client(enode.user("aud", "auditor"))
    admin = enode.client(enode.user("root", "admin"))
    pkg = make_package(channel, request_ref=rid)
    declare(channel, pkg["id"], "mail.eml", 4)
    assert put(channel, pkg["id"], 0, b"mail").json()["complete"]
    url = f"/api/v1/evidence/packages/{pkg['id']}/files/0"
    before = state(enode, channel, pkg["id"])
    # As for every other way into a package filed under a confidential request: as if it did not exist.
    assert plain.delete(url, params={"reason": "x"}).status_code == 404
    assert auditor.delete(url, params={"reason": "x"}).status_code == 403
    assert admin.delete(url, params={"reason": "x"}).status_code == 403
    assert enode.client().delete(url, params={"reason": "x"}).status_code == 401
    assert state(enode, channel, pkg["id"]) == before
    with enode.db.transaction(read_only=True) as s:
        refused = s.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.action == "evidence.package.write", AuditRecord.outcome == "denied")
        )
    assert refused == 1
    assert channel.delete(url, params={"reason": "wrong mailbox"}).status_code == 204


def test_no_withdrawal_while_an_upload_holds_the_file(enode: LiveNode, officer: httpx.Client) -> None:
    from cyberpact.evidence import uploads

    pkg = make_package(officer)
    declare(officer, pkg["id"], "big.bin", 3 * CHUNK)
    ctx = context(enode)
    writer = Actor(user_id=None, username="officer1", roles=frozenset({"officer"}))
    up = uploads.Upload(enode.db, ctx, writer, pkg["id"], 0, 0)
    up.write(b"x" * CHUNK)
    url = f"/api/v1/evidence/packages/{pkg['id']}/files/0"
    r = officer.delete(url, params={"reason": "x"})
    assert r.status_code == 409 and "upload to file 0 is in progress" in r.json()["detail"]
    up.pause()
    assert officer.delete(url, params={"reason": "x"}).status_code == 204
    assert stored(enode, pkg["id"], 0) == []


def test_a_stream_whose_lease_lapsed_cannot_complete_a_withdrawn_file(
    enode: LiveNode, officer: httpx.Client
) -> None:
    from sqlalchemy import update

    from cyberpact.evidence import uploads
    from cyberpact.evidence.models import EvidenceFile
    from cyberpact.kit.errors import Conflict
    from cyberpact.kit.time import utcnow

    pkg = make_package(officer)
    declare(officer, pkg["id"], "slow.bin", 10)
    writer = Actor(user_id=None, username="officer1", roles=frozenset({"officer"}))
    up = uploads.Upload(enode.db, context(enode), writer, pkg["id"], 0, 0)
    with enode.db.transaction() as s:  # the stream stalled beyond its lease
        s.execute(update(EvidenceFile).values(upload_until=utcnow()))
    assert (
        officer.delete(f"/api/v1/evidence/packages/{pkg['id']}/files/0", params={"reason": "x"}).status_code
        == 204
    )
    up.write(b"0123456789")
    with pytest.raises(Conflict, match="withdrawn"):
        up.finish()
    assert stored(enode, pkg["id"], 0) == []
    assert officer.get(f"/api/v1/evidence/packages/{pkg['id']}").json()["files"] == []


def test_a_seal_racing_a_withdrawal_never_signs_the_withdrawn_file(
    enode: LiveNode, officer: httpx.Client
) -> None:
    if enode.db.engine.dialect.name != "postgresql":
        pytest.skip("needs two concurrent writers; SQLite serialises them whole")
    pkg = make_package(officer)
    for i, name in enumerate(("a.bin", "b.bin")):
        declare(officer, pkg["id"], name, 2)
        assert put(officer, pkg["id"], i, b"ok").json()["complete"]
    ctx = context(enode)
    someone = Actor(user_id=None, username="officer1", roles=frozenset({"officer"}))
    locked, release = threading.Event(), threading.Event()

    def withdraw() -> None:
        with enode.db.transaction() as s:
            service.withdraw_file(s, ctx, someone, service.get_package(s, pkg["id"]), 1, "duplicate")
            locked.set()
            release.wait(30)

    sealed: list[list[str]] = []

    def seal() -> None:
        with enode.db.transaction() as s:
            package = service.seal(s, ctx, someone, service.get_package(s, pkg["id"]))
            sealed.append([f.name for f in service.files_of(s, package)])

    first = threading.Thread(target=withdraw)
    first.start()
    assert locked.wait(30)
    second = threading.Thread(target=seal)
    second.start()
    second.join(1.0)
    assert second.is_alive(), "the seal waits for the withdrawal in progress"
    release.set()
    first.join(30)
    second.join(30)
    assert sealed == [["a.bin"]]
    assert officer.post(f"/api/v1/evidence/packages/{pkg['id']}/verify").json()["files"] == 1


def test_withdrawing_on_the_desk(enode: LiveNode, officer: httpx.Client) -> None:
    from web.helpers import person, text_of

    an = person(enode, "an", "officer")
    pkg = make_package(officer)
    declare(officer, pkg["id"], "wrong.bin", 10, sha256=hashlib.sha256(b"no").hexdigest())
    page = an.get(f"/desk/evidence/{pkg['id']}").text
    assert f'action="/desk/evidence/{pkg["id"]}/files/0/withdraw"' in page
    r = an.post(f"/desk/evidence/{pkg['id']}/files/0/withdraw", {"reason": "  "})
    assert r.status_code == 422 and "say why" in text_of(r.text)
    assert (
        an.post(f"/desk/evidence/{pkg['id']}/files/0/withdraw", {"reason": "x"}, csrf="").status_code == 403
    )
    r = an.post(f"/desk/evidence/{pkg['id']}/files/0/withdraw", {"reason": "mistyped digest"})
    assert r.status_code == 303, r.text
    text = text_of(an.get(f"/desk/evidence/{pkg['id']}").text)
    assert "Removed wrong.bin" in text and "No files yet." in text


def test_withdrawing_from_the_command_line(
    enode: LiveNode, officer: httpx.Client, cli_env: dict[str, str]
) -> None:
    from typer.testing import CliRunner

    from cyberpact.cli import app

    def run(*args: str) -> tuple[int, str]:
        r = CliRunner().invoke(app, ["evidence", "withdraw", *args])
        return r.exit_code, r.output

    pkg = make_package(officer)
    pid = pkg["id"]
    declare(officer, pid, "a.bin", 3)
    assert put(officer, pid, 0, b"abc").json()["complete"]
    declare(officer, pid, "[red]b.bin", 3)
    assert put(officer, pid, 1, b"def").json()["complete"]
    before = state(enode, officer, pid)

    # A blank reason is refused by the service, so the API, the desk and the command line all refuse it.
    r = officer.delete(f"/api/v1/evidence/packages/{pid}/files/1", params={"reason": "   "})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    for args, code, says in [
        ((pid, "1", "--reason", "   "), 1, "say why"),
        ((pid, "1"), 2, "--reason"),
        ((pid, "-1", "--reason", "x"), 2, "Usage"),
        ((pid, "--reason", "x", "--", "-1"), 2, "Invalid value"),
        ((pid, "7", "--reason", "x"), 1, "not_found"),
        (("not-a-package", "0", "--reason", "x"), 1, "not_found"),
        (("{" + pid + "}", "0", "--reason", "x"), 1, "not_found"),
    ]:
        got, out = run(*args)
        assert (got, says in out) == (code, True), (args, out)
    assert state(enode, officer, pid) == before

    code, out = run(pid, "1", "--reason", "  outside the search order ")
    assert code == 0, out
    # The name is shown as written, brackets and all, not read as styling.
    assert f"file 1 ([red]b.bin) withdrawn from package {pid}" in out
    assert [f["name"] for f in officer.get(f"/api/v1/evidence/packages/{pid}").json()["files"]] == ["a.bin"]
    assert stored(enode, pid, 1) == []
    withdrawn = [e for e in events(enode, pid) if e["kind"] == "withdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0]["actor"].startswith("cli:")
    assert withdrawn[0]["detail"]["reason"] == "outside the search order"
    with enode.db.transaction(read_only=True) as s:
        custody.verify_log(s, context(enode).keys)
