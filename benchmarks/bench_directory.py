"""Directory list API under load: requests/s and p50/p99 with N concurrent clients, beside a constant
endpoint of the same app (the baseline: what the framework, the server and the client cost alone).

For each database (SQLite, then PostgreSQL on a scratch database) the benchmark migrates, starts a real
node in a separate uvicorn process (so that the load generator does not share its interpreter), lets it
seed the directory, and drives the list endpoints with authenticated clients over loopback HTTP for the
given time, then the constant endpoint for the same time.

    python -m benchmarks.bench_directory --seconds 20 --clients 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from benchmarks.common import free_port, median, percentile, scratch_database
from cyberpact.accounts import service as accounts
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database

LIST_PATHS = (
    "/api/v1/directory/parties?limit=50",
    "/api/v1/directory/authorities?limit=50",
    "/api/v1/directory/parties?language=en&signed=true",
)
CONST_PATH = "/bench/const"
WARMUP_SECONDS = 2.0


def serve(port: int) -> None:
    """Child process: the product's app, plus a constant route that exists only in this benchmark."""
    import uvicorn

    from cyberpact.app import create_app

    app = create_app(run_background=False)

    def const() -> dict[str, str]:
        return {"status": "ok"}

    app.add_api_route(CONST_PATH, const, methods=["GET"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@dataclass(frozen=True)
class Result:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (
            f"{self.rate:8.0f} req/s   p50 {self.p50_ms:6.1f} ms   p99 {self.p99_ms:6.1f} ms   "
            f"({self.requests} requests, {self.errors} errors)"
        )


async def drive(base: str, token: str, paths: tuple[str, ...], clients: int, seconds: float) -> Result:
    """``clients`` concurrent loops for WARMUP_SECONDS + ``seconds``; only the latter are measured."""
    latencies: list[float] = []
    errors = 0
    measure_from = time.perf_counter() + WARMUP_SECONDS
    stop = measure_from + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        # One client (one keep-alive connection) per simulated user: a single shared pool of 50
        # connections costs the load generator more than the server under test.
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            n = i
            while (started := time.perf_counter()) < stop:
                response = await client.get(paths[n % len(paths)])
                n += 1
                if started >= measure_from:
                    latencies.append(time.perf_counter() - started)
                    errors += response.status_code != 200

    # Bounded: a hung server cannot keep the benchmark running past its budget.
    await asyncio.wait_for(
        asyncio.gather(*(worker(i) for i in range(clients))), timeout=WARMUP_SECONDS + seconds + 60
    )
    ms = [x * 1000 for x in latencies]
    return Result(len(ms), errors, seconds, median(ms), percentile(ms, 99))


def start_node(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CYBERPACT_ENV": "test",
        "CYBERPACT_DATABASE_URL": url,
        "CYBERPACT_DATA_DIR": str(data_dir),
        "CYBERPACT_SECRET_KEY": "bench-secret-" + "x" * 32,
        "CYBERPACT_KEY_PASSPHRASE": "bench-passphrase-long-enough",
        "CYBERPACT_KEY_KDF_ITERATIONS": "1000",
        "CYBERPACT_NODE_NAME": "bench-node",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_directory", "--serve", str(port)],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the benchmark node exited with status {child.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return child
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    child.terminate()
    raise RuntimeError("the benchmark node did not become ready in 60 s")


def run(kind: str, seconds: float, clients: int) -> None:
    with scratch_database(kind) as url, tempfile.TemporaryDirectory(prefix="cyberpact-bench-") as tmp:
        db = Database(url)
        with db.transaction() as session:
            user = accounts.create_user(
                session, SYSTEM, username="bench", password="bench password long", roles=["officer"]
            )
            _, token = accounts.issue_token(session, SYSTEM, user, "bench", timedelta(hours=2))
        db.dispose()
        port = free_port()
        child = start_node(url, Path(tmp), port)
        try:
            base = f"http://127.0.0.1:{port}"
            listed = httpx.get(f"{base}{LIST_PATHS[0]}", headers={"Authorization": f"Bearer {token}"}).json()
            assert len(listed["items"]) == 50, listed  # the node seeded its directory
            lists = asyncio.run(drive(base, token, LIST_PATHS, clients, seconds))
            const = asyncio.run(drive(base, token, (CONST_PATH,), clients, seconds))
        finally:
            child.terminate()
            child.wait(timeout=30)
    print(f"[{kind}] directory lists   {lists.line()}")
    print(f"[{kind}] constant endpoint {const.line()}")
    print(
        f"[{kind}] lists / constant: {lists.rate / const.rate:.2f} of the throughput, "
        f"p50 x{lists.p50_ms / const.p50_ms:.1f}  ({clients} clients, {seconds:g} s each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per endpoint and database")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    print(f"GET {' | '.join(LIST_PATHS)}  vs  GET {CONST_PATH}")
    for kind in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        run(kind, args.seconds, args.clients)


if __name__ == "__main__":
    main()
