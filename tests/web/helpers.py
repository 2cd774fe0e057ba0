"""A person at the desk, driven over real HTTP: signs in with a password and a TOTP code, reads the CSRF
token from the page it is on, and posts forms the way a browser does."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pyotp

from conftest import LiveNode
from cyberpact.accounts import mfa
from cyberpact.accounts import service as accounts
from cyberpact.accounts.models import User
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.time import utcnow

PASSWORD = "correct horse battery staple"
_HIDDEN = re.compile(r'<input type="hidden" name="csrf" value="([^"]*)"')


def csrf_of(page: str) -> str:
    found = _HIDDEN.search(page)
    assert found, "no CSRF field on the page"
    return html.unescape(found.group(1))


def text_of(page: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded, spaces collapsed)."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


@dataclass
class Person:
    node: LiveNode
    username: str
    secret: str | None
    client: httpx.Client
    last_step: int = 0
    page: str = ""
    codes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.node.url

    def code(self) -> str:
        """A TOTP code for a step not used yet (the node refuses a replayed one)."""
        assert self.secret is not None
        while True:
            now = int(utcnow().timestamp()) // mfa.STEP
            step = max(now, self.last_step + 1)
            if step <= now + 1:
                self.last_step = step
                return pyotp.TOTP(self.secret).at(step * mfa.STEP)
            time.sleep(1)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        r = self.client.get(path, **kw)
        if r.headers.get("content-type", "").startswith("text/html"):
            self.page = r.text
        return r

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None, **kw: Any
    ) -> httpx.Response:
        """Post a form with the CSRF token of the page last read (or ``csrf``; ``""`` sends none)."""
        body = dict(data or {})
        token = csrf_of(self.page) if csrf is None else csrf
        if token:
            body["csrf"] = token
        r = self.client.post(path, data=body, **kw)
        if r.headers.get("content-type", "").startswith("text/html"):
            self.page = r.text
        return r

    def sign_in(self) -> None:
        r = self.get("/desk/sign-in")
        assert r.status_code == 200
        r = self.post("/desk/sign-in", {"username": self.username, "password": PASSWORD, "next": "/desk"})
        assert r.status_code == 303, r.text
        assert r.headers["location"].startswith("/desk/sign-in/code")
        self.get(r.headers["location"])
        r = self.post("/desk/sign-in/code", {"code": self.code(), "next": "/desk"})
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/desk"


def person(
    node: LiveNode, username: str, *roles: str, enrol: bool = True, sign_in: bool = True, **user: Any
) -> Person:
    """A user of ``node`` with ``roles``, enrolled in TOTP (through the accounts service) and signed in."""
    keys = node.app.state.keys
    secret = None
    step = 0
    with node.db.transaction() as session:
        row = accounts.create_user(session, SYSTEM, username=username, password=PASSWORD, roles=roles, **user)
        if enrol:
            enrolment = mfa.begin_enrolment(session, keys, row, "test")
            secret = enrolment.secret
    codes: list[str] = []
    if enrol:
        assert secret is not None
        step = int(utcnow().timestamp()) // mfa.STEP
        with node.db.transaction() as session:
            codes = mfa.confirm_enrolment(
                session, keys, SYSTEM, session.get_one(User, row.id), pyotp.TOTP(secret).at(step * mfa.STEP)
            )
    client = httpx.Client(base_url=node.url, timeout=30, follow_redirects=False)
    node.clients.append(client)
    p = Person(node, username, secret, client, step, codes=codes)
    if enrol and sign_in:
        p.sign_in()
    return p


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def later(minutes: int) -> Any:
    return utcnow() + timedelta(minutes=minutes)
