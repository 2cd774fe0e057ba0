from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cyberpact.cli import app
from cyberpact.federation.models import Peer

from .conftest import HEADER, PRESERVATION, Side, draft

runner = CliRunner()


def test_validate_new_send_approve_list_show(vn_cli: tuple[Side, Side], tmp_path: Path) -> None:
    vn, _ = vn_cli
    draft = tmp_path / "draft.json"
    fields = {k: v for k, v in PRESERVATION.items() if k != "necessity"}
    draft.write_text(json.dumps({"header": HEADER, "fields": fields}))
    r = runner.invoke(app, ["requests", "validate", str(draft), "--type", "preservation", "--to", "au-24x7"])
    assert r.exit_code == 1
    assert "art. 42(2)(e): state why preservation is necessary" in r.output

    draft.write_text(json.dumps({"header": HEADER, "fields": PRESERVATION}))
    r = runner.invoke(app, ["requests", "validate", str(draft), "--type", "preservation", "--to", "au-24x7"])
    assert r.exit_code == 0 and "complete" in r.output

    r = runner.invoke(
        app,
        [
            "requests",
            "new",
            str(draft),
            "--type",
            "preservation",
            "--to",
            "au-24x7",
            "--as",
            "vn-officer",
            "--title",
            "CLI case",
        ],
    )
    assert r.exit_code == 0, r.output
    rid = r.output.split()[1]
    assert runner.invoke(app, ["requests", "send", rid, "--as", "vn-officer"]).exit_code == 0
    r = runner.invoke(app, ["requests", "approve", rid, "--as", "vn-officer"])
    assert r.exit_code == 1 and "forbidden" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["requests", "approve", rid, "--as", "vn-supervisor"])
    assert r.exit_code == 0 and f"{rid}: sent" in r.output
    vn.deliver()
    r = runner.invoke(app, ["requests", "list", "--as", "vn-officer"])
    assert rid in r.output and "delivered" in r.output
    r = runner.invoke(app, ["requests", "show", rid, "--as", "vn-officer", "--tz", "Asia/Ho_Chi_Minh"])
    assert r.exit_code == 0 and "+07" in r.output and "approve" in r.output
    r = runner.invoke(
        app, ["requests", "respond", rid, "acknowledge", "--as", "vn-officer", "-d", "reference=x"]
    )
    assert r.exit_code == 1 and "requested side" in r.output


def test_ids_stay_whole_in_an_80_column_terminal(
    vn_cli: tuple[Side, Side], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cyberpact.kit.cli import console

    vn, _ = vn_cli
    rid = draft(vn).json()["request"]["id"]
    monkeypatch.setattr(console, "width", 80)
    r = runner.invoke(app, ["requests", "list", "--as", "vn-officer"])
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    # The id as the table shows it is the one the next command takes.
    first_row = re.search(r"^│ (\S+) +│", r.output, flags=re.M)
    assert first_row is not None and first_row.group(1) == rid, r.output
    shown = first_row.group(1)
    r = runner.invoke(app, ["requests", "show", shown, "--as", "vn-officer"])
    assert r.exit_code == 0, r.output


def test_every_table_keeps_its_ids_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the console every command prints with, whichever command built the table (evidence list's
    id and case columns here)."""
    from rich.table import Table

    from cyberpact.kit.cli import console

    monkeypatch.setattr(console, "width", 80)
    ids = [str(uuid.uuid4()) for _ in range(4)]
    table = Table("id", "case", "request", "title", "status", "origin", "created")
    for own, case in zip(ids[:2], ids[2:], strict=True):
        table.add_row(own, case, "", "Disk image of the mail server", "sealed", "vn-ca", "2026-11-30 10:00")
    with console.capture() as captured:
        console.print(table)
    rows = [line.split("│")[1:3] for line in captured.get().splitlines() if line.startswith("│")]
    own_ids = [own.strip() for own, _ in rows if own.strip()]
    case_ids = "".join(case.strip() for _, case in rows)
    assert own_ids == ids[:2]  # the row's own id whole, on one line
    assert case_ids == "".join(ids[2:])  # the case folded over lines, not one character lost


def test_a_refusal_on_a_ground_that_does_not_apply_names_it_and_keeps_its_citation(
    vn_cli: tuple[Side, Side], tmp_path: Path
) -> None:
    vn, _ = vn_cli
    vn.ca  # create the central authority's account  # noqa: B018
    received = tmp_path / "fax.json"
    received.write_text(json.dumps({"header": HEADER, "fields": PRESERVATION}))
    args = ["requests", "register", str(received), "--type", "preservation", "--as", "vn-ca"]
    r = runner.invoke(app, [*args, "--country", "pl", "--authority", "Prokuratura Krajowa", "--via", "fax"])
    assert r.exit_code == 0, r.output
    # Printed as the other commands print times: to the minute, with the zone; not Python's repr.
    assert re.search(r"due \d{4}-\d\d-\d\d \d\d:\d\d UTC\b", r.output), r.output
    assert "+00:00" not in r.output and not re.search(r"\d\d:\d\d:\d\d\.\d+", r.output)
    rid = r.output.split()[1].rstrip(":")
    refuse = ["requests", "respond", rid, "refuse", "--as", "vn-ca", "-d", "reasons=Not this one"]
    r = runner.invoke(app, [*refuse, "-d", "grounds=non_conformity"])
    assert r.exit_code == 1
    line = " ".join(r.output.split())
    assert (
        "art. 40(21) [parallel: UNTOC 18(21)]: “The request does not conform to the article” "
        "(non_conformity, art. 40(21)(a) [parallel: UNTOC 18(21)(a)]) does not apply" in line
    ), line
    assert " : " not in line


def test_cli_bad_input(vn_cli: tuple[Side, Side], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = runner.invoke(app, ["requests", "validate", str(bad), "--type", "preservation"])
    assert r.exit_code == 1 and "cannot read" in r.output
    r = runner.invoke(app, ["requests", "show", "not-a-uuid", "--as", "vn-officer"])
    assert r.exit_code == 1 and "UUID" in r.output
    r = runner.invoke(app, ["requests", "list", "--as", "nobody"])
    assert r.exit_code == 1 and "No user nobody" in r.output


def test_the_command_line_check_warns_of_a_node_that_serves_another_channel(
    vn_cli: tuple[Side, Side], tmp_path: Path
) -> None:
    vn, _ = vn_cli
    with vn.node.db.transaction() as s:
        s.get_one(Peer, "au-24x7").roles = ["central_authority"]
    file = tmp_path / "draft.json"
    file.write_text(json.dumps({"header": HEADER, "fields": PRESERVATION}))
    r = runner.invoke(app, ["requests", "validate", str(file), "--type", "preservation", "--to", "au-24x7"])
    assert r.exit_code == 0, "a warning, not a refusal"
    line = " ".join(r.output.split())
    assert "warning counterpart: art. 41: a request for expedited preservation" in line, line
    assert "AU-24X7 (au-24x7) serves only as a central authority" in line


def test_a_draft_file_not_shaped_as_a_draft_is_refused_naming_each_key(
    vn_cli: tuple[Side, Side], tmp_path: Path
) -> None:
    vn, _ = vn_cli
    draft = tmp_path / "flat.json"
    # Written flat, without "header" and "fields": every element is there, and none is where it is read.
    draft.write_text(json.dumps({**HEADER, **PRESERVATION}))
    before = vn.officer.get("/api/v1/requests").json()["items"]
    for command in (
        ["validate", str(draft), "--type", "preservation"],
        ["new", str(draft), "--type", "preservation", "--as", "vn-officer", "--to", "au-24x7"],
    ):
        r = runner.invoke(app, ["requests", *command])
        assert r.exit_code == 1, r.output
        assert "is not a draft file" in r.output and "missing" not in r.output
        for key in (*HEADER, *PRESERVATION):
            assert f"  {key}: not part of a draft file, which holds header and fields" in r.output
    assert vn.officer.get("/api/v1/requests").json()["items"] == before

    draft.write_text(json.dumps({"header": [], "fields": "x"}))
    r = runner.invoke(app, ["requests", "validate", str(draft), "--type", "preservation"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "  header: must be an object" in r.output and "  fields: must be an object" in r.output

    # A field the form does not have is named unknown, not missing.
    draft.write_text(json.dumps({"header": HEADER, "fields": {**PRESERVATION, "bogus_field": "y"}}))
    r = runner.invoke(app, ["requests", "validate", str(draft), "--type", "preservation", "--to", "au-24x7"])
    assert r.exit_code == 1
    assert "unknown fields.bogus_field: is not a field of this form" in r.output
    assert "missing fields.bogus_field" not in r.output


def test_register_a_request_received_by_fax(vn_cli: tuple[Side, Side], tmp_path: Path) -> None:
    vn, _ = vn_cli
    vn.ca  # create the central authority's account  # noqa: B018
    received = tmp_path / "fax.json"
    fields = {k: v for k, v in PRESERVATION.items() if k != "necessity"}
    received.write_text(json.dumps({"header": {**HEADER, "our_reference": "PL-2026-77"}, "fields": fields}))
    base = ["requests", "register", str(received), "--type", "preservation", "--as", "vn-ca"]
    args = [*base, "--country", "pl", "--authority", "Prokuratura Krajowa", "--via", "fax"]
    r = runner.invoke(app, [*args, "--received", "2026-11-28T09:00:00+01:00"])
    assert r.exit_code == 0, r.output
    assert "registered" in r.output and "incoming from PL" in r.output and "fields.necessity" in r.output
    r = runner.invoke(app, [*args, "--received", "yesterday"])
    assert r.exit_code != 0 and "RFC 3339" in r.output and "Traceback" not in r.output
    listed = vn.ca.get("/api/v1/requests", params={"direction": "incoming"}).json()["items"]
    assert [(i["counterpart_country"], i["status"]) for i in listed] == [("PL", "received")]


def test_a_registration_arriving_before_the_convention_or_twice_is_refused_storing_nothing(
    vn_cli: tuple[Side, Side], tmp_path: Path
) -> None:
    vn, _ = vn_cli
    vn.ca  # create the central authority's account  # noqa: B018
    received = tmp_path / "fax.json"
    received.write_text(
        json.dumps({"header": {**HEADER, "our_reference": "PL-2026-79"}, "fields": PRESERVATION})
    )
    args = [
        "requests",
        "register",
        str(received),
        "--type",
        "preservation",
        "--as",
        "vn-ca",
        "--country",
        "pl",
    ]
    args += ["--authority", "Prokuratura Krajowa", "--via", "fax"]
    r = runner.invoke(app, [*args, "--received", "1900-01-01T09:00:00+01:00"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "received_at: is before 24 December 2024, when the UN General Assembly adopted" in r.output
    r = runner.invoke(app, [*args, "--received", "2026-11-28T09:00:00+01:00"])
    assert r.exit_code == 0, r.output
    first = r.output.split()[1].rstrip(":")
    # The original by post, after the fax: the one-line refusal names the request to open instead.
    r = runner.invoke(app, [*args, "--received", "2026-11-29T09:00:00+01:00"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    line = " ".join(r.output.split())
    assert f"header.our_reference: PL-2026-79 from PL is already on this node: request {first}" in line, line
    listed = vn.ca.get("/api/v1/requests", params={"direction": "incoming"}).json()["items"]
    assert [i["id"] for i in listed] == [first]


def test_a_refused_look_on_the_command_line_is_recorded(vn_cli: tuple[Side, Side], tmp_path: Path) -> None:
    # As on the API and the desk: a person acting through --as who may not see a confidential request
    # is told it does not exist, and the record keeps the look.
    vn, _ = vn_cli
    vn.ca, vn.plain  # create the accounts  # noqa: B018
    received = tmp_path / "fax.json"
    header = {**HEADER, "our_reference": "PL-2026-78", "confidentiality": "fact_and_substance"}
    received.write_text(json.dumps({"header": header, "fields": PRESERVATION}))
    args = ["requests", "register", str(received), "--type", "preservation", "--as", "vn-ca"]
    r = runner.invoke(app, [*args, "--country", "pl", "--authority", "Prokuratura Krajowa", "--via", "fax"])
    assert r.exit_code == 0, r.output
    rid = re.search(r"registered ([0-9a-f-]{36})", r.output)
    assert rid is not None
    r = runner.invoke(app, ["requests", "show", rid[1], "--as", "vn-plain"])
    assert r.exit_code == 1 and f"No request {rid[1]}" in r.output
    audit = vn.node.client(vn.node.user("vn-aud", "auditor"))
    items = audit.get("/api/v1/audit", params={"object_type": "request", "object_id": rid[1]}).json()["items"]
    denied = [i for i in items if i["outcome"] == "denied"]
    assert [(i["actor"], i["action"], i["detail"]["path"]) for i in denied] == [
        ("vn-plain", "cases.request.read", "cyberpact requests show")
    ]
    assert denied[0]["source"].startswith("cli:")
