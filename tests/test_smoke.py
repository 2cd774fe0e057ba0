from __future__ import annotations

import gc
import logging
import sys

import httpx
import pytest

from conftest import LiveNode, start_node
from cyberpact.config import Settings


def test_health_and_ready(node: LiveNode) -> None:
    c = node.client()
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    spec = c.get("/api/openapi.json").json()
    assert "/api/v1/me" in spec["paths"]


def test_the_access_log_records_paths_but_never_queries(node: LiveNode, admin: httpx.Client) -> None:
    # A withdrawal's reason, or a search for a person's name, travels in the query string.
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    level, keep = access.level, Keep()
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    try:
        r = admin.delete(
            "/api/v1/evidence/packages/00000000-0000-4000-8000-000000000000/files/0",
            params={"reason": "Nguyen Van A asked the court"},
        )
        assert r.status_code == 403  # an administrator handles no evidence; the line is logged all the same
        admin.get("/api/v1/requests", params={"status": "submitted"})
    finally:
        access.removeHandler(keep)
        access.setLevel(level)
    assert len(lines) == 2, lines
    assert "DELETE /api/v1/evidence/packages/00000000-0000-4000-8000-000000000000/files/0?… " in lines[0]
    assert " 403" in lines[0] and "GET /api/v1/requests?… " in lines[1]
    assert not any("Nguyen" in line or "submitted" in line for line in lines)


def test_a_running_node_tunes_the_interpreter_and_gives_it_back(settings: Settings) -> None:
    # Several apps start and stop in one test process, so each must leave the collector, its frozen
    # objects and the thread switch interval as it found them.
    from cyberpact.app import SWITCH_INTERVAL

    before = (gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count())
    live = start_node(settings)
    try:
        assert gc.get_threshold()[0] == 10_000
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        assert gc.get_freeze_count() > 0
        assert live.client().get("/healthz").status_code == 200
    finally:
        live.stop()
    assert (gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count()) == before


def test_the_allocator_takes_the_memory_settings_on_glibc() -> None:
    import platform

    from cyberpact.kit.memory import tune_allocator

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the settings are glibc's")
    assert tune_allocator() is True


def test_the_start_up_warm_up_leaves_no_trace(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # Startup routes one request that matches nothing (so the first real request does not wait for
    # FastAPI to build its routes); it must leave nothing in the audit record or the logs.
    from sqlalchemy import select

    from cyberpact.audit.models import AuditRecord

    caplog.set_level("DEBUG")
    live = start_node(settings)
    try:
        assert live.client().get("/healthz").status_code == 200
        with live.db.transaction() as s:
            details = [f"{r.action} {r.object_id} {r.detail}" for r in s.scalars(select(AuditRecord))]
        assert details and not any("warm-up" in d or "not_found" in d for d in details)
        assert not any("warm-up" in r.getMessage() for r in caplog.records)
    finally:
        live.stop()
