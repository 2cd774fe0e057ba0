"""Evidence figures: ingest vs sha256sum, peak memory, transfer between two nodes, resume after kill -9,
custody log appends and proofs at scale, and verification of a bundle with many events.

    python benchmarks/bench_evidence.py ingest   --size-mib 1024
    python benchmarks/bench_evidence.py transfer --size-mib 1024
    python benchmarks/bench_evidence.py custody  --events 1000000 --bundle-events 10000
    python benchmarks/bench_evidence.py all      --size-mib 64 --events 100000      (a quick run)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from benchmarks.common import NodeProcess, median, percentile, scratch_database
from cyberpact.config import Settings
from cyberpact.evidence import bundle, chunks, custody, merkle, service
from cyberpact.evidence.models import EvidenceFile, EvidenceTransfer
from cyberpact.evidence.schemas import Acquisition
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.storage import LocalStorage

MIB = 1024 * 1024
ACQ = Acquisition.model_validate({
    "by": "bench", "at": "2026-01-01T00:00:00Z", "where": "lab", "method": "dd", "tool": "dd",
    "tool_version": "9", "authority": "bench",
})  # fmt: skip


def make_file(path: Path, size_mib: int) -> None:
    with path.open("wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(MIB))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def context(url: str, data: Path, chunk: int = 4 * MIB) -> service.Context:
    s = Settings(
        env="test",
        database_url=url,
        data_dir=data,
        key_passphrase="bench-passphrase-long-enough",
        key_kdf_iterations=1000,
        secret_key="s" * 40,
        evidence_chunk_bytes=chunk,
    )  # type: ignore[arg-type]
    return service.Context(s, KeyStore(s.key_passphrase_value(), 1000), LocalStorage(data / "evidence"))


def ingest(size_mib: int, tmp: Path) -> dict[str, Any]:
    src = tmp / "image.dd"
    make_file(src, size_mib)
    # Written back now, so that the disk is not still busy with the source file while the ingest
    # writes and fsyncs its chunks (that overlap alone halved the ingest figure in some runs).
    os.sync()
    subprocess.run(["sha256sum", str(src)], check=True, capture_output=True)  # warm the page cache
    t = time.perf_counter()
    subprocess.run(["sha256sum", str(src)], check=True, capture_output=True)
    baseline = size_mib * MIB / (time.perf_counter() - t) / 1e6
    with scratch_database("sqlite") as url:
        ctx = context(url, tmp)
        db = Database(url)
        with db.transaction() as s:
            p = service.create_package(s, ctx, SYSTEM, case_ref="B", request_ref=None, title="bench")
            service.add_file(
                s,
                ctx,
                SYSTEM,
                p,
                name="image.dd",
                size=src.stat().st_size,
                media_type="application/octet-stream",
                acquisition=ACQ,
            )
            pid = p.id
        t = time.perf_counter()
        # As `cyberpact evidence add` ingests (the API's upload keeps fewer chunks in flight).
        up = service.Upload(db, ctx, SYSTEM, pid, 0, 0, in_flight=chunks.IN_FLIGHT_BULK)
        with src.open("rb") as f:
            while piece := f.read(up.chunk_size):
                up.write(piece)
        up.finish()
        ours = size_mib * MIB / (time.perf_counter() - t) / 1e6
        db.dispose()
    src.unlink()
    return {
        "ingest_MBps": round(ours),
        "sha256sum_MBps": round(baseline),
        "ratio": round(ours / baseline, 2),
        "peak_rss_MB": round(peak_rss_mb()),
    }


def _status(db: Database) -> tuple[str | None, int]:
    with db.transaction(read_only=True) as s:
        st = s.scalar(select(EvidenceTransfer.status).where(EvidenceTransfer.direction == "out"))
        return st, 0


def _stored(db: Database) -> int:
    with db.transaction(read_only=True) as s:
        return int(s.scalar(select(func.coalesce(func.sum(EvidenceFile.chunks_stored), 0))) or 0)


def _token(url: str, name: str) -> str:
    from datetime import timedelta

    from cyberpact.accounts import service as accounts

    db = Database(url)
    with db.transaction() as s:
        u = accounts.create_user(s, SYSTEM, username=name, password="correct horse battery", roles=("admin",))
        _, secret = accounts.issue_token(s, SYSTEM, u, "bench", timedelta(days=1))
    db.dispose()
    return secret


def transfer(size_mib: int, tmp: Path, kill_at: float = 0.4) -> dict[str, Any]:
    """Two nodes on loopback: a full transfer, then one killed (-9) part-way and restarted."""
    src = tmp / "image.dd"
    make_file(src, size_mib)
    digest = hashlib.sha256(src.read_bytes()).hexdigest() if size_mib <= 2048 else None
    out: dict[str, Any] = {}
    with scratch_database("postgresql") as aurl, scratch_database("postgresql") as burl:
        ta, tb = _token(aurl, "a"), _token(burl, "b")
        env = {"CYBERPACT_EVIDENCE_CHUNK_BYTES": str(4 * MIB)}
        a = NodeProcess("vn-ca", aurl, tmp / "a", extra_env=env)
        b = NodeProcess("pl-ca", burl, tmp / "b", extra_env=env)
        adb, bdb = Database(aurl), Database(burl)
        try:
            for x, tx, y, ty in ((a, ta, b, tb), (b, tb, a, ta)):
                fp = httpx.get(
                    y.base_url + "/api/v1/federation/node", headers={"Authorization": f"Bearer {ty}"}
                ).json()["fingerprint"]
                httpx.post(
                    x.base_url + "/api/v1/federation/peers",
                    json={"url": y.base_url, "fingerprint": fp},
                    headers={"Authorization": f"Bearer {tx}"},
                    timeout=30,
                ).raise_for_status()
            c = httpx.Client(base_url=a.base_url, headers={"Authorization": f"Bearer {ta}"}, timeout=600)
            out["sender_idle_rss_MB"] = round(a.rss_mb())
            out["receiver_idle_rss_MB"] = round(b.rss_mb())

            def send() -> float:
                pkg = c.post("/api/v1/evidence/packages", json={"case_ref": "B", "title": "b"}).json()
                c.post(
                    f"/api/v1/evidence/packages/{pkg['id']}/files",
                    json={
                        "name": "image.dd",
                        "size": src.stat().st_size,
                        "sha256": digest,
                        "acquisition": ACQ.model_dump(mode="json"),
                    },
                ).raise_for_status()
                put_started = time.perf_counter()
                with src.open("rb") as f:
                    c.put(
                        f"/api/v1/evidence/packages/{pkg['id']}/files/0/content",
                        content=f,
                        headers={"Upload-Offset": "0"},
                    ).raise_for_status()
                c.post(f"/api/v1/evidence/packages/{pkg['id']}/seal").raise_for_status()
                out.setdefault(
                    "upload_MBps", round(size_mib * MIB / (time.perf_counter() - put_started) / 1e6)
                )
                out.setdefault("sender_upload_peak_rss_MB", round(a.peak_rss_mb()))
                # From here the peaks are the transfer's own (where the kernel lets us reset them).
                out.setdefault("peaks_reset_after_upload", a.reset_peak() and b.reset_peak())
                c.post(
                    f"/api/v1/evidence/packages/{pkg['id']}/transfers", json={"peer": "pl-ca"}
                ).raise_for_status()
                return time.perf_counter()

            t0 = send()
            while _done(adb) < 1:
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            out["transfer_MBps"] = round(size_mib * MIB / elapsed / 1e6)
            out["sender_transfer_peak_rss_MB"] = round(a.peak_rss_mb())
            out["receiver_transfer_peak_rss_MB"] = round(b.peak_rss_mb())
            # Resume: the same again, the sender killed part-way; time from restart to the next chunk.
            base = _stored(bdb)
            send()
            total = size_mib * MIB // (4 * MIB)
            while _stored(bdb) - base < total * kill_at:
                time.sleep(0.002)
            os.kill(a.proc.pid, signal.SIGKILL)
            a.proc.wait()
            before = _stored(bdb)
            t1 = time.perf_counter()
            a = NodeProcess("vn-ca", aurl, tmp / "a", extra_env=env)
            while _stored(bdb) == before:
                time.sleep(0.005)
            out["resume_after_kill_s"] = round(time.perf_counter() - t1, 2)
            out["resume_note"] = "includes the restart of the killed node (process start, app startup)"
            while _done(adb) < 2:
                time.sleep(0.05)
            c.close()
        finally:
            a.stop()
            b.stop()
            adb.dispose()
            bdb.dispose()
    src.unlink()
    return out


def _done(db: Database) -> int:
    with db.transaction(read_only=True) as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(EvidenceTransfer)
                .where(EvidenceTransfer.direction == "out", EvidenceTransfer.status == "accepted")
            )
            or 0
        )


def custody_figures(events: int, bundle_events: int, tmp: Path, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"database": kind}
    with scratch_database(kind) as url:
        ctx = context(url, tmp, 64 * 1024)
        db = Database(url)
        actor = SYSTEM
        batch = 1000
        t = time.perf_counter()
        n = 0
        while n < events:
            k = min(batch, events - n)
            with db.transaction() as s:
                custody.append(
                    s, ctx.node_id, [custody.NewEvent("viewed", None, actor, {"i": n + i}) for i in range(k)]
                )
                if (n // batch) % 100 == 0:
                    custody.sign_head(s, ctx.keys, ctx.node_id)
            n += k
        out["append_events_per_s"] = round(events / (time.perf_counter() - t))
        with db.transaction() as s:
            head = custody.sign_head(s, ctx.keys, ctx.node_id)
        rnd = random.Random(1)
        inc, con = [], []
        with db.transaction(read_only=True) as s:
            for _ in range(1000):
                seq = rnd.randrange(head.size)
                t = time.perf_counter()
                proof = custody.inclusion_proof(s, seq, head.size)
                inc.append(time.perf_counter() - t)
                first = rnd.randrange(1, head.size)
                t = time.perf_counter()
                cproof = custody.consistency_proof(s, first, head.size)
                con.append(time.perf_counter() - t)
            leaf = merkle.leaf_hash(s.get_one(custody.CustodyEvent, seq).entry.encode())
            merkle.verify_inclusion(seq, head.size, leaf, proof, bytes(head.root))
            merkle.verify_consistency(first, head.size, custody.root_at(s, first), bytes(head.root), cproof)
        out["events"] = head.size
        out["inclusion_proof_ms_median"] = round(median(inc) * 1000, 3)
        out["inclusion_proof_ms_p99"] = round(percentile(inc, 99) * 1000, 3)
        out["consistency_proof_ms_median"] = round(median(con) * 1000, 3)
        out["consistency_proof_ms_p99"] = round(percentile(con, 99) * 1000, 3)
        # A package with many custody events, exported and verified offline.
        with db.transaction() as s:
            p = service.create_package(s, ctx, actor, case_ref="B", request_ref=None, title="many events")
            service.add_file(s, ctx, actor, p, name="x", size=1000, media_type="text/plain", acquisition=ACQ)
            pid = p.id
        up = service.Upload(db, ctx, actor, pid, 0, 0)
        up.write(b"x" * 1000)
        up.finish()
        with db.transaction() as s:
            service.seal(s, ctx, actor, service.get_package(s, pid))
            for i in range(0, bundle_events - 3, batch):
                k = min(batch, bundle_events - 3 - i)
                custody.append(
                    s,
                    ctx.node_id,
                    [custody.NewEvent("viewed", str(pid), actor, {"i": i + j}) for j in range(k)],
                )
        with db.transaction() as s:
            t = time.perf_counter()
            path = bundle.export(s, ctx, actor, service.get_package(s, pid), tmp / "bundle.zip")
            out["bundle_export_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        report = bundle.verify_bundle(path)
        out["bundle_verify_s"] = round(time.perf_counter() - t, 2)
        out["bundle_events"] = bundle_events
        assert report.ok, report.failures
        db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["ingest", "transfer", "custody", "all"])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bundle-events", type=int, default=10_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cyberpact-bench-ev-", dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp)
        if args.what in ("ingest", "all"):
            print("ingest", ingest(args.size_mib, root), flush=True)
        if args.what in ("transfer", "all"):
            print("transfer", transfer(args.size_mib, root), flush=True)
        if args.what in ("custody", "all"):
            print(
                "custody", custody_figures(args.events, args.bundle_events, root, args.database), flush=True
            )


if __name__ == "__main__":
    main()
