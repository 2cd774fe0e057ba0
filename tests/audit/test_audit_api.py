from __future__ import annotations

from conftest import LiveNode


def test_only_auditors_and_admins_read_the_record(node: LiveNode) -> None:
    officer = node.client(node.user("olga", "officer"))
    assert officer.get("/api/v1/audit").status_code == 403
    auditor = node.client(node.user("aud", "auditor"))
    r = auditor.get("/api/v1/audit", params={"outcome": "denied"})
    assert r.status_code == 200
    denied = r.json()["items"]
    assert [(d["actor"], d["object_id"]) for d in denied] == [("olga", "/api/v1/audit")]


def test_filters_and_paging(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    for name in ("u1", "u2", "u3"):
        body = {"username": name, "display_name": name, "password": "long enough pass"}
        assert admin.post("/api/v1/users", json=body).status_code == 201
    r = admin.get("/api/v1/audit", params={"actor": "root", "action": "accounts.user.create"})
    items = r.json()["items"]
    assert len(items) == 3 and all(i["object_type"] == "user" for i in items)
    assert [i["detail"]["username"] for i in items] == ["u3", "u2", "u1"]  # newest first

    target = items[0]["object_id"]
    r = admin.get("/api/v1/audit", params={"object_type": "user", "object_id": target})
    assert [i["object_id"] for i in r.json()["items"]] == [target]

    seen: list[int] = []
    page = admin.get("/api/v1/audit", params={"limit": 2}).json()
    while True:
        seen.extend(i["seq"] for i in page["items"])
        if not page["next"]:
            break
        page = admin.get("/api/v1/audit", params={"limit": 2, "cursor": page["next"]}).json()
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen))

    future = admin.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["items"] == []
    r = admin.get("/api/v1/audit", params={"cursor": "forged!"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"


def test_reading_the_record_is_recorded(node: LiveNode) -> None:
    auditor = node.client(node.user("aud", "auditor"))
    auditor.get("/api/v1/audit", params={"actor": "someone"})
    items = auditor.get("/api/v1/audit", params={"action": "audit.read"}).json()["items"]
    assert items[-1]["actor"] == "aud"
    assert items[-1]["detail"]["query"] == {"actor": "someone"}
