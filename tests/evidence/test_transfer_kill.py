"""kill -9 on either side in the middle of a transfer: it resumes, ends byte-identical, repeats no event."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from conftest import DatabaseFactory
from cyberpact.evidence.models import CustodyEvent, EvidenceFile, EvidencePackage, EvidenceTransfer
from cyberpact.kit.db import Database
from evidence.helpers import ACQUISITION
from federation.test_faults import NodeProcess, admin_token, pin_over_http, wait_for

MIB = 1024 * 1024
SIZE = 192 * MIB


def stored(db: Database) -> int:
    with db.transaction(read_only=True) as s:
        return int(s.scalar(select(func.coalesce(func.sum(EvidenceFile.chunks_stored), 0))) or 0)


def transfer_status(db: Database) -> str | None:
    with db.transaction(read_only=True) as s:
        return s.scalar(select(EvidenceTransfer.status).where(EvidenceTransfer.direction == "out"))


def kinds(db: Database) -> list[str]:
    with db.transaction(read_only=True) as s:
        return list(
            s.scalars(
                select(CustodyEvent.kind)
                .where(CustodyEvent.package_id.is_not(None))
                .order_by(CustodyEvent.seq)
            )
        )


@pytest.mark.slow
def test_kill_9_of_sender_then_receiver_mid_transfer(db_factory: DatabaseFactory, tmp_path: Path) -> None:
    source = tmp_path / "image.dd"
    digest = hashlib.sha256()
    with source.open("wb") as f:
        for _ in range(SIZE // MIB):
            piece = os.urandom(MIB)
            digest.update(piece)
            f.write(piece)
    a = NodeProcess("vn-ca", db_factory(), tmp_path, evidence_chunk_bytes=MIB)
    b = NodeProcess("pl-ca", db_factory(), tmp_path, evidence_chunk_bytes=MIB)
    adb, bdb = Database(a.db_url), Database(b.db_url)
    ta, tb = admin_token(adb, "vn-ca", "admin", "officer"), admin_token(bdb, "pl-ca", "admin", "officer")
    try:
        a.start()
        b.start()
        a.wait_ready()
        b.wait_ready()
        pin_over_http(a, ta, b, tb)
        pin_over_http(b, tb, a, ta)
        with httpx.Client(base_url=a.url, headers={"Authorization": f"Bearer {ta}"}, timeout=120) as c:
            pkg = c.post("/api/v1/evidence/packages", json={"case_ref": "HN-1", "title": "image"}).json()
            c.post(
                f"/api/v1/evidence/packages/{pkg['id']}/files",
                json={
                    "name": "image.dd",
                    "size": SIZE,
                    "sha256": digest.hexdigest(),
                    "acquisition": ACQUISITION,
                },
            )
            with source.open("rb") as f:
                r = c.put(
                    f"/api/v1/evidence/packages/{pkg['id']}/files/0/content",
                    content=f,
                    headers={"Upload-Offset": "0"},
                )
            assert r.status_code == 200 and r.json()["complete"], r.text
            assert c.post(f"/api/v1/evidence/packages/{pkg['id']}/seal").status_code == 200
            r = c.post(f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"})
            assert r.status_code == 202, r.text
        total = SIZE // MIB

        # The sender's workers deliver the offer and start pushing chunks; kill it part-way.
        wait_for(lambda: stored(bdb) >= 12, "chunks to arrive", 60, 0.005, alive=[a, b])
        a.kill()
        at_kill = stored(bdb)
        assert at_kill < total, "the transfer ended before the sender was killed"
        a.start()
        wait_for(lambda: stored(bdb) >= at_kill + 12, "the resumed transfer", 60, 0.005, alive=[a, b])
        b.kill()
        at_kill = stored(bdb)
        assert at_kill < total, "the transfer ended before the receiver was killed"
        b.start()
        b.wait_ready()
        wait_for(
            lambda: transfer_status(adb) == "accepted",
            "the signed receipt",
            120,
            0.1,
            alive=[a, b],
            state=lambda: (transfer_status(adb), stored(bdb)),
        )

        with bdb.transaction(read_only=True) as s:
            got = s.scalars(select(EvidencePackage)).one()
        copy = hashlib.sha256()
        with (
            httpx.Client(base_url=b.url, headers={"Authorization": f"Bearer {tb}"}, timeout=120) as c,
            c.stream("GET", f"/api/v1/evidence/packages/{got.id}/files/0/content") as r,
        ):
            for piece in r.iter_bytes():
                copy.update(piece)
        assert copy.hexdigest() == digest.hexdigest()
        assert Counter(kinds(adb)) == Counter({"created": 1, "sealed": 1, "transferred": 1})
        assert Counter(kinds(bdb)) == Counter({"received": 1, "verified": 1, "downloaded": 1})
    finally:
        for p in (a, b):
            p.kill()
        adb.dispose()
        bdb.dispose()
