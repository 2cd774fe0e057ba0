"""In a real browser: an officer finds a case older than the newest fifty, by a word of its title, both in the
wizard, where they start a request in it, and on the desk's list of cases. The wizard once listed only the
fifty newest cases, and an older one could not be chosen at all."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest

from conftest import LiveNode
from cyberpact.cases.models import Case
from cyberpact.cases.models import Request as RequestRow
from cyberpact.kit.time import utcnow

from .conftest import Shots, csp_violations, watch_console
from .test_desk_browser import make_user, sign_in_and_enrol

pytestmark = pytest.mark.slow

OLD = "LAG-2025-0007"


def old_case_behind_fifty_newer(node: LiveNode) -> str:
    now = utcnow()
    with node.db.transaction() as s:
        for n in range(55):
            s.add(
                Case(
                    reference=f"HN-2026-{n:04d}",
                    title=f"Matter {n}",
                    created_by="an",
                    created_at=now - timedelta(hours=n),
                )
            )
        old = Case(
            reference=OLD,
            title="Lagos business e-mail compromise",
            created_by="an",
            created_at=now - timedelta(days=90),
        )
        s.add(old)
        s.flush()
        return str(old.id)


def test_an_officer_finds_an_old_case_in_the_wizard_and_starts_a_request_in_it(
    browser: Any, node: LiveNode, shots: Shots
) -> None:
    from playwright.sync_api import expect

    case_id = old_case_behind_fifty_newer(node)
    make_user(node, "an", "officer")
    ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors = watch_console(page)
    sign_in_and_enrol(page, node, "an")

    page.get_by_role("link", name="New request").click()
    page.wait_for_url(re.compile(r".*/desk/new$"))
    picker = page.get_by_label("An existing case", exact=True)
    expect(picker.locator("option")).to_have_count(51)  # "a new case" and the fifty newest
    assert picker.locator("option", has_text=OLD).count() == 0

    page.get_by_label("Find an existing case by its reference or title").fill("lagos")
    page.get_by_role("button", name="Find", exact=True).click()
    page.wait_for_url(re.compile(r".*/desk/new\?case_q=lagos$"))
    # The one case found is chosen already; the drafter goes on to the type.
    expect(picker).to_have_value(case_id)
    shots(page, "wizard-case-found")
    page.get_by_label(re.compile("Expedited preservation of stored electronic data")).check()
    page.get_by_role("button", name="Start the draft").click()
    page.wait_for_url(re.compile(r".*/edit/authority$"))
    expect(page.locator('[name="header.our_reference"]')).to_have_value(OLD)
    rid = page.url.split("/desk/requests/")[1].split("/")[0]
    with node.db.transaction(read_only=True) as s:
        assert str(s.get_one(RequestRow, uuid.UUID(rid)).case_id) == case_id

    # The list of cases finds it too, with the request now in it, and opens its page.
    page.get_by_role("link", name="Cases", exact=True).click()
    page.wait_for_url(re.compile(r".*/desk/cases$"))
    assert page.get_by_role("link", name="Cases", exact=True).get_attribute("aria-current") == "page"
    page.get_by_label("Reference or title").fill("E-MAIL compromise")
    page.get_by_role("button", name="Search", exact=True).click()
    row = page.locator("#cases tbody tr")
    expect(row).to_have_count(1)
    assert row.locator("td").last.inner_text() == "1"
    shots(page, "cases-found")
    row.get_by_role("link", name=OLD).click()
    page.wait_for_url(re.compile(rf".*/desk/cases/{case_id}$"))
    assert not csp_violations(errors), errors
    ctx.close()
