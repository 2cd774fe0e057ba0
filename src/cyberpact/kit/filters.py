"""Filters of a listing that take one of a known set of values (a status, a type, a direction).

A value outside the set is refused by name with the values that are allowed, on the API, the command
line and the desk alike: read as a filter, a mistyped ``--status delvered`` matches nothing, and an empty
list then says "no such messages" when there are some.
"""

from __future__ import annotations

from collections.abc import Iterable

from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.i18n import Phrase

# A hostile or pasted value is named in the message; past this length it is shortened, never echoed whole.
_SHOWN = 40


def choice_problem(field: str, value: str | None, allowed: Iterable[str]) -> Problem | None:
    """The problem with ``value`` as a filter on ``field``, or None when it is absent or allowed."""
    if value is None or value == "":
        return None
    known = list(allowed)
    if value in known:
        return None
    shown = value if len(value) <= _SHOWN else value[: _SHOWN - 1] + "…"
    return Problem(field, f"{shown!r} is not one of: {', '.join(known)}", "invalid")


def check_choices(choices: Iterable[tuple[str, str | None, Iterable[str]]]) -> None:
    """Refuse with every unknown value at once, each at its field: ``(field, value, allowed)``."""
    problems = [p for field, value, allowed in choices if (p := choice_problem(field, value, allowed))]
    if problems:
        raise InvalidInput(Phrase("Invalid filter"), problems)
