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
    assert out.count("delivered →") == 4 and out.count("received  ←") == 4
    assert "admin API token (shown once): cpt_" in out
    assert "directory loaded on each node" in out
