"""Keyset pagination: pages cost an index seek whatever the table's size, and never skip or repeat a row
when rows are inserted between two page reads (offset paging does both)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.time import parse_rfc3339, rfc3339

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None


def encode_cursor(scope: str, key: list[Any]) -> str:
    raw = json.dumps({"s": scope, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, scope: str, arity: int) -> list[Any]:
    """Decode a cursor made by :func:`encode_cursor` for the same listing; anything else is a 422."""
    bad = _not_issued()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(data, dict) or data.get("s") != scope:
        raise bad
    key = data.get("k")
    if not isinstance(key, list) or len(key) != arity:
        raise bad
    return key


def time_cursor(scope: str, at: datetime, row_id: uuid.UUID) -> str:
    """The cursor of the page after a row of a listing ordered newest first by (time, id)."""
    return encode_cursor(scope, [rfc3339(at), str(row_id)])


def next_time_cursor(scope: str, rows: Sequence[Any], limit: int) -> str | None:
    """The cursor of the page after ``rows[:limit]``, when one row more than the page holds was read (each
    row with its ``created_at`` and ``id``); None on the last page."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return time_cursor(scope, last.created_at, last.id)


def after_time_cursor(token: str | None, scope: str) -> tuple[datetime, uuid.UUID] | None:
    """The (time, id) a :func:`time_cursor` of the same listing stands for (None for the first page, asked
    without one); anything else is a 422. A time without its zone is refused here too: the database would
    refuse it only once the query ran, as a 500."""
    if not token:
        return None
    at, row_id = decode_cursor(token, scope, 2)
    try:
        return parse_rfc3339(str(at)), uuid.UUID(str(row_id))
    except ValueError:
        raise _not_issued() from None


def _not_issued() -> InvalidInput:
    return InvalidInput("Invalid page cursor", [Problem("cursor", "not a cursor issued by this listing")])
