"""MISP interchange: real-shaped MISP events to STIX and back, with TLP and PAP both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_instance

from cyberpact.intel import misp, misp_export, stix
from cyberpact.intel.markings import PAP_IDS, TLP2_IDS

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _by_type(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        out.setdefault(o["type"], []).append(o)
    return out


@pytest.mark.parametrize("name", ["misp_event_botnet.json", "misp_event_phishing.json"])
def test_every_converted_object_is_valid_stix(name: str) -> None:
    converted = misp.misp_to_stix(_load(name))
    assert converted.objects
    options = ValidationOptions(version="2.1", strict=False)
    for obj in converted.objects:
        stix.check(obj)
        result = validate_instance(obj, options)
        assert result.is_valid, (obj["id"], [str(e) for e in result.errors])


def test_botnet_event_to_stix() -> None:
    converted = misp.misp_to_stix(_load("misp_event_botnet.json"))
    t = _by_type(converted.objects)
    report = t["report"][0]
    assert report["id"] == "report--5f1c9b8e-2a4d-4e6f-9b1a-3c5d7e9f1a2b"
    assert report["name"].startswith("Botnet takedown")
    assert report["object_marking_refs"] == [TLP2_IDS["green"], PAP_IDS["amber"]]
    assert report["labels"] == ['circl:incident-classification="malware"']
    assert t["identity"][0]["id"] == "identity--55f6ea5e-2c60-40e5-964f-47a8950d210f"
    assert all(
        o.get("created_by_ref") == t["identity"][0]["id"]
        for o in converted.objects
        if o["type"] == "indicator"
    )
    ind = {i["id"]: i for i in t["indicator"]}
    c2 = ind["indicator--8a0e3c1b-6d2f-4b7a-9e5c-1f3a5b7c9d0e"]
    assert c2["pattern"] == "[ipv4-addr:value = '203.0.113.45']"
    assert c2["object_marking_refs"] == [
        TLP2_IDS["amber"],
        PAP_IDS["amber"],
    ]  # attribute TLP beats the event's
    assert c2["valid_from"] == "2024-04-10T08:00:00.000Z" and c2["description"] == "C2 server, port 443"
    both = ind["indicator--b3d4f5a6-9c0d-4e2f-b4a6-c8d0e2f4a6b8"]
    assert (
        both["pattern"]
        == "[file:name = 'invoice.pdf.exe' AND file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"
    )
    file_obj = ind[
        "indicator--f7b8d9e0-3a4b-4c6d-b8e0-a2b4c6d8e0f2"
    ]  # a MISP object with one to_ids attribute
    assert file_obj["x_misp_object_name"] == "file" and "file:name = 'loader.dll'" in file_obj["pattern"]
    observed = {o["id"]: o for o in t["observed-data"]}
    scanner = observed["observed-data--c4e5a6b7-0d1e-4f3a-85b7-d9e1f3a5b7c9"]
    assert (
        scanner["first_observed"] == "2024-04-11T00:00:00.000Z"
        and scanner["last_observed"] == "2024-04-12T00:00:00.000Z"
    )
    assert {s["value"] for s in t["ipv4-addr"]} == {"198.51.100.23", "192.0.2.77"}
    assert t["vulnerability"][0]["external_references"] == [
        {"source_name": "cve", "external_id": "CVE-2023-4966"}
    ]
    assert t["threat-actor"][0]["name"] == "Lantern Spider"
    emotet = t["malware"][0]
    assert emotet["name"] == "Emotet" and emotet["is_family"] is True
    rel = t["relationship"][0]
    assert (rel["source_ref"], rel["relationship_type"], rel["target_ref"]) == (
        "indicator--9b1f4d2c-7e3a-4c8b-8f6d-2a4b6c8d0e1f",
        "indicates",
        emotet["id"],
    )
    assert any("regkey" in s for s in converted.skipped)
    assert {m["id"] for m in t["marking-definition"]} == {
        TLP2_IDS["green"],
        TLP2_IDS["amber"],
        PAP_IDS["amber"],
    }
    # Deterministic: converting twice gives the same objects, so a re-import stores nothing new.
    assert misp.misp_to_stix(_load("misp_event_botnet.json")).objects == converted.objects


def test_round_trip_misp_stix_misp() -> None:
    original = _load("misp_event_botnet.json")["Event"]
    event, skipped = misp_export.stix_to_misp(misp.misp_to_stix(original).objects)
    back = event["Event"]
    assert back["uuid"] == original["uuid"] and back["info"] == original["info"]
    assert (back["threat_level_id"], back["analysis"]) == ("1", "2")
    assert back["Orgc"] == {"name": "CERT-EX", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"}
    tags = {t["name"] for t in back["Tag"]}
    assert {"tlp:green", "PAP:AMBER", 'circl:incident-classification="malware"'} <= tags
    assert {'misp-galaxy:threat-actor="Lantern Spider"', 'misp-galaxy:malpedia="Emotet"'} <= tags

    def simple(attrs: list[dict[str, Any]]) -> set[tuple[str, str, str, bool]]:
        return {(a["uuid"], a["type"], a["value"], bool(a["to_ids"])) for a in attrs}

    carried = [a for a in original["Attribute"] if a["type"] != "regkey"]
    assert simple(back["Attribute"]) == simple(carried)
    c2 = next(a for a in back["Attribute"] if a["value"] == "203.0.113.45")
    assert {t["name"] for t in c2["Tag"]} == {"tlp:amber", "PAP:AMBER"}
    assert c2["category"] == "Network activity" and c2["comment"] == "C2 server, port 443"
    domain = next(a for a in back["Attribute"] if a["value"] == "update-cdn.example")
    assert 'misp-galaxy:malpedia="Emotet"' in {t["name"] for t in domain["Tag"]}
    objects = {o["uuid"]: o for o in back["Object"]}
    for mobj in original["Object"]:
        got = objects[mobj["uuid"]]
        assert got["name"] == mobj["name"]
        assert {(a["object_relation"], a["type"], a["value"]) for a in got["Attribute"]} == {
            (a["object_relation"], a["type"], a["value"]) for a in mobj["Attribute"]
        }
    galaxies = {g["type"]: [c["value"] for c in g["GalaxyCluster"]] for g in back["Galaxy"]}
    assert galaxies == {"threat-actor": ["Lantern Spider"], "malpedia": ["Emotet"]}
    assert skipped == []


def test_search_response_deleted_attributes_and_tlp_mapping() -> None:
    converted = misp.misp_to_stix(_load("misp_event_phishing.json"))
    t = _by_type(converted.objects)
    ids = {i["id"] for i in t["indicator"]}
    assert "indicator--7b8c9d0e-1f2a-4bc2-a3d4-6f7a8b9c0d1e" not in ids  # deleted in MISP
    sender = next(i for i in t["indicator"] if "email-addr" in i["pattern"])
    assert sender["object_marking_refs"] == [TLP2_IDS["amber+strict"]]
    url = next(i for i in t["indicator"] if i["pattern"].startswith("[url:"))
    assert url["object_marking_refs"] == [TLP2_IDS["clear"]]  # tlp:white is TLP 2.0 CLEAR
    assert t["attack-pattern"][0]["name"] == "Phishing - T1566"
    event, _ = misp_export.stix_to_misp(converted.objects)
    tags = {tag["name"] for tag in event["Event"]["Tag"]}
    assert "tlp:clear" in tags and 'misp-galaxy:mitre-attack-pattern="Phishing - T1566"' in tags
    sender_attr = next(a for a in event["Event"]["Attribute"] if a["type"] == "email-src")
    assert sender_attr["Tag"] == [{"name": "tlp:amber+strict"}]


def test_round_trip_stix_misp_stix() -> None:
    green, red = TLP2_IDS["green"], TLP2_IDS["red"]
    objects = [
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--0f8e2d6c-4b1a-4e3d-9c7b-5a3f1e9d7b5c",
            "created": "2024-03-01T00:00:00.000Z",
            "modified": "2024-03-02T00:00:00.000Z",
            "name": "bad domain",
            "pattern": "[domain-name:value = 'evil.example']",
            "pattern_type": "stix",
            "valid_from": "2024-03-01T00:00:00.000Z",
            "object_marking_refs": [red],
            "labels": ["botnet"],
        },
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--1a9f3e7d-5c2b-4f4e-8d8c-6b4a2f0e8c6d",
            "created": "2024-03-01T00:00:00.000Z",
            "modified": "2024-03-01T00:00:00.000Z",
            "pattern": "[ipv4-addr:value = '198.51.100.0/24'] WITHIN 60 SECONDS",
            "pattern_type": "stix",
            "valid_from": "2024-03-01T00:00:00.000Z",
            "object_marking_refs": [green],
        },
    ]
    event, _ = misp_export.stix_to_misp(objects, info="selection")
    attrs = {a["uuid"]: a for a in event["Event"]["Attribute"]}
    dom = attrs["0f8e2d6c-4b1a-4e3d-9c7b-5a3f1e9d7b5c"]
    assert (dom["type"], dom["value"], dom["to_ids"]) == ("domain", "evil.example", True)
    assert {t["name"] for t in dom["Tag"]} == {"tlp:red", "botnet"}
    complex_ = attrs["1a9f3e7d-5c2b-4f4e-8d8c-6b4a2f0e8c6d"]
    assert complex_["type"] == "stix2-pattern"  # not expressible as one MISP value: carried as the pattern
    again = _by_type(misp.misp_to_stix(event).objects)
    ind = next(i for i in again["indicator"] if i["id"] == objects[0]["id"])
    assert ind["pattern"] == objects[0]["pattern"] and ind["object_marking_refs"] == [red]
    assert ind["labels"] == ["botnet"]
    carried = next(i for i in again["indicator"] if i["id"] == objects[1]["id"])
    assert carried["pattern"] == objects[1]["pattern"] and carried["object_marking_refs"] == [green]
