"""The desk in a real browser, across two nodes: sign-in with a second factor, the wizard with its
article-citing prompts, four-eyes approval, delivery to the other State's inbox, Arabic right to left,
CSRF, forced URLs, stored script shown as text, and a resumable upload that survives a cut connection."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
import pytest
from sqlalchemy import select, update

from conftest import LiveNode
from cyberpact.accounts import mfa
from cyberpact.accounts import service as accounts
from cyberpact.accounts.models import User
from cyberpact.audit.models import AuditRecord
from cyberpact.cases.models import Request as RequestRow
from cyberpact.evidence.models import EvidenceFile
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.time import utcnow

from .conftest import Nodes, Shots, csp_violations, watch_console

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
XSS = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2">'


class Totp:
    """Codes for one person's secret, never the same time step twice (the node refuses a replay)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.replace(" ", "")
        self.last = 0

    def code(self) -> str:
        while True:
            now = int(utcnow().timestamp()) // mfa.STEP
            step = max(now, self.last + 1)
            if step <= now + 1:
                self.last = step
                return pyotp.TOTP(self.secret).at(step * mfa.STEP)
            time.sleep(1)


def make_user(node: LiveNode, username: str, *roles: str) -> None:
    with node.db.transaction() as session:
        accounts.create_user(session, SYSTEM, username=username, password=PASSWORD, roles=roles)


def sign_in_and_enrol(page: Any, node: LiveNode, username: str) -> Totp:
    """First sign-in: password, then the forced enrolment (QR and key), then the recovery codes."""
    page.goto(f"{node.url}/desk")
    assert "/desk/sign-in" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r".*/desk/enrol.*"))
    assert page.locator(".qr svg").count() == 1
    totp = Totp(page.locator("#totp-secret").inner_text())
    page.get_by_label("Six-digit code").fill(totp.code())
    page.get_by_role("button", name="Confirm").click()
    from playwright.sync_api import (
        expect,
    )  # imported here: conftest turns a missing Playwright into a clear failure

    # Waits for the answer page: on a loaded machine the click returns before it has rendered.
    expect(page.locator("#recovery-codes li")).to_have_count(10, timeout=15_000)
    page.get_by_role("link", name="Continue to the desk").click()
    page.wait_for_url(re.compile(r".*/desk$"))
    return totp


def sign_in(page: Any, node: LiveNode, username: str, totp: Totp) -> None:
    page.goto(f"{node.url}/desk/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r".*/desk/sign-in/code.*"))
    page.get_by_label("Code from your authenticator app, or a recovery code").fill(totp.code())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/desk$"))


def fill(page: Any, name: str, value: str) -> None:
    page.locator(f'[name="{name}"]').fill(value)


def next_step(page: Any) -> None:
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_load_state()


def denied(node: LiveNode, username: str, action: str) -> bool:
    with node.db.transaction(read_only=True) as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.actor == username, AuditRecord.outcome == "denied")
        )
        return any(r.action == action for r in rows)


def wait_until(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_preservation_request_from_wizard_to_the_other_states_inbox(
    browser: Any, nodes: Nodes, shots: Shots
) -> None:
    a, b = nodes.a, nodes.b
    make_user(a, "an", "officer", "contact_point")
    make_user(a, "binh", "supervisor")
    make_user(b, "kate", "central_authority", "officer")

    officer_ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = officer_ctx.new_page()
    errors = watch_console(page)
    sign_in_and_enrol(page, a, "an")
    shots(page, "today")

    # --- the wizard ----------------------------------------------------------------------------------
    page.get_by_role("link", name="New request").click()
    page.get_by_label(re.compile("Expedited preservation of stored electronic data")).check()
    page.get_by_label("Requested node (the State's authority)").select_option("au-24x7")
    page.get_by_label("Or the title of a new case").fill("Hanoi hospital ransomware")
    shots(page, "wizard-start")
    page.get_by_role("button", name="Start the draft").click()
    page.wait_for_url(re.compile(r".*/edit/authority$"))
    fill(page, "header.language", "en")
    fill(page, "header.requesting_authority", "Ministry of Public Security, A05")
    fill(page, "header.investigating_authority", "A05 Investigation Division")
    next_step(page)
    page.wait_for_url(re.compile(r".*/edit/contact$"))
    fill(page, "header.contact_email", "an.nguyen@a05.example.vn")
    fill(page, "header.contact_phone", "+84 24 3826 0000")
    fill(page, "header.contact_timezone", "Asia/Ho_Chi_Minh")
    next_step(page)
    page.wait_for_url(re.compile(r".*/edit/conditions$"))
    next_step(page)
    page.wait_for_url(re.compile(r".*/edit/particulars$"))
    fill(page, "fields.offence", "Illegal access (art. 7) and extortion")
    fill(page, "fields.facts_summary", XSS)
    fill(page, "fields.data_to_preserve", "All content and logs of minh.tran.88@cloudmail.example")
    fill(page, "fields.relationship_to_offence", "The account received the ransom notifications.")
    fill(page, "fields.custodian_or_location", "CloudMail Pty Ltd, Sydney")
    fill(page, "fields.follow_up_mla_planned", (date.today() + timedelta(days=30)).isoformat())
    next_step(page)
    # Necessity left out, the MLA undertaking unticked: the step refuses to move on and says why.
    assert page.url.endswith("/edit/particulars")
    alert = page.get_by_role("alert").first.inner_text()
    assert "Missing: required by art. 42(2)(e)" in alert
    assert "art. 42(2)(f)" in alert
    necessity = page.locator("#f-fields-necessity")
    assert necessity.get_attribute("aria-invalid") == "true"
    shots(page, "wizard-missing")
    fill(page, "fields.necessity", "The provider deletes inactive accounts after 30 days.")
    page.get_by_label("An MLA request for search, seizure or disclosure will follow").check()
    next_step(page)
    page.wait_for_url(re.compile(r".*/edit/review$"))
    assert "Everything the convention requires is there." in page.content()
    assert page.locator("iframe.preview").count() == 1
    state_panel = page.locator("#h-state").locator("..").inner_text()
    assert "Australia" in state_panel and "art. 65" in state_panel
    shots(page, "wizard-review")
    page.get_by_role("button", name="Submit for approval").click()
    page.wait_for_url(re.compile(r".*/desk/requests/[0-9a-f-]+\?done=submit$"))
    rid = page.url.split("/desk/requests/")[1].split("?")[0]

    # --- the drafter sees no approval, and forcing it is refused and recorded -------------------------
    assert page.locator("#action-approve").count() == 0
    assert "Approve and send" not in page.content()
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    forced = page.request.post(
        f"{a.url}/desk/requests/{rid}/actions/approve",
        form={"csrf": token},
        headers={"Origin": a.url},
        max_redirects=0,
    )
    assert forced.status == 403
    wait_until(lambda: denied(a, "an", "cases.request.approve") or denied(a, "an", "http.post"))
    shots(page, "request-drafter")

    # --- the supervisor approves -----------------------------------------------------------------------
    sup_ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    sup = sup_ctx.new_page()
    sup_errors = watch_console(sup)
    sign_in_and_enrol(sup, a, "binh")
    sup.get_by_role("link", name="Approvals").click()
    assert sup.get_by_text("Expedited preservation of stored electronic data").count() >= 1
    shots(sup, "approvals")
    sup.get_by_role("button", name="Approve and send").click()
    sup.wait_for_url(re.compile(r".*/desk/approvals$"))
    assert "Nothing is waiting for approval." in sup.content()

    # --- it arrives in the other State's inbox ----------------------------------------------------------
    def arrived() -> bool:
        with b.db.transaction(read_only=True) as session:
            return session.get(RequestRow, __import__("uuid").UUID(rid)) is not None

    wait_until(arrived, 30)
    other_ctx = browser.new_context(locale="en-AU", viewport={"width": 1280, "height": 900})
    other = other_ctx.new_page()
    other_errors = watch_console(other)
    sign_in_and_enrol(other, b, "kate")
    other.get_by_role("link", name="Inbox").click()
    other.get_by_role("link", name="Expedited preservation of stored electronic data").first.click()
    assert other.url.endswith(f"/desk/requests/{rid}")
    shots(other, "request-received")
    # The stored script is text on the page and never ran.
    assert XSS in other.locator("dl.fields").first.inner_text()
    assert other.evaluate("window.__xss") is None
    assert other.locator("#action-acknowledge").count() == 1
    assert other.locator("#action-approve").count() == 0

    # A form posted without its CSRF token is refused, and nothing changes.
    refused = other.request.post(
        f"{b.url}/desk/requests/{rid}/actions/acknowledge",
        form={"data.reference": "AU-1"},
        headers={"Origin": b.url},
        max_redirects=0,
    )
    assert refused.status == 403
    with b.db.transaction(read_only=True) as session:
        assert session.get_one(RequestRow, __import__("uuid").UUID(rid)).status == "received"

    other.locator("#action-acknowledge > summary").click()
    other.locator("#f-data-reference").fill("AU-PRES-5521")
    other.get_by_role("button", name="Acknowledge").click()
    other.wait_for_url(re.compile(r".*\?done=acknowledge$"))
    shots(other, "request-acknowledged")

    # --- Arabic, right to left ---------------------------------------------------------------------------
    other.get_by_label("Language").select_option("ar")
    other.get_by_role("button", name="Change language").click()
    other.wait_for_load_state()
    assert other.locator("html").get_attribute("dir") == "rtl"
    assert other.locator("html").get_attribute("lang") == "ar"
    shots(other, "request-arabic")
    other.goto(f"{b.url}/desk/inbox")
    assert other.locator("html").get_attribute("dir") == "rtl"
    shots(other, "inbox-arabic")

    # --- a few more pages for the artifacts ----------------------------------------------------------------
    for path, name in (
        ("/desk/outbox", "outbox"),
        ("/desk/directory", "directory"),
        ("/desk/charts", "charts"),
    ):
        page.goto(f"{a.url}{path}")
        shots(page, name)
    page.goto(f"{a.url}/desk/cases/" + _case_of(a, rid))
    shots(page, "case")

    for errs in (errors, sup_errors, other_errors):
        assert not csp_violations(errs), errs
    for ctx in (officer_ctx, sup_ctx, other_ctx):
        ctx.close()


def _case_of(node: LiveNode, rid: str) -> str:
    import uuid

    with node.db.transaction(read_only=True) as session:
        return str(session.get_one(RequestRow, uuid.UUID(rid)).case_id)


def new_package(page: Any, node: LiveNode, case_ref: str, title: str) -> str:
    """Create an evidence package on the desk; its id."""
    page.goto(f"{node.url}/desk/evidence/new")
    page.get_by_label("Case reference").fill(case_ref)
    page.get_by_label("Title").fill(title)
    page.get_by_role("button", name="Create the package").click()
    page.wait_for_url(re.compile(r".*/desk/evidence/[0-9a-f-]+$"))
    return str(page.url.rsplit("/", 1)[1])


def test_resumable_upload_survives_a_cut_connection(browser: Any, nodes: Nodes, shots: Shots) -> None:
    a = nodes.a
    make_user(a, "an", "officer", "contact_point", "admin")
    ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors = watch_console(page)
    sign_in_and_enrol(page, a, "an")
    pid = new_package(page, a, "CASE-2026-0001", "Mailbox export")

    payload = bytes(range(256)) * 1200  # 300 KiB: five chunks of 64 KiB
    cut = {"done": False}

    def drop_second_chunk(route: Any) -> None:
        offset = int(route.request.headers.get("upload-offset", "0"))
        if offset >= 64 * 1024 and not cut["done"]:
            cut["done"] = True
            route.abort("connectionreset")
            return
        route.continue_()

    page.route(re.compile(r".*/files/\d+/content$"), drop_second_chunk)
    page.locator("#up-file").set_input_files(
        {"name": "mailbox.mbox", "mimeType": "application/mbox", "buffer": payload}
    )
    values = {
        "acq.by": "A05 forensic unit",
        "acq.where": "CloudMail export portal",
        "acq.method": "provider export",
        "acq.tool": "curl",
        "acq.tool_version": "8.5",
        "acq.authority": "Order 117/2026",
    }
    for name, value in values.items():
        fill(page, name, value)
    fill(page, "acq.at", "2026-11-02T10:30")
    page.get_by_role("button", name="Upload").click()
    done = "() => document.querySelector('#up-progress').value >= 307200"
    page.wait_for_function(done, timeout=30000)
    page.wait_for_load_state()
    assert cut["done"], "the connection was never cut"

    def complete() -> bool:
        with a.db.transaction(read_only=True) as session:
            f = session.scalar(select(EvidenceFile).where(EvidenceFile.name == "mailbox.mbox"))
            return f is not None and f.status == "complete"

    wait_until(complete)
    import hashlib

    digest = hashlib.sha256(payload).hexdigest()
    # The upload script reloads the page itself once the last chunk is in; a goto of ours could race that
    # reload ("navigation interrupted by another navigation"), so wait for the reloaded page instead.
    page.wait_for_function(f"() => document.body.innerText.includes('{digest}')", timeout=30000)
    page.wait_for_load_state()
    assert digest in page.content()
    assert page.url.endswith(f"/desk/evidence/{pid}")
    page.get_by_role("button", name="Seal the package").click()
    page.wait_for_load_state()
    page.get_by_role("button", name="Verify now").click()
    page.wait_for_load_state()
    assert "Verified:" in page.locator("#h-verification").locator("..").inner_text()
    shots(page, "evidence")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the court bundle").click()
    assert download.value.suggested_filename.endswith(".zip")
    assert not csp_violations(errors), errors
    ctx.close()


def test_two_administrators_destroy_a_packages_content_on_the_desk(
    browser: Any, nodes: Nodes, shots: Shots
) -> None:
    a = nodes.a
    make_user(a, "an", "officer", "admin")
    make_user(a, "minh", "admin")  # runs the node: sees no evidence, but takes part in its destruction
    ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors = watch_console(page)
    sign_in_and_enrol(page, a, "an")
    pid = new_package(page, a, "CASE-2026-0002", "Copy of a seized phone")
    page.locator("summary", has_text="Ask to destroy the content").click()
    page.locator(f"#destroy-reason-{pid}").fill("the court ordered the copy destroyed")
    page.get_by_role("button", name="Ask to destroy the content").click()
    page.wait_for_load_state()
    main = page.locator("main").inner_text()
    assert "an asked for this package's content to be destroyed" in main
    assert page.get_by_role("button", name="Confirm: destroy the content").count() == 0, "not to the asker"

    other = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    second = other.new_page()
    second_errors = watch_console(second)
    sign_in_and_enrol(second, a, "minh")
    assert "Evidence packages whose destruction waits for a second administrator: 1." in (
        second.locator("main").inner_text()
    )
    second.get_by_role("link", name="Deletions", exact=True).click()
    second.wait_for_url(re.compile(r".*/desk/admin/deletions$"))
    listed = second.locator("main").inner_text()
    assert "Title and case hidden: your roles do not open this package." in listed
    assert "Copy of a seized phone" not in listed
    shots(second, "deletions")
    second.locator("summary", has_text="Confirm: destroy the content").click()
    second.locator(f"#confirm-reason-{pid}").fill("checked the court order")
    second.get_by_role("button", name="Confirm: destroy the content").click()
    second.wait_for_url(re.compile(r".*/desk/admin/deletions$"))
    assert "No deletion is waiting for confirmation." in second.locator("main").inner_text()

    page.reload()
    assert "Deleted" in page.locator("h1").inner_text()
    assert page.locator("summary", has_text="Ask to destroy the content").count() == 0
    assert not csp_violations(errors + second_errors), errors + second_errors
    ctx.close()
    other.close()


def test_a_request_received_by_fax_is_registered_on_the_desk(
    browser: Any, nodes: Nodes, shots: Shots
) -> None:
    b = nodes.b
    make_user(b, "kate", "central_authority", "officer")
    ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors = watch_console(page)
    sign_in_and_enrol(page, b, "kate")
    page.goto(f"{b.url}/desk/inbox")
    page.get_by_role("link", name="Register a request received outside the network").click()
    page.get_by_label(re.compile("Expedited preservation of stored electronic data")).check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Requesting State").select_option("VN")
    page.get_by_label("Requesting authority", exact=True).fill("Embassy of Viet Nam, Canberra")
    page.get_by_label("Received by").select_option("fax")
    page.get_by_label("Received on").fill("2026-11-27T09:30")
    fill(page, "header.our_reference", "VN-A05-2026-300")
    fill(page, "fields.offence", "Ransomware extortion of hospitals")
    shots(page, "register")
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(re.compile(r".*/desk/requests/[0-9a-f-]{36}$"))
    text = page.locator("main").inner_text()
    assert "As received, it lacks what the convention requires" in text
    assert "outside:" not in text
    assert "Registered: received outside the network" in text and "fax" in text
    shots(page, "registered")
    # Worked like any incoming request: the acknowledgement is open, and the page says how it came.
    assert page.locator("summary", has_text="Acknowledge").count() == 1
    assert "Registered by" in text and "Nov 27, 2026" in text
    with b.db.transaction(read_only=True) as session:
        row = session.scalars(select(RequestRow)).one()
        assert (row.direction, row.counterpart, row.counterpart_country) == ("incoming", None, "VN")
    assert csp_violations(errors) == []


def test_an_inspector_reads_and_checks_the_audit_record_in_french(
    browser: Any, nodes: Nodes, shots: Shots
) -> None:
    a = nodes.a
    with a.db.transaction() as session:
        hanoi = "Asia/Ho_Chi_Minh"
        accounts.create_user(
            session, SYSTEM, username="ines", password=PASSWORD, roles=["auditor"], timezone=hanoi
        )
    ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors = watch_console(page)
    sign_in_and_enrol(page, a, "ines")
    with a.db.transaction() as session:  # as if chosen on the Preferences page
        session.execute(update(User).where(User.username == "ines").values(locale="fr"))
    page.goto(f"{a.url}/desk")
    page.get_by_role("link", name="Journal d'audit").click()
    page.wait_for_url(re.compile(r".*/desk/audit$"))
    assert page.locator("h1").inner_text() == "Journal d'audit"
    # Today on the inspector's own clock (Hanoi), entered through the browser's date control.
    today = utcnow().astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()
    page.get_by_label("Qui (nom d'utilisateur)").fill("ines")
    page.get_by_label("Du (jour)").fill(today)
    page.get_by_label("Au (jour)").fill(today)
    page.get_by_role("button", name="Appliquer").click()
    page.wait_for_url(re.compile(r".*/desk/audit\?.*since=.*"))
    rows = page.locator("#audit-records tbody tr")
    assert rows.count() >= 2 and "accounts.login" in page.locator("#audit-records").inner_text()
    assert all("ines" in rows.nth(i).inner_text() for i in range(rows.count()))
    shots(page, "audit")
    page.get_by_role("button", name="Vérifier toute la chaîne maintenant").click()
    page.wait_for_url(re.compile(r".*/desk/audit\?.*#h-check$"))
    # The node's job worker walks the chain; until it ends, the page says the check is under way.
    for _ in range(50):
        if page.locator("#chain-result").count():
            break
        page.wait_for_timeout(100)
        page.reload()
    assert "La chaîne est intacte." in page.locator("#chain-result").inner_text()
    assert "Intacte" in page.locator("#audit-checks").inner_text()
    # The filters survive the check: the page still shows only ines's records.
    assert page.get_by_label("Qui (nom d'utilisateur)").input_value() == "ines"
    assert not csp_violations(errors), errors
    ctx.close()
