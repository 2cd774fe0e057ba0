"""A node that cannot open its own keys says so when it starts, to its operator, and to nobody else."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyotp
import pytest
import uvicorn
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import LiveNode, make_settings
from cyberpact.accounts import mfa
from cyberpact.accounts.models import User
from cyberpact.app import create_app
from cyberpact.cli import app
from cyberpact.config import Settings
from cyberpact.federation import cli as federation_cli
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.errors import MISCONFIGURED, ConfigurationError
from cyberpact.kit.keystore import KeyStore

runner = CliRunner()
WRONG = "a-wrong-passphrase-xxxxxxxx"


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stand-ins for the server and the worker loop, which would otherwise run until stopped."""
    calls: list[str] = []

    def no_outbox_worker(*_args: Any) -> None:
        raise AssertionError("an outbox worker was started")  # rather than block the test for ever

    monkeypatch.setattr(uvicorn, "run", lambda *_a, **_k: calls.append("serve"))
    monkeypatch.setattr(federation_cli, "worker", lambda: calls.append("worker"))
    monkeypatch.setattr(federation_cli.delivery, "OutboxWorker", no_outbox_worker)
    return calls


def test_serve_and_worker_refuse_a_wrong_passphrase_in_one_line(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, started: list[str]
) -> None:
    # No keys yet (no `cyberpact init`): nothing to open, the node starts and makes them, as before.
    assert runner.invoke(app, ["serve"]).exit_code == 0 and started == ["serve"]
    r = runner.invoke(app, ["init"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["worker"]).exit_code == 0 and started == ["serve", "worker"]

    monkeypatch.setenv("CYBERPACT_KEY_PASSPHRASE", WRONG)
    for command in ("serve", "worker"):
        r = runner.invoke(app, [command])
        assert r.exit_code == 1, (command, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.output, r.output
        assert "cannot unlock" in lines[0] and "CYBERPACT_KEY_PASSPHRASE" in lines[0]
    assert started == ["serve", "worker"], "nothing started with keys it cannot open"


def test_the_app_does_not_start_with_keys_it_cannot_open(
    settings: Settings, db_url: str, tmp_path: Path
) -> None:
    # Whatever runs the app (not only `cyberpact serve`), its start-up opens the keys.
    first = create_app(settings, run_background=False)

    async def lifespan(application: Any) -> None:
        async with application.router.lifespan_context(application):
            pass

    def start(application: Any) -> None:
        # A thread of its own: a browser test earlier on this worker leaves Playwright's loop running in
        # the main thread, where asyncio.run refuses to start a second one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, lifespan(application)).result()

    start(first)  # makes the keys, with the right passphrase
    wrong = create_app(make_settings(db_url, tmp_path, key_passphrase=WRONG), run_background=False)
    with pytest.raises(ConfigurationError, match="CYBERPACT_KEY_PASSPHRASE"):
        start(wrong)


def test_a_configuration_error_tells_a_client_nothing_of_our_settings(
    node: LiveNode, caplog: pytest.LogCaptureFixture
) -> None:
    node.user("hoa", "officer", password="the right passphrase")
    keys = node.app.state.keys
    with node.db.transaction() as s:
        hoa = s.scalars(select(User).where(User.username == "hoa")).one()
        secret = mfa.begin_enrolment(s, keys, hoa, "test").secret
    with node.db.transaction() as s:
        mfa.confirm_enrolment(s, keys, SYSTEM, s.get_one(User, hoa.id), pyotp.TOTP(secret).now())
    # As if the key records had changed under the running node: checking the code needs the key that
    # wraps the factor's secret, and this key store cannot open it.
    node.app.state.keys = KeyStore(WRONG, node.settings.key_kdf_iterations)
    caplog.set_level(logging.ERROR, logger="cyberpact.http")
    r = node.client().post(
        "/api/v1/auth/token", json={"username": "hoa", "password": "the right passphrase", "code": "123456"}
    )
    assert r.status_code == 503, r.text
    assert r.json()["detail"] == MISCONFIGURED and r.json()["code"] == "configuration"
    assert "PASSPHRASE" not in r.text.upper() and "unlock" not in r.text
    assert any("CYBERPACT_KEY_PASSPHRASE" in rec.getMessage() for rec in caplog.records), "the log keeps it"
