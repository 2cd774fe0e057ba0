"""Where a TAXII envelope's time goes inside the server, per object, without HTTP.

The same generated indicators as ``bench_taxii``, in envelopes of 1,000, go through the three phases of a
POST to ``/objects/``, called in this process exactly as the endpoint calls them:

* **prepare**: ``parse_envelope`` then ``store.prepare`` (validation, pattern parsing, canonical JSON), with
  no database;
* **write**: ``store.add_objects`` in the request's transaction (version lookups, the object rows, the
  correlation index, the status resource, the audit record);
* **commit**.

Beside them, in the same run, the raw primitives any store of these objects needs at the least: the
standard library's JSON parse of the envelope plus one sorted serialisation of each object. The first two
envelopes (caches filling) are left out; the collector is tuned as a running node tunes it.

``--mapped`` first says which State the indicators' author speaks for, as a working node's administrator
does: every report then also refreshes the correlation index (``bench_taxii`` leaves authors unmapped).

    .venv/bin/python -m benchmarks.bench_ingest_phases --objects 20000 --db both [--mapped]
"""

from __future__ import annotations

import argparse
import json
import time
import timeit

from benchmarks.bench_taxii import ENVELOPE, IDENTITY, indicators
from benchmarks.common import scratch_database
from cyberpact.app import _restore_collector, _tune_collector
from cyberpact.intel import service, store
from cyberpact.intel.taxii import parse_envelope
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database

WARM_UP = 2


def raw_floor(body: bytes) -> float:
    """Seconds per object for json.loads of the envelope and a sorted json.dumps of each object."""

    def once() -> None:
        for obj in json.loads(body)["objects"]:
            json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    count = len(json.loads(body)["objects"])
    return min(timeit.repeat(once, number=5, repeat=5)) / 5 / count


def run(kind: str, bodies: list[bytes], mapped: bool = False) -> dict[str, float]:
    totals = {"prepare": 0.0, "write": 0.0, "commit": 0.0}
    counted = 0
    with scratch_database(kind) as url:
        db = Database(url)
        with db.transaction() as s:
            cid = service.create_collection(s, SYSTEM, title="phases", alias="phases").id
            if mapped:
                service.set_identity(s, SYSTEM, IDENTITY, "VN")
        collector = _tune_collector()
        try:
            for k, body in enumerate(bodies):
                t0 = time.perf_counter()
                prepared = store.prepare(parse_envelope(body))
                t1 = time.perf_counter()
                with db.transaction() as s:
                    store.add_objects(s, SYSTEM, service.get_collection(s, cid), prepared)
                    t2 = time.perf_counter()
                t3 = time.perf_counter()
                if k >= WARM_UP:
                    totals["prepare"] += t1 - t0
                    totals["write"] += t2 - t1
                    totals["commit"] += t3 - t2
                    counted += prepared.total
        finally:
            _restore_collector(collector)
            db.dispose()
    return {name: seconds / counted for name, seconds in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--mapped", action="store_true", help="map the indicators' author to a State")
    args = parser.parse_args()
    objects = list(indicators(args.objects))
    bodies = [
        json.dumps({"objects": objects[i : i + ENVELOPE]}).encode() for i in range(0, len(objects), ENVELOPE)
    ]
    if len(bodies) <= WARM_UP:
        parser.error(f"--objects must exceed {WARM_UP * ENVELOPE:,}")
    floor = raw_floor(bodies[0])
    print(
        "raw primitives (json.loads of the envelope + a sorted json.dumps per object): "
        f"{floor * 1e6:.1f} us/object"
    )
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        per = run(kind, bodies, args.mapped)
        total = sum(per.values())
        parts = ", ".join(f"{name} {seconds * 1e6:.1f}" for name, seconds in per.items())
        label = f"{kind}, mapped" if args.mapped else kind
        print(
            f"[{label}] {args.objects:,} objects: {total * 1e6:.1f} us/object ({parts}) = "
            f"{total / floor:.1f} x the raw primitives; {1 / total:,.0f} objects/s before HTTP",
            flush=True,
        )


if __name__ == "__main__":
    main()
