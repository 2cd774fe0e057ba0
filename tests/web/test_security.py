"""The desk's defences, each tried the way an attacker would: no or forged CSRF tokens, forms from another
site, forced URLs, stored script, fixation, stale and revoked sessions, guessing codes, open redirects."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from cases.conftest import Side, draft, sent_preservation
from conftest import LiveNode
from cyberpact.accounts.models import WebSession
from cyberpact.audit.models import AuditRecord
from cyberpact.cases.models import Request as RequestRow
from cyberpact.kit.time import utcnow
from cyberpact.web.security import CSP, PLAIN_COOKIE, PRE_COOKIE

from .helpers import PASSWORD, csrf_of, person, text_of, wait_for


def _denials(node: LiveNode, username: str) -> list[AuditRecord]:
    with node.db.transaction(read_only=True) as session:
        return list(
            session.scalars(
                select(AuditRecord).where(AuditRecord.actor == username, AuditRecord.outcome == "denied")
            )
        )


def test_every_desk_answer_carries_the_strict_policy_and_no_inline_code(node: LiveNode) -> None:
    lan = person(node, "lan", "officer", "supervisor", "admin")
    for path in ("/desk", "/desk/inbox", "/desk/new", "/desk/directory", "/desk/charts", "/desk/sign-in"):
        r = lan.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["cache-control"] == "no-store"
        # No inline script, no inline style, no event handler attribute anywhere.
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), path
        assert "<style" not in r.text and " style=" not in r.text, path
        assert not re.search(r"\son[a-z]+=", r.text), path
        assert "javascript:" not in r.text
    static = lan.client.get("/desk/static/desk.css")
    assert static.status_code == 200 and static.headers["x-content-type-options"] == "nosniff"


def test_session_cookie_is_httponly_samesite_and_secure_over_https(node: LiveNode) -> None:
    r = httpx.get(f"{node.url}/desk/sign-in")
    pre = r.headers["set-cookie"]
    assert PRE_COOKIE in pre and "HttpOnly" in pre and "SameSite=strict" in pre.replace("Strict", "strict")
    lan = person(node, "lan", "officer", sign_in=False)
    lan.get("/desk/sign-in")
    r = lan.post("/desk/sign-in", {"username": "lan", "password": PASSWORD, "next": "/desk"})
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(PLAIN_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/" in cookie
    assert "Max-Age" not in cookie and "expires" not in cookie.lower()  # dies with the browser

    from cyberpact.config import Settings
    from cyberpact.web.security import HOST_COOKIE, cookie_name

    https = Settings(
        env="test", base_url="https://desk.example", secret_key="x" * 40, key_passphrase="y" * 20
    )
    assert https.web_secure_cookies and cookie_name(https) == HOST_COOKIE


def test_a_form_without_its_token_or_with_a_forged_one_is_refused_and_changes_nothing(
    node: LiveNode,
) -> None:
    lan = person(node, "lan", "officer", timezone="UTC")
    lan.get("/desk/preferences")
    real = csrf_of(lan.page)
    for token in ("", "forged-" + real[7:], real[:-1]):
        r = lan.post("/desk/preferences", {"lang": "fr", "timezone": "Europe/Paris"}, csrf=token)
        assert r.status_code == 403, token
        assert "This form was refused" in r.text
    # A token of another person's session is as good as none.
    other = person(node, "kim", "officer")
    other.get("/desk/preferences")
    r = lan.post("/desk/preferences", {"lang": "fr", "timezone": "Europe/Paris"}, csrf=csrf_of(other.page))
    assert r.status_code == 403
    # From another site, even with the right token.
    r = lan.post(
        "/desk/preferences",
        {"lang": "fr", "timezone": "Europe/Paris"},
        csrf=real,
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    r = lan.get("/desk/preferences")
    assert 'value="UTC"' in r.text and '<html lang="en"' in r.text, "nothing changed"
    wait_for(lambda: len([d for d in _denials(node, "lan") if d.detail.get("code") == "csrf"]) >= 4)
    ok = lan.post("/desk/preferences", {"lang": "fr", "timezone": "Europe/Paris"}, csrf=real)
    assert ok.status_code == 303


def test_the_sign_in_form_needs_its_signed_token(node: LiveNode) -> None:
    person(node, "lan", "officer", sign_in=False)
    client = httpx.Client(base_url=node.url, follow_redirects=False)
    page = client.get("/desk/sign-in").text
    bad = client.post("/desk/sign-in", data={"username": "lan", "password": PASSWORD, "csrf": "x" * 64})
    assert bad.status_code == 403
    client.cookies.clear()  # the token is bound to the cookie it came with
    stolen = client.post(
        "/desk/sign-in", data={"username": "lan", "password": PASSWORD, "csrf": csrf_of(page)}
    )
    assert stolen.status_code == 403
    client.close()


def test_wrong_password_and_open_redirects(node: LiveNode) -> None:
    lan = person(node, "lan", "officer", sign_in=False)
    lan.get("/desk/sign-in")
    r = lan.post("/desk/sign-in", {"username": "lan", "password": "wrong"})
    assert r.status_code == 401 and "Wrong username or password." in r.text
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example", "/api/v1/users"):
        lan.get("/desk/sign-in")
        r = lan.post("/desk/sign-in", {"username": "lan", "password": PASSWORD, "next": target})
        assert r.status_code == 303
        assert r.headers["location"] == "/desk/sign-in/code?next=%2Fdesk", target


def test_the_password_alone_opens_nothing_and_enrolment_is_forced(node: LiveNode) -> None:
    newcomer = person(node, "new", "officer", enrol=False)
    newcomer.get("/desk/sign-in")
    r = newcomer.post("/desk/sign-in", {"username": "new", "password": PASSWORD, "next": "/desk/inbox"})
    assert r.headers["location"].startswith("/desk/enrol")
    for path in ("/desk", "/desk/inbox", "/desk/sign-in/code"):
        r = newcomer.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith(
            ("/desk/sign-in/code", "/desk/enrol")
        )
    page = newcomer.get("/desk/enrol").text
    assert "<svg" in page and 'id="totp-secret"' in page
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert secret
    newcomer.secret = secret.group(1).replace(" ", "")
    half_cookie = newcomer.client.cookies.get(PLAIN_COOKIE)
    wrong = newcomer.post("/desk/enrol", {"code": "000000", "next": "/desk/inbox"})
    assert wrong.status_code == 422
    r = newcomer.post("/desk/enrol", {"code": newcomer.code(), "next": "/desk/inbox"})
    assert r.status_code == 200 and len(re.findall(r"<li>[0-9a-f]{5}-[0-9a-f]{5}</li>", r.text)) == 10
    # A new session secret after the second factor: the half session's cookie is dead (no fixation).
    assert newcomer.client.cookies.get(PLAIN_COOKIE) != half_cookie
    stale = httpx.get(f"{node.url}/desk", cookies={PLAIN_COOKIE: half_cookie or ""})
    assert stale.status_code == 303
    assert newcomer.get("/desk/inbox").status_code == 200


def test_guessing_codes_is_throttled(node: LiveNode) -> None:
    lan = person(node, "lan", "officer", sign_in=False)
    lan.get("/desk/sign-in")
    lan.post("/desk/sign-in", {"username": "lan", "password": PASSWORD})
    lan.get("/desk/sign-in/code")
    statuses = []
    for _ in range(6):
        r = lan.post("/desk/sign-in/code", {"code": "123456"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    assert lan.get("/desk").status_code == 303, "the half session was closed"


def test_idle_and_revoked_sessions_end(node: LiveNode) -> None:
    lan = person(node, "lan", "officer")
    assert lan.get("/desk").status_code == 200
    with node.db.transaction() as session:
        session.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    r = lan.get("/desk/inbox")
    assert r.status_code == 303 and r.headers["location"].startswith("/desk/sign-in?next=")

    lan.sign_in()
    laptop = lan.client.cookies.get(PLAIN_COOKIE)
    lan.client.cookies.clear()
    lan.sign_in()
    lan.get("/desk/preferences")
    r = lan.post("/desk/sign-out-everywhere")
    assert r.status_code == 303
    assert httpx.get(f"{node.url}/desk", cookies={PLAIN_COOKIE: laptop or ""}).status_code == 303
    assert lan.get("/desk").status_code == 303
    with node.db.transaction(read_only=True) as session:
        live = session.scalar(
            select(func.count()).select_from(WebSession).where(WebSession.revoked_at.is_(None))
        )
    assert live == 0


def test_sign_out_ends_this_session(node: LiveNode) -> None:
    lan = person(node, "lan", "officer")
    lan.get("/desk")
    assert lan.post("/desk/sign-out").status_code == 303
    assert lan.get("/desk").status_code == 303


def test_forced_urls_answer_403_and_are_recorded(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    assert vn.officer.post(f"/api/v1/requests/{rid}/actions/submit", json={"data": {}}).status_code == 200
    officer = person(vn.node, "thu", "officer")
    for path in ("/desk/approvals", "/desk/admin/peers"):
        r = officer.get(path)
        assert r.status_code == 403 and "You may not do this" in r.text, path
    page = officer.get(f"/desk/requests/{rid}").text
    assert 'id="action-approve"' not in page and "Approve and send" not in page
    r = officer.post(f"/desk/requests/{rid}/actions/approve")
    assert r.status_code == 403
    wait_for(
        lambda: (
            {(d.action, d.detail.get("status")) for d in _denials(vn.node, "thu")}
            >= {("http.get", 403), ("http.post", 403)}
        )
    )
    with vn.node.db.transaction(read_only=True) as session:
        assert (
            session.scalar(select(RequestRow.status).where(RequestRow.id == uuid.UUID(rid)))
            == "pending_approval"
        )
    auditor = person(vn.node, "aud", "auditor")
    assert auditor.get(f"/desk/requests/{rid}").status_code == 404
    assert auditor.get("/desk/new").status_code == 403


def test_stored_script_is_shown_as_text(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'
    from cases.conftest import PRESERVATION

    rid = draft(vn, fields={**PRESERVATION, "facts_summary": evil}).json()["request"]["id"]
    act = vn.officer.post(f"/api/v1/requests/{rid}/actions/submit", json={"data": {}})
    assert act.status_code == 200
    assert vn.supervisor.post(f"/api/v1/requests/{rid}/actions/approve", json={"data": {}}).status_code == 200
    vn.deliver()
    kate = person(au.node, "kate", "central_authority", "officer")
    for who, rid_ in ((kate, rid),):
        page = who.get(f"/desk/requests/{rid_}").text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
        assert evil in text_of(page)
    # A value that fails a check is shown back escaped too, beside its problem.
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "<b>x</b>" * 100})
    assert r.status_code == 422 and "<b>x</b>" not in r.text


def test_bad_values_are_refused_with_a_clear_4xx_and_nothing_changes(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    kate = person(au.node, "kate", "central_authority", "officer")
    kate.get(f"/desk/requests/{rid}")
    r = kate.post(f"/desk/requests/{rid}/actions/preserve", {"data.preserved_until": "not a date"})
    assert r.status_code == 409  # preserve is not open before acknowledging: the state decides first
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": ""})
    assert r.status_code == 422 and "Missing: required by T-CY template: ticket number." in text_of(r.text)
    r = kate.post(f"/desk/requests/{rid}/actions/no_such_action", {})
    assert r.status_code == 422
    for path in (f"/desk/requests/{rid}x", "/desk/requests/not-a-uuid", "/desk/cases/123"):
        assert kate.get(path).status_code == 404, path
    for query in (
        "country=Australia",
        "status=nonsense",
        "type=x",
        "sort=password",
        "page=0",
        "deadline=soon",
    ):
        r = kate.get(f"/desk/inbox?{query}")
        assert r.status_code == 422, query
    with au.node.db.transaction(read_only=True) as session:
        assert session.scalar(select(RequestRow.status).where(RequestRow.id == uuid.UUID(rid))) == "received"


@pytest.mark.parametrize(
    "path", ["/desk", "/desk/inbox", "/desk/requests/00000000-0000-0000-0000-000000000000"]
)
def test_signed_out_visitors_go_to_sign_in(node: LiveNode, path: str) -> None:
    r = httpx.get(f"{node.url}{path}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/desk/sign-in?next=")
