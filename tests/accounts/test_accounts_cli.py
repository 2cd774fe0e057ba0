from __future__ import annotations

import getpass
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from accounts.usernames import HOSTILE_USERNAMES
from cyberpact.accounts import mfa
from cyberpact.accounts import service as accounts
from cyberpact.accounts.models import User
from cyberpact.audit.models import AuditRecord
from cyberpact.cli import app
from cyberpact.config import Settings
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.errors import AuthenticationRequired
from cyberpact.kit.keystore import KeyStore

runner = CliRunner()


def test_users_and_tokens_cli_round_trip(cli_env: dict[str, str]) -> None:
    env = {"CYBERPACT_NEW_PASSWORD": "a long enough password"}
    r = runner.invoke(app, ["users", "create", "hoa", "-r", "officer", "-r", "contact_point"], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "list"])
    assert "hoa" in r.output and "contact_point, officer" in r.output
    r = runner.invoke(app, ["users", "roles", "hoa", "-r", "supervisor"])
    assert r.exit_code == 0 and "hoa: supervisor" in r.output
    r = runner.invoke(app, ["tokens", "create", "hoa", "--name", "ci", "--days", "3"])
    assert r.exit_code == 0
    secret = r.output.strip()
    assert secret.startswith("cpt_")
    r = runner.invoke(app, ["tokens", "list", "hoa"])
    assert "ci" in r.output and secret not in r.output
    r = runner.invoke(app, ["users", "disable", "hoa"])
    assert r.exit_code == 0 and "revoked" in r.output


def test_cli_user_errors_are_one_line_without_traceback(cli_env: dict[str, str]) -> None:
    env = {"CYBERPACT_NEW_PASSWORD": "a long enough password"}
    assert runner.invoke(app, ["users", "create", "hoa"], env=env).exit_code == 0
    r = runner.invoke(app, ["users", "create", "hoa"], env=env)
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert "conflict" in r.output and "already exists" in r.output
    r = runner.invoke(app, ["users", "roles", "hoa", "-r", "emperor"])
    assert r.exit_code == 1 and "unknown role" in r.output
    r = runner.invoke(app, ["tokens", "revoke", "not-a-uuid"])
    assert r.exit_code == 1 and "not a UUID" in r.output
    r = runner.invoke(app, ["users", "disable", "ghost"])
    assert r.exit_code == 1 and "No user ghost" in r.output


def _usernames(db: Database) -> list[str]:
    with db.transaction(read_only=True) as s:
        return list(s.scalars(select(User.username)))


def test_cli_refuses_look_alike_and_malformed_usernames(cli_env: dict[str, str], db: Database) -> None:
    env = {"CYBERPACT_NEW_PASSWORD": "a long enough password"}
    for username in HOSTILE_USERNAMES:
        r = runner.invoke(app, ["users", "create", "-r", "supervisor", "--", username], env=env)
        assert r.exit_code == 1, (username, r.output)
        assert "Traceback" not in r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "Invalid username" in lines[0] and "a-z" in lines[0], r.output
    assert _usernames(db) == []


def test_cli_refuses_a_bad_username_before_asking_for_a_password(
    cli_env: dict[str, str], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("asked for a password for a name that will be refused")

    monkeypatch.setattr(getpass, "getpass", no_prompt)
    monkeypatch.delenv("CYBERPACT_NEW_PASSWORD", raising=False)
    r = runner.invoke(app, ["users", "create", "Off2"])
    assert r.exit_code == 1 and "Invalid username" in r.output
    assert _usernames(db) == []


def _audit_text(db: Database) -> str:
    with db.transaction(read_only=True) as s:
        return " ".join(
            f"{r.action} {r.actor} {r.object_id} {r.detail}" for r in s.scalars(select(AuditRecord))
        )


def _actions(db: Database, action: str) -> int:
    with db.transaction(read_only=True) as s:
        return len(list(s.scalars(select(AuditRecord).where(AuditRecord.action == action))))


def test_cli_enables_a_disabled_user(cli_env: dict[str, str], db: Database) -> None:
    env = {"CYBERPACT_NEW_PASSWORD": "a long enough password"}
    assert runner.invoke(app, ["users", "create", "hoa", "-r", "officer"], env=env).exit_code == 0
    assert runner.invoke(app, ["users", "disable", "hoa"]).exit_code == 0
    r = runner.invoke(app, ["users", "enable", "hoa"])
    assert r.exit_code == 0 and "enabled hoa" in r.output, r.output
    with db.transaction(read_only=True) as s:
        assert s.scalars(select(User).where(User.username == "hoa")).one().disabled is False
    assert _actions(db, "accounts.user.enable") == 1
    r = runner.invoke(app, ["users", "enable", "ghost"])
    assert r.exit_code == 1 and "No user ghost" in r.output


def test_cli_sets_a_locked_out_users_password_and_signs_them_out(
    cli_env: dict[str, str], db: Database, settings: Settings
) -> None:
    # The duty officer who forgot the password at 3 a.m., and locked the account trying: the operator
    # sets a new one, and it works at once.
    old, new = "a long enough password", "the new one, told by phone"
    assert runner.invoke(app, ["users", "create", "hoa"], env={"CYBERPACT_NEW_PASSWORD": old}).exit_code == 0
    policy = accounts.LoginPolicy(max_failures=2)
    with db.transaction() as s:
        hoa = s.scalars(select(User).where(User.username == "hoa")).one()
        _, token = accounts.issue_token(s, SYSTEM, hoa, "laptop", timedelta(days=1))
        _, cookie = mfa.open_session(s, hoa, None, None, mfa.SessionPolicy())
    for _ in range(2):
        with db.transaction() as s:
            assert accounts.authenticate(s, "hoa", "a wrong guess!!", None, policy)[0] is None

    r = runner.invoke(app, ["users", "password", "hoa"], env={"CYBERPACT_NEW_PASSWORD": "too short"})
    assert r.exit_code == 1 and "at least 12" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["users", "password", "hoa"], env={"CYBERPACT_NEW_PASSWORD": new})
    assert r.exit_code == 0, r.output
    assert new not in r.output

    with db.transaction() as s:
        assert accounts.authenticate(s, "hoa", old, None, policy)[0] is None
    with db.transaction() as s:
        assert accounts.authenticate(s, "hoa", new, None, policy)[0] is not None, "lock-out ended"
    with db.transaction(read_only=True) as s:
        assert mfa.find_session(s, cookie, mfa.SessionPolicy()) is None
        with pytest.raises(AuthenticationRequired, match="revoked"):
            accounts.resolve_token(s, token, None)
    assert _actions(db, "accounts.user.password") == 1
    audit_text = _audit_text(db)
    assert new not in audit_text and "too short" not in audit_text


def test_cli_password_for_an_unknown_user_asks_for_nothing(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("asked for a password for nobody")

    monkeypatch.setattr(getpass, "getpass", no_prompt)
    monkeypatch.delenv("CYBERPACT_NEW_PASSWORD", raising=False)
    r = runner.invoke(app, ["users", "password", "ghost"])
    assert r.exit_code == 1 and "No user ghost" in r.output


def test_cli_resets_a_lost_second_factor(cli_env: dict[str, str], db: Database, settings: Settings) -> None:
    keys = KeyStore(settings.key_passphrase_value(), settings.key_kdf_iterations)
    env = {"CYBERPACT_NEW_PASSWORD": "a long enough password"}
    assert runner.invoke(app, ["users", "create", "hoa", "-r", "officer"], env=env).exit_code == 0
    with db.transaction() as s:
        hoa = s.scalars(select(User).where(User.username == "hoa")).one()
        secret = mfa.begin_enrolment(s, keys, hoa, "test").secret
    with db.transaction() as s:
        hoa = s.get_one(User, hoa.id)
        codes = mfa.confirm_enrolment(s, keys, SYSTEM, hoa, pyotp.TOTP(secret).now())
        _, cookie = mfa.open_session(s, hoa, None, None, mfa.SessionPolicy())

    r = runner.invoke(app, ["users", "reset-factor", "hoa"])
    assert r.exit_code == 0 and "removed" in r.output, r.output
    with db.transaction() as s:
        hoa = s.get_one(User, hoa.id)
        assert not mfa.enrolled(s, hoa)
        assert mfa.find_session(s, cookie, mfa.SessionPolicy()) is None
        with pytest.raises(AuthenticationRequired):
            mfa.verify_second_factor(s, keys, hoa, codes[0], None)
    assert _actions(db, "accounts.mfa.reset") == 1
    assert secret not in _audit_text(db)


def test_usernames_stay_whole_in_an_80_column_terminal(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cyberpact.kit.cli import console

    monkeypatch.setattr(console, "width", 80)
    name = "nguyen.van.an.c3-unit"
    roles = ["-r", "central_authority", "-r", "contact_point", "-r", "officer"]
    made = runner.invoke(
        app,
        ["users", "create", name, "--display-name", "Nguyen Van An, C3 cybercrime unit", *roles],
        env={"CYBERPACT_NEW_PASSWORD": "a long enough password"},
    )
    assert made.exit_code == 0, made.output
    assert (
        runner.invoke(app, ["tokens", "create", name, "--name", "the duty officer's laptop"]).exit_code == 0
    )

    def columns(command: str) -> list[str]:
        r = runner.invoke(app, [command, "list"])
        assert r.exit_code == 0, r.output
        assert max(len(line) for line in r.output.splitlines()) <= 80, r.output
        rows = [line.split("│")[1:-1] for line in r.output.splitlines() if line.startswith("│")]
        return ["".join(cell.strip() for cell in column) for column in zip(*rows, strict=True)]

    # The row's own key whole on one line; the owner of a token, after the token's id, folded but whole.
    assert columns("users")[0] == name
    assert columns("tokens")[1] == name
