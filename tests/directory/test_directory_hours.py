"""Office hours are read in the authority's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from cyberpact.directory.models import Authority
from cyberpact.directory.service import is_open

WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "opens": "08:15", "closes": "16:15"}


def authority(**values: object) -> Authority:
    return Authority(
        **{"always_open": False, "office_hours": [WEEKDAYS], "timezone": "Europe/Warsaw", **values}
    )


def test_hours_follow_the_authoritys_zone_and_daylight_saving() -> None:
    warsaw = authority()
    # Winter: Warsaw is UTC+1, so 08:15 local is 07:15 UTC.
    assert is_open(warsaw, datetime(2026, 1, 14, 7, 14, tzinfo=UTC)) is False
    assert is_open(warsaw, datetime(2026, 1, 14, 7, 15, tzinfo=UTC)) is True
    # Summer: UTC+2; 16:15 local (14:15 UTC) is closing time, not open.
    assert is_open(warsaw, datetime(2026, 7, 15, 14, 14, tzinfo=UTC)) is True
    assert is_open(warsaw, datetime(2026, 7, 15, 14, 15, tzinfo=UTC)) is False
    # A Saturday: closed all day.
    assert is_open(warsaw, datetime(2026, 1, 17, 10, 0, tzinfo=UTC)) is False


def test_a_day_boundary_in_another_zone() -> None:
    hanoi = authority(
        timezone="Asia/Ho_Chi_Minh", office_hours=[{"days": ["mon"], "opens": "06:00", "closes": "08:00"}]
    )
    # Sunday 23:30 UTC is Monday 06:30 in Hanoi (UTC+7).
    assert is_open(hanoi, datetime(2026, 1, 11, 23, 30, tzinfo=UTC)) is True


def test_always_open_and_unknown_hours() -> None:
    assert is_open(authority(always_open=True, office_hours=[]), datetime(2026, 1, 17, 3, tzinfo=UTC)) is True
    assert is_open(authority(office_hours=[]), datetime(2026, 1, 14, 10, tzinfo=UTC)) is None
