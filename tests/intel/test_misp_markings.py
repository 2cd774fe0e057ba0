"""Every STIX object made from a MISP event is marked at least as its event, and what names something is
marked at least as what it names: a TLP:RED informant in a galaxy cluster stays on this node."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stix2validator import ValidationOptions, validate_instance

from conftest import LiveNode
from cyberpact.intel import misp, stix
from cyberpact.intel.markings import KNOWN_PAP, KNOWN_TLP, PAP_ORDER, TLP2_IDS, TLP_ORDER
from intel.test_federation import A, B, Wire, create, deliver, latest, object_ids, opened, stored

ORG = {"name": "VNCERT", "uuid": "11111111-2222-4333-8444-555555555555"}
INFORMANT = "Tran Thi B (informant)"
SECRET = "Confidential human source inside the affiliate; exposure endangers life"


def _cluster(value: str, cuuid: str, description: str = "") -> dict[str, Any]:
    return {
        "type": "threat-actor",
        "name": "Threat Actor",
        "GalaxyCluster": [
            {"uuid": cuuid, "value": value, "type": "threat-actor", "description": description}
        ],
    }


def _every_kind(tags: list[str], distribution: str = "3") -> dict[str, Any]:
    """An event holding something of each kind the importer makes: report, identities, clusters (of the
    event and of an attribute), indicators, observed data and SCOs, a vulnerability, a MISP object and its
    reference, galaxy relationships, sightings, a false positive, an event report, analyst notes, opinions
    and relationships."""
    sighting_org = {"name": "CERT-AU", "uuid": "22222222-3333-4444-8555-666666666666"}
    return {
        "Event": {
            "uuid": "8f1c3a2e-8b4d-4c7e-9a1f-2d3e4f5a6b71",
            "info": "informant inside an affiliate",
            "date": "2026-11-10",
            "timestamp": "1795000000",
            "distribution": distribution,
            "Orgc": ORG,
            "Tag": [{"name": t} for t in tags],
            "Galaxy": [_cluster(INFORMANT, "acdb06e5-3f5b-4b0a-9a9a-2c8a4c3f1b98", SECRET)],
            "Attribute": [
                {
                    "uuid": "a0000004-0000-4000-8000-000000000001",
                    "type": "ip-dst",
                    "category": "Network activity",
                    "value": "192.0.2.78",
                    "to_ids": True,
                    "timestamp": "1795000000",
                    # A clear attribute of a stricter event: the event's level bounds it, and its cluster.
                    "Tag": [
                        {"name": "tlp:clear"},
                        {"name": 'misp-galaxy:threat-actor="Handler"'},
                    ],
                    "Galaxy": [_cluster("Handler", "bcdb06e5-3f5b-4b0a-9a9a-2c8a4c3f1b98")],
                    "Sighting": [
                        {"type": "0", "date_sighting": "1795000100", "Organisation": sighting_org},
                        {"type": "1", "date_sighting": "1795000200", "Organisation": sighting_org},
                    ],
                    "Note": [{"uuid": "d0000004-0000-4000-8000-000000000001", "note": "seen twice"}],
                    "Opinion": [{"uuid": "d0000004-0000-4000-8000-000000000002", "opinion": "90"}],
                    "Relationship": [
                        {
                            "uuid": "d0000004-0000-4000-8000-000000000003",
                            "relationship_type": "related-to",
                            "related_object_uuid": "a0000004-0000-4000-8000-000000000002",
                        }
                    ],
                },
                {
                    "uuid": "a0000004-0000-4000-8000-000000000002",
                    "type": "domain",
                    "category": "Network activity",
                    "value": "meet.example",
                    "to_ids": False,
                    "timestamp": "1795000000",
                },
                {
                    "uuid": "a0000004-0000-4000-8000-000000000003",
                    "type": "vulnerability",
                    "category": "External analysis",
                    "value": "CVE-2023-4966",
                    "timestamp": "1795000000",
                },
            ],
            "Object": [
                {
                    "uuid": "b0000004-0000-4000-8000-000000000001",
                    "name": "file",
                    "meta-category": "file",
                    "timestamp": "1795000000",
                    "Attribute": [
                        {
                            "type": "filename",
                            "object_relation": "filename",
                            "value": "locker.exe",
                            "to_ids": True,
                        }
                    ],
                    "ObjectReference": [
                        {
                            "uuid": "c0000004-0000-4000-8000-000000000001",
                            "referenced_uuid": "a0000004-0000-4000-8000-000000000001",
                            "relationship_type": "connects-to",
                        }
                    ],
                }
            ],
            "EventReport": [{"uuid": "e0000004-0000-4000-8000-000000000001", "name": "r", "content": "x"}],
            "Note": [{"uuid": "d0000004-0000-4000-8000-000000000004", "note": "on the event"}],
        }
    }


_KINDS = {
    "report",
    "identity",
    "threat-actor",
    "indicator",
    "observed-data",
    "domain-name",
    "vulnerability",
    "relationship",
    "sighting",
    "opinion",
    "note",
}


def _levels(o: dict[str, Any]) -> tuple[int, int]:
    refs = o.get("object_marking_refs", [])
    tlp = max((TLP_ORDER.index(KNOWN_TLP[m]) for m in refs if m in KNOWN_TLP), default=-1)
    pap = max((PAP_ORDER.index(KNOWN_PAP[m]) for m in refs if m in KNOWN_PAP), default=-1)
    return tlp, pap


@pytest.mark.parametrize(
    ("tags", "floor"),
    [
        (["tlp:red"], ("red", None)),
        (["tlp:amber"], ("amber", None)),
        (["TLP:AMBER+STRICT", "PAP:AMBER"], ("amber+strict", "amber")),
        (["tlp:green", "PAP:RED"], ("green", "red")),
    ],
)
def test_every_object_of_a_marked_event_is_marked_at_least_as_the_event(
    tags: list[str], floor: tuple[str, str | None]
) -> None:
    converted = misp.misp_to_stix(_every_kind(tags))
    made = [o for o in converted.objects if o["type"] != "marking-definition"]
    assert {o["type"] for o in made} >= _KINDS, converted.skipped
    tlp_floor = TLP_ORDER.index(floor[0])  # type: ignore[arg-type]
    pap_floor = PAP_ORDER.index(floor[1]) if floor[1] else -1  # type: ignore[arg-type]
    for o in made:
        tlp, pap = _levels(o)
        assert tlp >= tlp_floor and pap >= pap_floor, (o["type"], o["id"], o.get("object_marking_refs"))
    informant = next(o for o in made if o.get("name") == INFORMANT)
    assert _levels(informant) == (tlp_floor, pap_floor)
    # What it uses is defined alongside, and all of it is valid STIX.
    defined = {o["id"] for o in converted.objects if o["type"] == "marking-definition"}
    assert {m for o in made for m in o.get("object_marking_refs", [])} <= defined
    options = ValidationOptions(version="2.1", strict=False)
    for obj in converted.objects:
        stix.check(obj)
        result = validate_instance(obj, options)
        assert result.is_valid, (obj["id"], [str(e) for e in result.errors])


def test_a_cluster_is_marked_as_the_strictest_of_what_names_it() -> None:
    # One GREEN event names the actor; a TLP:RED attribute names it too: the actor is RED, and so is
    # every relationship that names it, even from a GREEN attribute.
    rel_tag = {"name": 'misp-galaxy:threat-actor="Handler"'}
    event = {
        "Event": {
            "uuid": "0d6f3c1a-8b2e-4f5d-9a7c-1e3b5d7f9a2c",
            "info": "green event",
            "date": "2026-11-10",
            "timestamp": "1795000000",
            "Orgc": ORG,
            "Tag": [{"name": "tlp:green"}, rel_tag],
            "Attribute": [
                {"type": "domain", "value": "open.example", "to_ids": True, "Tag": [rel_tag]},
                {
                    "type": "domain",
                    "value": "secret.example",
                    "to_ids": True,
                    "Tag": [{"name": "tlp:red"}, {"name": "PAP:AMBER"}, rel_tag],
                },
            ],
        }
    }
    objects = misp.misp_to_stix(event).objects
    actor = next(o for o in objects if o["type"] == "threat-actor")
    assert actor["object_marking_refs"] == [TLP2_IDS["red"], *_pap("amber")]
    rels = [o for o in objects if o["type"] == "relationship"]
    assert len(rels) == 2 and all(r["object_marking_refs"] == actor["object_marking_refs"] for r in rels)
    open_one = next(o for o in objects if o.get("pattern") == "[domain-name:value = 'open.example']")
    assert open_one["object_marking_refs"] == [TLP2_IDS["green"]]  # naming a RED actor does not widen it
    report = next(o for o in objects if o["type"] == "report")
    assert report["object_marking_refs"] == [TLP2_IDS["green"]]


def _pap(level: str) -> list[str]:
    return [m for m, lv in KNOWN_PAP.items() if lv == level]


def test_a_red_events_cluster_is_stored_red_and_never_sent_to_a_peer(
    pair: tuple[LiveNode, LiveNode],
) -> None:
    a, b = pair
    wire = Wire()
    cid = create(a, title="green share", federate=True, sharing_group=[B], default_tlp="green")
    red = _every_kind(["tlp:red"])
    # The same organisation's GREEN event, edited in the same second: something does cross, and both
    # versions of the organisation's identity are stored, none refused.
    green = {
        "Event": {
            "uuid": "9f1c3a2e-8b4d-4c7e-9a1f-2d3e4f5a6b72",
            "info": "shareable",
            "date": "2026-11-10",
            "timestamp": "1795000000",
            "Orgc": ORG,
            "Tag": [{"name": "tlp:green"}],
            "Galaxy": [_cluster("LockBit", "7cdb06e5-3f5b-4b0a-9a9a-2c8a4c3f1b98")],
            "Attribute": [{"type": "ip-dst", "value": "198.51.100.9", "to_ids": True}],
        }
    }
    r = a.client(a.admin_token).post(f"/api/v1/intel/collections/{cid}/misp", json=[green, red])
    assert r.status_code == 200, r.text
    assert r.json()["refused"] == 0, r.json()
    deliver(wire, a, b)

    cluster_id = "threat-actor--acdb06e5-3f5b-4b0a-9a9a-2c8a4c3f1b98"
    here = latest(a, cid)
    assert here[cluster_id]["object_marking_refs"] == [TLP2_IDS["red"]]
    assert {r.stix_id: r.tlp for r in stored(a, cid)}[cluster_id] == "red"

    messages = opened(wire, a, b)
    sent = set(object_ids(messages, to=B))
    assert "threat-actor--7cdb06e5-3f5b-4b0a-9a9a-2c8a4c3f1b98" in sent  # GREEN went
    assert cluster_id not in sent
    for m in messages:  # not the informant's name or anything else of the RED event, in any field
        text = json.dumps(m.payload)
        assert INFORMANT not in text and SECRET not in text and "192.0.2.78" not in text
    red_ids = {o["id"] for o in misp.misp_to_stix(red).objects if o["type"] != "marking-definition"}
    red_ids.discard("identity--11111111-2222-4333-8444-555555555555")  # a GREEN version of it is shared
    assert red_ids.isdisjoint(sent)
    assert red_ids.isdisjoint({r.stix_id for r in stored(b, cid)})
    # The organisation's identity crossed only as the GREEN event's version.
    identities = [
        o for m in messages for o in m.payload.get("objects", []) if o["id"].startswith("identity--")
    ]
    assert identities and all(o["object_marking_refs"] == [TLP2_IDS["green"]] for o in identities)
    assert A in {row.source_peer for row in stored(b, cid)}
