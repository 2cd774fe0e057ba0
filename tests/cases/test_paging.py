"""Cases and requests are listed a page at a time, on the API and the command line, to the last one: a
node with more cases than a page holds once showed only the newest hundred, and nothing said there were
more. A cursor the listing did not issue is refused by name, never answered with a 500."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import LiveNode
from cyberpact.cases.models import Case
from cyberpact.cli import app
from cyberpact.kit.pagination import encode_cursor
from cyberpact.kit.time import utcnow
from evidence.helpers import incoming_request

from .conftest import Side, draft

runner = CliRunner()
CASES = 130


def many_cases(node: LiveNode) -> None:
    """``CASES`` cases, three of them made in the same microsecond (as an import makes them), and one the
    officer may not see."""
    incoming_request(node, "au-24x7", "fact_and_substance")
    now = utcnow()
    with node.db.transaction() as s:
        for n in range(CASES):
            at = now - timedelta(minutes=n if n not in (40, 41, 42) else 40)
            s.add(Case(reference=f"HN-2026-{n:04d}", title=f"Case {n}", created_by="an", created_at=at))


def seen_by_officers(node: LiveNode) -> list[str]:
    """The ids of the cases an officer may see, newest first as the listing orders them."""
    with node.db.transaction(read_only=True) as s:
        query = select(Case.id).where(~Case.reference.like("IN-%"))
        return [str(i) for i in s.scalars(query.order_by(Case.created_at.desc(), Case.id.desc()))]


def flat(pages: list[list[str]]) -> list[str]:
    return [item for page in pages for item in page]


def pages(client: httpx.Client, path: str, limit: int | None = None) -> list[list[str]]:
    found: list[list[str]] = []
    params: dict[str, str | int] = {"limit": limit} if limit else {}
    while True:
        r = client.get(path, params=params)
        assert r.status_code == 200, r.text
        found.append([item["id"] for item in r.json()["items"]])
        if r.json()["next"] is None:
            return found
        params["cursor"] = r.json()["next"]


def test_the_api_lists_every_case_a_page_at_a_time(node: LiveNode) -> None:
    many_cases(node)
    expected = seen_by_officers(node)
    officer = node.client(node.user("an", "officer"))
    default = pages(officer, "/api/v1/cases")
    assert [len(p) for p in default] == [100, CASES - 100]
    assert flat(default) == expected, "the 101st and after are reached, in order, each once"
    small = pages(officer, "/api/v1/cases", limit=43)
    assert [len(p) for p in small] == [43, 43, 43, 1] and flat(small) == expected
    # Whoever may see the confidential matter's case finds it among the others.
    channel = node.client(node.user("cp", "contact_point"))
    assert len(flat(pages(channel, "/api/v1/cases", limit=500))) == CASES + 1


def forged(scope: str, other: str) -> list[str]:
    now, some_id = utcnow().isoformat(), str(uuid.uuid4())
    return [
        "not-a-cursor",
        "%%%",
        encode_cursor(other, [now, some_id]),  # another listing's
        encode_cursor(scope, ["2026-12-01T10:00:00", some_id]),  # a time without its zone
        encode_cursor(scope, ["yesterday", some_id]),
        encode_cursor(scope, [now, "not-an-id"]),
        encode_cursor(scope, [now]),
        encode_cursor(scope, [1, 2]),
    ]


@pytest.mark.parametrize(("listing", "other"), [("cases", "requests"), ("requests", "cases")])
def test_a_forged_cursor_is_refused_by_name(node: LiveNode, listing: str, other: str) -> None:
    officer = node.client(node.user("an", "officer"))
    for cursor in forged(listing, other):
        r = officer.get(f"/api/v1/{listing}", params={"cursor": cursor})
        assert r.status_code == 422, (cursor, r.text)
        assert r.json()["detail"] == "Invalid page cursor" and r.json()["errors"][0]["field"] == "cursor"


def test_the_command_line_lists_cases_and_requests_a_page_at_a_time(
    node: LiveNode, cli_env: dict[str, str]
) -> None:
    many_cases(node)
    vn = Side(node, "vn")
    drafted = [draft(vn, to=None).json()["request"]["id"] for _ in range(3)]
    expected = seen_by_officers(node)
    node.user("an", "officer")

    def walk(command: str, limit: int) -> tuple[list[str], int]:
        shown, cursor, calls = [], None, 0
        while True:
            args = ["requests", command, "--as", "an", "--limit", str(limit)]
            r = runner.invoke(app, args + (["--cursor", cursor] if cursor else []))
            assert r.exit_code == 0, r.output
            calls += 1
            shown += [line.split("│")[1].strip() for line in r.stdout.splitlines() if line.startswith("│ ")]
            more = [line for line in r.stderr.splitlines() if line.startswith("more: repeat with --cursor ")]
            if not more:
                return [s for s in shown if s], calls
            cursor = more[0].rsplit(" ", 1)[1]

    assert walk("cases", 60) == (expected, 3)  # 133: the drafts made a case each
    assert walk("list", 2) == (drafted[::-1], 2)
    for command, scope in (("cases", "cases"), ("list", "requests")):
        cursor = forged(scope, "none")[3]
        r = runner.invoke(app, ["requests", command, "--as", "an", "--cursor", cursor])
        assert r.exit_code == 1 and "Invalid page cursor" in r.output and "Traceback" not in r.output
