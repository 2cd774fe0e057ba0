from __future__ import annotations

import getpass

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from accounts.usernames import HOSTILE_USERNAMES
from cyberpact.accounts.models import User
from cyberpact.cli import app
from cyberpact.kit.db import Database

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
