"""Time: everything is stored and compared in UTC; conversion to a viewer's zone happens at the edge."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.i18n import Phrase


def utcnow() -> datetime:
    return datetime.now(UTC)


# How far ahead of this node's clock a moment someone gives as past may still be: the clock it was read
# from (a workstation, an acquisition tool) may run a little fast, and that is no reason to refuse it.
PAST_SKEW: Final = timedelta(minutes=5)
PAST_MOMENT: Final = "a past moment with its time zone"


def is_past_moment(value: datetime, now: datetime | None = None) -> bool:
    """``value`` carries its time zone and is not later than ``now`` (default: this moment), give or take
    ``PAST_SKEW``; what to say when it is not is ``PAST_MOMENT``."""
    return value.tzinfo is not None and value <= (now or utcnow()) + PAST_SKEW


def rfc3339(value: datetime) -> str:
    """RFC 3339 with a ``Z`` suffix and microseconds, the only text form of a time we emit."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from exc
    if value.tzinfo is None:
        raise ValueError(f"time without a zone offset: {text!r}")
    return value.astimezone(UTC)


def end_of_day(day: date, zone: object = None, last: time = time(23, 59, 59)) -> datetime:
    """The ``last`` moment of ``day`` on the clock of ``zone`` (an IANA name; UTC if none or unknown). A date
    someone writes is a date where they are: 10 March in Hanoi ends seven hours before it ends in UTC."""
    tz: tzinfo = UTC
    if isinstance(zone, str) and zone:
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            tz = UTC
    return datetime.combine(day, last, tzinfo=tz)


_ZONES: frozenset[str] | None = None


def check_timezone(name: str, field: str = "timezone") -> str:
    """Accept only IANA zone names the system knows, so that a typo never silently means UTC."""
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if name not in _ZONES:
        raise InvalidInput(
            Phrase("Unknown time zone"), [Problem(field, f"{name!r} is not an IANA time zone name")]
        )
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - listed but not loadable
        raise InvalidInput(Phrase("Unknown time zone"), [Problem(field, str(exc))]) from exc
    return name
