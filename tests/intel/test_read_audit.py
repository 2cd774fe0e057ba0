"""Reads of threat information are recorded like changes: who read which collection, how much, when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from conftest import LiveNode
from cyberpact.audit import service as audit
from cyberpact.audit.models import AuditRecord
from intel.helpers import TAXII, identity, indicator
from web.helpers import person, wait_for

H = {"Accept": TAXII, "Content-Type": TAXII}


def reads(node: LiveNode, username: str) -> list[dict[str, Any]]:
    with node.db.transaction(read_only=True) as s:
        rows = s.scalars(
            select(AuditRecord)
            .where(
                AuditRecord.actor == username,
                AuditRecord.action.in_(
                    ("intel.objects.read", "intel.correlations.read", "intel.collection.access")
                ),
            )
            .order_by(AuditRecord.seq)
        )
        return [{"action": r.action, "object": r.object_id, "outcome": r.outcome, **r.detail} for r in rows]


def test_every_read_is_recorded_once_per_page_and_a_refused_one_as_denied(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    cid = admin.post("/api/v1/intel/collections", json={"title": "Ransomware C2"}).json()["id"]
    red = indicator("203.0.113.66", tlp="red")
    objects = [identity(), indicator("198.51.100.1"), red]
    assert admin.post(
        f"/taxii2/intel/collections/{cid}/objects/", json={"objects": objects}, headers=H
    ).is_success
    lan = node.client(node.user("lan", "officer"))
    eve = node.client(node.user("eve", "officer"))
    assert admin.put(f"/api/v1/intel/collections/{cid}/grants/lan", json={"read": True}).is_success

    base = f"/taxii2/intel/collections/{cid}"
    first = lan.get(f"{base}/objects/", params={"limit": 2}, headers=H).json()
    lan.get(f"{base}/objects/", params={"limit": 2, "next": first["next"]}, headers=H)
    lan.get(f"{base}/objects/{red['id']}/", headers=H)
    lan.get(f"{base}/objects/{red['id']}/versions/", headers=H)
    lan.get(f"{base}/manifest/", headers=H)
    lan.get(f"/api/v1/intel/collections/{cid}/misp")
    lan.get("/api/v1/intel/correlations", params={"kind": "ipv4-addr:value", "value": "203.0.113.66"})
    seen = reads(node, "lan")
    assert [(r["action"], r["object"], r["view"], r["returned"]) for r in seen] == [
        ("intel.objects.read", cid, "objects", 2),
        ("intel.objects.read", cid, "objects", 1),
        ("intel.objects.read", cid, f"object {red['id']}", 1),
        ("intel.objects.read", cid, f"versions {red['id']}", 1),
        ("intel.objects.read", cid, "manifest", 3),
        ("intel.objects.read", cid, "misp export", 2),
        ("intel.correlations.read", None, "correlations", 0),
    ]
    assert seen[0]["query"] == "limit=2" and seen[6]["value"] == "203.0.113.66"

    # Without a grant: 404 as if the collection did not exist, and the attempt recorded as refused.
    assert eve.get(f"{base}/objects/", headers=H).status_code == 404
    assert eve.get(f"/api/v1/intel/collections/{cid}/misp").status_code == 404
    # (TAXII records a refusal once its answer is sent, so the record may follow the response.)
    wait_for(lambda: len(reads(node, "eve")) == 2)
    assert [(r["action"], r["object"], r["outcome"], r["status"]) for r in reads(node, "eve")] == [
        ("intel.collection.access", cid, "denied", 404)
    ] * 2

    # The desk's view of the collection is a read too.
    desk = person(node, "anh", "officer")
    assert admin.put(f"/api/v1/intel/collections/{cid}/grants/anh", json={"read": True}).is_success
    assert "203.0.113.66" in desk.get(f"/desk/intel/{cid}").text
    assert [(r["object"], r["view"], r["returned"]) for r in reads(node, "anh")] == [(cid, "desk", 3)]
    with node.db.transaction(read_only=True) as s:
        result = audit.verify(s)
    assert result.ok, result.finding
