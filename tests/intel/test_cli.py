"""``cyberpact intel``: collections, grants, identities, import and export of STIX and MISP files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cyberpact.audit.models import AuditRecord
from cyberpact.cli import app
from cyberpact.kit.db import Database
from intel.helpers import identity, indicator

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"


def test_intel_cli_round_trip(cli_env: dict[str, str], tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "intel",
            "collections",
            "create",
            "Phishing",
            "--alias",
            "phish",
            "--federate",
            "--peer",
            "fr-node",
            "--default-tlp",
            "green",
        ],
    )
    assert r.exit_code == 0, r.output
    cid = r.output.strip()
    r = runner.invoke(app, ["intel", "collections", "list"])
    assert "phish" in r.output and "federate=yes" in r.output and "fr-node" in r.output
    env = {"CYBERPACT_NEW_PASSWORD": "a long enough password"}
    assert runner.invoke(app, ["users", "create", "ana", "-r", "officer"], env=env).exit_code == 0
    r = runner.invoke(app, ["intel", "collections", "grant", "phish", "ana", "--write"])
    assert r.exit_code == 0 and "read=True write=True" in r.output

    bundle = {
        "type": "bundle",
        "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [identity(), indicator("192.0.2.7"), dict(indicator("192.0.2.8"), id="indicator--bad")],
    }
    src = tmp_path / "in.json"
    src.write_text(json.dumps(bundle))
    r = runner.invoke(app, ["intel", "import", str(src), "-c", "phish"])
    assert r.exit_code == 0, r.output
    assert "stored 2, already present 0, refused 1" in r.output and "indicator--bad" in r.output
    # A wallet address has no STIX form: the import stores the rest and names what it left out.
    event = json.loads((FIXTURES / "misp_event_botnet.json").read_text())
    wallet = {"type": "btc", "category": "Financial fraud", "value": "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"}
    event["Event"]["Attribute"].append({**wallet, "uuid": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"})
    misp_in = tmp_path / "botnet.json"
    misp_in.write_text(json.dumps(event))
    r = runner.invoke(app, ["intel", "import", str(misp_in), "-c", cid])
    assert r.exit_code == 0 and "refused 0" in r.output, r.output
    assert "skipped attribute 0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e: type btc has no STIX form" in r.output

    out = tmp_path / "out.json"
    r = runner.invoke(app, ["intel", "export", str(out), "-c", "phish"])
    assert r.exit_code == 0, r.output
    exported = json.loads(out.read_text())
    assert exported["type"] == "bundle" and len(exported["objects"]) == int(r.output.split()[1])
    assert bundle["objects"][1] in exported["objects"]
    misp_out = tmp_path / "event.json"
    r = runner.invoke(app, ["intel", "export", str(misp_out), "-c", "phish", "--format", "misp"])
    assert r.exit_code == 0, r.output
    event = json.loads(misp_out.read_text())["Event"]
    assert event["info"].startswith("Botnet takedown") and {"192.0.2.7", "203.0.113.45"} <= {
        a["value"] for a in event["Attribute"]
    }
    one = tmp_path / "one.json"
    r = runner.invoke(app, ["intel", "export", str(one), "-c", "phish", "--id", bundle["objects"][1]["id"]])
    assert json.loads(one.read_text())["objects"] == [bundle["objects"][1]]
    # Each export is a recorded read: what left the node, to which file, how much.
    db = Database(cli_env["CYBERPACT_DATABASE_URL"])
    with db.transaction(read_only=True) as s:
        exports = [
            (r.object_id, r.detail["view"], r.detail["file"], r.detail["returned"])
            for r in s.scalars(
                select(AuditRecord)
                .where(AuditRecord.action == "intel.objects.read")
                .order_by(AuditRecord.seq)
            )
        ]
    db.dispose()
    assert exports == [
        (cid, "export stix", str(out), len(exported["objects"])),
        (cid, "export misp", str(misp_out), len(event["Attribute"]) + len(event["Object"])),
        (cid, "export stix", str(one), 1),
    ]

    r = runner.invoke(
        app, ["intel", "identities", "set", "identity--55f6ea5e-2c60-40e5-964f-47a8950d210f", "vn"]
    )
    assert r.exit_code == 0 and "-> VN" in r.output
    r = runner.invoke(app, ["intel", "identities", "set", identity()["id"], "FR"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["intel", "correlations"])
    assert r.exit_code == 0, r.output
    assert "ipv4-addr:value" not in r.output  # different addresses: nothing shared yet


def test_intel_cli_errors_are_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    r = runner.invoke(app, ["intel", "import", str(tmp_path / "missing.json"), "-c", "x"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    r = runner.invoke(app, ["intel", "import", str(bad), "-c", "x"])
    assert r.exit_code == 1 and "not JSON" in r.output
    bad.write_text("{}")
    r = runner.invoke(app, ["intel", "import", str(bad), "-c", "nope"])
    assert r.exit_code == 1 and "No collection nope" in r.output
    r = runner.invoke(app, ["intel", "collections", "create", "X", "--default-tlp", "purple"])
    assert r.exit_code == 1 and "TLP" in r.output
    r = runner.invoke(app, ["intel", "identities", "set", "someone", "FR"])
    assert r.exit_code == 1 and "identity--" in r.output


def test_import_and_export_show_their_progress_on_a_terminal_only(
    cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cyberpact.kit.cli import err_console

    assert runner.invoke(app, ["intel", "collections", "create", "Bulk", "--alias", "bulk"]).exit_code == 0
    src = tmp_path / "in.json"
    src.write_text(json.dumps([indicator(f"198.51.100.{i}") for i in range(12)]))
    # Piped (as under cron or in a script): no bar, only the summary.
    r = runner.invoke(app, ["intel", "import", str(src), "-c", "bulk"])
    assert r.exit_code == 0 and r.stderr == "" and "stored 12" in r.stdout, r.output
    # On an officer's terminal: the bar counts the objects on standard error, standard output is unchanged.
    monkeypatch.setattr(err_console, "_force_terminal", True)
    monkeypatch.setattr(err_console, "is_interactive", True)  # Rich decides this once, at start-up
    monkeypatch.setenv("TERM", "xterm")
    src.write_text(json.dumps([indicator(f"198.51.101.{i}") for i in range(12)]))
    r = runner.invoke(app, ["intel", "import", str(src), "-c", "bulk"])
    assert r.exit_code == 0, r.output
    assert "storing" in r.stderr and "12/12" in r.stderr
    assert r.stdout.strip() == "stored 12, already present 0, refused 0"
    out = tmp_path / "out.json"
    r = runner.invoke(app, ["intel", "export", str(out), "-c", "bulk"])
    assert r.exit_code == 0 and "writing" in r.stderr, r.output
    assert r.stdout.strip() == f"wrote 24 objects to {out}"
