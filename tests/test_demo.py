from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LiveNode, free_ports
from cyberpact import demo
from cyberpact.cases import service as cases
from cyberpact.catalog.service import load as load_catalog
from cyberpact.kit.actor import Actor


def test_demo_runs_three_nodes_that_exchange_receipted_messages(tmp_path: Path) -> None:
    env = {**os.environ, "CYBERPACT_DEMO_DIR": str(tmp_path), "COLUMNS": "200"}
    env.pop("CYBERPACT_DATABASE_URL", None)
    port = free_ports(3)
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
    # Two of the six pins came from Viet Nam's signed roster, not from a telephone call.
    assert "au-24x7 trusts pl-ca (from vn-24x7's roster" in out
    assert "pl-ca trusts au-24x7 (from vn-24x7's roster" in out
    lines = out.splitlines()

    def seen(node: str, action: str, change: str) -> bool:
        return any(line.strip().startswith(node) and action in line and change in line for line in lines)

    # The story, on both sides of every exchange.
    assert seen("vn-24x7", "preserve", "acknowledged → preserved")
    assert seen("au-24x7", "preserve", "acknowledged → preserved")
    # Art. 42: the MLA request that follows holds the preservation on both sides until it is decided.
    assert seen("au-24x7", "held", "preserved") and seen("vn-24x7", "held", "preserved")
    assert seen("au-24x7", "hold_ended", "preserved")
    assert seen("vn-24x7", "release", "preserved → released")
    assert seen("au-24x7", "request_info", "acknowledged → info_requested")
    assert seen("vn-24x7", "execute", "in_execution → executed")
    assert seen("pl-ca", "consult", "acknowledged → consultation")
    assert seen("vn-24x7", "refuse", "info_provided → refused")
    assert "art. 42(2)(e): state why preservation is necessary" in out
    assert "admin API token (shown once): cpt_" in out
    assert "directory loaded on each node" in out

    # Evidence: Australia's sealed production reached Viet Nam intact, with its origin's digest.
    assert "every file matches the manifest" in out
    with sqlite3.connect(tmp_path / "au-24x7" / "cyberpact.db") as au:
        sent = au.execute("SELECT id, manifest_digest FROM evidence_packages").fetchall()
        assert au.execute("SELECT status FROM evidence_transfers").fetchall() == [("accepted",)]
    with sqlite3.connect(tmp_path / "vn-24x7" / "cyberpact.db") as vn:
        got = vn.execute(
            "SELECT origin_package_id, manifest_digest, status FROM evidence_packages"
        ).fetchall()
        # Filed under the MLA request's id, which both nodes share: it shows on Viet Nam's own request.
        filed = vn.execute(
            "SELECT r.type, r.direction FROM evidence_packages p JOIN requests r "
            "ON replace(p.request_ref, '-', '') = r.id"
        ).fetchall()
        vn_red = vn.execute("SELECT count(*) FROM intel_objects WHERE raw LIKE '%198.51.100.77%'").fetchone()
    assert [(o.replace("-", ""), d) for o, d, _ in got] == [(i.replace("-", ""), d) for i, d in sent]
    assert filed == [("stored_data", "outgoing")]

    # Threat information: a malformed object refused alone; TLP:RED kept home; only the sharing group got
    # anything; the two States' reports of one address correlate.
    assert "refused indicator--not-a-uuid: id: must be indicator--<RFC 4122 UUID>" in out
    assert vn_red == (1,)
    with sqlite3.connect(tmp_path / "au-24x7" / "cyberpact.db") as au:
        mirrored = au.execute("SELECT raw FROM intel_objects WHERE source_peer = 'vn-24x7'").fetchall()
    assert len(mirrored) == 3 and not any("198.51.100.77" in raw for (raw,) in mirrored)
    with sqlite3.connect(tmp_path / "pl-ca" / "cyberpact.db") as pl:
        assert pl.execute("SELECT count(*) FROM intel_objects").fetchone() == (0,)
    assert "203.0.113.45 reported by AU (1 report), VN (1 report)" in out


def test_the_timeline_prints_a_draft_that_names_no_state_yet(
    node: LiveNode, capsys: pytest.CaptureFixture[str]
) -> None:
    # While the demo serves, officers try its desk; a draft without a requested State once crashed the
    # timeline, and with it all three nodes.
    officer = Actor(user_id=None, username="officer", roles=frozenset({"officer"}), source="web")
    with node.db.transaction() as s:
        case = cases.create_case(s, officer, "Tried at 3 a.m.")
        cases.create_draft(s, officer, load_catalog(), case, cases.DraftInput("preservation", None, {}, {}))
    shown = demo.DemoNode("vn-24x7", "Viet Nam", "VN", "", "", "red", settings=node.settings)
    assert demo._timeline([shown]) == 1
    line = capsys.readouterr().out.strip()
    assert "preservation" in line and "→ —" in line and "draft" in line
