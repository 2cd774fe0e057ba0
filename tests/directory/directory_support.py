"""Helpers shared by the directory tests (a plain module: pytest needs unique test-file basenames)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from conftest import LiveNode
from cyberpact.audit.models import AuditRecord
from cyberpact.directory import io
from cyberpact.kit.db import Database

API = "/api/v1/directory"
SAMPLE_AUTHORITY: dict[str, Any] = {
    "party": "PL",
    "kind": "competent_authority",
    "name": "Central Cybercrime Bureau",
    "email": "ccb@example.org",
    "web": "https://example.org/ccb",
    "phone": "+48 22 000 00 00",
    "languages": ["pl", "en-GB"],
    "channels": ["direct", "email"],
    "timezone": "Europe/Warsaw",
    "office_hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "opens": "08:00", "closes": "16:00"}],
    "dual_criminality": "coercive_measures_only",
    "encryption_required": True,
    "source": "test",
    "as_of": "2026-01-02",
}


def fields(r: httpx.Response) -> list[str]:
    return [e["field"] for e in r.json().get("errors", [])]


def all_pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next"]
        if cursor is None:
            return items


def snapshot_db(db: Database) -> tuple[bytes, int]:
    """The whole directory as exported, and the number of allowed (change) audit records."""
    with db.transaction(read_only=True) as s:
        allowed = s.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.outcome == "allowed")
        )
        return io.export(s, "json"), int(allowed or 0)


def snapshot(node: LiveNode) -> tuple[bytes, int]:
    return snapshot_db(node.db)
