"""Art. 65 entry into force, as a pure function of the deposited instruments."""

from __future__ import annotations

import random
from datetime import date, timedelta

from cyberpact.directory.treaty import Instrument, entry_into_force

START = date(2026, 1, 5)


def states(n: int, first: date = START, step: int = 1) -> list[Instrument]:
    return [Instrument(f"S{i:02d}", first + timedelta(days=i * step)) for i in range(n)]


def test_39_instruments_are_not_enough() -> None:
    result = entry_into_force(states(39))
    assert result.counted == 39 and result.still_needed == 1
    assert result.convention is None and result.fortieth_deposit is None
    assert result.for_party == {}


def test_exactly_40_enters_into_force_on_the_90th_day_after_the_40th() -> None:
    instruments = states(40)
    result = entry_into_force(instruments)
    fortieth = instruments[-1].deposited
    assert result.fortieth_deposit == fortieth
    assert result.convention == fortieth + timedelta(days=90)
    assert result.still_needed == 0
    # Every party that deposited by the 40th is bound from the convention's own date.
    assert set(result.for_party.values()) == {result.convention}
    assert result.in_force_on(result.convention) and not result.in_force_on(result.convention - timedelta(1))


def test_the_41st_is_bound_30_days_after_its_deposit_but_never_before_the_convention() -> None:
    early = states(40)
    convention = early[-1].deposited + timedelta(days=90)
    soon = Instrument("SOON", early[-1].deposited + timedelta(days=10))  # +30 falls before the convention
    late = Instrument("LATE", convention + timedelta(days=100))
    result = entry_into_force([*early, soon, late])
    assert result.counted == 42
    assert result.convention == convention  # later instruments do not move the convention's date
    assert result.for_party["SOON"] == convention
    assert result.for_party["LATE"] == late.deposited + timedelta(days=30)


def test_the_european_union_does_not_count_towards_40() -> None:
    eu = Instrument("EU", START, counts=False)
    result = entry_into_force([eu, *states(39)])
    assert result.counted == 39 and result.convention is None and result.not_counted == ("EU",)
    fortieth = Instrument("S40", START + timedelta(days=200))
    result = entry_into_force([eu, *states(39), fortieth])
    assert result.convention == fortieth.deposited + timedelta(days=90)
    assert result.for_party["EU"] == result.convention  # bound with the convention, not counted for it


def test_a_late_european_union_instrument_gets_the_30_day_rule() -> None:
    instruments = states(40)
    convention = instruments[-1].deposited + timedelta(days=90)
    eu = Instrument("EU", convention + timedelta(days=5), counts=False)
    result = entry_into_force([*instruments, eu])
    assert result.for_party["EU"] == eu.deposited + timedelta(days=30)


def test_same_day_deposits_around_the_40th_are_all_bound_from_the_same_date() -> None:
    day = START + timedelta(days=300)
    before = states(38)
    same_day = [Instrument(f"D{i}", day) for i in range(4)]  # 39th, 40th, 41st and 42nd on one day
    instruments = [*before, *same_day]
    for _ in range(5):  # the answer depends on dates only, never on the order of the input
        random.shuffle(instruments)
        result = entry_into_force(instruments)
        assert result.fortieth_deposit == day
        assert result.convention == day + timedelta(days=90)
        assert {result.for_party[i.party] for i in same_day} == {result.convention}


def test_forty_on_one_day() -> None:
    result = entry_into_force([Instrument(f"S{i}", START) for i in range(40)])
    assert result.convention == START + timedelta(days=90)
