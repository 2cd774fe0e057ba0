"""Builders shared by the intel tests."""

from __future__ import annotations

import uuid
from typing import Any

from cyberpact.intel.markings import TLP2_IDS

IDENTITY = "identity--7f9b8f7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
TAXII = "application/taxii+json;version=2.1"


def indicator(
    value: str,
    *,
    modified: str = "2024-05-01T10:00:00.000Z",
    oid: str | None = None,
    tlp: str | None = "green",
    by: str | None = IDENTITY,
    **extra: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": oid or f"indicator--{uuid.uuid4()}",
        "created": "2024-05-01T10:00:00.000Z",
        "modified": modified,
        "name": f"C2 address {value}",
        "pattern": f"[ipv4-addr:value = '{value}']",
        "pattern_type": "stix",
        "valid_from": "2024-05-01T10:00:00Z",
        "indicator_types": ["malicious-activity"],
    }
    if by:
        obj["created_by_ref"] = by
    if tlp:
        obj["object_marking_refs"] = [TLP2_IDS[tlp]]  # type: ignore[index]
    obj.update(extra)
    return obj


def identity(oid: str = IDENTITY, name: str = "CERT Example") -> dict[str, Any]:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": oid,
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "name": name,
        "identity_class": "organization",
    }
