"""Shared plumbing for benchmarks: scratch databases on SQLite and PostgreSQL, timing helpers."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cyberpact.kit.migrate import upgrade

PG_ADMIN_URL = os.environ.get("CYBERPACT_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(kind: str) -> Iterator[str]:
    """A migrated, empty database that disappears afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cyberpact-bench-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    name = f"cyberpact_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeProcess:
    """A real node: `cyberpact serve` in its own process (HTTP server, outbox and job workers)."""

    def __init__(
        self,
        node_id: str,
        url: str,
        data_dir: Path,
        country: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        import subprocess
        import sys

        self.node_id, self.port = node_id, free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CYBERPACT_ENV": "test",
            "CYBERPACT_DATABASE_URL": url,
            "CYBERPACT_DATA_DIR": str(data_dir),
            "CYBERPACT_SECRET_KEY": "bench-secret-" + "x" * 32,
            "CYBERPACT_KEY_PASSPHRASE": "bench-passphrase-long-enough",
            "CYBERPACT_KEY_KDF_ITERATIONS": "1000",
            "CYBERPACT_NODE_ID": node_id,
            "CYBERPACT_NODE_NAME": node_id,
            "CYBERPACT_BASE_URL": self.base_url,
            "CYBERPACT_PORT": str(self.port),
            "CYBERPACT_LOG_LEVEL": "warning",
            **({"CYBERPACT_NODE_COUNTRY": country} if country else {}),
            **(extra_env or {}),
        }
        self.url = url
        self.proc = subprocess.Popen([sys.executable, "-m", "cyberpact", "serve"], env=self.env)
        self._wait_ready()

    def _wait_ready(self, seconds: float = 60) -> None:
        import time

        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.node_id} exited with status {self.proc.returncode}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.node_id} was not ready in {seconds:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:
                self.proc.kill()

    def _status_mb(self, field: str) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def peak_rss_mb(self) -> float:
        return self._status_mb("VmHWM")

    def rss_mb(self) -> float:
        return self._status_mb("VmRSS")

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not let us."""
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True


# --- profiling -------------------------------------------------------------------------------------


def start_profilers(
    pids: dict[str, int], out: Path, kind: str, budget: float
) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("--profile: py-spy is not installed (pip install py-spy); profiling skipped", flush=True)
        return []
    out.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                "200",
                "--duration",
                str(int(budget)),
                "--nonblocking",
                *os.environ.get("BENCH_PYSPY_FLAGS", "").split(),
                "--output",
                str(out / f"{kind}-{role}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for role, pid in pids.items()
    ]


def report_profiles(out: Path, kind: str, top: int = 12) -> None:
    """Per process, the product functions its CPU samples fall in: each sample goes to the deepest
    cyberpact function on its stack, so library time (SQLAlchemy, joserfc) counts for its caller."""
    for path in sorted(out.glob(f"{kind}-*.txt")):
        owner: Counter[str] = Counter()
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            total += int(count)
            ours = [f for f in stack.split(";") if "cyberpact/" in f]
            if not ours:
                owner["(outside the product)"] += int(count)
                continue
            name, _, where = ours[-1].partition(" (")
            module = where.rsplit("cyberpact/", 1)[-1].split(":")[0]
            owner["(HTTP server: uvicorn, starlette)" if name == "serve" else f"{name} ({module})"] += int(
                count
            )
        print(f"[{kind}]   where {path.stem}'s CPU went ({total:,} samples, by deepest product function):")
        for frame, samples in owner.most_common(top):
            print(f"[{kind}]     {samples / max(total, 1):5.1%}  {frame}", flush=True)
