"""`audit verify` over N records (default 1,000,000): records/s, beside raw SHA-256 of the same bytes.

The chain is written in bulk with the product's own hash function (writing a million records through
the API would measure the API, not verification), then verified with the product's verifier.

Then the background check an inspector starts from the desk (``audit.tasks.run_check``) walks the same
chain in a thread while this thread keeps writing, one audit record per unit of work as an officer's
change writes one: the latency of those writes during the walk, beside the same writes with nothing else
running. A walk that held the write lock (SQLite has one) would show as one write waiting for the whole
walk.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from benchmarks.common import scratch_database
from cyberpact.app import SWITCH_INTERVAL
from cyberpact.audit import service as audit
from cyberpact.audit import tasks
from cyberpact.audit.models import AuditCheck, AuditRecord
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.canonical import canonical_json_floatless
from cyberpact.kit.db import Database
from cyberpact.kit.time import rfc3339


def build_chain(db: Database, n: int, batch: int = 20_000) -> list[bytes]:
    """Insert n chained records; return the exact bytes each record's hash covers (for the baseline)."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    prev = audit.GENESIS
    hashed: list[bytes] = []
    rows: list[dict[str, object]] = []
    for i in range(1, n + 1):
        at = base + timedelta(milliseconds=i)
        row = {
            "at": at,
            "actor": f"user{i % 50}",
            "actor_id": None,
            "action": "cases.request.read",
            "object_type": "request",
            "object_id": f"req-{i % 9973}",
            "source": "10.0.0.1",
            "outcome": "allowed",
            "detail": {"fields": i % 7},
            "prev_hash": prev,
        }
        body = {
            "at": rfc3339(at),
            "actor": row["actor"],
            "actor_id": None,
            "action": row["action"],
            "object_type": row["object_type"],
            "object_id": row["object_id"],
            "source": row["source"],
            "outcome": row["outcome"],
            "detail": row["detail"],
            "prev": prev,
        }
        data = canonical_json_floatless(body)
        hashed.append(data)
        prev = hashlib.sha256(data).hexdigest()
        rows.append({**row, "seq": i, "hash": prev})
        if len(rows) == batch:
            with db.transaction() as s:
                s.execute(insert(AuditRecord), rows)
            rows = []
    if rows:
        with db.transaction() as s:
            s.execute(insert(AuditRecord), rows)
    return hashed


def _writes(db: Database, more: threading.Event | None, count: int) -> list[float]:
    """Seconds per write: ``count`` writes, or while ``more`` is set."""
    took: list[float] = []
    while (more.is_set() if more is not None else len(took) < count) or not took:
        t0 = time.perf_counter()
        with db.transaction() as s:
            audit.record(s, SYSTEM, "bench.write", "thing", None, detail={"n": len(took)})
        took.append(time.perf_counter() - t0)
    return took


def _summary(took: list[float]) -> str:
    ms = sorted(t * 1000 for t in took)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{len(ms):,} writes, p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


def during_check(db: Database) -> tuple[str, str, float]:
    """Writes alone, then writes while the background check walks the chain; and the walk's seconds.

    With the running node's thread switch interval: the walk and the writes share one interpreter lock."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    alone = _writes(db, None, 2_000)
    with db.transaction() as s:
        check, _ = audit.request_check(s, SYSTEM)
        payload = {"check": str(check.id)}
    running = threading.Event()
    running.set()
    walked: list[float] = []

    def walk() -> None:
        t0 = time.perf_counter()
        try:
            tasks.run_check(db, payload, lambda: None)
        finally:
            walked.append(time.perf_counter() - t0)
            running.clear()

    thread = threading.Thread(target=walk)
    thread.start()
    during = _writes(db, running, 0)
    thread.join()
    with db.transaction(read_only=True) as s:
        status = s.get_one(AuditCheck, check.id).status
    assert status == "intact", status
    return _summary(alone), _summary(during), walked[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds:
        with scratch_database(kind) as url:
            db = Database(url)
            t0 = time.perf_counter()
            hashed = build_chain(db, args.records)
            build = time.perf_counter() - t0

            t0 = time.perf_counter()
            for data in hashed:
                hashlib.sha256(data).digest()
            raw = time.perf_counter() - t0
            total_bytes = sum(len(d) for d in hashed)
            del hashed

            t0 = time.perf_counter()
            with db.transaction(read_only=True) as s:
                result = audit.verify(s)
            took = time.perf_counter() - t0
            assert result.ok and result.records == args.records, result
            alone, during, walk = during_check(db)
            db.dispose()
        print(
            f"[{kind}] audit verify: {args.records:,} records in {took:.2f} s = "
            f"{args.records / took:,.0f} records/s"
        )
        print(
            f"[{kind}]   baseline raw SHA-256 of the same {total_bytes / 1e6:.0f} MB: "
            f"{args.records / raw:,.0f} records/s ({raw:.2f} s); verify/raw = {raw / took:.3f}"
        )
        print(f"[{kind}]   (chain written in {build:.1f} s)")
        print(f"[{kind}] writes with nothing else running: {alone}")
        print(f"[{kind}] writes during the background check ({walk:.2f} s): {during}")


if __name__ == "__main__":
    main()
