"""Conformance: the OASIS taxii2-client drives the server as a real client; what comes back validates
with the OASIS stix2-validator."""

from __future__ import annotations

import uuid

import pytest
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Collection, Server, as_pages

from conftest import LiveNode
from cyberpact.intel.markings import tlp_definition
from intel.helpers import identity, indicator


def _setup(node: LiveNode) -> tuple[str, str, str]:
    admin = node.client(node.user("root", "admin"))
    analyst_token = node.user("ana", "officer")
    r = admin.post("/api/v1/intel/collections", json={"title": "Botnet C2", "alias": "c2"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = admin.put(f"/api/v1/intel/collections/{cid}/grants/ana", json={"read": True, "write": True})
    assert r.status_code == 200, r.text
    return cid, analyst_token, "ana"


def test_taxii2_client_full_cycle(node: LiveNode) -> None:
    cid, token, user = _setup(node)
    # taxii2-client speaks HTTP Basic: the API token is the password.
    server = Server(f"{node.url}/taxii2/", user=user, password=token)
    assert server.title.startswith("cyberpact")
    root = server.default
    assert root is not None and root.versions == ["application/taxii+json;version=2.1"]
    assert [c.id for c in root.collections] == [cid]
    coll = root.collections[0]
    assert coll.can_read and coll.can_write and coll.alias == "c2"

    objects = [tlp_definition("green"), identity()]
    objects += [indicator(f"198.51.100.{i}") for i in range(1, 26)]
    status = coll.add_objects({"objects": objects}, wait_for_completion=True, poll_interval=0.1)
    assert status.status == "complete"
    assert (status.total_count, status.success_count, status.failure_count) == (27, 27, 0)
    again = Status_of(coll, status.id)
    assert again["success_count"] == 27

    # Every page, small pages: nothing skipped, nothing repeated, in date_added order.
    seen: list[str] = []
    for envelope in as_pages(coll.get_objects, per_request=4):
        seen.extend(o["id"] for o in envelope.get("objects", []))
    assert len(seen) == 27 and set(seen) == {o["id"] for o in objects}

    options = ValidationOptions(version="2.1", strict=False)
    for envelope in as_pages(coll.get_objects, per_request=50):
        for obj in envelope["objects"]:
            result = validate_instance(obj, options)
            assert result.is_valid, (obj["id"], [str(e) for e in result.errors])

    manifest = coll.get_manifest(type="indicator")
    assert len(manifest["objects"]) == 25
    assert all(m["media_type"] == "application/stix+json;version=2.1" for m in manifest["objects"])

    # A new version: the default listing shows only the latest, versions lists both.
    first = objects[2]
    newer = dict(first, modified="2024-06-01T00:00:00.000Z", description="still active")
    coll.add_objects({"objects": [newer]}, wait_for_completion=True, poll_interval=0.1)
    got = coll.get_object(first["id"])
    assert [o["modified"] for o in got["objects"]] == ["2024-06-01T00:00:00.000Z"]
    allv = coll.get_object(first["id"], version="all")
    assert len(allv["objects"]) == 2
    versions = coll.object_versions(first["id"])
    assert versions["versions"] == ["2024-05-01T10:00:00.000Z", "2024-06-01T00:00:00.000Z"]
    one = coll.get_objects(id=first["id"], version="first")
    assert [o["modified"] for o in one["objects"]] == ["2024-05-01T10:00:00.000Z"]

    # Delete one version, then the whole object.
    coll.delete_object(first["id"], version="2024-06-01T00:00:00.000Z")
    assert [o["modified"] for o in coll.get_object(first["id"])["objects"]] == ["2024-05-01T10:00:00.000Z"]
    coll.delete_object(first["id"])
    with pytest.raises(Exception, match="404"):
        coll.get_object(first["id"])
    assert len(coll.get_objects(type="indicator", limit=1000)["objects"]) == 24


def Status_of(coll: Collection, status_id: str) -> dict[str, object]:
    root_url = coll.url.split("collections/")[0]
    return coll._conn.get(f"{root_url}status/{status_id}/")  # type: ignore[no-any-return]


def test_bearer_and_filters(node: LiveNode) -> None:
    cid, token, _ = _setup(node)
    c = node.client(token)
    headers = {
        "Accept": "application/taxii+json;version=2.1",
        "Content-Type": "application/taxii+json;version=2.1",
    }
    objs = [indicator(f"203.0.113.{i}") for i in range(5)]
    r = c.post(f"/taxii2/intel/collections/{cid}/objects/", json={"objects": objs}, headers=headers)
    assert r.status_code == 202 and r.headers["content-type"].startswith("application/taxii+json")
    body = c.get("/taxii2/intel/collections/c2/objects/", headers=headers)  # alias stands for the id
    assert body.status_code == 200
    first = body.headers["X-TAXII-Date-Added-First"]
    last = body.headers["X-TAXII-Date-Added-Last"]
    assert first < last
    after = c.get(f"/taxii2/intel/collections/{cid}/objects/", params={"added_after": first}, headers=headers)
    assert len(after.json()["objects"]) == 4
    none = c.get(f"/taxii2/intel/collections/{cid}/objects/", params={"added_after": last}, headers=headers)
    assert none.json() == {"more": False}
    ids = ",".join(o["id"] for o in objs[:2])
    two = c.get(f"/taxii2/intel/collections/{cid}/objects/", params={"match[id]": ids}, headers=headers)
    assert {o["id"] for o in two.json()["objects"]} == {o["id"] for o in objs[:2]}
    sv = c.get(
        f"/taxii2/intel/collections/{cid}/objects/", params={"match[spec_version]": "2.0"}, headers=headers
    )
    assert sv.json() == {"more": False}
    # The date-added headers bound what each kind of listing returned, not only the objects list.
    base = f"/taxii2/intel/collections/{cid}"
    one_id = objs[2]["id"]
    for path in ("/manifest/", f"/objects/{one_id}/", f"/objects/{one_id}/versions/"):
        listed = c.get(base + path, headers=headers)
        assert listed.status_code == 200, (path, listed.text)
        low, high = listed.headers["X-TAXII-Date-Added-First"], listed.headers["X-TAXII-Date-Added-Last"]
        assert first <= low <= high <= last, path
        if path != "/manifest/":
            assert low == high  # one object, one version
    manifest = c.get(base + "/manifest/", headers=headers).json()["objects"]
    assert (manifest[0]["date_added"], manifest[-1]["date_added"]) == (first, last)
    missing = c.get(f"/taxii2/intel/collections/{cid}/objects/indicator--{uuid.uuid4()}/", headers=headers)
    assert missing.status_code == 404 and missing.json()["http_status"] == "404"
