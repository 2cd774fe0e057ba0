"""The ``cyberpact`` command. Each feature contributes its own sub-commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cyberpact.accounts.cli import tokens, users
from cyberpact.audit.cli import app as audit_app
from cyberpact.cases.cli import app as requests_app
from cyberpact.directory.cli import app as directory_app
from cyberpact.evidence.cli import app as evidence_app
from cyberpact.federation import cli as federation_cli
from cyberpact.intel.cli import app as intel_app
from cyberpact.kit import jobs, migrate
from cyberpact.kit.cli import cli_actor, console, friendly, keystore, settings, unit_of_work
from cyberpact.kit.db import Database
from cyberpact.kit.errors import ConfigurationError
from cyberpact.kit.keystore import KeyStore

app = typer.Typer(
    help="cyberpact: cooperation under the UN Convention against Cybercrime.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
jobs_app = typer.Typer(help="Background jobs: deadline reminders, audit chain checks.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(jobs_app, name="jobs")
app.add_typer(users, name="users")
app.add_typer(tokens, name="tokens")
app.add_typer(audit_app, name="audit")
app.add_typer(directory_app, name="directory")
app.add_typer(evidence_app, name="evidence")
app.add_typer(requests_app, name="requests")
app.add_typer(intel_app, name="intel")
app.add_typer(federation_cli.keys_app, name="keys")
app.add_typer(federation_cli.peers_app, name="peers")
app.add_typer(federation_cli.outbox_app, name="outbox")
app.add_typer(federation_cli.messages_app, name="messages")
app.command("init")(friendly(federation_cli.init))


def _refuse_locked_keys(db: Database, keys: KeyStore) -> None:
    """Stop here, in one line, when the passphrase does not open the node's keys: the app's start-up
    checks too, but a failed start-up inside the server ends in a traceback and exit status 3."""
    from cyberpact.app import unlock_keys

    # A database not yet migrated has no keys to check (and `serve` refuses it, saying what to run).
    if migrate.at_head(db.engine):
        unlock_keys(db, keys)


@app.command("worker", help=federation_cli.worker.__doc__)
@friendly
def worker() -> None:
    s = settings()
    db = Database(s.sqlalchemy_url)
    try:
        _refuse_locked_keys(db, keystore(s))
    finally:
        db.dispose()
    federation_cli.worker()


@db_app.command("upgrade")
@friendly
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    s = settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(s.sqlalchemy_url, revision)
    console.print(f"database at {migrate.head_revision() if revision == 'head' else revision}")


@jobs_app.command("list")
@friendly
def jobs_list(
    failed: Annotated[bool, typer.Option("--failed", help="only those that gave up")] = False,
    limit: int = 50,
) -> None:
    """List background jobs, newest first."""
    # A line per job rather than a table: a narrow terminal would cut the id short, and the id is what
    # `jobs retry` is given.
    with unit_of_work(read_only=True) as (session, _s, _db):
        for j in jobs.list_jobs(session, "failed" if failed else None, limit):
            console.print(
                f"{j.id}  {j.kind}  {j.status}, {j.attempts} tries, queued {j.created_at:%Y-%m-%d %H:%M:%S}, "
                f"due {j.run_at:%Y-%m-%d %H:%M:%S}",
                soft_wrap=True,
                highlight=False,
                markup=False,
            )
            if j.last_error:
                console.print(f"    {j.last_error[:500]}", soft_wrap=True, highlight=False, markup=False)


@jobs_app.command("retry")
@friendly
def jobs_retry(job_id: str) -> None:
    """Try a job that gave up again, now, with a fresh set of attempts."""
    with unit_of_work() as (session, _s, _db):
        job = jobs.retry(session, cli_actor(), job_id)
        console.print(f"{job.id} ({job.kind}) queued again")


@app.command("serve")
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="default: CYBERPACT_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: CYBERPACT_PORT")] = None,
    cert: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM); default CYBERPACT_TLS_CERT_FILE")
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="TLS private key (PEM); default CYBERPACT_TLS_KEY_FILE")
    ] = None,
) -> None:
    """Run the node's HTTP server and its outbox worker (migrates the database first in dev)."""
    import uvicorn

    from cyberpact.app import create_app
    from cyberpact.kit.memory import tune_allocator

    tune_allocator()
    s = settings()
    cert, key = cert or s.tls_cert_file, key or s.tls_key_file
    if (cert is None) != (key is None):
        raise ConfigurationError("give both a TLS certificate and its key, or neither")
    if s.tls_required and cert is None:
        raise ConfigurationError("in prod the node serves HTTPS only: pass --cert and --key")
    s.data_dir.mkdir(parents=True, exist_ok=True)
    if s.dev:
        migrate.upgrade(s.sqlalchemy_url)
    node = create_app(s)
    _refuse_locked_keys(node.state.db, node.state.keys)
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        node,
        host=host or s.host,
        port=port or s.port,
        log_level=s.log_level,
        proxy_headers=False,
        ws="none",  # no WebSocket routes; their protocol code need not be loaded
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
    )


@app.command("demo")
@friendly
def demo(
    port: Annotated[int, typer.Option(help="port of the first node")] = 8000,
    once: Annotated[bool, typer.Option(help="run the scenario, print, and exit")] = False,
) -> None:
    """Start three nodes on SQLite that pin each other and play out requests, evidence and intel; print
    each node's URL, users and a fresh admin token, then keep serving (or, with --once, exit)."""
    from cyberpact.demo import run

    run(port=port, once=once)


def main() -> None:
    app()
