"""Keyset pagination: pages cost an index seek whatever the table's size, and never skip or repeat a row
when rows are inserted between two page reads (offset paging does both)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from cyberpact.kit.errors import InvalidInput, Problem

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None


def encode_cursor(scope: str, key: list[Any]) -> str:
    raw = json.dumps({"s": scope, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, scope: str, arity: int) -> list[Any]:
    """Decode a cursor made by :func:`encode_cursor` for the same listing; anything else is a 422."""
    bad = InvalidInput("Invalid page cursor", [Problem("cursor", "not a cursor issued by this listing")])
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
