"""The intel REST API: collections and their policy, grants, MISP import and export."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import LiveNode

FIXTURES = Path(__file__).parent / "fixtures"


def test_collections_policy_grants_and_misp(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    officer = node.client(node.user("olga", "officer"))
    body = {"title": "Ransomware", "alias": "ransom", "federate": True, "sharing_group": ["fr", "de"]}
    assert officer.post("/api/v1/intel/collections", json=body).status_code == 403
    r = admin.post("/api/v1/intel/collections", json=body)
    assert r.status_code == 201 and r.json()["default_tlp"] == "amber"
    assert admin.post("/api/v1/intel/collections", json=body).status_code == 409
    assert (
        admin.post("/api/v1/intel/collections", json={"title": "x", "alias": "Bad Alias"}).status_code == 422
    )
    r = admin.patch(
        "/api/v1/intel/collections/ransom/policy", json={"strict_recipient": "vn", "default_tlp": "red"}
    )
    assert r.status_code == 200 and (r.json()["strict_recipient"], r.json()["default_tlp"]) == ("vn", "red")
    assert (
        admin.patch("/api/v1/intel/collections/ransom/policy", json={"default_tlp": "pink"}).status_code
        == 422
    )

    assert officer.get("/api/v1/intel/collections").json() == []
    assert officer.get("/api/v1/intel/collections/ransom/misp").status_code == 404
    admin.put("/api/v1/intel/collections/ransom/grants/olga", json={"read": True, "write": False})
    assert [g["username"] for g in admin.get("/api/v1/intel/collections/ransom/grants").json()] == ["olga"]
    event = json.loads((FIXTURES / "misp_event_botnet.json").read_text())
    wallet = {"type": "btc", "category": "Financial fraud", "value": "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"}
    event["Event"]["Attribute"].append({**wallet, "uuid": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"})
    assert officer.post("/api/v1/intel/collections/ransom/misp", json=event).status_code == 403

    r = admin.post("/api/v1/intel/collections/ransom/misp", json=event)
    assert r.status_code == 200, r.text
    result = r.json()
    assert (
        result["refused"] == 0
        and result["stored"] > 10
        and any("btc has no STIX form" in s for s in result["skipped"])
    )
    again = admin.post("/api/v1/intel/collections/ransom/misp", json=event).json()
    assert (again["stored"], again["duplicates"]) == (0, result["stored"])  # idempotent re-import

    exported = officer.get("/api/v1/intel/collections/ransom/misp").json()
    assert exported["Event"]["uuid"] == event["Event"]["uuid"]
    assert {a["value"] for a in exported["Event"]["Attribute"]} >= {"203.0.113.45", "update-cdn.example"}
    one = officer.get(
        "/api/v1/intel/collections/ransom/misp",
        params={"id": "indicator--8a0e3c1b-6d2f-4b7a-9e5c-1f3a5b7c9d0e"},
    ).json()
    assert [a["value"] for a in one["Event"]["Attribute"]] == ["203.0.113.45"]
    # A selection without a report is one stable event, so that MISP updates it instead of copying it.
    again_one = officer.get(
        "/api/v1/intel/collections/ransom/misp",
        params={"id": "indicator--8a0e3c1b-6d2f-4b7a-9e5c-1f3a5b7c9d0e"},
    ).json()
    assert one["Event"]["uuid"] == again_one["Event"]["uuid"] != exported["Event"]["uuid"]
    # Bounded like a TAXII envelope, and refused whole with a reason when it is not JSON.
    big = b'{"Event": {"info": "' + b"x" * (16 * 1024 * 1024) + b'"}}'
    headers = {"Content-Type": "application/json"}
    r = admin.post("/api/v1/intel/collections/ransom/misp", content=big, headers=headers)
    assert r.status_code == 413
    r = admin.post("/api/v1/intel/collections/ransom/misp", content=b"[" * 100_000, headers=headers)
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    r = admin.post("/api/v1/intel/collections/ransom/misp", json={"Event": {"info": "x", "Tag": "tlp:red"}})
    assert r.status_code == 422 and "Tag is not a list" in r.json()["errors"][0]["message"]

    admin.put("/api/v1/intel/collections/ransom/grants/olga", json={"read": False, "write": False})
    assert admin.get("/api/v1/intel/collections/ransom/grants").json() == []
    assert officer.get("/api/v1/intel/collections/ransom/misp").status_code == 404
    actions = {i["action"] for i in admin.get("/api/v1/audit", params={"action": "intel."}).json()["items"]}
    assert {
        "intel.collection.create",
        "intel.collection.policy",
        "intel.collection.grant",
        "intel.objects.add",
    } <= actions


TAXII = "application/taxii+json;version=2.1"


def test_a_writer_who_may_not_read_learns_nothing_of_what_the_collection_holds(node: LiveNode) -> None:
    # SCO ids follow from their values: were a duplicate answered with the stored copy's version, a
    # reporter allowed only to add could test whether an address is known here, and since when.
    admin = node.client(node.user("root", "admin"))
    cid = admin.post("/api/v1/intel/collections", json={"title": "Reports", "alias": "reports"}).json()["id"]
    reader, writer = (node.client(node.user(n, "officer")) for n in ("ria", "wes"))
    admin.put("/api/v1/intel/collections/reports/grants/ria", json={"read": True, "write": True})
    admin.put("/api/v1/intel/collections/reports/grants/wes", json={"read": False, "write": True})
    url = f"/taxii2/intel/collections/{cid}/objects/"
    headers = {"Content-Type": TAXII, "Accept": TAXII}
    address = {
        "type": "ipv4-addr",
        "spec_version": "2.1",
        "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd",
        "value": "198.51.100.3",
    }
    stored = reader.post(url, json={"objects": [address]}, headers=headers).json()["successes"][0]["version"]
    assert writer.get(url, headers={"Accept": TAXII}).status_code == 403

    status = writer.post(url, json={"objects": [address]}, headers=headers).json()
    (success,) = status["successes"]
    assert success["version"] == status["request_timestamp"] != stored  # as for an address never seen
    again = reader.post(url, json={"objects": [address]}, headers=headers).json()
    assert again["successes"][0]["version"] == stored  # a reader is told the copy it can read
    versions = reader.get(f"{url}{address['id']}/versions/", headers={"Accept": TAXII}).json()["versions"]
    assert versions == [stored]  # the blind duplicate stored nothing

    event = json.loads((FIXTURES / "misp_event_botnet.json").read_text())
    first = reader.post("/api/v1/intel/collections/reports/misp", json=event).json()
    assert first["stored"] > 10
    blind = writer.post("/api/v1/intel/collections/reports/misp", json=event).json()
    assert (blind["stored"], blind["duplicates"]) == (first["stored"], 0)
    seen = reader.post("/api/v1/intel/collections/reports/misp", json=event).json()
    assert (seen["stored"], seen["duplicates"]) == (0, first["stored"])
