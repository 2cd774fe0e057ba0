"""Shared helpers of the evidence tests."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import httpx

from conftest import LiveNode
from cyberpact.evidence import service
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.storage import build_storage

ACQUISITION = {
    "by": "Officer Nguyen, C3 unit",
    "at": "2026-03-01T09:30:00+07:00",
    "where": "Hanoi, suspect's workstation",
    "method": "forensic disk image (write-blocked)",
    "tool": "ewfacquire",
    "tool_version": "20231119",
    "authority": "Search order 12/2026 of the People's Court of Hanoi",
}


def context(node: LiveNode) -> service.Context:
    s = node.settings
    return service.Context(s, KeyStore(s.key_passphrase_value(), s.key_kdf_iterations), build_storage(s))


def make_package(client: httpx.Client, case_ref: str = "CASE-1", **extra: Any) -> dict[str, Any]:
    r = client.post("/api/v1/evidence/packages", json={"case_ref": case_ref, "title": "Disk image", **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def declare(client: httpx.Client, pid: str, name: str, size: int, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "size": size, "acquisition": ACQUISITION, **extra}
    r = client.post(f"/api/v1/evidence/packages/{pid}/files", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def put(client: httpx.Client, pid: str, index: int, data: bytes, offset: int = 0) -> httpx.Response:
    return client.put(
        f"/api/v1/evidence/packages/{pid}/files/{index}/content",
        content=data,
        headers={"Upload-Offset": str(offset), "Content-Type": "application/octet-stream"},
    )


def sealed_package(
    client: httpx.Client, files: dict[str, bytes], case_ref: str = "CASE-1", **extra: Any
) -> dict[str, Any]:
    pkg = make_package(client, case_ref, **extra)
    for i, (name, data) in enumerate(files.items()):
        declare(client, pkg["id"], name, len(data), sha256=hashlib.sha256(data).hexdigest())
        r = put(client, pkg["id"], i, data)
        assert r.status_code == 200 and r.json()["complete"], r.text
    r = client.post(f"/api/v1/evidence/packages/{pkg['id']}/seal")
    assert r.status_code == 200, r.text
    return dict(r.json())


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


class MotoServer:
    """moto's standalone S3-compatible server as a child process on a loopback port."""

    def __init__(self, tmp: Path) -> None:
        import subprocess
        import sys
        import time

        from conftest import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "moto.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)

    def settings_overrides(self, bucket: str) -> dict[str, Any]:
        return {
            "storage": "s3",
            "s3_endpoint": self.url,
            "s3_bucket": bucket,
            "s3_region": "us-east-1",
            "s3_access_key": "testing",
            "s3_secret_key": "testing",
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def incoming_request(
    node: LiveNode, sender: str, confidentiality: str = "none", rid: uuid.UUID | None = None
) -> str:
    """A request ``sender`` sent this node, written straight into its database: evidence tests need one to
    file packages under, not the whole exchange that brings it (tests/cases covers that)."""
    from cyberpact.cases.models import Case, Request
    from cyberpact.kit.time import utcnow

    rid, now = rid or uuid.uuid4(), utcnow()
    with node.db.transaction() as s:
        case = Case(
            reference=f"IN-{sender}-{rid.hex[:8]}",
            title=f"Request from {sender}",
            created_by="peer",
            created_at=now,
        )
        s.add(case)
        s.flush()
        s.add(
            Request(
                id=rid,
                case_id=case.id,
                direction="incoming",
                type="stored_data",
                status="in_execution",
                catalog_version="1",
                counterpart=sender,
                header={},
                fields={},
                confidentiality=confidentiality,
                drafted_by=f"peer:{sender}",
                created_at=now,
                updated_at=now,
            )
        )
    return str(rid)
