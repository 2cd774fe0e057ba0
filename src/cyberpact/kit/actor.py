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
    # The node itself, or its operator at its command line, who holds the database and the key passphrase
    # already. Set only where such an actor is made (SYSTEM, kit.cli.cli_actor), never from a request:
    # ``source`` is the client's address, whatever text a proxy header put there.
    operator: bool = False

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


SYSTEM = Actor(user_id=None, username="system", roles=frozenset({"system"}), source="system", operator=True)
ANONYMOUS = Actor(user_id=None, username="anonymous")
