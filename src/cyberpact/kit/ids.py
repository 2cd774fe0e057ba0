"""Record ids that arrive as text: a UUID in its one written form, or no id at all.

``uuid.UUID`` also reads braces, ``urn:uuid:``, bare hex, hyphens anywhere and, through ``int``, the digits
of any script: an id whose first eight digits are Arabic-Indic names the same record as its ASCII form.
Taking all of those would let one record be named under many spellings that a person, a log search or a
peer compares as different texts. Every place that takes an id from a person, a peer or a URL reads it
here, and says in its own words what it makes of a text that is not one.
"""

from __future__ import annotations

import re
import uuid

_WRITTEN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_uuid(value: object) -> uuid.UUID | None:
    """``value`` as a UUID when it is one (a UUID, or its 36-character text in either case), else None."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and _WRITTEN.fullmatch(value):
        return uuid.UUID(value)
    return None
