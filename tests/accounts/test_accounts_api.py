from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from accounts.usernames import HOSTILE_USERNAMES
from conftest import LiveNode, make_settings, start_node
from cyberpact.accounts import service as accounts
from cyberpact.accounts.models import ApiToken, User
from cyberpact.audit.models import AuditRecord
from cyberpact.cli import app
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.errors import InvalidInput


def _count(node: LiveNode, model: type) -> int:
    with node.db.transaction(read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


NEW_USER = {
    "username": "nguyen.an",
    "display_name": "Nguyen An",
    "password": "a long passphrase 1",
    "roles": ["officer"],
    "timezone": "Asia/Ho_Chi_Minh",
}


def test_admin_creates_user_with_roles_and_argon2id_hash(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    r = admin.post("/api/v1/users", json=NEW_USER)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["roles"] == ["officer"] and "password" not in body
    with node.db.transaction(read_only=True) as s:
        user = s.scalar(select(User).where(User.username == "nguyen.an"))
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert "a long passphrase 1" not in user.password_hash
    r = admin.put("/api/v1/users/nguyen.an/roles", json={"roles": ["officer", "supervisor"]})
    assert r.json()["roles"] == ["officer", "supervisor"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**NEW_USER, "extra": 1}, 422, "extra"),
        ({**NEW_USER, "roles": ["emperor"]}, 422, "roles.0"),
        ({**NEW_USER, "display_name": 5}, 422, "display_name"),
        ({**NEW_USER, "display_name": "x" * 201}, 422, "display_name"),
        ({**NEW_USER, "password": "short"}, 422, "password"),
        ({**NEW_USER, "timezone": "Mars/Olympus_Mons"}, 422, "timezone"),
    ],
)
def test_bad_user_input_is_rejected_and_nothing_stored(
    node: LiveNode, body: dict, status: int, field: str
) -> None:
    admin = node.client(node.user("root", "admin"))
    before = _count(node, User)
    r = admin.post("/api/v1/users", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in r.json()["errors"]]
    assert _count(node, User) == before


def test_api_refuses_look_alike_and_malformed_usernames(node: LiveNode) -> None:
    # The same rule, in the same words, as the command line's: the API strips no space to make a name fit.
    admin = node.client(node.user("root", "admin"))
    before = _count(node, User)
    for username in HOSTILE_USERNAMES:
        r = admin.post("/api/v1/users", json={**NEW_USER, "username": username})
        assert r.status_code == 422, (username, r.text)
        assert [e["field"] for e in r.json()["errors"]] == ["username"], username
        assert accounts.USERNAME_RULE in r.json()["detail"], username
    assert _count(node, User) == before


def test_malformed_json_is_400(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    before = _count(node, User)
    r = admin.post("/api/v1/users", content=b'{"username": ', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["code"] == "malformed"
    assert _count(node, User) == before


def test_duplicate_username_is_409(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    assert admin.post("/api/v1/users", json=NEW_USER).status_code == 201
    r = admin.post("/api/v1/users", json=NEW_USER)
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "username"


def test_missing_expired_revoked_tokens_are_401_and_audited(node: LiveNode) -> None:
    assert node.client().get("/api/v1/me").status_code == 401
    assert node.client("cpt_not-a-real-token").get("/api/v1/me").status_code == 401
    token = node.user("alice", "officer")
    alice = node.client(token)
    assert alice.get("/api/v1/me").json()["username"] == "alice"
    with node.db.transaction() as s:
        s.execute(update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    r = alice.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["detail"] == "API token expired"
    assert r.headers["www-authenticate"].startswith("Bearer")

    fresh = node.client(node.user("bob", "officer"))
    tokens = fresh.get("/api/v1/tokens").json()
    assert fresh.delete(f"/api/v1/tokens/{tokens[0]['id']}").status_code == 200
    assert fresh.get("/api/v1/me").json()["detail"] == "API token revoked"
    with node.db.transaction(read_only=True) as s:
        denied = s.scalars(select(AuditRecord).where(AuditRecord.outcome == "denied")).all()
    assert len(denied) >= 4
    assert {d.object_id for d in denied} == {"/api/v1/me"}
    assert any(d.actor == "anonymous" for d in denied)


def test_wrong_role_is_403_recorded_with_actor(node: LiveNode) -> None:
    officer = node.client(node.user("olga", "officer"))
    before = _count(node, User)
    r = officer.post("/api/v1/users", json=NEW_USER)
    assert r.status_code == 403
    assert _count(node, User) == before
    with node.db.transaction(read_only=True) as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.outcome == "denied")).one()
    assert (rec.actor, rec.action, rec.object_id, rec.detail["status"]) == (
        "olga",
        "http.post",
        "/api/v1/users",
        403,
    )


def test_token_secret_shown_once_and_only_hash_stored(node: LiveNode) -> None:
    c = node.client(node.user("carol", "officer"))
    r = c.post("/api/v1/tokens", json={"name": "laptop", "days": 7})
    assert r.status_code == 201
    secret = r.json()["token"]
    assert secret.startswith("cpt_")
    listed = c.get("/api/v1/tokens").json()
    assert all("token" not in t for t in listed) and len(listed) == 2
    with node.db.transaction(read_only=True) as s:
        stored = [t.secret_hash for t in s.scalars(select(ApiToken))]
    assert secret not in stored and all(len(h) == 64 for h in stored)
    assert node.client(secret).get("/api/v1/me").status_code == 200


def test_a_token_lasts_a_year_at_most(node: LiveNode) -> None:
    c = node.client(node.user("dora", "officer"))
    r = c.post("/api/v1/tokens", json={"name": "script", "days": 400})
    assert r.status_code == 422
    assert c.post("/api/v1/tokens", json={"name": "script", "days": 366}).status_code == 201
    with node.db.transaction() as s, pytest.raises(InvalidInput, match="at most 366 days"):
        accounts.issue_token(s, SYSTEM, s.scalars(select(User)).first(), "x", timedelta(days=3650))


def test_other_users_tokens_cannot_be_revoked(node: LiveNode) -> None:
    a = node.client(node.user("anna", "officer"))
    b = node.client(node.user("ben", "officer"))
    a_token = a.get("/api/v1/tokens").json()[0]["id"]
    assert b.delete(f"/api/v1/tokens/{a_token}").status_code == 404
    assert a.get("/api/v1/me").status_code == 200


def test_disabling_a_user_stops_its_tokens(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    dave = node.client(node.user("dave", "officer"))
    assert dave.get("/api/v1/me").status_code == 200
    assert admin.post("/api/v1/users/dave/disable").json()["disabled"] is True
    assert dave.get("/api/v1/me").status_code == 401


def test_a_desk_session_from_before_a_disable_stays_closed_after_enable(
    node: LiveNode, admin: httpx.Client
) -> None:
    # Disabled because the phone was lost, enabled once there is a new one: the lost phone's session
    # must not come back with the account.
    from web.helpers import person

    off2 = person(node, "off2", "officer")
    assert off2.get("/desk").status_code == 200
    assert admin.post("/api/v1/users/off2/disable").status_code == 200
    assert admin.post("/api/v1/users/off2/enable").status_code == 200
    r = off2.get("/desk")
    assert r.status_code == 303 and r.headers["location"].startswith("/desk/sign-in"), r.status_code


def test_login_slows_then_locks_out(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(db_url, tmp_path, login_max_failures=3, login_lockout_seconds=2)
    node = start_node(settings)
    try:
        node.user("erin", "officer", password="the right passphrase")
        c = node.client()
        good = {"username": "erin", "password": "the right passphrase"}
        bad = {"username": "erin", "password": "wrong guess 12345"}
        assert c.post("/api/v1/auth/token", json=good).status_code == 201
        elapsed = []
        for _ in range(3):
            r = c.post("/api/v1/auth/token", json=bad)
            assert r.status_code == 401
            elapsed.append(r.elapsed.total_seconds())
        assert elapsed[1] >= 0.5 and elapsed[2] >= 0.9  # 0.25 s doubling per failure
        r = c.post("/api/v1/auth/token", json=good)
        assert r.status_code == 429, "the right password must not work during a lock-out"
        assert int(r.headers["retry-after"]) >= 1
        import time

        time.sleep(2.1)
        r = c.post("/api/v1/auth/token", json=good)
        assert r.status_code == 201
        assert node.client(r.json()["token"]).get("/api/v1/me").json()["username"] == "erin"
        # An unknown user answers exactly like a wrong password.
        r = c.post("/api/v1/auth/token", json={"username": "nobody", "password": "whatever 12345"})
        assert r.status_code == 401 and r.json()["detail"] == "Wrong username or password"
    finally:
        node.stop()


def test_a_token_for_an_enrolled_account_needs_its_second_factor(node: LiveNode) -> None:
    # The desk asks for the code after the password; an API token is the same access, so a phished
    # password alone must not buy one.
    import pyotp

    from cyberpact.accounts import mfa
    from cyberpact.kit.actor import SYSTEM
    from cyberpact.kit.keystore import KeyStore

    node.user("hoa", "officer", password="the right passphrase")
    keys = KeyStore(node.settings.key_passphrase_value(), node.settings.key_kdf_iterations)
    with node.db.transaction() as s:
        hoa = s.scalars(select(User).where(User.username == "hoa")).one()
        secret = mfa.begin_enrolment(s, keys, hoa, "test").secret
    with node.db.transaction() as s:
        hoa = s.scalars(select(User).where(User.username == "hoa")).one()
        recovery = mfa.confirm_enrolment(s, keys, SYSTEM, hoa, pyotp.TOTP(secret).now())
    c = node.client()
    good = {"username": "hoa", "password": "the right passphrase"}
    tokens_before = _count(node, ApiToken)

    r = c.post("/api/v1/auth/token", json=good)
    assert r.status_code == 401 and "second factor" in r.json()["detail"]
    r = c.post("/api/v1/auth/token", json={**good, "code": "000000"})
    assert r.status_code == 401 and r.json()["detail"] == "Wrong code"
    r = c.post("/api/v1/auth/token", json={"username": "hoa", "password": "wrong guess 12345", "code": "1"})
    assert r.status_code == 401 and r.json()["detail"] == "Wrong username or password"
    assert _count(node, ApiToken) == tokens_before

    r = c.post("/api/v1/auth/token", json={**good, "code": recovery[0]})
    assert r.status_code == 201, r.text
    assert node.client(r.json()["token"]).get("/api/v1/me").json()["username"] == "hoa"
    with node.db.transaction(read_only=True) as s:
        denied = s.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.action == "accounts.mfa.verify", AuditRecord.outcome == "denied")
        )
    assert denied == 1, "the wrong code is on the record the throttle counts"

    # Guessing codes locks the account's codes out, as on the desk.
    for _ in range(node.settings.login_max_failures):
        c.post("/api/v1/auth/token", json={**good, "code": "000000"})
    r = c.post("/api/v1/auth/token", json={**good, "code": recovery[1]})
    assert r.status_code == 429


def test_the_last_administrator_stays_one(
    node: LiveNode, admin: httpx.Client, cli_env: dict[str, str]
) -> None:
    # A node without an enabled administrator cannot add users or pin peers until someone with the server's
    # shell mends it: neither the API nor the command line takes the last one away.
    r = admin.put("/api/v1/users/root/roles", json={"roles": []})
    assert r.status_code == 409 and "last administrator" in r.json()["detail"]
    r = admin.post("/api/v1/users/root/disable")
    assert r.status_code == 409 and "last administrator" in r.json()["detail"]
    result = CliRunner().invoke(app, ["users", "disable", "root"])
    assert result.exit_code == 1 and "last administrator" in result.output
    with node.db.transaction(read_only=True) as s:  # nothing changed, no token revoked
        root = s.scalar(select(User).where(User.username == "root"))
        assert root is not None and root.roles == {"admin"} and not root.disabled
        assert (
            s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_not(None))) == 0
        )
    assert admin.get("/api/v1/users").status_code == 200

    # With a second administrator, either may step down; then the other is the last.
    second = node.client(node.user("second", "admin"))
    # Nobody grants themselves a role (an administrator who audits, or reads cases, by their own word):
    # another administrator does, and the record names both.
    r = admin.put("/api/v1/users/root/roles", json={"roles": ["admin", "auditor"]})
    assert r.status_code == 403 and "another administrator" in r.json()["detail"]
    r = second.put("/api/v1/users/root/roles", json={"roles": ["admin", "auditor"]})
    assert r.status_code == 200
    assert admin.post("/api/v1/users/second/disable").status_code == 200
    assert admin.put("/api/v1/users/root/roles", json={"roles": ["auditor"]}).status_code == 409
    assert admin.post("/api/v1/users/second/enable").status_code == 200
    r = admin.put("/api/v1/users/root/roles", json={"roles": ["auditor"]})  # one's own, fewer: allowed
    assert r.status_code == 200 and r.json()["roles"] == ["auditor"]


def test_an_administrator_resets_another_users_factor_but_not_their_own(
    node: LiveNode, admin: httpx.Client
) -> None:
    from web.helpers import person

    hoa = person(node, "hoa", "officer")
    assert hoa.get("/desk").status_code == 200
    officer = node.client(node.user("olga", "officer"))
    r = officer.post("/api/v1/users/hoa/reset-factor")
    assert r.status_code == 403
    r = admin.post("/api/v1/users/hoa/reset-factor")
    assert r.status_code == 200 and r.json()["username"] == "hoa", r.text
    r = hoa.get("/desk")
    assert r.status_code == 303 and r.headers["location"].startswith("/desk/sign-in")
    with node.db.transaction(read_only=True) as s:
        from cyberpact.accounts import mfa

        assert not mfa.enrolled(s, s.scalars(select(User).where(User.username == "hoa")).one())
        resets = list(s.scalars(select(AuditRecord).where(AuditRecord.action == "accounts.mfa.reset")))
        assert [r.actor for r in resets] == ["root"]

    # One's own factor is another administrator's to reset: a stolen token must not swap it.
    r = admin.post("/api/v1/users/root/reset-factor")
    assert r.status_code == 403 and "another administrator" in r.json()["detail"]
    second = node.client(node.user("second", "admin"))
    assert second.post("/api/v1/users/root/reset-factor").status_code == 200


def test_an_administrator_sets_another_users_password_but_not_their_own(
    node: LiveNode, admin: httpx.Client
) -> None:
    new = "told by phone at 3 a.m."
    hoa = node.client(node.user("hoa", "officer", password="the forgotten one"))
    assert (
        node.client(node.user("olga", "officer"))
        .post("/api/v1/users/hoa/password", json={"password": new})
        .status_code
        == 403
    )
    r = admin.post("/api/v1/users/hoa/password", json={"password": "short"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "password"
    r = admin.post("/api/v1/users/hoa/password", json={"password": new})
    assert r.status_code == 200 and new not in r.text, r.text
    assert hoa.get("/api/v1/me").status_code == 401, "the old password's tokens are closed"
    c = node.client()
    assert (
        c.post("/api/v1/auth/token", json={"username": "hoa", "password": "the forgotten one"}).status_code
        == 401
    )
    r = c.post("/api/v1/auth/token", json={"username": "hoa", "password": new})
    assert r.status_code == 201, r.text
    with node.db.transaction(read_only=True) as s:
        records = list(s.scalars(select(AuditRecord).where(AuditRecord.action == "accounts.user.password")))
        assert [r.actor for r in records] == ["root"]
        assert all(new not in str(r.detail) for r in s.scalars(select(AuditRecord)))

    r = admin.post("/api/v1/users/root/password", json={"password": new})
    assert r.status_code == 403 and "another administrator" in r.json()["detail"]
    assert admin.get("/api/v1/me").status_code == 200, "the refusal changed nothing"


# --- a password is what was typed, on every way in ----------------------------------------------------------

SPACED = "  a pass phrase, spaces and all  "


def _desk_password_step(node: LiveNode, username: str, password: str) -> httpx.Response:
    """The desk's sign-in form, posted as a browser posts it: the answer to the password step."""
    from web.helpers import csrf_of

    client = node.client()
    page = client.get("/desk/sign-in")
    form = {"username": username, "password": password, "next": "/desk", "csrf": csrf_of(page.text)}
    return client.post("/desk/sign-in", data=form, follow_redirects=False)


def _token_status(node: LiveNode, username: str, password: str) -> int:
    r = node.client().post("/api/v1/auth/token", json={"username": username, "password": password})
    return r.status_code


def test_a_password_is_kept_as_typed_by_the_api_the_desk_and_the_command_line(
    node: LiveNode, admin: httpx.Client, cli_env: dict[str, str]
) -> None:
    # Made through the API: the desk and the API take it as typed, and not with its spaces trimmed.
    r = admin.post("/api/v1/users", json={**NEW_USER, "username": "hoa", "password": SPACED})
    assert r.status_code == 201, r.text
    signed = _desk_password_step(node, "hoa", SPACED)
    assert signed.status_code == 303 and signed.headers["location"].startswith("/desk/enrol"), (
        signed.status_code
    )
    assert _token_status(node, "hoa", SPACED) == 201
    assert _token_status(node, "hoa", SPACED.strip()) == 401

    # Set again by an administrator through the API: the same.
    told = " told by phone, with a space before and after "
    assert admin.post("/api/v1/users/hoa/password", json={"password": told}).status_code == 200
    assert _desk_password_step(node, "hoa", told).status_code == 303
    assert _token_status(node, "hoa", told) == 201

    # Made at the command line, which keeps it as typed: the API takes it as typed too.
    made = CliRunner().invoke(
        app, ["users", "create", "lan", "-r", "officer"], env={"CYBERPACT_NEW_PASSWORD": SPACED}
    )
    assert made.exit_code == 0, made.output
    assert _token_status(node, "lan", SPACED) == 201
    assert _desk_password_step(node, "lan", SPACED).status_code == 303
