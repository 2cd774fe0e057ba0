from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import free_port


def test_demo_runs_three_nodes_that_exchange_receipted_messages(tmp_path: Path) -> None:
    env = {**os.environ, "CYBERPACT_DEMO_DIR": str(tmp_path), "COLUMNS": "200"}
    env.pop("CYBERPACT_DATABASE_URL", None)
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "cyberpact", "demo", "--once", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    for node in ("vn-24x7", "au-24x7", "pl-ca"):
        assert (tmp_path / node / "cyberpact.db").exists(), "each node has its own database"
        assert f"{node} trusts" in out
    lines = out.splitlines()

    def seen(node: str, action: str, change: str) -> bool:
        return any(line.strip().startswith(node) and action in line and change in line for line in lines)

    # The story, on both sides of every exchange.
    assert seen("vn-24x7", "preserve", "acknowledged → preserved")
    assert seen("au-24x7", "preserve", "acknowledged → preserved")
    assert seen("au-24x7", "request_info", "acknowledged → info_requested")
    assert seen("vn-24x7", "execute", "in_execution → executed")
    assert seen("pl-ca", "consult", "acknowledged → consultation")
    assert seen("vn-24x7", "refuse", "info_provided → refused")
    assert "art. 42(2)(e): state why preservation is necessary" in out
    assert "admin API token (shown once): cpt_" in out
    assert "directory loaded on each node" in out
