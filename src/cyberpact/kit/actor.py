"""Who is acting and from where: passed from the request or CLI boundary into services and the audit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID | None
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    source: str | None = None  # client address, "cli" or "system"
    token_id: uuid.UUID | None = None

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


SYSTEM = Actor(user_id=None, username="system", roles=frozenset({"system"}), source="system")
ANONYMOUS = Actor(user_id=None, username="anonymous")
