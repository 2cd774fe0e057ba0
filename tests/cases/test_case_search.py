"""Cases are found by any part of their reference or title, on the API as on the desk, through the one
listing of the cases service: ``%`` and ``_`` are searched for as themselves, letters in any case, and a case
hidden from the reader is never found. Behind the listing's order, an index that the migrations and the
models both declare."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import inspect

from conftest import LiveNode
from cyberpact.audit.models import AuditRecord
from cyberpact.cases.models import Case
from cyberpact.kit import migrate
from cyberpact.kit.db import Database
from cyberpact.kit.time import utcnow
from evidence.helpers import incoming_request

# reference -> title; the newest first, as every listing orders them.
CASES = {
    "HN-2026-0001": "Hanoi hospital ransomware",
    "HN-2026-0002": "Discount fraud: 50% off every order",
    "HN-2026-0003": "Phishing kit A_1",
    "HN-2026-0004": "Phishing kit A-1",
    "HN-2026-0005": "Phishing kit AB1",
    "HN-2026-0006": "Back\\slash in a title",
    "LAGOS_7": "Business e-mail compromise",
}


def some_cases(node: LiveNode) -> str:
    """:data:`CASES`, and a confidential matter's case a plain officer may not see; its reference."""
    hidden = incoming_request(node, "au-24x7", "fact_and_substance")
    now = utcnow()
    with node.db.transaction() as s:
        for n, (reference, title) in enumerate(CASES.items()):
            s.add(
                Case(
                    reference=reference, title=title, created_by="an", created_at=now - timedelta(hours=n + 1)
                )
            )
    return f"IN-au-24x7-{uuid.UUID(hidden).hex[:8]}"


def found(client: httpx.Client, q: str) -> list[str]:
    r = client.get("/api/v1/cases", params={"q": q})
    assert r.status_code == 200, r.text
    return [c["reference"] for c in r.json()["items"]]


def test_the_api_finds_cases_by_reference_or_title_and_wildcards_are_text(node: LiveNode) -> None:
    hidden = some_cases(node)
    officer = node.client(node.user("an", "officer"))
    assert found(officer, "hanoi HOSPITAL") == ["HN-2026-0001"]  # the title, in any case
    assert found(officer, "hn-2026-000") == [f"HN-2026-000{n}" for n in range(1, 7)]  # the reference
    assert found(officer, "%") == ["HN-2026-0002"]
    assert found(officer, "50%") == ["HN-2026-0002"]
    assert found(officer, "_") == ["HN-2026-0003", "LAGOS_7"]
    assert found(officer, "A_1") == ["HN-2026-0003"]  # not A-1, nor AB1
    assert found(officer, "\\") == ["HN-2026-0006"]  # the escape character is text too
    assert found(officer, "  phishing kit ab1  ") == ["HN-2026-0005"]  # spaces around are not searched for
    assert found(officer, "nothing like it") == []
    # The confidential matter's case is not found by those who may not see it, whatever they search.
    assert hidden not in found(officer, "IN-") and found(officer, hidden) == []
    assert found(officer, "Request from") == []
    channel = node.client(node.user("cp", "contact_point"))
    assert found(channel, hidden) == [hidden]


def test_a_search_pages_like_the_listing(node: LiveNode) -> None:
    now = utcnow()
    with node.db.transaction() as s:
        for n in range(7):
            s.add(
                Case(
                    reference=f"X-{n}",
                    title=f"Lagos {n}",
                    created_by="an",
                    created_at=now - timedelta(minutes=n),
                )
            )
            s.add(
                Case(
                    reference=f"Y-{n}",
                    title=f"Abuja {n}",
                    created_by="an",
                    created_at=now - timedelta(minutes=n),
                )
            )
    officer = node.client(node.user("an", "officer"))
    seen, params = [], {"q": "lagos", "limit": 3}
    while True:
        r = officer.get("/api/v1/cases", params=params)
        assert r.status_code == 200, r.text
        seen += [c["reference"] for c in r.json()["items"]]
        if r.json()["next"] is None:
            break
        params["cursor"] = r.json()["next"]
    assert seen == [f"X-{n}" for n in range(7)]


@pytest.mark.parametrize("q", ["x" * 301, "kit\x00", "bell\x07"])
def test_an_overlong_or_unstorable_search_is_refused_by_name(node: LiveNode, q: str) -> None:
    some_cases(node)
    officer = node.client(node.user("an", "officer"))
    r = officer.get("/api/v1/cases", params={"q": q})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] in ("q", "query.q"), r.json()


def test_the_search_is_recorded_with_the_listing(node: LiveNode) -> None:
    some_cases(node)
    officer = node.client(node.user("an", "officer"))
    found(officer, "Phishing")
    with node.db.transaction(read_only=True) as s:
        [record] = s.query(AuditRecord).filter(AuditRecord.action == "cases.case.list").all()
    assert record.actor == "an" and record.detail == {"returned": 3, "search": "Phishing"}


def test_cases_are_listed_from_an_index_the_migrations_and_the_models_agree_on(db: Database) -> None:
    def index() -> list[str] | None:
        with db.engine.connect() as conn:
            found = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes("cases")}
        return found.get("ix_cases_created")

    assert index() == ["created_at", "id"]
    assert Case.__table__.indexes and {i.name for i in Case.__table__.indexes} >= {"ix_cases_created"}
    # The migration goes down and up again cleanly, on both databases.
    url = db.engine.url.render_as_string(hide_password=False)
    from alembic import command

    command.downgrade(migrate.alembic_config(url), "0018")
    assert index() is None
    migrate.upgrade(url)
    assert index() == ["created_at", "id"] and migrate.at_head(db.engine)
