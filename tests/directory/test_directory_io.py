"""`cyberpact directory import|export|convention`: formats, round trips and all-or-nothing imports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from directory_support import snapshot_db
from typer.testing import CliRunner

from conftest import DatabaseFactory
from cyberpact.cli import app
from cyberpact.directory import queries, service
from cyberpact.directory.schemas import AuthorityIn, PartyIn, TreatyStatusIn
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database

runner = CliRunner()

RICH_AUTHORITY: dict[str, Any] = {
    "party": "FR",
    "kind": "central_authority",
    "name": "Bureau de l'entraide pénale internationale",
    "address": "13 place Vendôme\n75001 Paris, France",
    "phone": "+33 1 00 00 00 00",
    "email": "beepi@example.org",
    "web": "https://example.org/beepi?x=1,2",
    "languages": ["fr", "en-GB"],
    "channels": ["direct", "diplomatic", "interpol", "cyberpact"],
    "timezone": "Europe/Paris",
    "office_hours": [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "opens": "09:00", "closes": "12:30"},
        {"days": ["mon", "tue", "wed", "thu"], "opens": "14:00", "closes": "18:00"},
    ],
    "interpol_allowed": True,
    "legal_requirements": 'Requests must cite the "offence", with commas, and\nquotes.',
    "procedural_requirements": "Originals by diplomatic bag; copies in advance by e-mail.",
    "encryption_required": True,
    "e_signature_required": False,
    "dual_criminality": "coercive_measures_only",
    "use_limitations": "Only for the proceedings named in the request.",
    "source": "test fixture",
    "as_of": "2026-01-15",
}


def cli(*args: str) -> Any:
    return runner.invoke(app, ["directory", *args])


@pytest.fixture
def filled(db: Database, cli_env: dict[str, str]) -> Database:
    with db.transaction() as s:
        service.load_seed_if_empty(s)
        service.create_party(s, SYSTEM, PartyIn(code="JP"))
    fill_more(db)
    return db


def fill_more(db: Database) -> None:
    with db.transaction() as s:
        service.set_treaty(
            s,
            SYSTEM,
            "JP",
            TreatyStatusIn.model_validate(
                {
                    "instrument_type": "accession",
                    "instrument_date": "2026-05-04",
                    "source": 'test, "quoted"',
                    "as_of": "2026-05-05",
                    "declarations": [
                        {"article": "40(13)", "text": "The central authority is the Ministry; ünïcode."}
                    ],
                    "reservations": [{"article": "37(6)", "text": "Line one\nline two, with a comma"}],
                }
            ),
        )
        service.set_treaty(
            s,
            SYSTEM,
            "FR",
            TreatyStatusIn.model_validate(
                {
                    "signature_date": "2025-10-25",
                    "instrument_type": "approval",
                    "instrument_date": "2026-02-01",
                    "source": "test",
                    "as_of": "2026-02-02",
                }
            ),
        )
        service.create_authority(s, SYSTEM, AuthorityIn.model_validate(RICH_AUTHORITY))


def test_json_round_trip_is_byte_exact(
    filled: Database, db_factory: DatabaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "directory.json"
    result = cli("export", str(first))
    assert result.exit_code == 0, result.output
    doc = json.loads(first.read_text(encoding="utf-8"))
    assert len(doc["parties"]) == 72 and len(doc["authorities"]) == 5 and len(doc["treaty_status"]) == 72
    fr = next(a for a in doc["authorities"] if a["party"] == "FR")
    assert fr == {
        "party": "FR",
        **{k: v for k, v in RICH_AUTHORITY.items() if k != "party"},
        "always_open": False,
    }
    other = db_factory()  # another node's database, same kind
    monkeypatch.setenv("CYBERPACT_DATABASE_URL", other)
    result = cli("import", str(first))
    assert result.exit_code == 0, result.output
    assert "parties: 72 created" in result.output
    second = tmp_path / "again.json"
    assert cli("export", str(second)).exit_code == 0
    assert second.read_bytes() == first.read_bytes()
    # Importing the same file again changes nothing.
    result = cli("import", str(second))
    assert result.exit_code == 0 and "parties: 0 created, 0 updated, 72 unchanged" in result.output


def test_csv_round_trip_is_byte_exact(
    filled: Database,
    db_url: str,
    db_factory: DatabaseFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kinds = ("parties", "authorities", "treaty")
    for kind in kinds:
        result = cli("export", str(tmp_path / f"{kind}.csv"), "--what", kind)
        assert result.exit_code == 0, result.output
    header = (tmp_path / "authorities.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("party,kind,name,address,phone,email,web,languages,channels,timezone,")
    assert "mon tue wed thu fri 09:00-12:30; mon tue wed thu 14:00-18:00" in (
        tmp_path / "authorities.csv"
    ).read_text(encoding="utf-8")
    other = db_factory()  # another node's database, same kind
    monkeypatch.setenv("CYBERPACT_DATABASE_URL", other)
    # One transaction for all three; the order of the files does not matter.
    result = cli("import", *(str(tmp_path / f"{k}.csv") for k in reversed(kinds)))
    assert result.exit_code == 0, result.output
    for kind in kinds:
        again = tmp_path / f"again-{kind}.csv"
        assert cli("export", str(again), "--what", kind).exit_code == 0
        assert again.read_bytes() == (tmp_path / f"{kind}.csv").read_bytes(), kind
    json_out = tmp_path / "other.json"
    assert cli("export", str(json_out)).exit_code == 0
    monkeypatch.setenv("CYBERPACT_DATABASE_URL", db_url)
    assert cli("export", str(tmp_path / "mine.json")).exit_code == 0
    assert json_out.read_bytes() == (tmp_path / "mine.json").read_bytes()


def test_import_upserts_by_natural_key(filled: Database, tmp_path: Path) -> None:
    doc = {
        "format": "cyberpact-directory",
        "version": 1,
        "parties": [{"code": "PL", "name": "Republic of Poland"}, {"code": "DE"}],
        "authorities": [{**RICH_AUTHORITY, "name": RICH_AUTHORITY["name"].upper(), "languages": ["fr"]}],
    }
    path = tmp_path / "update.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = cli("import", str(path))
    assert result.exit_code == 0, result.output
    assert "parties: 1 created, 1 updated, 0 unchanged" in result.output
    assert "authorities: 0 created, 1 updated" in result.output
    with filled.transaction(read_only=True) as s:
        assert service.get_party(s, "PL").name == "Republic of Poland"
        fr = queries.list_authorities(s, queries.Filters(country="FR"), None, 10)
        assert [(a.name, a.languages) for a in fr] == [(RICH_AUTHORITY["name"].upper(), ["fr"])]


def rejected(result: Any, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    # One line saying what failed, then one per problem when there are several; never a traceback.
    first, *problems = result.stderr.strip().splitlines()
    assert first.startswith("error (") and "Traceback" not in result.stderr, result.stderr
    assert all(p.startswith("  ") for p in problems), result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


def test_json_import_with_a_bad_row_stores_nothing(filled: Database, tmp_path: Path) -> None:
    before = snapshot_db(filled)
    good = [{"code": "DE"}, {"code": "IT"}]
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"parties": [*good, {"code": "ZZ"}]}, ("nothing stored", "parties[2].code", "ISO 3166-1")),
        (
            {
                "parties": good,
                "authorities": [RICH_AUTHORITY, {**RICH_AUTHORITY, "name": "B", "timezone": "Mars/Olympus"}],
            },
            ("authorities[1].timezone", "IANA"),
        ),
        (
            {"parties": good, "authorities": [{**RICH_AUTHORITY, "languages": ["fr", "french"]}]},
            ("authorities[0].languages.1",),
        ),
        (
            {"parties": good, "authorities": [{**RICH_AUTHORITY, "colour": "blue"}]},
            ("authorities[0].colour", "Extra inputs"),
        ),
        (
            {"parties": good, "authorities": [{**RICH_AUTHORITY, "party": "DE", "name": "x" * 301}]},
            ("authorities[0].name",),
        ),
        (
            {
                "treaty_status": [
                    {
                        "party": "DE",
                        "signature_date": "2026-01-10",
                        "instrument_type": "ratification",
                        "instrument_date": "2026-01-09",
                        "source": "s",
                        "as_of": "2026-01-10",
                    }
                ],
                "parties": good,
            },
            ("treaty_status[0].instrument_date", "before the signature"),
        ),
        (
            {
                "treaty_status": [
                    {
                        "party": "PL",
                        "signature_date": "2025-10-25",
                        "instrument_type": "ratification",
                        "instrument_date": "2026-06-02",
                        "source": "s",
                        "as_of": "2026-06-01",
                    }
                ],
            },
            ("treaty_status[0].instrument_date", "after the date the source was true"),
        ),
        ({"parties": [*good, {"code": "DE", "name": "again"}]}, ("parties[2].code", "parties[0]")),
        (
            {"treaty_status": [{"party": "CA", "source": "s", "as_of": "2026-01-01"}]},
            ("treaty_status[0].party", "CA"),
        ),
        ({"version": 2}, ("version",)),
    ]
    for n, (body, expected) in enumerate(cases):
        path = tmp_path / f"bad{n}.json"
        path.write_text(json.dumps({"format": "cyberpact-directory", "version": 1, **body}), encoding="utf-8")
        rejected(cli("import", str(path)), *expected)
        assert snapshot_db(filled) == before, f"case {n} stored something"
    path = tmp_path / "broken.json"
    path.write_text('{"parties": [', encoding="utf-8")
    rejected(cli("import", str(path)), "not valid JSON", "line 1")
    rejected(cli("import", str(tmp_path / "missing.json")), "does not exist")
    rejected(cli("import", str(tmp_path / "directory.xml")), "--format")
    assert snapshot_db(filled) == before


def test_csv_import_with_a_bad_row_stores_nothing(filled: Database, tmp_path: Path) -> None:
    for kind in ("parties", "authorities", "treaty"):
        assert cli("export", str(tmp_path / f"{kind}.csv"), "--what", kind).exit_code == 0
    before = snapshot_db(filled)
    parties = (tmp_path / "parties.csv").read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad-parties.csv"
    # A good new party first (it would be created), then a bad row on line 4.
    bad.write_text(
        "\n".join([parties[0], "DE,,,state,", parties[1], "ZZ,,,state,", *parties[2:]]) + "\n",
        encoding="utf-8",
    )
    rejected(cli("import", str(bad)), "bad-parties.csv:4.code", "nothing stored")
    treaty = (tmp_path / "treaty.csv").read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad-treaty.csv"
    bad.write_text(
        "\n".join([treaty[0], "PL,2025-10-25,ratification,2025-10-20,,,s,2026-01-01"]) + "\n",
        encoding="utf-8",
    )
    rejected(cli("import", str(tmp_path / "parties.csv"), str(bad)), "bad-treaty.csv:2.instrument_date")
    bad.write_text("\n".join([treaty[0], "PL,2025-10-25,ratification,9999-01-01,,,s,9999-01-01"]) + "\n")
    rejected(cli("import", str(bad)), "bad-treaty.csv:2.instrument_date", "still to come")
    authorities = (tmp_path / "authorities.csv").read_text(encoding="utf-8")
    bad = tmp_path / "bad-authorities.csv"
    # The French record starts on line 4 and spans three physical lines (two cells hold a newline), so
    # Poland's record is on line 7: errors name the line a record starts on.
    assert authorities.splitlines()[3].startswith("FR,") and authorities.splitlines()[6].startswith("PL,")
    bad.write_text(authorities.replace("Europe/Warsaw", "Europe/Warsaw,extra"), encoding="utf-8")
    rejected(cli("import", str(bad)), "bad-authorities.csv:7", "cells")
    bad.write_text(authorities.replace("Europe/Warsaw", "Europe/Warszawa"), encoding="utf-8")
    rejected(cli("import", str(bad)), "bad-authorities.csv:7.timezone")
    bad.write_text(authorities.replace("09:00-12:30", "9-12"), encoding="utf-8")
    rejected(cli("import", str(bad)), "bad-authorities.csv:4.office_hours.0.opens")
    bad.write_text("code,name\nDE,Germany\n", encoding="utf-8")
    rejected(cli("import", str(bad)), "bad-authorities.csv:1", "header")
    bad.write_text(f'{parties[0]}\nDE,,"Germany"!,state,\n', encoding="utf-8")
    rejected(cli("import", str(bad)), "not a readable CSV file", "bad-authorities.csv:2")
    bad.write_bytes(b"\xff\xfe" + parties[0].encode("utf-16-le"))
    rejected(cli("import", str(bad)), "Cannot read bad-authorities.csv")
    assert snapshot_db(filled) == before


def test_export_options(filled: Database, tmp_path: Path) -> None:
    rejected(cli("export", str(tmp_path / "all.csv")), "--what")
    rejected(cli("export", str(tmp_path / "all.txt")), "--format")
    result = cli("export", str(tmp_path / "all.txt"), "--format", "json", "--what", "parties")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "all.txt").read_text(encoding="utf-8"))
    assert set(doc) == {"format", "version", "parties"}


def test_convention_command(filled: Database) -> None:
    result = cli("convention")
    assert result.exit_code == 0, result.output
    assert "signatories: 71; instruments counted: 2 of 40" in result.output
    assert "not in force: 38 more instrument(s) needed" in result.output
