"""Conformance with the letter of OASIS TAXII Version 2.1 where a client relies on it: the timestamp
format of what the server reports, status entries, the DELETE permission table, content negotiation and
version filters written at STIX's full precision. (Refused envelopes: test_taxii_hostile.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx

from conftest import LiveNode
from cyberpact.intel import service, store
from cyberpact.kit.actor import SYSTEM
from intel.helpers import TAXII, indicator

H = {"Accept": TAXII, "Content-Type": TAXII}
# TAXII 2.1 section 2: unlike STIX's, a TAXII timestamp MUST have microsecond precision.
TAXII_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def _collection(node: LiveNode) -> tuple[httpx.Client, str]:
    admin = node.client(node.user("root", "admin"))
    r = admin.post("/api/v1/intel/collections", json={"title": "Conformance"})
    assert r.status_code == 201, r.text
    return admin, r.json()["id"]


def test_date_added_and_request_timestamp_keep_six_fraction_digits(node: LiveNode) -> None:
    admin, cid = _collection(node)
    # Added at a whole millisecond: the one case where a STIX formatter shortens the fraction.
    added = datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    obj = indicator("192.0.2.50")
    with node.db.transaction() as session:
        row = service.get_collection(session, cid)
        result = store.add_objects(session, SYSTEM, row, [obj, "not an object"], now=added)
        status_id = str(result.status.id)
    expected = "2024-03-01T12:00:00.250000Z"

    base = f"/taxii2/intel/collections/{cid}"
    for path in ("/objects/", "/manifest/", f"/objects/{obj['id']}/", f"/objects/{obj['id']}/versions/"):
        r = admin.get(base + path, headers=H)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["X-TAXII-Date-Added-First"] == expected, path
        assert r.headers["X-TAXII-Date-Added-Last"] == expected, path
    (record,) = admin.get(base + "/manifest/", headers=H).json()["objects"]
    assert record["date_added"] == expected
    # The manifest's version is the object's STIX modified, as the object states it.
    assert record["version"] == obj["modified"]

    status = admin.get(f"/taxii2/intel/status/{status_id}/", headers=H).json()
    assert status["request_timestamp"] == expected
    # A refused entry with no version of its own is named by the request's time, written the same way.
    assert [f["version"] for f in status["failures"]] == [expected]

    # Live requests too: whatever the clock says, every TAXII timestamp carries six digits.
    posted = admin.post(base + "/objects/", json={"objects": [indicator("192.0.2.51")]}, headers=H).json()
    assert TAXII_TIMESTAMP.fullmatch(posted["request_timestamp"]), posted["request_timestamp"]
    listed = admin.get(base + "/manifest/", headers=H)
    for value in [m["date_added"] for m in listed.json()["objects"]] + [
        listed.headers["X-TAXII-Date-Added-First"],
        listed.headers["X-TAXII-Date-Added-Last"],
    ]:
        assert TAXII_TIMESTAMP.fullmatch(value), value


def test_every_status_entry_names_an_id(node: LiveNode) -> None:
    admin, cid = _collection(node)
    good = indicator("192.0.2.60")
    no_id = {k: v for k, v in indicator("192.0.2.61").items() if k != "id"}
    r = admin.post(
        f"/taxii2/intel/collections/{cid}/objects/",
        json={"objects": [good, "oops", no_id, 42]},
        headers=H,
    )
    assert r.status_code == 202, r.text
    for status in (r.json(), admin.get(f"/taxii2/intel/status/{r.json()['id']}/", headers=H).json()):
        assert (status["success_count"], status["failure_count"]) == (1, 3)
        # id and version are required in every status-details entry (TAXII 2.1 section 4.3.1).
        for entry in status["successes"] + status["failures"]:
            assert isinstance(entry["id"], str) and entry["id"], entry
            assert isinstance(entry["version"], str) and entry["version"], entry
        assert status["successes"] == [{"id": good["id"], "version": good["modified"]}]


def test_delete_needs_both_read_and_write(node: LiveNode) -> None:
    admin, cid = _collection(node)
    obj = indicator("192.0.2.70")
    posted = admin.post(f"/taxii2/intel/collections/{cid}/objects/", json={"objects": [obj]}, headers=H)
    assert posted.status_code == 202, posted.text
    tokens = {}
    for name, read, write in (("writer", False, True), ("reader", True, False), ("both", True, True)):
        tokens[name] = node.user(name, "officer")
        r = admin.put(f"/api/v1/intel/collections/{cid}/grants/{name}", json={"read": read, "write": write})
        assert r.status_code == 200, r.text
    url = f"/taxii2/intel/collections/{cid}/objects/{obj['id']}/"

    # TAXII 2.1 section 5.7: can_read false and can_write true MUST be answered 403, and so must the reverse.
    for name in ("writer", "reader"):
        r = node.client(tokens[name]).delete(url, headers=H)
        assert r.status_code == 403, (name, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/taxii+json")
    assert admin.get(url, headers=H).json()["objects"] == [obj]

    assert node.client(tokens["both"]).delete(url, headers=H).status_code == 200
    assert admin.get(url, headers=H).status_code == 404


def test_a_quoted_version_parameter_is_the_same_media_type(node: LiveNode) -> None:
    admin, cid = _collection(node)
    url = f"/taxii2/intel/collections/{cid}/objects/"
    body = json.dumps({"objects": [indicator("192.0.2.80")]}).encode()
    quoted = 'application/taxii+json; version="2.1"'
    # RFC 7231 section 3.1.1.1: a quoted parameter value and the same token are equivalent, and TAXII 2.1
    # section 3.1 forbids 406 and 415 for the media types an endpoint defines.
    r = admin.post(url, content=body, headers={"Accept": quoted, "Content-Type": quoted})
    assert r.status_code == 202, r.text
    r = admin.get(url, headers={"Accept": quoted})
    assert r.status_code == 200 and len(r.json()["objects"]) == 1
    other = 'application/taxii+json;version="2.0"'
    assert admin.get(url, headers={"Accept": other}).status_code == 406
    assert admin.post(url, content=body, headers={"Accept": TAXII, "Content-Type": other}).status_code == 415


def test_a_version_filter_may_carry_more_than_six_fraction_digits(node: LiveNode) -> None:
    admin, cid = _collection(node)
    first = indicator("192.0.2.90", modified="2024-05-01T10:00:00.000Z")
    second = dict(first, modified="2024-06-01T00:00:00.123456Z", description="still active")
    base = f"/taxii2/intel/collections/{cid}"
    assert admin.post(base + "/objects/", json={"objects": [first, second]}, headers=H).is_success

    def modified(path: str, version: str) -> list[str]:
        r = admin.get(base + path, params={"match[version]": version}, headers=H)
        assert r.status_code == 200, (version, r.text)
        return [o["modified"] for o in r.json().get("objects", [])]

    # STIX 2.1 timestamps may have any number of fraction digits (TAXII 2.1 section 3.4.1 names those rules).
    for path in ("/objects/", f"/objects/{first['id']}/"):
        assert modified(path, "2024-06-01T00:00:00.123456000Z") == [second["modified"]]
        assert modified(path, "2024-05-01T10:00:00.000000000Z") == [first["modified"]]
        # A version finer than a microsecond is none this node stores: nothing matches it, which is no error.
        assert modified(path, "2024-06-01T00:00:00.1234561Z") == []
        assert modified(path, "2024-06-01T00:00:00.1234561Z,first") == [first["modified"]]
    finer = {"match[version]": "2024-06-01T00:00:00.1234561Z"}
    r = admin.delete(f"{base}/objects/{first['id']}/", params=finer, headers=H)
    assert r.status_code == 404, r.text  # no such version: nothing deleted
    assert modified(f"/objects/{first['id']}/", "all") == [first["modified"], second["modified"]]
    # Still malformed: not a timestamp at all.
    r = admin.get(base + "/objects/", params={"match[version]": "2024-06-01T00:00:00.Z"}, headers=H)
    assert r.status_code == 400
