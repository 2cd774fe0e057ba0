"""Hostile and wrong input: each a clear 4xx in the TAXII error format, and nothing stored."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
from sqlalchemy import func, select

from conftest import LiveNode
from cyberpact.intel.models import IntelObject, IntelStatus
from cyberpact.intel.taxii import MAX_CONTENT_LENGTH
from intel.helpers import TAXII, indicator

H = {"Accept": TAXII, "Content-Type": TAXII}


def _count(node: LiveNode) -> tuple[int, int]:
    with node.db.transaction(read_only=True) as s:
        return s.scalar(select(func.count()).select_from(IntelObject)) or 0, s.scalar(
            select(func.count()).select_from(IntelStatus)
        ) or 0


def _setup(node: LiveNode) -> tuple[httpx.Client, str, str]:
    admin = node.client(node.user("root", "admin"))
    a = admin.post("/api/v1/intel/collections", json={"title": "A"}).json()["id"]
    b = admin.post("/api/v1/intel/collections", json={"title": "B"}).json()["id"]
    return admin, a, b


def _error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/taxii+json")
    body: dict[str, object] = r.json()
    assert body["http_status"] == str(status) and body["title"] and body["description"]
    return body


def test_malformed_envelopes_and_media_types(node: LiveNode) -> None:
    admin, a, _ = _setup(node)
    url = f"/taxii2/intel/collections/{a}/objects/"
    before = _count(node)
    # A body that is not an envelope is "a malformed body, or other unprocessable content": 422 (TAXII 2.1
    # section 5.5), where 400 would tell the client that the request itself was not understood. An empty
    # objects list is one too: TAXII has no empty lists (section 2).
    _error(admin.post(url, content=b"{not json", headers=H), 422)
    _error(admin.post(url, content=b"[]", headers=H), 422)
    _error(admin.post(url, content=b'{"objects": []}', headers=H), 422)
    _error(admin.post(url, content=b'{"objects": {"a": 1}}', headers=H), 422)
    _error(
        admin.post(url, content=b'{"objects": [{"type": "indicator", "confidence": NaN}]}', headers=H), 422
    )
    _error(admin.post(url, content=b"[" * 100_000 + b"]" * 100_000, headers=H), 422)
    body = json.dumps({"objects": [indicator("192.0.2.1")]}).encode()
    _error(admin.post(url, content=body, headers={**H, "Content-Type": "application/json"}), 415)
    _error(
        admin.post(url, content=body, headers={**H, "Content-Type": "application/taxii+json;version=2.0"}),
        415,
    )
    _error(admin.post(url, content=body, headers={**H, "Accept": "application/json"}), 406)
    _error(admin.get(url, headers={"Accept": "application/taxii+json;version=2.0"}), 406)
    _error(admin.get(f"/taxii2/intel/collections/{a}/", headers={"Accept": "text/html"}), 406)
    big = b'{"objects": [' + b'{"type": "note", "content": "' + b"x" * (MAX_CONTENT_LENGTH + 10) + b'"}]}'
    _error(admin.post(url, content=big, headers=H), 413)
    # The same body streamed without a Content-Length is cut off at the limit all the same.
    chunks = (big[i : i + (1 << 20)] for i in range(0, len(big), 1 << 20))
    _error(admin.post(url, content=chunks, headers=H), 413)
    assert _count(node) == before


def test_invalid_objects_are_refused_one_by_one(node: LiveNode) -> None:
    admin, a, _ = _setup(node)
    good = indicator("192.0.2.10")
    bad_id = dict(indicator("192.0.2.11"), id="indicator--not-a-uuid")
    bad_time = dict(indicator("192.0.2.12"), modified="2024-02-30T00:00:00Z")
    bad_pattern = dict(indicator("192.0.2.13"), pattern="[ipv4-addr:value = ")
    r = admin.post(
        f"/taxii2/intel/collections/{a}/objects/",
        json={"objects": [bad_id, good, bad_time, "oops", bad_pattern]},
        headers=H,
    )
    assert r.status_code == 202
    status = r.json()
    assert (status["total_count"], status["success_count"], status["failure_count"]) == (5, 1, 4)
    reasons = {f.get("id"): f["message"] for f in status["failures"]}
    assert "id" in reasons["indicator--not-a-uuid"]
    assert "modified" in reasons[bad_time["id"]]
    assert "pattern" in reasons[bad_pattern["id"]]
    assert any("not a JSON object" in f["message"] for f in status["failures"])
    # Every entry names the id and version the object claimed (TAXII 2.1 section 4.3.1), even an unreadable
    # one: that has a stand-in id, and the request's time for its version.
    versions = {f["id"]: f["version"] for f in status["failures"]}
    assert versions[bad_time["id"]] == "2024-02-30T00:00:00Z"
    assert versions["indicator--not-a-uuid"] == versions[bad_pattern["id"]] == good["modified"]
    assert versions["(no id)"] == status["request_timestamp"]
    stored = admin.get(f"/taxii2/intel/collections/{a}/objects/", headers=H).json()["objects"]
    assert [o["id"] for o in stored] == [good["id"]]
    # The same id and version with different content: refused, the stored object unchanged.
    changed = dict(good, name="something else")
    r = admin.post(f"/taxii2/intel/collections/{a}/objects/", json={"objects": [changed, good]}, headers=H)
    assert (r.json()["success_count"], r.json()["failure_count"]) == (1, 1)
    assert "immutable" in r.json()["failures"][0]["message"]
    assert admin.get(f"/taxii2/intel/collections/{a}/objects/", headers=H).json()["objects"] == [good]


def test_forged_and_foreign_next_tokens(node: LiveNode) -> None:
    admin, a, b = _setup(node)
    for coll in (a, b):
        objs = [indicator(f"198.18.0.{i}") for i in range(3)]
        admin.post(f"/taxii2/intel/collections/{coll}/objects/", json={"objects": objs}, headers=H)
    page = admin.get(f"/taxii2/intel/collections/{a}/objects/", params={"limit": 1}, headers=H).json()
    token = page["next"]
    assert page["more"] is True and token
    _, _, mac = token.partition(".")
    forged_body = base64.urlsafe_b64encode(b'{"s":"x","k":["2020-01-01T00:00:00+00:00",1]}').decode()
    for bad in (token[:-2] + "AA", f"{forged_body}.{mac}", "garbage", "x" * 1000):
        _error(admin.get(f"/taxii2/intel/collections/{a}/objects/", params={"next": bad}, headers=H), 400)
    _error(admin.get(f"/taxii2/intel/collections/{b}/objects/", params={"next": token}, headers=H), 400)
    _error(admin.get(f"/taxii2/intel/collections/{a}/manifest/", params={"next": token}, headers=H), 400)
    other_filter = {"next": token, "match[type]": "indicator"}
    _error(admin.get(f"/taxii2/intel/collections/{a}/objects/", params=other_filter, headers=H), 400)
    ok = admin.get(f"/taxii2/intel/collections/{a}/objects/", params={"next": token, "limit": 5}, headers=H)
    assert ok.status_code == 200 and len(ok.json()["objects"]) == 2


def test_bad_filters(node: LiveNode) -> None:
    admin, a, _ = _setup(node)
    url = f"/taxii2/intel/collections/{a}/objects/"
    for params in (
        {"limit": "0"},
        {"limit": "-3"},
        {"limit": "ten"},
        {"added_after": "yesterday"},
        {"match[version]": "2024-01-01"},
        {"match[id]": "not-an-id"},
        {"match[type]": "Bad Type"},
        {"match[spec_version]": "latest"},
        # A filter given empty would otherwise read as no filter, and answer with everything.
        {"match[type]": ""},
        {"match[id]": " , "},
        {"match[version]": ""},
        {"match[spec_version]": ","},
    ):
        _error(admin.get(url, params=params, headers=H), 400)
    too_many = (
        {"match[type]": ",".join(f"x-type-{i}" for i in range(65))},
        {"match[version]": ",".join(f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z" for i in range(65))},
    )
    for params in too_many:
        r = admin.get(url, params=params, headers=H)
        _error(r, 400)
        assert "at most 64" in r.text
    _error(admin.get("/taxii2/elsewhere/", headers=H), 404)
    # Paths and methods no TAXII route takes are answered as TAXII errors too.
    _error(admin.get(f"/taxii2/intel/collections/{a}/objects/x/y/z/", headers=H), 404)
    _error(admin.get(f"/taxii2/intel/collections/{a}/objects/not-an-id/", headers=H), 404)
    r = admin.put(url, json={"objects": []}, headers=H)
    _error(r, 405)
    # Every method of the path, though GET and POST are two routes (Starlette names only the first).
    assert r.headers["allow"] == "GET, POST"
    # Elsewhere the API's own problem format stays.
    r = admin.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = admin.delete("/api/v1/intel/collections")
    assert r.status_code == 405 and r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["allow"] == "GET, POST"
    # Static files answer their own 405; their Allow is kept, not replaced by every method of the mount.
    r = admin.post("/desk/static/desk.css")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    _error(admin.get(f"/taxii2/intel/collections/{uuid.uuid4()}/objects/", headers=H), 404)
    _error(admin.get(f"/taxii2/intel/status/{uuid.uuid4()}/", headers=H), 404)


def test_authentication_and_permissions(node: LiveNode) -> None:
    admin, a, b = _setup(node)
    reader_token = node.user("reader", "officer")
    writer_token = node.user("writer", "officer")
    admin.put(f"/api/v1/intel/collections/{a}/grants/reader", json={"read": True, "write": False})
    admin.put(f"/api/v1/intel/collections/{a}/grants/writer", json={"read": False, "write": True})
    url = f"/taxii2/intel/collections/{a}/objects/"
    body = {"objects": [indicator("192.0.2.99")]}
    before = _count(node)

    anon = node.client()
    r = anon.get(url, headers=H)
    _error(r, 401)
    assert "Basic" in r.headers["www-authenticate"]
    _error(node.client("cpt_forged").get(url, headers=H), 401)
    wrong_user = base64.b64encode(f"writer:{reader_token}".encode()).decode()
    _error(anon.get(url, headers={**H, "Authorization": f"Basic {wrong_user}"}), 401)
    _error(anon.get(url, headers={**H, "Authorization": "Basic !!!"}), 401)
    right_user = base64.b64encode(f"reader:{reader_token}".encode()).decode()
    assert anon.get(url, headers={**H, "Authorization": f"Basic {right_user}"}).status_code == 200

    reader, writer = node.client(reader_token), node.client(writer_token)
    _error(reader.post(url, json=body, headers=H), 403)
    _error(reader.delete(f"{url}{body['objects'][0]['id']}/", headers=H), 403)
    _error(writer.get(url, headers=H), 403)
    _error(writer.get(f"/taxii2/intel/collections/{a}/manifest/", headers=H), 403)
    _error(reader.get(f"/taxii2/intel/collections/{b}/objects/", headers=H), 404)  # no grant: not disclosed
    _error(reader.post(f"/taxii2/intel/collections/{b}/objects/", json=body, headers=H), 404)
    assert reader.get("/taxii2/intel/collections/", headers=H).json()["collections"][0]["id"] == a
    assert _count(node) == before

    status = writer.post(url, json=body, headers=H).json()
    _error(reader.get(f"/taxii2/intel/status/{status['id']}/", headers=H), 404)  # another user's status
    assert writer.get(f"/taxii2/intel/status/{status['id']}/", headers=H).json()["success_count"] == 1
    # The same status under another spelling of its id is no status: one resource, one URL.
    for spelling in ("{" + status["id"] + "}", status["id"].replace("-", ""), f"urn:uuid:{status['id']}"):
        _error(writer.get(f"/taxii2/intel/status/{spelling}/", headers=H), 404)
    denied = admin.get("/api/v1/audit", params={"outcome": "denied"}).json()["items"]
    assert any(d["actor"] == "writer" for d in denied)
