from __future__ import annotations

from typer.testing import CliRunner

from cyberpact.cli import app

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
