"""TAXII 2.1 ingest and read-back: cyberpact beside medallion (the OASIS reference server, memory backend).

The same generated indicators go through the same client (the OASIS ``taxii2-client``, envelopes of 1,000,
``wait_for_completion``) to each server, each running alone in its own process on a loopback port:

* ingest objects/s over the whole load (the time spent in ``add_objects``: serialising, posting and waiting
  for the status; generating the test objects is not counted), of the first and the last envelope, and of
  each tenth of the load, to show whether it stays flat;
* full read-back objects/s through every page (``as_pages``, 1,000 a page);
* a filtered query's latency (``match[id]`` of one object plus ``match[type]``; median of 20);
* the server process's peak resident memory;
* how long the server's first request after start takes (the collection's GET), beside its second.

Before medallion, the same client posts the same envelopes to a floor: a stdlib HTTP server that only parses
each envelope and answers a complete status, storing and checking nothing. No TAXII server can ingest faster
than that through this client on this machine, so it bounds the multiple of medallion any server can reach.

Every phase has a time budget (``--budget``): a server that has not finished by then is stopped and its
figure is computed from what it did in the budget, marked ``(partial)``. Example, small::

    .venv/bin/python -m benchmarks.bench_taxii --sizes 10000 --skip-medallion --db sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
from taxii2client.v21 import Collection, as_pages

from benchmarks.common import free_port, median, report_profiles, scratch_database, start_profilers

ENVELOPE = 1000
IDENTITY = "identity--6c1f0e1e-3b0a-4f5c-9a63-2f8d1e0b7c42"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"


def indicators(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """n distinct indicators of realistic shape (IPv4 C2 addresses, TLP:GREEN, attributed)."""
    for i in range(n):
        ip = f"{10 + (i >> 24) % 200}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        yield {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.UUID(int=(seed << 64) | i, version=4)}",
            "created": "2024-05-01T10:00:00.000Z",
            "modified": "2024-05-01T10:00:00.000Z",
            "name": f"C2 server {ip}",
            "description": "Command and control server observed in a botnet takedown.",
            "pattern": f"[ipv4-addr:value = '{ip}']",
            "pattern_type": "stix",
            "valid_from": "2024-05-01T10:00:00Z",
            "indicator_types": ["malicious-activity"],
            "created_by_ref": IDENTITY,
            "object_marking_refs": [GREEN],
        }


def _wait(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


class PeakMemory:
    """Samples a process's resident memory every 50 ms and keeps the maximum."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Server:
    name: str
    collection_url: str
    user: str
    password: str
    proc: subprocess.Popen[bytes]
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fn in self.cleanup:
            fn()


_CYBERPACT = """
import logging, sys, uvicorn
from cyberpact.app import create_app
from cyberpact.config import Settings
logging.basicConfig(level="WARNING")
uvicorn.run(create_app(Settings(), run_background=False), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", access_log=False)
"""


@contextmanager
def cyberpact_server(kind: str) -> Iterator[Server]:
    from cyberpact.accounts import service as accounts
    from cyberpact.intel import service as intel
    from cyberpact.kit.actor import SYSTEM
    from cyberpact.kit.db import Database

    with scratch_database(kind) as url, tempfile.TemporaryDirectory(prefix="cyberpact-bench-") as tmp:
        db = Database(url)
        with db.transaction() as s:
            user = accounts.create_user(
                s, SYSTEM, username="bench", password="benchmark password", roles=["officer"]
            )
            _, token = accounts.issue_token(s, SYSTEM, user, "bench", timedelta(days=1))
            coll = intel.create_collection(s, SYSTEM, title="bench", alias="bench")
            intel.grant(s, SYSTEM, coll, user, read=True, write=True)
            cid = str(coll.id)
        db.dispose()
        env = dict(os.environ)
        env.update(
            CYBERPACT_ENV="test",
            CYBERPACT_SECRET_KEY="bench-secret-" + "x" * 40,
            CYBERPACT_KEY_PASSPHRASE="bench-passphrase-long",
            CYBERPACT_KEY_KDF_ITERATIONS="1000",
            CYBERPACT_DATA_DIR=tmp,
            CYBERPACT_DATABASE_URL=url,
        )
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-c", _CYBERPACT, str(port)], env=env)
        server = Server(
            f"cyberpact/{kind}",
            f"http://127.0.0.1:{port}/taxii2/intel/collections/{cid}/",
            "bench",
            token,
            proc,
        )
        try:
            _wait(port, proc)
            yield server
        finally:
            server.stop()


_MEDALLION = """
import json, sys, waitress
from medallion import application_instance, register_blueprints, set_config
config = json.load(open(sys.argv[1]))
for part in ("users", "taxii", "backend"):
    set_config(application_instance, part, config)
register_blueprints(application_instance)
waitress.serve(application_instance, host="127.0.0.1", port=int(sys.argv[2]), threads=4, _quiet=True)
"""


# The least any TAXII server must do with an envelope: read it, parse it, answer a complete status. With the
# same client, its rate bounds what any server could reach on this machine.
_FLOOR = """
import json, sys, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MEDIA = "application/taxii+json;version=2.1"

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def _send(self, doc, code=200):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", MEDIA)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send({"id": sys.argv[2], "title": "floor", "can_read": True, "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"]})

    def do_POST(self):
        n = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["objects"])
        self._send({"id": str(uuid.uuid4()), "status": "complete", "total_count": n, "success_count": n,
                    "failure_count": 0, "pending_count": 0}, 202)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@contextmanager
def floor_server() -> Iterator[Server]:
    port, cid = free_port(), str(uuid.uuid4())
    proc = subprocess.Popen([sys.executable, "-c", _FLOOR, str(port), cid])
    server = Server(
        "floor (parse only)", f"http://127.0.0.1:{port}/api1/collections/{cid}/", "bench", "x", proc
    )
    try:
        _wait(port, proc)
        yield server
    finally:
        server.stop()


@contextmanager
def medallion_server() -> Iterator[Server]:
    port = free_port()
    cid = str(uuid.uuid4())
    with tempfile.TemporaryDirectory(prefix="medallion-bench-") as tmp:
        data = {
            "/discovery": {
                "title": "medallion",
                "default": f"http://127.0.0.1:{port}/api1/",
                "api_roots": [f"http://127.0.0.1:{port}/api1/"],
            },
            "api1": {
                "information": {
                    "title": "api1",
                    "versions": ["application/taxii+json;version=2.1"],
                    "max_content_length": 100_000_000,
                },
                "status": [],
                "collections": [
                    {
                        "id": cid,
                        "title": "bench",
                        "can_read": True,
                        "can_write": True,
                        "media_types": ["application/stix+json;version=2.1"],
                        "objects": [],
                        "manifest": [],
                    }
                ],
            },
        }
        data_path = Path(tmp) / "data.json"
        data_path.write_text(json.dumps(data))
        config = {
            "backend": {
                "module_class": "MemoryBackend",
                "module": "medallion.backends.memory_backend",
                "filename": str(data_path),
            },
            "users": {"bench": "bench-password"},
            "taxii": {"max_page_size": ENVELOPE},
        }
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config))
        proc = subprocess.Popen([sys.executable, "-c", _MEDALLION, str(config_path), str(port)])
        server = Server(
            "medallion/memory",
            f"http://127.0.0.1:{port}/api1/collections/{cid}/",
            "bench",
            "bench-password",
            proc,
        )
        try:
            _wait(port, proc)
            yield server
        finally:
            server.stop()


@dataclass
class Figures:
    server: str
    size: int
    ingested: int = 0
    batches: list[tuple[int, float]] = field(default_factory=list)  # (objects, seconds) of each envelope
    request_ms: list[float] = field(default_factory=list)  # the collection's GET: first, then second
    read: int = 0
    read_s: float = 0.0
    query_ms: float = float("nan")
    peak_mb: float = 0.0
    partial: list[str] = field(default_factory=list)

    def rate(self, n: int, s: float) -> float:
        return n / s if s > 0 else float("nan")

    @property
    def ingest_s(self) -> float:
        return sum(seconds for _, seconds in self.batches)

    def batch_rate(self, index: int) -> float:
        return self.rate(*self.batches[index]) if self.batches else float("nan")


def run(
    server: Server, size: int, budget: float, profile: Path | None = None, ingest_only: bool = False
) -> Figures:
    fig = Figures(server.name, size)
    label = server.name.replace("/", "-") + f"-{size}"
    spies = start_profilers({"server": server.proc.pid}, profile, label, budget) if profile else []
    memory = PeakMemory(server.proc.pid)
    coll = Collection(server.collection_url, user=server.user, password=server.password)
    # The server's first request, then its second: the client's first add_objects would read the
    # collection first anyway, so the ingest below no longer counts that GET for any server.
    for _ in range(2):
        t0 = time.perf_counter()
        coll.refresh()
        fig.request_ms.append((time.perf_counter() - t0) * 1000)
    source = indicators(size)
    sample_ids: list[str] = []
    while fig.ingested < size:
        batch = [next(source) for _ in range(min(ENVELOPE, size - fig.ingested))]
        sample_ids.append(batch[len(batch) // 2]["id"])
        t0 = time.perf_counter()
        status = coll.add_objects(
            {"objects": batch}, wait_for_completion=True, poll_interval=0.05, timeout=600
        )
        elapsed = time.perf_counter() - t0
        if status.success_count != len(batch):
            raise RuntimeError(
                f"{server.name}: {status.failure_count} objects refused: {status.failures[:2]}"
            )
        fig.batches.append((len(batch), elapsed))
        fig.ingested += len(batch)
        if fig.ingest_s > budget and fig.ingested < size:
            fig.partial.append("ingest")
            break
    for spy in spies:  # the ingest phase only
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    if profile:
        report_profiles(profile, label)
    if ingest_only:
        fig.partial += ["read-back", "query"]
        fig.peak_mb = memory.stop() / 2**20
        return fig

    started = time.perf_counter()
    for envelope in as_pages(coll.get_objects, per_request=ENVELOPE):
        fig.read += len(envelope.get("objects", []))
        fig.read_s = time.perf_counter() - started
        if fig.read_s > budget:
            fig.partial.append("read-back")
            break
    if "read-back" not in fig.partial and fig.read != fig.ingested:
        raise RuntimeError(f"{server.name}: read back {fig.read} of {fig.ingested} objects")

    timings = []
    deadline = time.perf_counter() + budget
    for oid in (sample_ids * 20)[:20]:
        t0 = time.perf_counter()
        got = coll.get_objects(id=oid, type="indicator")
        timings.append((time.perf_counter() - t0) * 1000)
        if [o["id"] for o in got.get("objects", [])] != [oid]:
            raise RuntimeError(f"{server.name}: filtered query returned the wrong objects")
        if time.perf_counter() > deadline:
            fig.partial.append("query")
            break
    fig.query_ms = median(timings)
    fig.peak_mb = memory.stop() / 2**20
    return fig


def _fmt(value: float, width: int = 10) -> str:
    return f"{value:>{width},.0f}" if value == value else f"{'n/a':>{width}}"


def report(rows: list[Figures], baseline: Figures | None) -> None:
    head = (
        f"{'server':<22}{'objects':>10}{'ingest/s':>10}{'first':>10}{'last':>10}"
        f"{'read/s':>10}{'query ms':>10}{'peak MB':>9}"
    )
    print(head)
    print("-" * len(head))
    for f in rows:
        ingest = f.rate(f.ingested, f.ingest_s)
        read = f.rate(f.read, f.read_s)
        note = f"  (partial: {', '.join(f.partial)})" if f.partial else ""
        print(
            f"{f.server:<22}{f.size:>10,}{_fmt(ingest)}{_fmt(f.batch_rate(0))}{_fmt(f.batch_rate(-1))}"
            f"{_fmt(read)}{f.query_ms:>10.1f}{f.peak_mb:>9.0f}{note}"
        )
    for f in rows:
        if len(f.batches) >= 10:
            tenth = len(f.batches) // 10
            parts = [f.batches[i * tenth : (i + 1) * tenth] for i in range(10)]
            rates = [f.rate(sum(n for n, _ in p), sum(s for _, s in p)) for p in parts]
            print(
                f"{f.server} at {f.size:,}: ingest by tenths of the load, objects/s: "
                + ", ".join(f"{r:,.0f}" for r in rates)
            )
    for f in rows:
        if len(f.request_ms) == 2:
            print(
                f"{f.server} at {f.size:,}: first request after start {f.request_ms[0]:.1f} ms, "
                f"the next {f.request_ms[1]:.1f} ms"
            )
    if baseline is None:
        return
    for f in rows:
        if f is baseline or f.size != baseline.size:
            continue
        ingest_x = f.rate(f.ingested, f.ingest_s) / baseline.rate(baseline.ingested, baseline.ingest_s)
        read_x = f.rate(f.read, f.read_s) / baseline.rate(baseline.read, baseline.read_s)
        print(
            f"{f.server} vs {baseline.server} at {f.size:,}: ingest x{ingest_x:.1f}, "
            f"read-back x{read_x:.1f}, query x{baseline.query_ms / f.query_ms:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated object counts")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--skip-medallion", action="store_true")
    parser.add_argument("--medallion-size", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=900, help="seconds allowed per phase per server")
    parser.add_argument("--medallion-budget", type=float, default=300, help="the same, for medallion")
    parser.add_argument(
        "--medallion-ingest-only",
        action="store_true",
        help="skip medallion's read-back, which takes minutes per page at 10,000 objects",
    )
    parser.add_argument("--profile", type=Path, help="py-spy samples of the ingest, here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    rows: list[Figures] = []
    baseline = None
    if not args.skip_medallion:
        with floor_server() as server:
            floor = run(server, args.medallion_size, args.medallion_budget, ingest_only=True)
            rows.append(floor)
            report([floor], None)
        with medallion_server() as server:
            baseline = run(
                server, args.medallion_size, args.medallion_budget, ingest_only=args.medallion_ingest_only
            )
            rows.append(baseline)
            report([baseline], None)
    for size in sizes:
        for kind in kinds:
            with cyberpact_server(kind) as server:
                rows.append(run(server, size, args.budget, args.profile))
                print(f"done: {rows[-1].server} at {size:,}", flush=True)
    print()
    report(rows, baseline)


if __name__ == "__main__":
    main()
