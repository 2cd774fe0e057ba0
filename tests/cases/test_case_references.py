"""Case references: numbered for whoever does not choose one, never colliding with one chosen by hand."""

from __future__ import annotations

import pytest

from cyberpact.cases import service
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database
from cyberpact.kit.errors import Conflict
from cyberpact.kit.time import utcnow

OFFICER = Actor(user_id=None, username="lan", roles=frozenset({"officer"}))


def test_a_new_case_takes_the_next_free_number_after_references_chosen_by_hand(db: Database) -> None:
    year = utcnow().year
    with db.transaction() as s:
        service.create_case(s, OFFICER, "chosen", f"CASE-{year}-0001")
        service.create_case(s, OFFICER, "chosen too", f"CASE-{year}-0003")
        first = service.create_case(s, OFFICER, "numbered")
        second = service.create_case(s, OFFICER, "numbered too")
        assert (first.reference, second.reference) == (f"CASE-{year}-0004", f"CASE-{year}-0005")
        # A reference chosen by hand that is taken is still refused, by name.
        with pytest.raises(Conflict, match="Case reference taken"):
            service.create_case(s, OFFICER, "again", f"CASE-{year}-0003")
