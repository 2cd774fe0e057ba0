"""The chart statistics over request rows and events, on both databases: months, medians per State and
direction, preservations met, expired or running, and nothing a reader may not see."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from cyberpact.cases.models import Case, Request, RequestEvent
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database
from cyberpact.kit.errors import PermissionDenied
from cyberpact.reports import service as reports

T0 = datetime(2026, 9, 10, 8, 0, tzinfo=UTC)
OFFICER = Actor(user_id=None, username="stats", roles=frozenset({"officer"}))
CA = Actor(user_id=None, username="ca", roles=frozenset({"central_authority"}))


def _request(session: Any, case: Case, **values: Any) -> Request:
    row = Request(
        case_id=case.id,
        direction=values.pop("direction", "outgoing"),
        type=values.pop("type", "preservation"),
        status=values.pop("status", "acknowledged"),
        catalog_version="t",
        counterpart_country=values.pop("country", "AU"),
        header={},
        fields={},
        drafted_by="x",
        created_at=T0,
        updated_at=T0,
        **values,
    )
    session.add(row)
    session.flush()
    return row


def _event(session: Any, row: Request, action: str, at: datetime, **detail: Any) -> None:
    session.add(
        RequestEvent(request_id=row.id, at=at, actor="x", side="remote", action=action, detail=detail)
    )


def test_figures(db: Database) -> None:
    with db.transaction() as session:
        case = Case(reference="C-1", title="t", created_by="x", created_at=T0)
        session.add(case)
        session.flush()
        hours = [1, 3, 20]
        for h in hours:  # Australia acknowledges our requests in 1, 3 and 20 hours: median 3
            _request(session, case, sent_at=T0, acknowledged_at=T0 + timedelta(hours=h))
        _request(session, case, country="PL", sent_at=T0, acknowledged_at=T0 + timedelta(hours=5),
                 executed_at=T0 + timedelta(days=10))  # fmt: skip
        # We answered Poland's request in 2 hours.
        _request(session, case, direction="incoming", country="PL", sent_at=T0,
                 acknowledged_at=T0 + timedelta(hours=2))  # fmt: skip
        # A confidential incoming request: an officer does not see it, nor count it.
        _request(session, case, direction="incoming", country="DE", sent_at=T0, confidentiality="substance",
                 acknowledged_at=T0 + timedelta(hours=9))  # fmt: skip
        # Never sent: not counted.
        _request(session, case, status="draft")
        met = _request(session, case, id=uuid.uuid4())
        _event(session, met, "preserve", T0, preserved_until="2026-12-01")
        _event(session, met, "execute", T0 + timedelta(days=20))
        expired = _request(session, case)
        _event(session, expired, "preserve", T0, preserved_until="2026-10-01")
        late = _request(session, case)
        _event(session, late, "preserve", T0, preserved_until="2026-10-01")
        _event(session, late, "close", T0 + timedelta(days=40))  # after the period ran out
        running = _request(session, case)
        _event(session, running, "preserve", T0, preserved_until="2027-01-01")
        # The MLA request arrived within the period and held the data; released long after: met.
        held = _request(session, case)
        _event(session, held, "preserve", T0, preserved_until="2026-10-01")
        _event(session, held, "held", T0 + timedelta(days=15))
        _event(session, held, "release", T0 + timedelta(days=60))
    with db.transaction() as session:
        f = reports.figures(session, OFFICER, today=date(2026, 11, 15))
        everything = reports.figures(session, CA, today=date(2026, 11, 15))
    assert f.months[-1] == "2026-11" and len(f.months) == 12
    sent = {(c.month, c.direction, c.count) for c in f.per_month}
    assert sent == {("2026-09", "outgoing", 4), ("2026-09", "incoming", 1)}
    ack = {(m.country, m.direction): (m.median_hours, m.requests) for m in f.acknowledge}
    assert ack == {("AU", "outgoing"): (3, 3), ("PL", "outgoing"): (5, 1), ("PL", "incoming"): (2, 1)}
    assert [(m.country, m.median_hours) for m in f.execute] == [("PL", 240)]
    sept = next(p for p in f.preservations if p.month == "2026-09")
    assert (sept.met, sept.expired, sept.running) == (2, 2, 1)
    assert ("DE", "incoming") in {(m.country, m.direction) for m in everything.acknowledge}


def test_figures_need_a_case_role_or_the_auditor(db: Database) -> None:
    with db.transaction() as session, pytest.raises(PermissionDenied):
        reports.figures(session, Actor(user_id=None, username="admin", roles=frozenset({"admin"})))
