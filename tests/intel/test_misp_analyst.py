"""MISP 2.5 analyst data (notes, opinions, relationships) to STIX and back, on a real-shaped event."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from stix2validator import ValidationOptions, validate_instance

from cyberpact.intel import misp, misp_analyst, misp_export, query, service, stix, store
from cyberpact.intel.markings import TLP2_IDS
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database

EVENT = json.loads((Path(__file__).parent / "fixtures" / "misp_event_analyst_data.json").read_text())
REPORT = "report--7b1e4c2a-9d3f-4a6b-8c5e-2f1a3b4c5d6e"
DOMAIN = "indicator--1f5c8a6e-3b7d-4eaf-8a9c-6d5e7f8a9b0c"
ADDRESS = "indicator--4c8f1d9b-6e0a-4b2f-9d3f-9a8b0c1d2e3f"
EMAIL = "indicator--9bde6c4a-1d5f-4a7e-8c8e-4f3a5b6c7d8e"
CERT_GH = "identity--6f9a3b2c-4d5e-4f6a-8b7c-8d9e0f1a2b3c"
NCSC_VN = "identity--5e8f2a1b-3c4d-4e5f-9a6b-7c8d9e0f1a2b"


def _analyst(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in objects if o["type"] in ("note", "opinion", "relationship")}


def _level(obj: dict[str, Any]) -> str | None:
    of = {v: k for k, v in TLP2_IDS.items()}
    return next((of[m] for m in obj.get("object_marking_refs", []) if m in of), None)


def test_analyst_data_becomes_stix_about_what_it_was_on() -> None:
    converted = misp.misp_to_stix(copy.deepcopy(EVENT))
    got = _analyst(converted.objects)
    ids = {o["id"] for o in converted.objects}

    note = got["note--8c2f5d3b-0e4a-4b7c-9d6f-3a2b4c5d6e7f"]
    assert note["object_refs"] == [REPORT] and note["content"].startswith("The kit reuses")
    assert (note["lang"], note["authors"], note["created_by_ref"]) == (
        "en",
        ["analyst@cert-gh.example"],
        CERT_GH,
    )
    assert (note["created"], note["modified"]) == ("2024-06-10T12:40:00.000Z", "2024-06-10T13:05:00.000Z")
    # An opinion on the note, from another organisation: its own creator, an identity in the import.
    on_note = got["opinion--9d3a6e4c-1f5b-4c8d-8e7a-4b3c5d6e7f8a"]
    assert on_note["object_refs"] == [note["id"]] and on_note["created_by_ref"] == NCSC_VN in ids
    assert (on_note["opinion"], on_note["x_misp_opinion"]) == ("disagree", 35)
    # MISP keeps this note in the organisation: RED here, whatever the event's TLP:GREEN says.
    assert _level(got["note--0e4b7f5d-2a6c-4d9e-9f8b-5c4d6e7f8a9b"]) == "red"
    assert _level(note) == "green"

    # On an attribute: marked as that attribute (AMBER), never wider.
    confident = got["opinion--2a6d9b7f-4c8e-4fb0-9b1d-7e6f8a9b0c1d"]
    assert confident["object_refs"] == [DOMAIN] and confident["opinion"] == "strongly-agree"
    assert confident["explanation"].startswith("Seen serving") and _level(confident) == "amber"
    resolves = got["relationship--3b7e0c8a-5d9f-4a1e-8c2e-8f7a9b0c1d2e"]
    assert (resolves["source_ref"], resolves["relationship_type"], resolves["target_ref"]) == (
        DOMAIN,
        "resolves-to",
        ADDRESS,
    )
    assert _level(resolves) == "amber"

    # On a MISP object and on one of its attributes: both about the object's indicator.
    french = got["note--acef7d5b-2e6a-4b8f-9d9f-5a4b6c7d8e9f"]
    assert french["object_refs"] == [EMAIL] and french["lang"] == "fr"
    assert french["created"] == "2024-06-10T11:10:00.000Z"  # +02:00 read as such
    assert got["opinion--ce0b9f7d-4a8c-4dab-9fbb-7c6d8e9fa0b1"]["object_refs"] == [EMAIL]
    assert got["opinion--ce0b9f7d-4a8c-4dab-9fbb-7c6d8e9fa0b1"]["opinion"] == "neutral"  # 60
    # On an event report: about the note it became.
    assert got["opinion--e02db19f-6cae-4fcd-9bdd-9e8fa0b1c2d3"]["object_refs"] == [
        "note--df1ca08e-5b9d-4ebc-8acc-8d7e9fa0b1c2"
    ]

    options = ValidationOptions(version="2.1", strict=False)
    for obj in got.values():
        stix.check(obj)
        assert obj.get(misp_analyst.MARK) is (
            None if obj["id"] == "note--df1ca08e-5b9d-4ebc-8acc-8d7e9fa0b1c2" else True
        )
        result = validate_instance(obj, options)
        assert result.is_valid, (obj["id"], [str(e) for e in result.errors])


def test_what_cannot_be_carried_is_named_and_the_rest_still_lands() -> None:
    converted = misp.misp_to_stix(copy.deepcopy(EVENT))
    reasons = "\n".join(converted.skipped)
    for expected in (
        "relationship 5d9a2e0c-7f1b-4c3a-8e4a-0b9c1d2e3f4a: what it relates to "
        "(e0e0e0e0-0000-4000-8000-000000000000) is not carried from this event",
        "note 8acd5b3f-0c4e-4f6d-9b7d-3e2f4a5b6c7d: a note without text",
        "note #2: not an analyst data object",
        "opinion 6eab3f1d-8a2c-4d4b-9f5b-1c0d2e3f4a5b: opinion 'high' is not a number from 0 to 100",
        "opinion 7fbc4a2e-9b3d-4e5c-8a6c-2d1e3f4a5b6c: opinion '140' is not a number from 0 to 100",
    ):
        assert expected in reasons, expected
    assert len(_analyst(converted.objects)) == 9  # 8 analyst items and the event report's note
    # The attribute that held the bad ones is itself carried.
    assert ADDRESS in {o["id"] for o in converted.objects}


def test_hostile_shapes_are_named_one_by_one() -> None:
    event = copy.deepcopy(EVENT)["Event"]
    deep: dict[str, Any] = {"note": "level 1"}
    leaf = deep
    for n in range(2, misp_analyst.MAX_DEPTH + 3):
        child = {"note": f"level {n}"}
        leaf["Note"] = [child]
        leaf = child
    event["Note"] = [deep]
    event["Attribute"][0]["Opinion"] = {"opinion": "50"}
    event["Attribute"][1]["Note"] = [{"note": "x" * 1_000_001}]
    event["Object"][0]["Relationship"] = [{"related_object_uuid": 7, "relationship_type": ["x"]}]
    converted = misp.misp_to_stix({"Event": event})
    notes = [o for o in converted.objects if o["type"] == "note" and o["content"].startswith("level")]
    assert len(notes) == misp_analyst.MAX_DEPTH
    reasons = "\n".join(converted.skipped)
    assert f"nested deeper than {misp_analyst.MAX_DEPTH} levels" in reasons
    assert "Opinion is not a list" in reasons
    assert "a note longer than 1,000,000 characters" in reasons and "x" * 100 not in reasons
    assert "what it relates to (7) is not carried" in reasons
    for obj in converted.objects:
        stix.check(obj)


def test_analyst_data_comes_back_to_where_it_was_and_imports_as_the_same_objects() -> None:
    first = misp.misp_to_stix(copy.deepcopy(EVENT))
    exported, skipped = misp_export.stix_to_misp(first.objects)
    ev = exported["Event"]
    assert not [s for s in skipped if "note--" in s or "opinion--" in s or "relationship--3b7e" in s]

    notes = {n["uuid"]: n for n in ev["Note"]}
    note = notes["8c2f5d3b-0e4a-4b7c-9d6f-3a2b4c5d6e7f"]
    assert (note["object_type"], note["object_uuid"]) == ("Event", ev["uuid"])
    assert (note["note"], note["language"], note["authors"]) == (
        EVENT["Event"]["Note"][0]["note"],
        "en",
        "analyst@cert-gh.example",
    )
    assert (note["created"], note["modified"]) == ("2024-06-10 12:40:00", "2024-06-10 13:05:00")
    (nested,) = note["Opinion"]
    assert (nested["opinion"], nested["object_type"], nested["Orgc"]["name"]) == ("35", "Note", "NCSC-VN")
    assert notes["0e4b7f5d-2a6c-4d9e-9f8b-5c4d6e7f8a9b"]["distribution"] == "0"  # still kept home

    domain = next(a for a in ev["Attribute"] if a["uuid"] == "1f5c8a6e-3b7d-4eaf-8a9c-6d5e7f8a9b0c")
    (opinion,) = domain["Opinion"]
    assert (opinion["opinion"], opinion["comment"]) == (
        "85",
        "Seen serving the kit from three addresses in 24 hours.",
    )
    assert not domain.get("Sighting")  # an opinion, not a false positive
    (rel,) = domain["Relationship"]
    assert (rel["relationship_type"], rel["related_object_uuid"], rel["related_object_type"]) == (
        "resolves-to",
        "4c8f1d9b-6e0a-4b2f-9d3f-9a8b0c1d2e3f",
        "Attribute",
    )
    (email,) = ev["Object"]
    assert email["Note"][0]["language"] == "fr" and email["Opinion"][0]["opinion"] == "60"
    (report,) = ev["EventReport"]
    assert report["Opinion"][0]["opinion"] == "100" and report["Opinion"][0]["object_type"] == "EventReport"

    # Imported again, the same STIX objects: re-importing an export stores nothing new.
    def essence(o: dict[str, Any]) -> tuple[Any, ...]:
        keys = ("id", "created", "modified", "content", "lang", "authors", "opinion", "x_misp_opinion")
        refs = o.get("object_refs") or [o.get("source_ref"), o.get("target_ref")]
        return (*(o.get(k) for k in keys), tuple(refs), o["created_by_ref"])

    again = _analyst(misp.misp_to_stix(exported).objects)
    assert sorted(map(essence, again.values())) == sorted(map(essence, _analyst(first.objects).values()))
    # MISP has no AMBER: what was AMBER went to the organisation only, and comes back RED; never wider.
    for oid, o in _analyst(first.objects).items():
        assert _level(again[oid]) == ("red" if _level(o) == "amber" else _level(o))


def test_opinions_and_notes_from_elsewhere_go_to_misp_as_analyst_data() -> None:
    converted = misp.misp_to_stix(copy.deepcopy(EVENT)).objects
    base = {"spec_version": "2.1", "created": "2024-06-12T10:00:00Z", "modified": "2024-06-12T10:00:00Z"}
    agree = {**base, "type": "opinion", "id": "opinion--11111111-1111-4111-8111-111111111111"}
    agree.update(opinion="agree", object_refs=[ADDRESS])
    titled = {**base, "type": "note", "id": "note--22222222-2222-4222-8222-222222222222"}
    titled.update(abstract="Takedown", content="Seized on 12 June.", object_refs=[ADDRESS])
    # Two notes about each other, about nothing in the event: named, and the event still serialises.
    loop_a = {**titled, "id": "note--33333333-3333-4333-8333-333333333333"}
    loop_a["object_refs"] = ["note--44444444-4444-4444-8444-444444444444"]
    loop_b = {**titled, "id": "note--44444444-4444-4444-8444-444444444444", "object_refs": [loop_a["id"]]}
    withdrawn = {**agree, "id": "opinion--55555555-5555-4555-8555-555555555555", "revoked": True}
    exported, skipped = misp_export.stix_to_misp([*converted, agree, titled, loop_a, loop_b, withdrawn])
    assert any(s.startswith(withdrawn["id"]) and "revoked" in s for s in skipped)
    address = next(a for a in exported["Event"]["Attribute"] if a["value"] == "198.51.100.77")
    assert [o["opinion"] for o in address["Opinion"]] == ["70"]
    assert address["Note"][0]["note"] == "Takedown\n\nSeized on 12 June."
    assert sum(s.startswith(("note--3333", "note--4444")) for s in skipped) == 2
    json.dumps(exported)


def test_an_event_with_analyst_data_is_stored_once_and_exports_it(db: Database) -> None:
    with db.transaction() as s:
        coll = service.create_collection(s, SYSTEM, title="analyst data")
        first = store.add_objects(s, SYSTEM, coll, misp.misp_to_stix(copy.deepcopy(EVENT)).objects)
        assert first.failures == []
        again = store.add_objects(s, SYSTEM, coll, misp.misp_to_stix(copy.deepcopy(EVENT)).objects)
        assert again.stored == 0
        stored = list(query.iter_objects(s, coll.id))
        exported, _ = misp_export.stix_to_misp(stored)
    assert len(_analyst(stored)) == 9
    domain = next(a for a in exported["Event"]["Attribute"] if a["value"] == "login-mofa-gov.example")
    assert domain["Opinion"][0]["opinion"] == "85"
