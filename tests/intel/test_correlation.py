"""Correlation: the same observable from two or more States, via the API, within what the reader may read."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from sqlalchemy import select

from conftest import LiveNode
from cyberpact.intel.models import IntelCorrelation
from intel.helpers import TAXII, identity, indicator

H = {"Accept": TAXII, "Content-Type": TAXII}
VN = "identity--0a0a0a0a-1111-4111-8111-000000000001"
FR = "identity--0a0a0a0a-1111-4111-8111-000000000002"
BR = "identity--0a0a0a0a-1111-4111-8111-000000000003"


def test_correlations_across_states_and_collections(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    a = admin.post("/api/v1/intel/collections", json={"title": "A"}).json()["id"]
    b = admin.post("/api/v1/intel/collections", json={"title": "B"}).json()["id"]
    for ref, code in ((VN, "vn"), (FR, "FR")):
        r = admin.put(f"/api/v1/intel/identities/{ref}", json={"state": code, "name": f"CERT {code}"})
        assert r.status_code == 200 and r.json()["state"] == code.upper()

    shared_ip = "203.0.113.45"

    def post(coll: str, objs: list[dict[str, object]]) -> None:
        r = admin.post(f"/taxii2/intel/collections/{coll}/objects/", json={"objects": objs}, headers=H)
        assert r.json()["failure_count"] == 0, r.json()

    post(a, [identity(VN), indicator(shared_ip, by=VN, modified="2024-05-01T12:00:00.000Z")])
    post(b, [identity(FR), indicator(shared_ip, by=FR, modified="2024-05-03T00:00:00.000Z")])
    sco = {
        "type": "domain-name",
        "spec_version": "2.1",
        "id": f"domain-name--{uuid.uuid4()}",
        "value": "Update-CDN.example",
        "created_by_ref": FR,
    }
    post(b, [sco, indicator("192.0.2.1", by=FR)])
    # BR is not mapped yet: its report counts once the mapping exists.
    post(a, [identity(BR), dict(indicator("x", by=BR), pattern="[domain-name:value = 'update-cdn.example']")])

    page = admin.get("/api/v1/intel/correlations").json()
    assert [(c["kind"], c["value"]) for c in page["items"]] == [("ipv4-addr:value", shared_ip)]
    states = page["items"][0]["states"]
    assert [(s["state"], s["reports"]) for s in states] == [("FR", 1), ("VN", 1)]
    assert page["items"][0]["first_seen"].startswith("2024-05-01T12:00")
    assert page["items"][0]["last_seen"].startswith("2024-05-03")

    assert admin.put(f"/api/v1/intel/identities/{BR}", json={"state": "BR"}).status_code == 200
    page = admin.get("/api/v1/intel/correlations").json()
    found = {(c["kind"], c["value"]): [s["state"] for s in c["states"]] for c in page["items"]}
    assert found == {
        ("ipv4-addr:value", shared_ip): ["FR", "VN"],
        ("domain-name:value", "update-cdn.example"): ["BR", "FR"],
    }

    one = admin.get(
        "/api/v1/intel/correlations", params={"kind": "ipv4-addr:value", "value": shared_ip}
    ).json()
    assert len(one["items"]) == 1
    assert (
        admin.get("/api/v1/intel/correlations", params={"state": "BR"}).json()["items"][0]["kind"]
        == "domain-name:value"
    )
    assert admin.get("/api/v1/intel/correlations", params={"min_states": 3}).json()["items"] == []
    paged = admin.get("/api/v1/intel/correlations", params={"limit": 1}).json()
    assert len(paged["items"]) == 1 and paged["next"]
    rest = admin.get("/api/v1/intel/correlations", params={"limit": 1, "cursor": paged["next"]}).json()
    assert len(rest["items"]) == 1 and rest["items"][0] != paged["items"][0] and rest["next"] is None
    assert admin.get("/api/v1/intel/correlations", params={"cursor": "forged"}).status_code == 422

    # A reader of A alone sees reports from A only: no observable has two States there.
    node.user("ana", "officer")
    assert admin.put(f"/api/v1/intel/collections/{a}/grants/ana", json={"read": True}).status_code == 200
    ana = node.client(node.user("ana2", "officer"))
    assert ana.get("/api/v1/intel/correlations").json()["items"] == []
    admin.put(f"/api/v1/intel/collections/{b}/grants/ana2", json={"read": True})
    admin.put(f"/api/v1/intel/collections/{a}/grants/ana2", json={"read": True})
    assert len(ana.get("/api/v1/intel/correlations").json()["items"]) == 2
    assert ana.put(f"/api/v1/intel/identities/{BR}", json={"state": "AR"}).status_code == 403


def test_deleted_and_revoked_reports_are_taken_back(node: LiveNode) -> None:
    """A correlation stands only on reports that still stand: deleting one State's indicator, or its
    creator revoking it, takes that State out of the correlation, and the correlation goes with the last
    State but one."""
    admin = node.client(node.user("root", "admin"))
    coll = admin.post("/api/v1/intel/collections", json={"title": "A"}).json()["id"]
    for ref, code in ((VN, "VN"), (FR, "FR"), (BR, "BR")):
        assert admin.put(f"/api/v1/intel/identities/{ref}", json={"state": code}).status_code == 200
    objects = f"/taxii2/intel/collections/{coll}/objects/"
    ip = "198.51.100.7"
    vn = indicator(ip, by=VN)
    fr_v1 = indicator(ip, by=FR)
    fr_v2 = dict(fr_v1, modified="2024-06-01T00:00:00.000Z", name="still active")
    br = indicator(ip, by=BR)
    r = admin.post(objects, json={"objects": [vn, fr_v1, fr_v2, br]}, headers=H)
    assert r.json()["success_count"] == 4

    def states() -> dict[str, int]:
        query = {"kind": "ipv4-addr:value", "value": ip}
        items = admin.get("/api/v1/intel/correlations", params=query).json()["items"]
        assert len(items) <= 1
        return {s["state"]: s["reports"] for s in items[0]["states"]} if items else {}

    assert states() == {"BR": 1, "FR": 2, "VN": 1}
    # One version of FR's indicator deleted: FR still reports it through the other.
    r = admin.delete(f"{objects}{fr_v1['id']}/", params={"match[version]": fr_v1["modified"]}, headers=H)
    assert r.status_code == 200
    assert states() == {"BR": 1, "FR": 1, "VN": 1}
    # VN deletes its indicator altogether.
    assert admin.delete(f"{objects}{vn['id']}/", headers=H).status_code == 200
    assert states() == {"BR": 1, "FR": 1}
    # FR revokes its own: a new version that says so. The revoking version reports nothing either.
    revoked = dict(fr_v2, modified="2024-07-01T00:00:00.000Z", revoked=True)
    assert admin.post(objects, json={"objects": [revoked]}, headers=H).json()["success_count"] == 1
    assert states() == {}
    # Deleting what was revoked takes nothing back twice.
    assert admin.delete(f"{objects}{fr_v1['id']}/", headers=H).status_code == 200
    assert admin.post(objects, json={"objects": [indicator(ip, by=VN)]}, headers=H).status_code == 202
    assert states() == {"BR": 1, "VN": 1}


def _sighting(of: str, by: str, seen: str, **extra: object) -> dict[str, object]:
    return {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{uuid.uuid4()}",
        "created": seen,
        "modified": seen,
        "first_seen": seen,
        "last_seen": seen,
        "sighting_of_ref": of,
        "created_by_ref": by,
        **extra,
    }


def _three_states(
    node: LiveNode, title: str
) -> tuple[httpx.Client, str, Callable[[list[dict[str, object]]], None]]:
    """An administrator, a collection's objects URL, and a poster of envelopes that must all land; VN, FR
    and BR mapped to their States."""
    admin = node.client(node.user("root", "admin"))
    coll = admin.post("/api/v1/intel/collections", json={"title": title}).json()["id"]
    objects = f"/taxii2/intel/collections/{coll}/objects/"
    for ref, code in ((VN, "VN"), (FR, "FR"), (BR, "BR")):
        assert admin.put(f"/api/v1/intel/identities/{ref}", json={"state": code}).status_code == 200

    def post(objs: list[dict[str, object]]) -> None:
        r = admin.post(objects, json={"objects": objs}, headers=H)
        assert r.json()["failure_count"] == 0, r.json()

    return admin, objects, post


def test_a_sighting_is_its_states_report_of_what_it_sighted(node: LiveNode) -> None:
    admin, objects, post = _three_states(node, "shared")

    def states() -> dict[str, list[str]]:
        items = admin.get("/api/v1/intel/correlations").json()["items"]
        return {c["value"]: [s["state"] for s in c["states"]] for c in items}

    vn = indicator("203.0.113.45", by=VN)
    post([identity(VN), vn])
    # France saw Viet Nam's indicator: the address is now reported by two States, seen when France saw it.
    seen_fr = _sighting(vn["id"], FR, "2024-06-02T08:00:00.000Z")
    post([identity(FR), seen_fr])
    assert states() == {"203.0.113.45": ["FR", "VN"]}
    one = admin.get("/api/v1/intel/correlations").json()["items"][0]
    assert one["last_seen"].startswith("2024-06-02T08:00")
    # An indicator and its sighting in one envelope count as well; a sighting of what the collection does
    # not hold reports nothing.
    br = indicator("198.51.100.7", by=BR)
    post([identity(BR), br, _sighting(br["id"], VN, "2024-06-03T00:00:00.000Z")])
    post([_sighting(f"indicator--{uuid.uuid4()}", FR, "2024-06-04T00:00:00.000Z")])
    assert states() == {"203.0.113.45": ["FR", "VN"], "198.51.100.7": ["BR", "VN"]}

    # Viet Nam's indicator changes its address; France's sighting still stands for what it saw, and
    # revoking it takes back exactly that, not the new address.
    post([dict(vn, modified="2024-06-10T00:00:00.000Z", pattern="[ipv4-addr:value = '192.0.2.99']")])
    seen_br = _sighting(vn["id"], BR, "2024-06-11T00:00:00.000Z")
    post([seen_br])  # Brazil saw the new address
    assert states()["192.0.2.99"] == ["BR", "VN"]
    revoked = dict(seen_fr, modified="2024-06-12T00:00:00.000Z", revoked=True)
    post([revoked])
    found = states()
    assert "203.0.113.45" not in found and found["192.0.2.99"] == ["BR", "VN"]
    # Deleting Brazil's sighting takes its report back too.
    assert admin.delete(f"{objects}{seen_br['id']}/", headers=H).status_code == 200
    assert "192.0.2.99" not in states()


def test_a_sighting_that_arrives_before_what_it_sighted_counts_once_that_arrives(node: LiveNode) -> None:
    """Peers and importers send in no promised order: France's sighting may come before the indicator."""
    admin, objects, post = _three_states(node, "out of order")

    def reports() -> dict[str, list[tuple[str, int]]]:
        items = admin.get("/api/v1/intel/correlations").json()["items"]
        return {c["value"]: [(s["state"], s["reports"]) for s in c["states"]] for c in items}

    vn = indicator("203.0.113.45", by=VN)
    br = indicator("198.51.100.7", by=BR)
    seen_fr = _sighting(vn["id"], FR, "2024-06-02T08:00:00.000Z")
    withdrawn = _sighting(br["id"], FR, "2024-06-02T09:00:00.000Z")
    deleted = _sighting(br["id"], VN, "2024-06-02T10:00:00.000Z")
    # France saw Brazil's indicator forty times before it arrived: all forty wait, and all count.
    many = [_sighting(br["id"], FR, f"2024-06-01T{h:02d}:00:00.000Z") for h in range(20) for _ in (1, 2)]
    post([identity(FR), seen_fr, withdrawn, deleted, *many])
    # Taken back before what they sighted arrives: they must not count when it does.
    post([dict(withdrawn, modified="2024-06-03T00:00:00.000Z", revoked=True)])
    assert admin.delete(f"{objects}{deleted['id']}/", headers=H).status_code == 200
    assert reports() == {}

    post([identity(VN), vn, identity(BR), br])
    assert reports() == {"203.0.113.45": [("FR", 1), ("VN", 1)], "198.51.100.7": [("BR", 1), ("FR", 40)]}
    one = admin.get("/api/v1/intel/correlations", params={"value": "203.0.113.45", "kind": "ipv4-addr:value"})
    assert one.json()["items"][0]["last_seen"].startswith("2024-06-02T08:00")
    # It stopped waiting: a new version of the indicator does not count France's sighting again.
    post([dict(vn, modified="2024-06-20T00:00:00.000Z", pattern="[ipv4-addr:value = '192.0.2.99']")])
    assert reports()["203.0.113.45"] == [("FR", 1), ("VN", 1)]
    # And revoking it takes back what it was given when the indicator arrived: Viet Nam alone is no
    # correlation.
    post([dict(seen_fr, modified="2024-06-21T00:00:00.000Z", revoked=True)])
    assert reports() == {"198.51.100.7": [("BR", 1), ("FR", 40)]}
    # Only what two or more States reported keeps a correlation row; the rest went or never came.
    with node.db.transaction(read_only=True) as s:
        assert s.scalars(select(IntelCorrelation.value)).all() == ["198.51.100.7"]
