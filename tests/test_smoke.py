from __future__ import annotations

from conftest import LiveNode


def test_health_and_ready(node: LiveNode) -> None:
    c = node.client()
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    spec = c.get("/api/openapi.json").json()
    assert "/api/v1/me" in spec["paths"]
