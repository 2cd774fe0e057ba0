"""Statistics over requests and their timeline events, counting only what the reader may see.

Counts are grouped in SQL (month keys computed by each database in UTC); medians are taken in Python over
the pairs of times, because SQLite has no percentile function and the pairs for a year of one node's
requests are few. Every figure is a view of the same events the timelines show, never a copy.
"""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.cases.models import Request, RequestEvent
from cyberpact.cases.service import visible_filter
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import PermissionDenied
from cyberpact.kit.time import utcnow

READER_ROLES = ("officer", "supervisor", "central_authority", "contact_point", "auditor")
# A follow-up that uses or ends preserved data before its period runs out means the preservation served.
# "held": the MLA request that follows arrived (art. 42), the follow-up the preservation was for, even when
# its release comes after the period it first had.
FOLLOW_UP = ("held", "execute", "release", "close", "withdraw")
PRESERVED = ("preserve", "grant_extension")


@dataclass(frozen=True)
class MonthCount:
    month: str  # YYYY-MM, UTC
    type: str
    direction: str
    count: int


@dataclass(frozen=True)
class StateMedian:
    country: str
    direction: str
    median_hours: float
    requests: int


@dataclass(frozen=True)
class PreservationMonth:
    month: str
    met: int
    expired: int
    running: int


def months_back(count: int, today: date | None = None) -> list[str]:
    """The last ``count`` months as YYYY-MM keys, oldest first, this month last."""
    today = today or utcnow().date()
    year, month = today.year, today.month
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return out[::-1]


def _month_key(session: Session, column: Any) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    # SQLite keeps UTC text (kit.db.UTCDateTime), so the first seven characters are the month.
    return func.strftime("%Y-%m", column)


def _check(actor: Actor) -> None:
    if not actor.has_any(*READER_ROLES):
        raise PermissionDenied("Statistics need a case role or the auditor role")


def _start_of(month: str) -> datetime:
    year, mon = month.split("-")
    return datetime(int(year), int(mon), 1, tzinfo=UTC)


def requests_per_month(session: Session, actor: Actor, months: list[str]) -> list[MonthCount]:
    """Requests exchanged (sent or received) per month, type and direction; drafts never sent do not count."""
    _check(actor)
    key = _month_key(session, Request.sent_at)
    rows = session.execute(
        select(key, Request.type, Request.direction, func.count())
        .where(visible_filter(actor), Request.sent_at.is_not(None), Request.sent_at >= _start_of(months[0]))
        .group_by(key, Request.type, Request.direction)
    )
    return [MonthCount(str(m), str(t), str(d), int(n)) for m, t, d, n in rows if m in months]


def _medians(pairs: Iterable[tuple[str | None, str, datetime, datetime]]) -> list[StateMedian]:
    spans: dict[tuple[str, str], list[float]] = defaultdict(list)
    for country, direction, start, end in pairs:
        if end >= start:
            spans[(country or "—", direction)].append((end - start).total_seconds() / 3600)
    return sorted(
        (StateMedian(c, d, statistics.median(v), len(v)) for (c, d), v in spans.items()),
        key=lambda s: (s.country, s.direction),
    )


def median_time_to(session: Session, actor: Actor, step: str, since: datetime) -> list[StateMedian]:
    """Median hours from sending to ``step`` (``acknowledge`` or ``execute``) per State and direction.

    Outgoing: how quickly each requested State answers this node; incoming: how quickly this node
    answers each requesting State.
    """
    _check(actor)
    end = Request.acknowledged_at if step == "acknowledge" else Request.executed_at
    rows = session.execute(
        select(Request.counterpart_country, Request.direction, Request.sent_at, end).where(
            visible_filter(actor), Request.sent_at.is_not(None), end.is_not(None), Request.sent_at >= since
        )
    )
    return _medians((c, d, s, e) for c, d, s, e in rows if s is not None and e is not None)


def _until(detail: dict[str, Any]) -> date | None:
    raw = detail.get("preserved_until")
    try:
        return date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def preservations(
    session: Session, actor: Actor, months: list[str], today: date | None = None
) -> list[PreservationMonth]:
    """Per month data were first preserved: how many preservations were followed up within their
    period (met), ran out with no follow-up (expired), or are still running."""
    _check(actor)
    today = today or utcnow().date()
    events = session.execute(
        select(RequestEvent.request_id, RequestEvent.action, RequestEvent.at, RequestEvent.detail)
        .join(Request, Request.id == RequestEvent.request_id)
        .where(
            visible_filter(actor),
            Request.type == "preservation",
            RequestEvent.action.in_((*PRESERVED, *FOLLOW_UP)),
            RequestEvent.at >= _start_of(months[0]),
        )
        .order_by(RequestEvent.seq)
    )
    first: dict[uuid.UUID, datetime] = {}
    until: dict[uuid.UUID, date] = {}
    followed: dict[uuid.UUID, date] = {}
    for rid, action, at, detail in events:
        if action in PRESERVED:
            first.setdefault(rid, at)
            end = _until(detail or {})
            if end is not None:
                until[rid] = end
        elif rid in first and rid not in followed:
            followed[rid] = at.date()
    buckets = {m: [0, 0, 0] for m in months}
    for rid, at in first.items():
        month = f"{at.year:04d}-{at.month:02d}"
        if month not in buckets:
            continue
        end = until.get(rid)
        if rid in followed and (end is None or followed[rid] <= end):
            buckets[month][0] += 1
        elif end is not None and end < today:
            buckets[month][1] += 1
        else:
            buckets[month][2] += 1
    return [PreservationMonth(m, *buckets[m]) for m in months]


@dataclass(frozen=True)
class Figures:
    months: list[str]
    per_month: list[MonthCount]
    acknowledge: list[StateMedian]
    execute: list[StateMedian]
    preservations: list[PreservationMonth]


def figures(session: Session, actor: Actor, months: int = 12, today: date | None = None) -> Figures:
    """Everything the charts page shows, in one read; the read is recorded like any view of case data."""
    keys = months_back(months, today)
    since = _start_of(keys[0])
    out = Figures(
        keys,
        requests_per_month(session, actor, keys),
        median_time_to(session, actor, "acknowledge", since),
        median_time_to(session, actor, "execute", since),
        preservations(session, actor, keys, today),
    )
    audit.record(session, actor, "reports.figures.read", "report", None, detail={"months": months})
    return out
