"""`cyberpact evidence add/export/verify`, and the bundle verifier against tampered and hostile bundles."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cyberpact.audit.models import AuditRecord
from cyberpact.cli import app
from cyberpact.evidence import bundle
from cyberpact.evidence.errors import BundleRejected
from cyberpact.kit.db import Database

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output


@pytest.fixture
def exported(cli_env: dict[str, str], tmp_path: Path) -> tuple[Path, bytes, str]:
    from cyberpact.kit import migrate

    migrate.upgrade(cli_env["CYBERPACT_DATABASE_URL"])
    os.environ["CYBERPACT_EVIDENCE_CHUNK_BYTES"] = str(64 * 1024)
    data = os.urandom(300_000)
    src = tmp_path / "disk image.dd"
    src.write_bytes(data)
    (tmp_path / "notes.txt").write_text("seized at 09:30\n")
    code, out = run(
        "evidence",
        "add",
        "CASE-7",
        str(src),
        str(tmp_path / "notes.txt"),
        "--request",
        "REQ-1",
        "--tool",
        "dd",
        "--tool-version",
        "9.1",
        "--authority",
        "Order 5/2026",
        "--by",
        "Lt. Tran",
    )
    assert code == 0, out
    pid = out.split("package ")[1].split()[0]
    assert hashlib.sha256(data).hexdigest() in out
    target = tmp_path / "bundle.zip"
    code, out = run("evidence", "export", pid, "--out", str(target))
    assert code == 0, out
    os.environ.pop("CYBERPACT_EVIDENCE_CHUNK_BYTES")
    return target, data, pid


def test_export_verifies_offline_and_extracts(
    exported: tuple[Path, bytes, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data, pid = exported
    # No database, no network: the verifier must not need any setting at all.
    for k in list(os.environ):
        if k.startswith("CYBERPACT_"):
            monkeypatch.delenv(k)
    code, out = run("evidence", "verify", str(path), "--extract", str(tmp_path / "out"))
    assert code == 0, out
    assert "all" in out and "checks passed" in out
    extracted = list((tmp_path / "out" / "files").iterdir())
    assert sorted(p.name for p in extracted) == ["0000-disk_image.dd", "0001-notes.txt"]
    assert (tmp_path / "out" / "files" / "0000-disk_image.dd").read_bytes() == data
    report = bundle.verify_bundle(path)
    names = [c.name for c in report.checks]
    assert "manifest.jws" in names and "custody/events.jsonl" in names and report.package_id == pid
    with zipfile.ZipFile(path) as zf:
        assert zf.read("report.pdf").startswith(b"%PDF")
        html = zf.read("report.html").decode()
        assert "Order 5/2026" in html and "exported" in html and "Lt. Tran" in html
        kinds = [
            json.loads(json.loads(x)["entry"])["kind"] for x in zf.read("custody/events.jsonl").splitlines()
        ]
        assert kinds == ["created", "sealed", "exported"]


def test_an_export_is_in_the_audit_record(exported: tuple[Path, bytes, str], cli_env: dict[str, str]) -> None:
    # The bundle carries every decrypted byte of the package: the audit record must say who took it out.
    _, _, pid = exported
    db = Database(cli_env["CYBERPACT_DATABASE_URL"])
    try:
        with db.transaction(read_only=True) as s:
            rows = s.scalars(select(AuditRecord).where(AuditRecord.action == "evidence.package.export")).all()
    finally:
        db.dispose()
    assert [(r.object_id, r.detail) for r in rows] == [(pid, {"to": "bundle.zip"})]
    assert rows[0].actor.startswith("cli:")


def rewrite(
    src: Path,
    dst: Path,
    change: Callable[[str, bytes], bytes | None],
    extra: list[tuple[zipfile.ZipInfo | str, bytes]] = (),
) -> Path:  # type: ignore[assignment]
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            new = change(info.filename, zin.read(info))
            if new is not None:
                zout.writestr(info, new)
        for name, body in extra:
            zout.writestr(name, body)
    return dst


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_flipped_byte_in_a_file_is_named(exported: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, _, _ = exported
    bad = rewrite(path, tmp_path / "bad.zip", lambda n, b: flip(b, 1000) if n.startswith("files/0000") else b)
    report = bundle.verify_bundle(bad, tmp_path / "x")
    assert [c.name for c in report.failures] == ["files/0000-disk_image.dd (disk image.dd)"]
    assert "SHA-256" in report.failures[0].detail
    assert not (tmp_path / "x").exists()  # nothing extracted from a bundle that failed
    code, out = run("evidence", "verify", str(bad))
    assert code == 1 and "FAIL files/0000-disk_image.dd" in out


def test_tampered_manifest_is_named(exported: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, _, _ = exported

    def change(name: str, body: bytes) -> bytes:
        if name != "manifest.jws":
            return body
        h, p, s = body.decode().strip().split(".")
        import base64

        doc = json.loads(base64.urlsafe_b64decode(p + "=="))
        doc["case_ref"] = "CASE-8"
        p2 = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
        return f"{h}.{p2}.{s}".encode()

    report = bundle.verify_bundle(rewrite(path, tmp_path / "bad.zip", change))
    assert report.failures[0].name == "manifest.jws" and "signature" in report.failures[0].detail


def test_tampered_custody_event_is_named(exported: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, _, _ = exported

    def change(name: str, body: bytes) -> bytes:
        if name != "custody/events.jsonl":
            return body
        lines = body.decode().splitlines()
        item = json.loads(lines[1])
        item["entry"] = item["entry"].replace('"sealed"', '"released"')
        lines[1] = json.dumps(item)
        return ("\n".join(lines) + "\n").encode()

    report = bundle.verify_bundle(rewrite(path, tmp_path / "bad.zip", change))
    (fail,) = [c for c in report.failures if "line" in c.name]
    assert fail.name.startswith("custody/events.jsonl line 2 (event 1, released)")
    assert "not in the signed log" in fail.detail


def test_tampered_head_and_dropped_proof(exported: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, _, _ = exported

    def change(name: str, body: bytes) -> bytes:
        if name == "custody/head.jws":
            return flip(body, 30)
        return body

    report = bundle.verify_bundle(rewrite(path, tmp_path / "bad.zip", change))
    assert "custody/head.jws" in [c.name for c in report.failures]

    def drop(name: str, body: bytes) -> bytes:
        if name != "custody/events.jsonl":
            return body
        lines = [json.loads(x) for x in body.decode().splitlines()]
        lines[0]["proof"] = lines[0]["proof"][:-1]
        return "".join(json.dumps(x) + "\n" for x in lines).encode()

    report = bundle.verify_bundle(rewrite(path, tmp_path / "bad2.zip", drop))
    assert [c.name.split(" (")[0] for c in report.failures] == ["custody/events.jsonl line 1"]


def _hostile(
    path: Path, tmp_path: Path, name: str, info: zipfile.ZipInfo | None = None, body: bytes = b"x"
) -> Path:
    return rewrite(path, tmp_path / "hostile.zip", lambda n, b: b, [(info or name, body)])


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../../escape.txt", "path traversal"),
        ("files/../../escape.txt", "path traversal"),
        ("/srv/abs.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("files\\..\\evil.txt", "absolute"),
        ("unexpected.txt", "not part of a court bundle"),
        ("files/deeper/x", "not part of a court bundle"),
    ],
)
def test_hostile_names_are_rejected_and_nothing_is_written(
    exported: tuple[Path, bytes, str], tmp_path: Path, member: str, reason: str
) -> None:
    path, _, _ = exported
    hostile = _hostile(path, tmp_path, member)
    target = tmp_path / "deep" / "target"
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(BundleRejected, match=reason):
        bundle.verify_bundle(hostile, target)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    code, out = run("evidence", "verify", str(hostile), "--extract", str(target))
    assert code == 2 and "REJECTED" in out and not target.exists()


def test_symlink_member_is_rejected(exported: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, _, _ = exported
    info = zipfile.ZipInfo("files/9999-link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(BundleRejected, match="symbolic link"):
        bundle.verify_bundle(_hostile(path, tmp_path, "", info, b"/etc/passwd"), tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_decompression_bomb_is_rejected(exported: tuple[Path, bytes, str], tmp_path: Path) -> None:
    path, _, _ = exported
    with pytest.raises(BundleRejected, match="bomb"):
        bundle.verify_bundle(_hostile(path, tmp_path, "keys/bomb.jwks.json", body=b"\0" * (64 << 20)))
    # A bomb whose header lies about its size is stopped while inflating.
    lying = tmp_path / "lying.zip"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(lying, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        zout.writestr("receipts/x.jws", b"A" * (4 << 20))
    raw = bytearray(lying.read_bytes())
    # Make the last member's headers claim 1,000 bytes: its local header keeps the uncompressed size at
    # offset 22, its central directory entry at offset 24.
    marker = b"receipts/x.jws"
    for at in [i for i in range(len(raw)) if raw.startswith(marker, i)]:
        start = at - 30 if raw[at - 30 : at - 26] == b"PK\x03\x04" else at - 46
        pos = start + (22 if raw[start : start + 4] == b"PK\x03\x04" else 24)
        raw[pos : pos + 4] = (1000).to_bytes(4, "little")
    lying.write_bytes(bytes(raw))
    with pytest.raises(BundleRejected, match=r"inflates beyond|bomb|damaged"):
        bundle.verify_bundle(lying)


def test_not_a_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(BundleRejected, match="not a readable ZIP"):
        bundle.verify_bundle(junk)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(BundleRejected, match=r"bundle\.json"):
        bundle.verify_bundle(empty)


def _rezip(path: Path, tmp_path: Path, folders: int = zipfile.ZIP_STORED) -> Path:
    """What ``unzip bundle.zip -d x && cd x && zip -r ../rezip.zip .`` makes: the same files, deflated, and
    an entry of its own for every folder (a name ending in ``/``, no content, a directory's mode)."""
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(folder)
    out = tmp_path / "rezip.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for entry in sorted(folder.rglob("*")):
            arcname = entry.relative_to(folder).as_posix()
            if entry.is_dir():
                info = zipfile.ZipInfo(arcname + "/")
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                info.compress_type = folders
                zout.writestr(info, b"")
            else:
                zout.write(entry, arcname)
    return out


@pytest.mark.parametrize("folders", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_bundle_unzipped_and_zipped_again_still_verifies(
    exported: tuple[Path, bytes, str], tmp_path: Path, folders: int
) -> None:
    path, data, pid = exported
    rezipped = _rezip(path, tmp_path, folders)
    with zipfile.ZipFile(rezipped) as zf:
        assert {"files/", "custody/", "keys/"} <= {i.filename for i in zf.infolist() if i.is_dir()}
    code, out = run("evidence", "verify", str(rezipped), "--extract", str(tmp_path / "out"))
    assert code == 0, out
    assert "checks passed" in out and pid in out
    assert (tmp_path / "out" / "files" / "0000-disk_image.dd").read_bytes() == data
    # The folder entries are no part of the bundle: none is reported as a file the manifest lacks.
    assert all(c.ok and not c.name.endswith("/") for c in bundle.verify_bundle(rezipped).checks)


@pytest.mark.skipif(shutil.which("zip") is None or shutil.which("unzip") is None, reason="no zip/unzip")
def test_the_reported_unzip_and_zip_r_round_trip_verifies(
    exported: tuple[Path, bytes, str], tmp_path: Path
) -> None:
    path, _, pid = exported
    folder = tmp_path / "x"
    subprocess.run(["unzip", "-q", str(path), "-d", str(folder)], check=True)
    subprocess.run(["zip", "-q", "-r", str(tmp_path / "rezip.zip"), "."], cwd=folder, check=True)
    code, out = run("evidence", "verify", str(tmp_path / "rezip.zip"))
    assert code == 0, out
    assert f"bundle of package {pid}: all" in out


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        (lambda n, b: flip(b, 7) if n.startswith("files/0001") else b, "SHA-256"),
        (lambda n, b: None if n.startswith("files/0000") else b, "missing from the bundle"),
    ],
)
def test_a_zipped_again_bundle_still_names_a_changed_or_missing_file(
    exported: tuple[Path, bytes, str],
    tmp_path: Path,
    change: Callable[[str, bytes], bytes | None],
    failure: str,
) -> None:
    path, _, _ = exported
    bad = rewrite(_rezip(path, tmp_path), tmp_path / "bad.zip", change)
    report = bundle.verify_bundle(bad)
    assert not report.ok and any(failure in c.detail for c in report.failures), report.failures
    code, out = run("evidence", "verify", str(bad))
    assert code == 1 and failure in out


def test_a_file_added_to_a_zipped_again_bundle_is_named(
    exported: tuple[Path, bytes, str], tmp_path: Path
) -> None:
    path, _, _ = exported
    bad = rewrite(_rezip(path, tmp_path), tmp_path / "bad.zip", lambda n, b: b, [("files/0002-x.bin", b"x")])
    report = bundle.verify_bundle(bad)
    assert [(c.name, c.detail) for c in report.failures] == [
        ("files/0002-x.bin", "a file the manifest does not list")
    ]


def _dir_entry(name: str, mode: int = stat.S_IFDIR | 0o755) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16 | 0x10
    return info


@pytest.mark.parametrize(
    ("info", "body", "reason"),
    [
        (_dir_entry("../"), b"", "path traversal"),
        (_dir_entry("files/../../"), b"", "path traversal"),
        (_dir_entry("/etc/"), b"", "absolute"),
        (_dir_entry("C:/"), b"", "absolute"),
        (_dir_entry("files\\..\\"), b"", "absolute"),
        (_dir_entry("./"), b"", r"empty or '\.' path segment"),
        (_dir_entry("files//"), b"", r"empty or '\.' path segment"),
        (_dir_entry("elsewhere/"), b"", "not part of a court bundle"),
        (_dir_entry("files/deeper/"), b"", "not part of a court bundle"),
        (_dir_entry("files/"), b"hidden payload", "a directory entry that carries 14 bytes"),
        (_dir_entry("keys/", stat.S_IFLNK | 0o777), b"", "symbolic link"),
        (zipfile.ZipInfo("files//0000-disk_image.dd"), b"x", r"empty or '\.' path segment"),
        (zipfile.ZipInfo("./bundle.json"), b"{}", r"empty or '\.' path segment"),
    ],
)
def test_hostile_directory_entries_are_rejected_naming_why(
    exported: tuple[Path, bytes, str], tmp_path: Path, info: zipfile.ZipInfo, body: bytes, reason: str
) -> None:
    path, _, _ = exported
    hostile = rewrite(path, tmp_path / "hostile.zip", lambda n, b: b, [(info, body)])
    target = tmp_path / "target"
    with pytest.raises(BundleRejected, match=reason):
        bundle.verify_bundle(hostile, target)
    assert not target.exists()
    code, out = run("evidence", "verify", str(hostile), "--extract", str(target))
    assert code == 2 and "REJECTED" in out and not target.exists()


def test_a_directory_entry_whose_header_hides_its_content_is_rejected(
    exported: tuple[Path, bytes, str], tmp_path: Path
) -> None:
    path, _, _ = exported
    lying = rewrite(path, tmp_path / "lying.zip", lambda n, b: b, [(_dir_entry("files/"), b"B" * 5000)])
    raw = bytearray(lying.read_bytes())
    # Both headers of the entry now claim no content (uncompressed size at offset 22 of the local header,
    # 24 of the central directory entry), while its deflated bytes stay in the archive.
    headers = {b"PK\x03\x04": (30, 26, 22), b"PK\x01\x02": (46, 28, 24)}  # name at, its length, size
    for at in [i for i in range(len(raw)) if raw.startswith(b"files/", i)]:
        for magic, (name_at, length_at, size_at) in headers.items():
            start = at - name_at
            if raw[start : start + 4] == magic and raw[start + length_at] == len("files/"):
                raw[start + size_at : start + size_at + 4] = bytes(4)
    lying.write_bytes(bytes(raw))
    with zipfile.ZipFile(lying) as zf:
        assert zf.getinfo("files/").file_size == 0
    with pytest.raises(BundleRejected, match=r"'files/': a directory entry that carries \d+ bytes"):
        bundle.verify_bundle(lying)


@pytest.mark.parametrize("member", ["[/x]", "files/[/red]", "[bold]hidden[/bold]"])
def test_a_member_name_that_looks_like_styling_is_named_as_written(
    exported: tuple[Path, bytes, str], tmp_path: Path, member: str
) -> None:
    # The terminal's styling language must not read a hostile bundle's names: "[/x]" stopped the command
    # with a traceback, "[bold]" hid part of the name the officer has to report.
    code, out = run("evidence", "verify", str(_hostile(exported[0], tmp_path, member)))
    assert code == 2 and f"member '{member}'" in out and "Traceback" not in out


def test_file_names_are_shown_as_written(cli_env: dict[str, str], tmp_path: Path) -> None:
    from cyberpact.kit import migrate

    migrate.upgrade(cli_env["CYBERPACT_DATABASE_URL"])
    src = tmp_path / "[red]seized.dd"
    src.write_bytes(b"disk")
    code, out = run("evidence", "add", "CASE-8", str(src))
    assert code == 0 and ": [red]seized.dd  4 bytes" in out, out
    pid = out.split("package ")[1].split()[0]
    target = tmp_path / "[b].zip"
    code, out = run("evidence", "export", pid, "--out", str(target))
    assert code == 0 and "[b].zip" in out and target.exists(), out
    code, out = run("evidence", "verify", str(target))
    assert code == 0 and "([red]seized.dd)" in out.replace("\n", ""), out


# --- hostile bundle contents: every field is checked before use, every verdict names the member ----------


def _index(edit: Callable[[dict], object]) -> Callable[[str, bytes], bytes]:
    def change(n: str, body: bytes) -> bytes:
        return json.dumps(edit(json.loads(body))).encode() if n == "bundle.json" else body

    return change


def _set(path: str, value: object) -> Callable[[dict], dict]:
    def edit(doc: dict) -> dict:
        *parents, last = path.split(".")
        target: object = doc
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]  # type: ignore[index]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value  # type: ignore[index]
        return doc

    return edit


def _pop(key: str) -> Callable[[dict], dict]:
    def edit(doc: dict) -> dict:
        doc.pop(key)
        return doc

    return edit


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_index(_set("files.0.index", "x")), r"bundle\.json: files\[0\]\.index is not an integer"),
        (_index(_set("files.0.index", True)), r"bundle\.json: files\[0\]\.index is not an integer"),
        (_index(_set("files.0.index", -1)), r"bundle\.json: files\[0\]\.index is negative"),
        (_index(_set("files.1.index", 0)), r"bundle\.json: files\[1\]\.index 0 is listed twice"),
        (_index(_set("files.0.path", "report.pdf")), r"bundle\.json: files\[0\]\.path is not under files/"),
        (_index(_set("files.0", "oops")), r"bundle\.json: files\[0\] is not a JSON object"),
        (_index(_set("files", "oops")), r"bundle\.json: files is not a list"),
        (_index(_set("node", None)), r"bundle\.json: node is not a string"),
        (_index(_set("node", ["vn"])), r"bundle\.json: node is not a string"),
        (_index(_set("package_id", 7)), r"bundle\.json: package_id is not a string"),
        (_index(_pop("manifest_digest")), r"bundle\.json: manifest_digest is missing"),
        (
            _index(_set("origin_node", "au-24x7")),
            r"bundle\.json: origin_package_id is missing for a package received",
        ),
        (
            lambda n, b: b"[" * 100_000 if n == "bundle.json" else b,
            r"bundle\.json is missing or not a cyberpact court bundle index",
        ),
    ],
)
def test_a_malformed_index_is_rejected_naming_the_field(
    exported: tuple[Path, bytes, str], tmp_path: Path, change: Callable[[str, bytes], bytes], reason: str
) -> None:
    path, _, _ = exported
    bad = rewrite(path, tmp_path / "bad.zip", change)
    target = tmp_path / "target"
    with pytest.raises(BundleRejected, match=reason):
        bundle.verify_bundle(bad, target)
    code, out = run("evidence", "verify", str(bad), "--extract", str(target))
    assert code == 2 and "REJECTED" in out and "Traceback" not in out, out
    assert not target.exists()


@pytest.mark.parametrize(
    ("change", "member", "reason"),
    [
        (lambda n, b: b'{"keys": "x"}' if n.startswith("keys/") else b, "keys/", "keys is not a list"),
        (lambda n, b: b"[]" if n.startswith("keys/") else b, "keys/", "not a JSON object"),
        (lambda n, b: b'{"keys": [{"kid": 5}]}' if n.startswith("keys/") else b, "keys/", "kid is not"),
        (lambda n, b: b"\xff\xfe" if n.startswith("keys/") else b, "keys/", "unreadable key set"),
        (
            lambda n, b: (
                b'[1,2]\n"str"\n{"seq":"a"}\n{"seq":-1,"entry":"{}","proof":[]}\n'
                if n == "custody/events.jsonl"
                else b
            ),
            "custody/events.jsonl line 1",
            "unreadable event",
        ),
        (
            lambda n, b: b'{"seq":0,"entry":"[1]","proof":[]}\n' if n == "custody/events.jsonl" else b,
            "custody/events.jsonl line 1",
            "unreadable event",
        ),
        (
            lambda n, b: (
                b'{"seq":0,"entry":"' + b"[" * 50_000 + b'","proof":[]}\n'
                if n == "custody/events.jsonl"
                else b
            ),
            "custody/events.jsonl line 1",
            "nested too deeply",
        ),
        (lambda n, b: "é.é.é".encode() if n == "manifest.jws" else b, "manifest.jws", "not a compact JWS"),
        (lambda n, b: b"x" if n == "README.txt" else b, "README.txt", "does not name the package"),
    ],
)
def test_a_malformed_member_fails_its_check_naming_it(
    exported: tuple[Path, bytes, str],
    tmp_path: Path,
    change: Callable[[str, bytes], bytes],
    member: str,
    reason: str,
) -> None:
    path, _, _ = exported
    bad = rewrite(path, tmp_path / "bad.zip", change)
    target = tmp_path / "target"
    report = bundle.verify_bundle(bad, target)
    assert any(c.name.startswith(member) and reason in c.detail for c in report.failures), report.failures
    assert not target.exists()
    code, out = run("evidence", "verify", str(bad), "--extract", str(target))
    assert code == 1 and f"FAIL {member}" in out and "Traceback" not in out, out
    assert not target.exists()


@pytest.mark.parametrize("member", ["keys/notes.txt", "cards/x.pem", "custody/origin-events.jsonl"])
def test_a_member_no_check_reads_fails_the_bundle(
    exported: tuple[Path, bytes, str], tmp_path: Path, member: str
) -> None:
    # This package was sealed here: an origin's custody has no place in it, and nothing would check it.
    path, _, _ = exported
    bad = rewrite(path, tmp_path / "bad.zip", lambda n, b: b, [(member, b"{}\n")])
    report = bundle.verify_bundle(bad, tmp_path / "target")
    assert [(c.name, c.detail) for c in report.failures] == [
        (member, "not checked: no verified member vouches for it")
    ]
    assert not (tmp_path / "target").exists()


def _payload(token: bytes) -> dict:
    import base64

    p = token.decode().strip().split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))))


def test_a_swapped_file_and_manifest_signed_with_a_planted_key_fail(
    exported: tuple[Path, bytes, str], tmp_path: Path
) -> None:
    # The attack of the exploratory test: the file and the manifest replaced, the manifest signed with a
    # fresh key added to the node's key set, bundle.json updated. The node's signed custody log still
    # records the sealed manifest's digest, and the planted key is printed for the reader to compare.
    from cyberpact.federation import identity
    from cyberpact.kit import crypto
    from cyberpact.kit.canonical import canonical_json

    path, _, _ = exported
    evil = crypto.generate_key("Ed25519")
    evil_jwk = crypto.public_jwk(evil)
    forged = b"I confess.\n"
    with zipfile.ZipFile(path) as zf:
        manifest = _payload(zf.read("manifest.jws"))
        node = json.loads(zf.read("bundle.json"))["node"]
    manifest["files"][1].update(
        size=len(forged),
        sha256=hashlib.sha256(forged).hexdigest(),
        blake2b=hashlib.blake2b(forged).hexdigest(),
    )
    digest = hashlib.sha256(canonical_json(manifest)).hexdigest()

    def change(name: str, body: bytes) -> bytes:
        if name == "manifest.jws":
            return crypto.sign_json(evil, manifest, {"typ": "cyberpact-manifest+jws"}).encode()
        if name.startswith("files/0001"):
            return forged
        if name == f"keys/{node}.jwks.json":
            return json.dumps({"keys": [*json.loads(body)["keys"], evil_jwk]}).encode()
        if name == "bundle.json":
            return json.dumps({**json.loads(body), "manifest_digest": digest}).encode()
        if name == "README.txt":
            return body.decode().replace(body.decode().split(": ")[1].split()[0], digest).encode()
        return body

    bad = rewrite(path, tmp_path / "forged.zip", change)
    report = bundle.verify_bundle(bad, tmp_path / "target")
    assert [c.name for c in report.failures] == ["manifest digest"], report.failures
    assert f"the manifest hashes to {digest}" in report.failures[0].detail
    assert "(event 1, sealed) records" in report.failures[0].detail
    assert identity.fingerprint(evil_jwk) in report.signers[node]
    assert report.signers[node][identity.fingerprint(evil_jwk)] == ["manifest.jws"]
    assert not (tmp_path / "target").exists()
    code, out = run("evidence", "verify", str(bad))
    assert code == 1 and "FAIL manifest digest" in out
    assert f"{identity.fingerprint(evil_jwk)}  signed manifest.jws" in out


def test_verify_prints_each_signer_s_speakable_fingerprint(exported: tuple[Path, bytes, str]) -> None:
    from cyberpact.federation import identity

    path, _, _ = exported
    with zipfile.ZipFile(path) as zf:
        node = json.loads(zf.read("bundle.json"))["node"]
        (jwk,) = json.loads(zf.read(f"keys/{node}.jwks.json"))["keys"]
    fp = identity.fingerprint(jwk)
    code, out = run("evidence", "verify", str(path))
    assert code == 0, out
    assert f"{node}  {fp}  signed manifest.jws, custody/head.jws" in out
    assert "Compare each fingerprint with the one its authority published" in out
