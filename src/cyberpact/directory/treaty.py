"""Entry into force under art. 65, as a pure function of the deposited instruments.

Art. 65(1): the convention enters into force on the 90th day after the deposit of the 40th instrument of
ratification, acceptance, approval or accession; an instrument deposited by a regional economic
integration organization is not counted as additional to those of its member States.
Art. 65(2): for a State or organization depositing after the 40th instrument, it enters into force on
the 30th day after its own deposit, or when the convention itself does, whichever is later.

"The Nth day after" counts the day after the deposit as day 1, so it is ``deposit + N days``.
REFERENCE.md marks the 30-day rule "confirm"; the numbers live here, in one place, for that reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

INSTRUMENTS_REQUIRED = 40
CONVENTION_DELAY_DAYS = 90
LATER_PARTY_DELAY_DAYS = 30
# Art. 64: opened for signature in Hanoi on 25 October 2025, then at UN Headquarters until 31 Dec 2026.
SIGNATURE_OPENS = date(2025, 10, 25)
SIGNATURE_CLOSES = date(2026, 12, 31)
REIO_NOT_COUNTED = (
    "an instrument of a regional economic integration organization is not counted in "
    "addition to those of its member States (art. 65(1))"
)


@dataclass(frozen=True)
class Instrument:
    party: str
    deposited: date
    counts: bool = True  # False for a regional economic integration organization's instrument


@dataclass(frozen=True)
class EntryIntoForce:
    counted: int
    required: int
    fortieth_deposit: date | None
    convention: date | None
    for_party: dict[str, date] = field(default_factory=dict)
    not_counted: tuple[str, ...] = ()

    @property
    def still_needed(self) -> int:
        return max(0, self.required - self.counted)

    def in_force_on(self, day: date) -> bool:
        return self.convention is not None and self.convention <= day


def entry_into_force(
    instruments: Iterable[Instrument],
    *,
    required: int = INSTRUMENTS_REQUIRED,
    convention_delay: int = CONVENTION_DELAY_DAYS,
    party_delay: int = LATER_PARTY_DELAY_DAYS,
) -> EntryIntoForce:
    """When the convention, and each party with an instrument, is bound.

    Instruments deposited on the same day as the 40th are not "after" it, whatever order a list puts
    them in: the answer depends on dates only, never on the order of the input.
    """
    every = list(instruments)
    counting = sorted(i.deposited for i in every if i.counts)
    not_counted = tuple(sorted(i.party for i in every if not i.counts))
    if len(counting) < required:
        return EntryIntoForce(len(counting), required, None, None, {}, not_counted)
    fortieth = counting[required - 1]
    convention = fortieth + timedelta(days=convention_delay)
    for_party = {
        i.party: convention
        if i.deposited <= fortieth
        else max(i.deposited + timedelta(days=party_delay), convention)
        for i in every
    }
    return EntryIntoForce(len(counting), required, fortieth, convention, for_party, not_counted)
