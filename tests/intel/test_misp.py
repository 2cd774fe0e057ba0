"""MISP interchange: real-shaped MISP events to STIX and back, with TLP and PAP both ways."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_instance
from typer.testing import CliRunner

from cyberpact.cli import app
from cyberpact.intel import (
    misp,
    misp_export,
    misp_reports,
    misp_sightings,
    patterns,
    query,
    service,
    stix,
    store,
)
from cyberpact.intel.markings import PAP_IDS, TLP2_IDS
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _by_type(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in objects:
        out.setdefault(o["type"], []).append(o)
    return out


@pytest.mark.parametrize(
    "name", ["misp_event_botnet.json", "misp_event_phishing.json", "misp_event_ransomware.json"]
)
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
    run_key = ind["indicator--e6a7c8d9-2f3a-4b5c-a7d9-f1a3b5c7d9e1"]
    assert run_key["pattern"] == (
        r"[windows-registry-key:key = 'HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\updater']"
    )
    assert converted.skipped == []
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
    assert (back["threat_level_id"], back["analysis"]) == ("1", "2") and back["published"] is True
    assert back["Orgc"] == {"name": "CERT-EX", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"}
    tags = {t["name"] for t in back["Tag"]}
    assert {"tlp:green", "PAP:AMBER", 'circl:incident-classification="malware"'} <= tags
    assert {'misp-galaxy:threat-actor="Lantern Spider"', 'misp-galaxy:malpedia="Emotet"'} <= tags

    def simple(attrs: list[dict[str, Any]]) -> set[tuple[str, str, str, bool]]:
        return {(a["uuid"], a["type"], a["value"], bool(a["to_ids"])) for a in attrs}

    assert simple(back["Attribute"]) == simple(original["Attribute"])
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
    # Deleted in MISP: a revoked version, never a live indicator, so that a re-import takes it back.
    gone = next(i for i in t["indicator"] if i["id"] == "indicator--7b8c9d0e-1f2a-4bc2-a3d4-6f7a8b9c0d1e")
    assert gone["revoked"] is True
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
    deleted = next(a for a in event["Event"]["Attribute"] if a["value"] == "192.0.2.200")
    assert deleted["deleted"] is True  # how MISP tells another instance of a revocation


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
    # A MISP sync honours distribution, not TLP tags: RED stays in the receiving organisation, GREEN goes
    # to the event's community; imported back, each keeps its level.
    assert (event["Event"]["distribution"], dom["distribution"], complex_["distribution"]) == ("1", "0", "5")
    again = _by_type(misp.misp_to_stix(event).objects)
    ind = next(i for i in again["indicator"] if i["id"] == objects[0]["id"])
    assert ind["pattern"] == objects[0]["pattern"] and ind["object_marking_refs"] == [red]
    assert ind["labels"] == ["botnet"]
    carried = next(i for i in again["indicator"] if i["id"] == objects[1]["id"])
    assert carried["pattern"] == objects[1]["pattern"] and carried["object_marking_refs"] == [green]


# The category-type table of the MISP core format (draft-dulaunoy-misp-core-format, "type"), for the
# types the export writes: a category outside it makes MISP refuse the attribute.
_CATEGORIES = {
    "ip-dst": {"Network activity", "Payload delivery", "External analysis"},
    "ip-src": {"Network activity", "Payload delivery", "External analysis"},
    "ip-dst|port": {"Network activity", "Payload delivery", "External analysis"},
    "domain": {"Network activity", "Payload delivery", "External analysis"},
    "domain|ip": {"Network activity", "External analysis"},
    "url": {"Network activity", "Payload delivery", "External analysis"},
    "email-src": {"Network activity", "Payload delivery", "Social network"},
    "email-dst": {"Network activity", "Payload delivery", "Social network"},
    "email-subject": {"Network activity", "Payload delivery"},
    "mutex": {"Artifacts dropped"},
    "filename": {
        "Payload delivery",
        "Payload installation",
        "Artifacts dropped",
        "External analysis",
        "Persistence mechanism",
    },
    "md5": {"Payload delivery", "Payload installation", "Artifacts dropped", "External analysis"},
    "sha256": {"Payload delivery", "Payload installation", "Artifacts dropped", "External analysis"},
    "filename|sha256": {"Payload delivery", "Payload installation", "Artifacts dropped", "External analysis"},
    "vulnerability": {"External analysis", "Payload delivery", "Payload installation"},
    "stix2-pattern": {"Network activity", "Payload delivery", "Payload installation", "Artifacts dropped"},
    "yara": {"Payload delivery", "Payload installation", "Artifacts dropped"},
    "sigma": {"Payload delivery", "Payload installation", "Artifacts dropped"},
    "port": {"Network activity", "Other"},
    "size-in-bytes": {"Other"},
    "regkey": {"Persistence mechanism", "Artifacts dropped", "External analysis"},
    "regkey|value": {"Persistence mechanism", "Artifacts dropped", "External analysis"},
}


def _one(objects: list[dict[str, Any]], oid: str) -> dict[str, Any]:
    return next(o for o in objects if o["id"] == oid)


def _event(*attributes: dict[str, Any], **fields: Any) -> dict[str, Any]:
    event = {
        "uuid": "0d6f3c1a-8b2e-4f5d-9a7c-1e3b5d7f9a2c",
        "info": "hand-made",
        "date": "2024-06-01",
        "timestamp": "1717236000",
        "Orgc": {"name": "CERT-EX", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
        "Attribute": list(attributes),
        "Tag": [{"name": "tlp:green"}],
    }
    event.update(fields)
    return {"Event": event}


def _attr(atype: str, value: Any, **fields: Any) -> dict[str, Any]:
    return {
        "type": atype,
        "category": "Network activity",
        "to_ids": True,
        "timestamp": "1717230000",
        "value": value,
        "deleted": False,
        **fields,
    }


def test_registry_keys_values_and_file_sizes_map_and_come_back() -> None:
    run = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
    original = _event(
        _attr("regkey", run + "\\updater", uuid="1a2b3c4d-0000-4000-8000-000000000001"),
        # The data is a command line that itself holds a '|': the key ends at the first one.
        _attr(
            "regkey|value",
            run + "|cmd.exe /c type x | more",
            uuid="1a2b3c4d-0000-4000-8000-000000000002",
            category="Persistence mechanism",
        ),
    )
    converted = misp.misp_to_stix(original)
    assert converted.skipped == []
    by_id = {o["id"]: o for o in converted.objects}
    value = by_id["indicator--1a2b3c4d-0000-4000-8000-000000000002"]
    assert value["pattern"] == (
        "[windows-registry-key:key = 'HKCU\\\\Software\\\\Microsoft\\\\Windows\\\\CurrentVersion"
        "\\\\Run' AND windows-registry-key:values[*].data = 'cmd.exe /c type x | more']"
    )
    options = ValidationOptions(version="2.1", strict=False)
    for obj in converted.objects:
        stix.check(obj)
        assert validate_instance(obj, options).is_valid, obj["id"]
        if obj["type"] == "indicator":
            assert patterns._oasis(obj["pattern"]) is None, obj["pattern"]

    event, skipped = misp_export.stix_to_misp(converted.objects)
    assert skipped == []
    back = {a["uuid"]: (a["type"], a["value"], a["category"]) for a in event["Event"]["Attribute"]}
    assert back == {a["uuid"]: (a["type"], a["value"], a["category"]) for a in original["Event"]["Attribute"]}


def test_a_file_objects_size_comes_with_its_name_and_never_alone() -> None:
    def file_object(*attrs: tuple[str, str, str]) -> dict[str, Any]:
        return {
            "name": "file",
            "uuid": "1a2b3c4d-0000-4000-8000-0000000000a1",
            "meta-category": "file",
            "Attribute": [_attr(t, v, object_relation=r, to_ids=False) for r, t, v in attrs],
        }

    named = misp.misp_to_stix(
        _event(
            Object=[file_object(("filename", "filename", "a.exe"), ("size-in-bytes", "size-in-bytes", "7"))]
        )
    )
    assert named.skipped == []
    (sco,) = _by_type(named.objects)["file"]
    assert (sco["name"], sco["size"]) == ("a.exe", 7)
    alone = misp.misp_to_stix(
        _event(Object=[file_object(("size-in-bytes", "size-in-bytes", "7"), ("mutex", "mutex", "m"))])
    )
    assert "file" not in _by_type(alone.objects)  # no file STIX would refuse
    assert [s for s in alone.skipped if "a size alone names no file" in s]
    for obj in [*named.objects, *alone.objects]:
        stix.check(obj)


def test_a_registry_key_from_stix_goes_to_misp_with_its_value() -> None:
    key = {
        "type": "windows-registry-key",
        "spec_version": "2.1",
        "id": "windows-registry-key--2ba37ae7-2745-5082-9dfd-9486dad41016",
        "key": "HKLM\\SYSTEM\\CurrentControlSet\\Services\\evil",
        "values": [{"name": "ImagePath", "data": "C:\\evil.exe", "data_type": "REG_SZ"}],
    }
    seen = {
        "type": "observed-data",
        "spec_version": "2.1",
        "id": "observed-data--6f3e2b1a-0c9d-4e8f-a7b6-5c4d3e2f1a0b",
        "created": "2024-06-01T00:00:00.000Z",
        "modified": "2024-06-01T00:00:00.000Z",
        "first_observed": "2024-06-01T00:00:00.000Z",
        "last_observed": "2024-06-01T00:00:00.000Z",
        "number_observed": 1,
        "object_refs": [key["id"]],
    }
    event, skipped = misp_export.stix_to_misp([seen, key])
    assert skipped == []
    assert [(a["type"], a["value"]) for a in event["Event"]["Attribute"]] == [
        ("regkey|value", "HKLM\\SYSTEM\\CurrentControlSet\\Services\\evil|C:\\evil.exe")
    ]


@pytest.mark.parametrize(
    ("atype", "value", "reason"),
    [
        ("size-in-bytes", "184320", "a size alone names no file"),
        ("size-in-bytes", "12a", "'12a' is not a size in bytes"),
        ("size-in-bytes", "-1", "'-1' is not a size in bytes"),
        ("size-in-bytes", "9" * 30, "is not a size in bytes"),
        ("regkey|value", "no separator here", "registry key and its data joined by '|'"),
        ("regkey|value", "|data without a key", "registry key and its data joined by '|'"),
        ("btc", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "type btc has no STIX form"),
        ("text", "free text", "type text has no STIX form"),
    ],
)
def test_values_the_new_types_cannot_hold_are_refused_with_a_reason(
    atype: str, value: str, reason: str
) -> None:
    converted = misp.misp_to_stix(
        _event(
            _attr(atype, value, uuid="1a2b3c4d-0000-4000-8000-00000000000f"), _attr("domain", "ok.example")
        )
    )
    assert [i["pattern"] for i in _by_type(converted.objects)["indicator"]] == [
        "[domain-name:value = 'ok.example']"
    ]
    assert len(converted.skipped) == 1 and reason in converted.skipped[0], converted.skipped


def test_an_object_with_two_values_of_one_kind_keeps_both_and_can_match() -> None:
    converted = misp.misp_to_stix(_load("misp_event_ransomware.json"))
    objects = converted.objects
    # domain-ip, no to_ids: one SCO per address; the address MISP deleted is not among them.
    observed = _one(objects, "observed-data--d2e3f4a5-b6c7-4d8e-9f0a-1b2c3d4e5f6a")
    values = {_one(objects, r).get("value") for r in observed["object_refs"]}
    assert values == {"cdn-sync.example", "192.0.2.10", "192.0.2.11"}
    # email, to_ids: sender and recipient are two email-addr observations, not one address equal to both.
    lure = _one(objects, "indicator--e3f4a5b6-c7d8-4e9f-8a1b-2c3d4e5f6a7b")
    observations = lure["pattern"].split("] AND [")
    assert len(observations) == 3
    for observation in observations:
        parsed = patterns.fast_parse(f"[{observation.strip('[]')}]")
        assert parsed is not None
        paths = [(c.object_type, c.path) for c in parsed]
        assert len(paths) == len(set(paths)), lure["pattern"]  # no property compared to two values at once
    assert patterns.validate(lure["pattern"]) is None
    assert "192.0.2.99" not in json.dumps(objects)  # a deleted object attribute is in no pattern or SCO


def test_object_attributes_come_back_with_their_relation_to_ids_and_uuid() -> None:
    original = _load("misp_event_ransomware.json")["Event"]
    event, _ = misp_export.stix_to_misp(misp.misp_to_stix(original).objects)
    back = {o["uuid"]: o for o in event["Event"]["Object"]}

    def attrs(mobj: dict[str, Any]) -> set[tuple[str, str, str, str, bool]]:
        return {
            (a["uuid"], a["object_relation"], a["type"], a["value"], bool(a["to_ids"]))
            for a in mobj["Attribute"]
            if not a.get("deleted")
        }

    for mobj in original["Object"]:
        got = back[mobj["uuid"]]
        assert (got["name"], got["template_uuid"]) == (mobj["name"], mobj["template_uuid"])
        # Values are matched back by value: the file object lists its sha256 before its filename, which
        # once came back as a "sha256" holding the file name; and "svchost.exe" is not an IDS value.
        assert attrs(got) == attrs(mobj)
        for a in got["Attribute"]:
            assert a["category"] in _CATEGORIES[a["type"]] and a["timestamp"] == mobj["timestamp"]


def test_object_references_become_relationships_and_come_back() -> None:
    converted = misp.misp_to_stix(_load("misp_event_ransomware.json"))
    rel = _one(converted.objects, "relationship--c7d8e9f0-a1b2-4c3d-8e4f-5a6b7c8d9e0f")
    assert (rel["source_ref"], rel["relationship_type"], rel["target_ref"]) == (
        "indicator--b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e",
        "communicates-with",
        "observed-data--d2e3f4a5-b6c7-4d8e-9f0a-1b2c3d4e5f6a",
    )
    assert rel["object_marking_refs"] == [TLP2_IDS["amber"], PAP_IDS["green"]]
    # A reference to something the event does not carry is named, not dropped in silence.
    assert any("drops to ffffffff-0000-4000-8000-000000000001" in s for s in converted.skipped)
    event, skipped = misp_export.stix_to_misp(converted.objects)
    file_obj = next(o for o in event["Event"]["Object"] if o["name"] == "file")
    assert [
        (r["uuid"], r["object_uuid"], r["referenced_uuid"], r["relationship_type"])
        for r in file_obj["ObjectReference"]
    ] == [
        (
            "c7d8e9f0-a1b2-4c3d-8e4f-5a6b7c8d9e0f",
            "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e",
            "d2e3f4a5-b6c7-4d8e-9f0a-1b2c3d4e5f6a",
            "communicates-with",
        )
    ]
    assert skipped == []


def test_common_composite_and_host_types_map_and_come_back() -> None:
    original = _load("misp_event_ransomware.json")["Event"]
    converted = misp.misp_to_stix(original)
    objects = converted.objects
    c2 = _one(objects, "indicator--1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b")
    assert c2["pattern"] == (
        "[network-traffic:dst_ref.value = '198.51.100.23' AND network-traffic:dst_port = 8443]"
    )
    dns = _one(objects, "observed-data--2f3e4d5c-6b7a-4899-8b1c-2d3e4f5a6b7c")
    assert {_one(objects, r)["value"] for r in dns["object_refs"]} == {"c2.ransom.example", "203.0.113.50"}
    # Quotes and backslashes in values are escaped, so the patterns are valid STIX.
    mutex = _one(objects, "indicator--4b5a6f7e-8d9c-4abb-8d3e-4f5a6b7c8d9e")
    assert mutex["pattern"] == "[mutex:name = 'Global\\\\RansomMtx_0x5F']"
    dropper = _one(objects, "indicator--5c6b7a8f-9e0d-4bcc-9e4f-5a6b7c8d9e0f")
    assert "file:name = 'O\\'Brien invoice.exe'" in dropper["pattern"]
    for ind in (c2, mutex, dropper, _one(objects, "indicator--3a4f5e6d-7c8b-49aa-9c2d-3e4f5a6b7c8d")):
        assert patterns._oasis(ind["pattern"]) is None, ind["pattern"]
    assert not any(
        t in s for s in converted.skipped for t in ("ip-dst|port", "domain|ip", "mutex", "subject")
    )

    event, _ = misp_export.stix_to_misp(objects)
    back = {a["uuid"]: a for a in event["Event"]["Attribute"]}
    for attr in original["Attribute"][:5]:
        got = back[attr["uuid"]]
        assert (got["type"], got["value"], got["to_ids"], got["category"]) == (
            attr["type"],
            attr["value"],
            attr["to_ids"],
            attr["category"],
        )


def test_detection_rules_keep_their_pattern_type_and_to_ids() -> None:
    converted = misp.misp_to_stix(_load("misp_event_ransomware.json"))
    yara = _one(converted.objects, "indicator--7e8d9cab-1a2f-4eee-9a6b-7c8d9e0f1a2b")
    assert (yara["pattern_type"], yara["pattern"]) == (
        "yara",
        'rule loader_strings { strings: $a = "RansomMtx_" ascii condition: $a }',
    )
    # MISP says the sigma rule is not to be deployed: no indicator (which is a rule to deploy), a reason.
    assert "8f9eadbc-2b3a-4fff-8b7c-8d9e0f1a2b3c" not in json.dumps(converted.objects)
    assert any(s.startswith("attribute 8f9eadbc") and "to_ids" in s for s in converted.skipped)
    not_for_ids = misp.misp_to_stix(
        _event(_attr("stix2-pattern", "[ipv4-addr:value = '192.0.2.1']", to_ids=False))
    )
    assert not [o for o in not_for_ids.objects if o["type"] == "indicator"] and not_for_ids.skipped

    def rule(pattern_type: str, pattern: str) -> dict[str, Any]:
        return {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--3b1d7c5e-9f2a-4e6b-8d0c-2a4e6f8b0d1c",
            "created": "2024-06-01T00:00:00.000Z",
            "modified": "2024-06-01T00:00:00.000Z",
            "pattern": pattern,
            "pattern_type": pattern_type,
            "valid_from": "2024-06-01T00:00:00Z",
        }

    event, _ = misp_export.stix_to_misp([yara])
    assert [(a["type"], a["value"], a["to_ids"]) for a in event["Event"]["Attribute"]] == [
        ("yara", yara["pattern"], True)
    ]
    sigma = "title: x\ndetection: {sel: {Image|endswith: '\\\\cmd.exe'}, condition: sel}"
    event, _ = misp_export.stix_to_misp([rule("sigma", sigma)])
    assert [(a["type"], a["value"]) for a in event["Event"]["Attribute"]] == [("sigma", sigma)]
    event, skipped = misp_export.stix_to_misp([rule("pcre", "/evil[0-9]+/")])
    assert event["Event"]["Attribute"] == [] and "pcre" in skipped[0]  # not a stix2-pattern in disguise


def test_a_galaxy_on_an_attribute_without_to_ids_is_kept() -> None:
    converted = misp.misp_to_stix(_load("misp_event_ransomware.json"))
    t = _by_type(converted.objects)
    lockbit = next(m for m in t["malware"] if m["name"] == "LockBit")
    assert (
        lockbit["id"] == "malware--9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
    )  # the cluster's uuid, from its Galaxy
    rel = next(r for r in t["relationship"] if r["target_ref"] == lockbit["id"])
    assert (rel["source_ref"], rel["relationship_type"]) == (
        "observed-data--6d7c8b9a-0f1e-4ddd-8f5a-6b7c8d9e0f1a",
        "related-to",
    )
    assert rel["object_marking_refs"] == [
        TLP2_IDS["amber"],
        PAP_IDS["green"],
    ]  # shared no wider than its source
    event, _ = misp_export.stix_to_misp(converted.objects)
    leak = next(a for a in event["Event"]["Attribute"] if a["value"] == "leaks.ransom.example")
    assert 'misp-galaxy:ransomware="LockBit"' in {tag["name"] for tag in leak["Tag"]}


def test_first_seen_and_last_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    # MISP keeps first_seen/last_seen in UTC: one written without an offset must not shift with the
    # server's zone.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        converted = misp.misp_to_stix(
            _event(
                _attr(
                    "ip-dst",
                    "203.0.113.9",
                    uuid="5e0a2c4f-6b8d-4f1a-9c3e-7d9f1b3d5f7a",
                    first_seen="2024-05-02T09:30:00",
                    last_seen="2024-05-09T18:00:00.000000+00:00",
                ),
                _attr("ip-src", "198.51.100.9", to_ids=False, first_seen="2024-05-03T07:00:00.123456+02:00"),
            )
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    t = _by_type(converted.objects)
    ind = t["indicator"][0]
    assert (ind["valid_from"], ind["valid_until"]) == ("2024-05-02T09:30:00.000Z", "2024-05-09T18:00:00.000Z")
    seen = t["observed-data"][0]
    assert seen["first_observed"] == seen["last_observed"] == "2024-05-03T05:00:00.123456Z"
    event, _ = misp_export.stix_to_misp(converted.objects)
    back = next(a for a in event["Event"]["Attribute"] if a["uuid"] == "5e0a2c4f-6b8d-4f1a-9c3e-7d9f1b3d5f7a")
    assert (back["first_seen"], back["last_seen"]) == ("2024-05-02T09:30:00.000Z", "2024-05-09T18:00:00.000Z")


def test_comments_and_tags_of_vulnerabilities_and_object_attributes_are_kept() -> None:
    converted = misp.misp_to_stix(
        _event(
            _attr(
                "vulnerability",
                "CVE-2023-4966",
                category="External analysis",
                to_ids=False,
                comment="exploited for initial access",
                Tag=[
                    {"name": "tlp:amber"},
                    {"name": "cve:exploited"},
                    {"name": 'misp-galaxy:tool="Cobalt Strike"'},
                ],
            ),
            Object=[
                {
                    "name": "domain-ip",
                    "meta-category": "network",
                    "uuid": "4c6e8a0c-2e4a-4c6e-8a0c-2e4a6c8e0a2c",
                    "timestamp": "1717230000",
                    "Attribute": [
                        _attr(
                            "domain", "x.example", object_relation="domain", Tag=[{"name": "kill-chain:c2"}]
                        ),
                    ],
                }
            ],
        )
    )
    t = _by_type(converted.objects)
    vuln = t["vulnerability"][0]
    assert vuln["description"] == "exploited for initial access" and vuln["labels"] == ["cve:exploited"]
    assert vuln["object_marking_refs"] == [TLP2_IDS["amber"]]
    tool = t["tool"][0]
    assert any(r["source_ref"] == vuln["id"] and r["target_ref"] == tool["id"] for r in t["relationship"])
    assert t["indicator"][0]["labels"] == ["kill-chain:c2"]


def test_tlp_and_pap_tags_in_any_spelling() -> None:
    converted = misp.misp_to_stix(
        _event(
            _attr("domain", "a.example", Tag=[{"name": " TLP:AMBER+STRICT "}, {"name": "pap:White"}]),
            _attr("domain", "b.example", Tag=[{"name": "Tlp:Clear"}, "PAP:RED"]),
            Tag=[{"name": "tlp:white"}],
        )
    )
    marked = {i["pattern"]: i["object_marking_refs"] for i in _by_type(converted.objects)["indicator"]}
    assert marked == {
        "[domain-name:value = 'a.example']": [TLP2_IDS["amber+strict"], PAP_IDS["clear"]],
        "[domain-name:value = 'b.example']": [TLP2_IDS["clear"], PAP_IDS["red"]],
    }
    assert not any("labels" in i for i in _by_type(converted.objects)["indicator"])


def test_an_attribute_is_never_shared_wider_than_its_event() -> None:
    # An AMBER event's attribute tagged tlp:clear stays AMBER; a stricter attribute keeps its own level.
    converted = misp.misp_to_stix(
        _event(
            _attr("domain", "wide.example", Tag=[{"name": "tlp:clear"}, {"name": "PAP:CLEAR"}]),
            _attr("domain", "strict.example", Tag=[{"name": "tlp:red"}]),
            _attr("domain", "plain.example"),
            Tag=[{"name": "tlp:amber"}, {"name": "PAP:AMBER"}],
        )
    )
    marked = {i["pattern"]: i["object_marking_refs"] for i in _by_type(converted.objects)["indicator"]}
    assert marked == {
        "[domain-name:value = 'wide.example']": [TLP2_IDS["amber"], PAP_IDS["amber"]],
        "[domain-name:value = 'strict.example']": [TLP2_IDS["red"], PAP_IDS["amber"]],
        "[domain-name:value = 'plain.example']": [TLP2_IDS["amber"], PAP_IDS["amber"]],
    }
    # And on the way out and back in, nothing becomes wider (AMBER items leave MISP's organisation-only
    # distribution, which comes back as RED).
    event, _ = misp_export.stix_to_misp(converted.objects)
    again = misp.misp_to_stix(event)
    level = {v: k for k, v in TLP2_IDS.items()}
    back = {i["pattern"]: level[i["object_marking_refs"][0]] for i in _by_type(again.objects)["indicator"]}
    assert back == dict.fromkeys(marked, "red")


def test_an_event_misp_keeps_in_the_organisation_is_marked_red_and_never_federates() -> None:
    # MISP distribution 0 (your organisation only) and 4 (a sharing group) say who may see it; cyberpact
    # shares by TLP, and TLP:RED never leaves the node. The event's bounds its attributes, as in MISP.
    galaxy = [{"type": "threat-actor", "GalaxyCluster": [{"value": "Wizard Spider", "tag_name": "x"}]}]
    home = misp.misp_to_stix(
        _event(_attr("domain", "a.example", distribution="3"), distribution="0", Galaxy=galaxy)
    )
    assert any("your organisation only: kept on this node as TLP:RED" in s for s in home.skipped)
    marked = [o for o in home.objects if o["type"] not in ("identity", "marking-definition")]
    assert marked and all(TLP2_IDS["red"] in o.get("object_marking_refs", []) for o in marked)
    # Within a shared event, only the attribute kept to a sharing group is.
    shared = misp.misp_to_stix(
        _event(_attr("domain", "b.example", distribution=4), _attr("domain", "c.example"), distribution=1)
    )
    marks = {i["pattern"]: i["object_marking_refs"] for i in _by_type(shared.objects)["indicator"]}
    assert marks == {
        "[domain-name:value = 'b.example']": [TLP2_IDS["red"]],
        "[domain-name:value = 'c.example']": [TLP2_IDS["green"]],
    }


def test_a_list_of_misp_events_is_recognised_without_a_format(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["intel", "collections", "create", "Auto", "--alias", "auto"]).exit_code == 0
    events = tmp_path / "events.json"
    events.write_text(json.dumps([_event(_attr("domain", "d.example"))]))
    r = runner.invoke(app, ["intel", "import", str(events), "-c", "auto"])
    assert r.exit_code == 0 and "refused 0" in r.output and "stored 0," not in r.output, r.output
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000)
    r = runner.invoke(app, ["intel", "import", str(nested), "-c", "auto"])
    assert r.exit_code != 0 and "is not JSON" in r.output and "Traceback" not in r.output


def _deep(levels: int) -> Any:
    nested: list[Any] = []
    for _ in range(levels):
        nested = [nested]
    return nested


_NO_EVENT = {
    "a number": 42,
    "a string": "an event",
    "an empty list": [],
    "an empty object": {},
    "an Event that is not an object": {"Event": "5f1c9b8e"},
    "an empty search response": {"response": {"Event": []}},
    "lists nested 5000 deep": {"response": _deep(5000)},
    # The TLP cannot be read: storing the event unmarked would share it wider than its author allowed.
    "a Tag that is not a list": _event(Tag="tlp:red"),
    "a tag without a name": _event(Tag=[{"name": 5}]),
    "an Orgc that is not an object": _event(Orgc="CERT-EX"),
    "a Galaxy that is not a list": _event(Galaxy={"type": "threat-actor"}),
    "an Attribute that is not a list": _event(Attribute={"type": "ip-dst", "value": "192.0.2.1"}),
    "an Object that is not a list": _event(Object="file"),
}


@pytest.mark.parametrize("data", list(_NO_EVENT.values()), ids=list(_NO_EVENT))
def test_input_that_holds_no_usable_event_is_refused_whole(data: Any) -> None:
    converted = misp.misp_to_stix(data)  # neither a crash nor a partial, unmarked event
    assert converted.objects == [] and converted.skipped
    assert all(s.startswith(("event ", "no MISP event")) for s in converted.skipped)


def test_hostile_attributes_are_refused_one_by_one_with_a_reason() -> None:
    good = _attr("domain", "kept.example", uuid="6f1b3d5f-7a9c-4e2b-8d4f-6a8c0e2a4c6e")
    converted = misp.misp_to_stix(
        _event(
            good,
            _attr("domain", None, uuid="11111111-1111-4111-8111-111111111111"),
            _attr("domain", "", uuid="22222222-2222-4222-8222-222222222222"),
            _attr("ip-dst", {"value": "192.0.2.1"}, uuid="33333333-3333-4333-8333-333333333333"),
            _attr("url", "http://x.example/" + "a" * 70_000, uuid="44444444-4444-4444-8444-444444444444"),
            _attr("ip-dst", "192.0.2.5", uuid="55555555-5555-4555-8555-555555555555", Tag="tlp:red"),
            _attr("ip-dst|port", "192.0.2.6|http", uuid="66666666-6666-4666-8666-666666666666"),
            _attr("AS", "AS99999999999", uuid="77777777-7777-4777-8777-777777777777"),
            _attr(["ip-dst"], "192.0.2.7", uuid="88888888-8888-4888-8888-888888888888"),
            _attr("x-unheard-of", "zzz", uuid="99999999-9999-4999-8999-999999999999"),
            _attr("domain", "nested-uuid.example", uuid=_deep(3000)),
            "not an attribute",
            Object=[
                {"name": "file", "uuid": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "Attribute": ["x", 5]},
                "not an object",
            ],
        )
    )
    patterns_ = [i["pattern"] for i in _by_type(converted.objects)["indicator"]]
    # Never a value invented from a hostile one ('None', '', a dict printed as text).
    assert sorted(patterns_) == [
        "[domain-name:value = 'kept.example']",
        "[domain-name:value = 'nested-uuid.example']",
    ]
    reasons = "\n".join(converted.skipped)
    for key in "123456789":
        assert f"{key * 8}-" in reasons, key
    assert "attribute #12: not an attribute object" in reasons and "object #2: not a MISP object" in reasons
    assert "object file aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa attribute #1: not an attribute object" in reasons
    assert all(len(s) < 300 for s in converted.skipped)  # a reason names the fault, not the huge value


def test_sightings_become_stix_sightings_and_false_positives_opinions_and_come_back() -> None:
    original = _load("misp_event_botnet.json")["Event"]
    converted = misp.misp_to_stix(original)
    t = _by_type(converted.objects)
    c2 = "indicator--8a0e3c1b-6d2f-4b7a-9e5c-1f3a5b7c9d0e"
    orgs = {i["id"]: i["name"] for i in t["identity"]}
    seen = {
        (orgs[s["where_sighted_refs"][0]], s["first_seen"], s.get("x_misp_source"))
        for s in t["sighting"]
        if s["sighting_of_ref"] == c2
    }
    assert seen == {
        ("CERT-EX", "2024-04-18T15:00:00.000Z", None),
        ("GH-CERT", "2024-04-19T15:00:00.000Z", "ids-sensor-3"),
    }
    sighting = next(s for s in t["sighting"] if s["id"] == "sighting--4a7f2d3b-9c5e-4f0a-b2d4-6e8f0a2c4d6f")
    assert orgs[sighting["created_by_ref"]] == "GH-CERT" and sighting["count"] == 1
    # Seen by the attribute's readers only: the sighting and who saw it carry the attribute's AMBER.
    assert TLP2_IDS["amber"] in sighting["object_marking_refs"]
    gh = next(i for i in t["identity"] if i["name"] == "GH-CERT")
    assert TLP2_IDS["amber"] in gh["object_marking_refs"]
    (fp,) = t["opinion"]
    assert (fp["opinion"], fp["object_refs"], orgs[fp["created_by_ref"]]) == (
        "strongly-disagree",
        [c2],
        "CERT-PL",
    )
    options = ValidationOptions(version="2.1", strict=False)
    for obj in [*t["sighting"], *t["opinion"], *t["identity"]]:
        stix.check(obj)
        assert validate_instance(obj, options).is_valid, obj
    # Back to MISP: the same sightings on the same attribute, same organisations, dates and types.
    event, skipped = misp_export.stix_to_misp(converted.objects)
    assert skipped == []
    back = next(a for a in event["Event"]["Attribute"] if a["uuid"] == "8a0e3c1b-6d2f-4b7a-9e5c-1f3a5b7c9d0e")

    def sightings(attr: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
        return {
            (s["uuid"], s["type"], s["date_sighting"], s["Organisation"]["uuid"], s.get("source") or "")
            for s in attr["Sighting"]
        }

    assert sightings(back) == sightings(original["Attribute"][0])
    # And converting that export again gives the same STIX sightings: a re-import stores nothing new.
    again = _by_type(misp.misp_to_stix(event).objects)
    assert sorted(s["id"] for s in again["sighting"]) == sorted(s["id"] for s in t["sighting"])


def test_sightings_that_cannot_be_carried_are_named_and_the_attribute_is_kept() -> None:
    org = {"name": "GH-CERT", "uuid": "6c1d3e5f-7a9b-4c2d-8e4f-0a1b2c3d4e5f"}
    converted = misp.misp_to_stix(
        _event(
            _attr(
                "domain",
                "a.example",
                uuid="1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d",
                Sighting=[
                    {"type": "2", "date_sighting": "1717230000", "Organisation": org},  # expiration
                    {"type": "0", "Organisation": org},  # no date
                    {"type": "0", "date_sighting": "not a time", "Organisation": org},
                    {"type": "7", "date_sighting": "1717230000"},
                    "a string",
                    {"type": "0", "date_sighting": 10**30},
                    {"type": "0", "date_sighting": "1717230000", "Organisation": {"name": ["x"]}},
                ],
            ),
            _attr(
                "ip-src",
                "192.0.2.9",
                to_ids=False,
                uuid="2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e",
                Sighting=[{"type": "0", "date_sighting": "1717230000", "Organisation": org}],
            ),
            _attr("domain", "b.example", Sighting={"type": "0"}),
        )
    )
    t = _by_type(converted.objects)
    assert len(t["indicator"]) == 2 and len(t["observed-data"]) == 1, "every attribute is still carried"
    # Only the last sighting of a.example is whole; with no organisation, the event's creator reports it.
    (only,) = t["sighting"]
    assert only["created_by_ref"] == t["report"][0]["created_by_ref"] and "where_sighted_refs" not in only
    reasons = "\n".join(converted.skipped)
    for expected in (
        "1 expiration sighting(s) have no STIX form",
        "no date_sighting",
        "unknown sighting type '7'",
        "not a sighting object",
        "not for detection (to_ids)",
        "Sighting is not a list",
    ):
        assert expected in reasons, expected
    assert reasons.count("no date_sighting") == 3


def test_event_reports_become_notes_on_the_report_and_come_back() -> None:
    original = _load("misp_event_ransomware.json")["Event"]
    converted = misp.misp_to_stix(original)
    t = _by_type(converted.objects)
    report = t["report"][0]
    notes = {n["abstract"]: n for n in t["note"]}
    summary = notes["Initial access and lateral movement"]
    assert summary["id"] == "note--9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
    assert summary["object_refs"] == [report["id"]] and summary["content"].startswith("## Summary")
    assert summary["created_by_ref"] == report["created_by_ref"]
    assert summary.get("object_marking_refs") == report.get("object_marking_refs")
    # MISP keeps the negotiation notes in the organisation: RED here, which never leaves the node.
    assert TLP2_IDS["red"] in notes["Negotiation notes (internal)"]["object_marking_refs"]
    options = ValidationOptions(version="2.1", strict=False)
    for note in t["note"]:
        stix.check(note)
        assert validate_instance(note, options).is_valid, note
    event, _ = misp_export.stix_to_misp(converted.objects)
    back = {r["uuid"]: r for r in event["Event"]["EventReport"]}
    for er in original["EventReport"]:
        got = back[er["uuid"]]
        assert (got["name"], got["content"], got["timestamp"]) == (er["name"], er["content"], er["timestamp"])
    assert back["8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"]["distribution"] == "0"
    # Imported again, the export gives the same notes: a re-import stores nothing new.
    again = _by_type(misp.misp_to_stix(event).objects)["note"]

    def essence(n: dict[str, Any]) -> tuple[str, str, str, str]:
        return (n["id"], n["abstract"], n["content"], n["modified"])

    assert sorted(map(essence, again)) == sorted(map(essence, t["note"]))


def test_unusable_event_reports_are_named_and_the_event_is_kept() -> None:
    long = "x" * (misp_reports.MAX_CONTENT + 1)
    converted = misp.misp_to_stix(
        _event(
            _attr("domain", "a.example"),
            EventReport=[
                {"uuid": "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d", "name": "empty", "content": "  "},
                {"name": "huge", "content": long},
                "a string",
                {"name": "gone", "content": "withdrawn analysis", "deleted": True, "timestamp": "x"},
            ],
        )
    )
    t = _by_type(converted.objects)
    assert len(t["indicator"]) == 1
    (gone,) = t["note"]
    assert gone["revoked"] is True and gone["abstract"] == "gone"
    reasons = "\n".join(converted.skipped)
    assert "no content" in reasons and "longer than 1,000,000 characters" in reasons
    assert "not an event report object" in reasons and long not in reasons
    bad = misp.misp_to_stix(_event(_attr("domain", "a.example"), EventReport={"content": "x"}))
    assert "EventReport is not a list" in "\n".join(bad.skipped) and "note" not in _by_type(bad.objects)
    # A note on an attribute is MISP analyst data on it; one on what the export does not hold is named.
    other = {
        **gone,
        "id": "note--2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e",
        "object_refs": [t["indicator"][0]["id"]],
        "revoked": False,
    }
    stray = {
        **other,
        "id": "note--3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f",
        "object_refs": ["malware--" + "1" * 32],
    }
    event, skipped = misp_export.stix_to_misp([*converted.objects, other, stray])
    (on_attribute,) = event["Event"]["Attribute"][0]["Note"]
    assert on_attribute["uuid"] == "2b3c4d5e-6f7a-4b2c-9d3e-4f5a6b7c8d9e"
    assert on_attribute["note"].endswith("withdrawn analysis") and on_attribute["object_type"] == "Attribute"
    assert any(s.startswith(stray["id"]) and "not in the MISP event" in s for s in skipped)
    assert not any(s.startswith(other["id"]) for s in skipped)


def test_a_sighting_of_an_object_attribute_is_a_sighting_of_the_objects_indicator() -> None:
    org = {"name": "GH-CERT", "uuid": "6c1d3e5f-7a9b-4c2d-8e4f-0a1b2c3d4e5f"}
    seen = {"type": "0", "date_sighting": "1717230000", "Organisation": org}
    mobj = {
        "name": "domain-ip",
        "uuid": "3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f",
        "Attribute": [
            _attr("domain", "a.example", object_relation="domain", Sighting=[seen]),
            _attr("ip-dst", "203.0.113.9", object_relation="ip", Sighting=[{**seen, "type": "2"}]),
        ],
    }
    converted = misp.misp_to_stix(_event(Object=[mobj]))
    t = _by_type(converted.objects)
    (ind,) = t["indicator"]
    (sighting,) = t["sighting"]
    assert sighting["sighting_of_ref"] == ind["id"]
    # What is not carried names the object's attribute by its relation.
    assert any(
        s.startswith("object domain-ip 3c4d5e6f-7a8b-4c3d-8e4f-5a6b7c8d9e0f attribute ip:")
        for s in converted.skipped
    ), converted.skipped


def test_export_of_a_counted_sighting_is_bounded() -> None:
    converted = misp.misp_to_stix(_event(_attr("domain", "a.example")))
    ind = _by_type(converted.objects)["indicator"][0]
    many = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": "sighting--0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "created": "2024-06-01T10:00:00Z",
        "modified": "2024-06-01T10:00:00Z",
        "count": 999_999_999,
        "sighting_of_ref": ind["id"],
    }
    agree = {
        **many,
        "type": "opinion",
        "id": "opinion--0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e",
        "opinion": "agree",
        "object_refs": [ind["id"]],
    }
    del agree["count"], agree["sighting_of_ref"]
    event, skipped = misp_export.stix_to_misp([*converted.objects, many, agree])
    attr = event["Event"]["Attribute"][0]
    assert len(attr["Sighting"]) == misp_sightings.MAX_PER_SIGHTING
    assert len({s["uuid"] for s in attr["Sighting"]}) == misp_sightings.MAX_PER_SIGHTING
    assert any("counts 999999999 occurrences" in s for s in skipped)
    # Agreement is no sighting: it goes as a MISP analyst opinion, the middle of its fifth of 0-100.
    (opinion,) = attr["Opinion"]
    assert (opinion["opinion"], opinion["uuid"]) == ("70", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e")
    assert all(s["type"] == "0" for s in attr["Sighting"])


def test_reimporting_an_event_after_misp_deleted_an_attribute_revokes_it(db: Database) -> None:
    event = _load("misp_event_botnet.json")
    later = copy.deepcopy(event)
    c2 = later["Event"]["Attribute"][0]
    c2.update(deleted=True, timestamp="1713460000")  # MISP stamps the deletion
    later["Event"]["timestamp"] = "1713460000"
    with db.transaction() as s:
        coll = service.create_collection(s, SYSTEM, title="misp")
        first = store.add_objects(s, SYSTEM, coll, misp.misp_to_stix(event).objects)
        assert first.failures == []
        again = store.add_objects(s, SYSTEM, coll, misp.misp_to_stix(event).objects)
        assert again.stored == 0  # the same event twice stores nothing new
        store.add_objects(s, SYSTEM, coll, misp.misp_to_stix(later).objects)
        latest = {o["id"]: o for o in query.iter_objects(s, coll.id)}
        assert latest["indicator--8a0e3c1b-6d2f-4b7a-9e5c-1f3a5b7c9d0e"]["revoked"] is True
        exported, _ = misp_export.stix_to_misp(query.iter_objects(s, coll.id))
    back = next(a for a in exported["Event"]["Attribute"] if a["value"] == "203.0.113.45")
    assert back["deleted"] is True


def test_cli_refuses_an_event_it_cannot_mark_and_stores_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["intel", "collections", "create", "Hostile", "--alias", "hostile"])
    assert r.exit_code == 0, r.output
    bad = tmp_path / "event.json"
    bad.write_text(json.dumps(_event(Tag="tlp:red")))
    r = runner.invoke(app, ["intel", "import", str(bad), "-c", "hostile", "--format", "misp"])
    # Nothing usable is a failure a script sees (exit 1), with the reason, not "stored 0" and success.
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "Nothing to import" in r.output
    assert "event 0d6f3c1a-8b2e-4f5d-9a7c-1e3b5d7f9a2c: Tag is not a list" in r.output
    out = tmp_path / "out.json"
    assert runner.invoke(app, ["intel", "export", str(out), "-c", "hostile"]).exit_code == 0
    assert json.loads(out.read_text())["objects"] == []


def _indicator(pattern: str, n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--0f8e2d6c-4b1a-4e3d-9c7b-5a3f1e9d7b5{n}",
        "created": "2024-03-01T00:00:00.000Z",
        "modified": "2024-03-02T00:00:00.000Z",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2024-03-01T00:00:00.000Z",
        **extra,
    }


def test_export_never_widens_a_pattern_or_guesses_a_type() -> None:
    sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    objects = [
        _indicator(f"[file:name = 'setup.exe' AND file:hashes.'SHA-256' = '{sha}']", 1),
        _indicator("[process:name = 'cmd.exe']", 2),
        _indicator("[network-traffic:dst_port = 443 AND network-traffic:dst_ref.value = '192.0.2.1']", 3),
        _indicator("[ipv4-addr:value = '192.0.2.1'] OR [ipv4-addr:value = '192.0.2.2']", 4),
        _indicator(f"[file:hashes.SHA256 = '{sha}']", 5),
        _indicator("[domain-name:value = 'AND.example']", 6),
    ]
    event, _ = misp_export.stix_to_misp(objects)
    got = {(a["uuid"][-1], a["type"], a["value"]) for a in event["Event"]["Attribute"]}
    # A conjunction stays whole: "setup.exe" alone, or port 443 alone, would flag far more than it does.
    assert ("1", "stix2-pattern", objects[0]["pattern"]) in got
    assert ("3", "stix2-pattern", objects[2]["pattern"]) in got
    assert ("2", "stix2-pattern", objects[1]["pattern"]) in got  # no MISP type for process:name
    # A disjunction may be split: either value alone is what the pattern looks for.
    assert {(t, v) for _, t, v in got if t == "ip-dst"} == {("ip-dst", "192.0.2.1"), ("ip-dst", "192.0.2.2")}
    assert ("5", "sha256", sha) in got and ("6", "domain", "AND.example") in got
    assert not any(t == "text" for _, t, _ in got)


def test_export_is_a_valid_core_format_event() -> None:
    converted = misp.misp_to_stix(_load("misp_event_ransomware.json"))
    event, _ = misp_export.stix_to_misp(converted.objects)
    ev = event["Event"]
    assert isinstance(ev["published"], bool) and isinstance(ev["timestamp"], str)
    assert ev["published"] is False and ev["publish_timestamp"] == "0"  # never published: 0
    assert ev["distribution"] in {"0", "1", "2", "3", "4"}
    everything = [*ev["Attribute"], *(a for o in ev["Object"] for a in o["Attribute"])]
    for a in everything:
        assert isinstance(a["uuid"], str) and len(a["uuid"]) == 36
        assert a["category"] in _CATEGORIES[a["type"]], (a["type"], a["category"])
        assert isinstance(a["value"], str) and isinstance(a["to_ids"], bool)
        assert isinstance(a["timestamp"], str) and a["timestamp"].isdigit()
        assert a["distribution"] in ("0", "5") and a["deleted"] is False
    for o in ev["Object"]:
        assert {"uuid", "name", "meta-category", "timestamp", "distribution", "deleted"} <= set(o)
    # Without a report and an identity there is no creator to name: no Orgc with an empty uuid.
    alone, _ = misp_export.stix_to_misp([_indicator("[domain-name:value = 'x.example']")])
    assert "Orgc" not in alone["Event"] and alone["Event"]["publish_timestamp"] == "0"


def test_export_names_what_it_does_not_carry() -> None:
    converted = misp.misp_to_stix(_load("misp_event_botnet.json")).objects
    second = dict(_one(converted, "report--5f1c9b8e-2a4d-4e6f-9b1a-3c5d7e9f1a2b"))
    second["id"] = "report--7c2e4a6b-8d0f-4b1c-9e3a-5c7e9a1b3d5f"
    uses = {
        "type": "relationship",
        "spec_version": "2.1",
        "id": "relationship--2b4d6f8a-0c1e-4a3b-9d5f-7b9d1f3a5c7e",
        "created": "2024-04-18T00:00:00.000Z",
        "modified": "2024-04-18T00:00:00.000Z",
        "relationship_type": "uses",
        "source_ref": "threat-actor--7a2f9c3d-5b1e-4f8a-9c2d-6e4b8a1c3f5d",
        "target_ref": next(o["id"] for o in converted if o["type"] == "malware"),
    }
    _, skipped = misp_export.stix_to_misp([*converted, second, uses])
    assert any(s.startswith(second["id"]) for s in skipped)
    assert any(s.startswith(uses["id"]) and "uses" in s for s in skipped)


def test_the_event_date_survives_a_round_trip_when_it_is_before_the_last_change(db: Database) -> None:
    # MISP's date is the day of the incident, its timestamp the last edit: most events are edited later.
    event = _event(_attr("ip-dst", "192.0.2.9"), date="2026-11-10", timestamp="1795000000")
    with db.transaction() as s:
        coll = service.create_collection(s, SYSTEM, title="dates")
        assert store.add_objects(s, SYSTEM, coll, misp.misp_to_stix(event).objects).failures == []
        exported, _ = misp_export.stix_to_misp(query.iter_objects(s, coll.id))
    back = exported["Event"]
    assert (back["date"], back["timestamp"]) == ("2026-11-10", "1795000000")  # 2026-11-18T11:06:40Z
    again = misp_export.stix_to_misp(misp.misp_to_stix(exported).objects)[0]["Event"]
    assert (again["date"], again["timestamp"]) == ("2026-11-10", "1795000000")


def test_an_export_without_a_readable_created_dates_the_event_by_its_last_change() -> None:
    objects = misp.misp_to_stix(_event(_attr("ip-dst", "192.0.2.9"), date="2026-11-10")).objects
    report = next(o for o in objects if o["type"] == "report")
    for created in ("not a time", None, 20261110):
        report["created"] = created
        back = misp_export.stix_to_misp(objects)[0]["Event"]
        assert back["date"] == report["modified"][:10]


def _galaxy_event(meta: Any, gtype: str = "threat-actor", value: str = "LockBit") -> dict[str, Any]:
    cluster = {"uuid": "7cdb06e5-3f5b-4b0a-9a9a-2c8a4c3f1b11", "value": value, "type": gtype, "meta": meta}
    galaxy = {
        "uuid": "698774c7-8022-42c4-917f-8d6e4f06ada3",
        "type": gtype,
        "name": "Threat Actor",
        "GalaxyCluster": [cluster],
    }
    return _event(_attr("ip-dst", "192.0.2.9"), Galaxy=[galaxy])


def test_galaxy_synonyms_become_aliases_and_attack_ids_references_and_come_back() -> None:
    actor_meta = {
        "synonyms": ["LockBit 3.0", "LockBit Black", "LockBit"],
        "country": ["RU"],
        "refs": ["https://www.cisa.gov/news-events/cybersecurity-advisories/aa23-165a"],
    }
    actor_event = _galaxy_event(actor_meta)
    technique_event = _galaxy_event(
        {"external_id": ["T1566", "CAPEC-98"]}, "mitre-attack-pattern", "Phishing"
    )
    converted = misp.misp_to_stix([actor_event, technique_event])
    t = _by_type(converted.objects)
    actor, technique = t["threat-actor"][0], t["attack-pattern"][0]
    assert actor["aliases"] == ["LockBit 3.0", "LockBit Black"]  # its own name is no alias
    assert actor["x_misp_country"] == ["RU"] and actor["external_references"] == [
        {"source_name": "misp-galaxy-ref", "url": actor_meta["refs"][0]}
    ]
    assert actor["x_misp_galaxy_uuid"] == "698774c7-8022-42c4-917f-8d6e4f06ada3"
    assert technique["external_references"] == [
        {"source_name": "mitre-attack", "external_id": "T1566"},
        {"source_name": "capec", "external_id": "CAPEC-98"},
    ]
    options = ValidationOptions(version="2.1", strict=False)
    for obj in (actor, technique):
        stix.check(obj)
        assert validate_instance(obj, options).is_valid
    for event, obj, meta in (
        (
            actor_event,
            actor,
            {"synonyms": ["LockBit 3.0", "LockBit Black"], "refs": actor_meta["refs"], "country": ["RU"]},
        ),
        (technique_event, technique, {"external_id": ["T1566", "CAPEC-98"]}),
    ):
        objects = misp.misp_to_stix(event).objects
        (galaxy,) = misp_export.stix_to_misp(objects)[0]["Event"]["Galaxy"]
        assert (galaxy["type"], galaxy["name"]) == (obj["x_misp_galaxy_type"], "Threat Actor")
        assert galaxy["uuid"] == "698774c7-8022-42c4-917f-8d6e4f06ada3"
        (cluster,) = galaxy["GalaxyCluster"]
        assert cluster["meta"] == meta and cluster["uuid"] == obj["id"].partition("--")[2]
        assert cluster["tag_name"] == f'misp-galaxy:{galaxy["type"]}="{obj["name"]}"'
        again = [
            o for o in misp.misp_to_stix(misp_export.stix_to_misp(objects)[0]).objects if o["id"] == obj["id"]
        ]
        kept = ("aliases", "external_references", "x_misp_country", "x_misp_galaxy_uuid")
        assert {k: again[0].get(k) for k in kept} == {k: obj.get(k) for k in kept}


_BAD_META = {
    "meta that is a string": ("LockBit Black", "meta is not an object"),
    "synonyms that are a number": ({"synonyms": 5}, "synonyms: not a list of strings"),
    "synonyms with an object": ({"synonyms": ["ok", {"x": 1}]}, "synonyms: not a list of strings"),
    "too many synonyms": ({"synonyms": [f"n{i}" for i in range(101)]}, "synonyms: more than 100"),
    "a synonym far too long": ({"synonyms": ["x" * 1001]}, "synonyms: more than 100 or longer"),
    "external_id nested": ({"external_id": [["T1566"]]}, "external_id: not a list of strings"),
    "external_id of no scheme": ({"external_id": ["T1566; DROP"]}, "is of no known scheme"),
    "a ref that is no web address": ({"refs": ["javascript:alert(1)"]}, "is not an http(s) address"),
    "refs that are a mapping": ({"refs": {"u": "https://x.example"}}, "refs: not a list of strings"),
    "a country that is a number": ({"country": 7}, "country: not a list of strings"),
}


@pytest.mark.parametrize(("meta", "reason"), list(_BAD_META.values()), ids=list(_BAD_META))
def test_unreadable_galaxy_meta_is_named_and_not_carried(meta: Any, reason: str) -> None:
    converted = misp.misp_to_stix(_galaxy_event(meta))
    (actor,) = _by_type(converted.objects)["threat-actor"]
    assert actor["name"] == "LockBit" and "aliases" not in actor and "external_references" not in actor
    assert "x_misp_country" not in actor
    assert any(s.startswith("galaxy threat-actor='LockBit'") and reason in s for s in converted.skipped), (
        converted.skipped
    )
