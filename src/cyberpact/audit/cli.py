from __future__ import annotations

import typer
from rich.markup import escape
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from cyberpact.audit import service
from cyberpact.audit.models import AuditRecord
from cyberpact.kit.cli import (
    cli_actor,
    console,
    count_progress,
    err_console,
    friendly,
    keystore,
    unit_of_work,
)
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.time import utcnow

app = typer.Typer(help="Check and anchor the audit record.", no_args_is_help=True)


@app.command("verify")
@friendly
def verify() -> None:
    """Check the whole hash chain and its signed anchors; name the first record that does not hold.

    The result is kept among the chain's checks, where the desk shows it; the walk itself only reads, so it
    runs while the server is down or the database refuses writes (then it says it could not keep it).
    """
    started = utcnow()
    with unit_of_work(read_only=True) as (session, _settings, _db):
        total = session.scalar(select(func.count()).select_from(AuditRecord)) or 0
        with count_progress("verifying") as bar:
            task = bar.add_task("audit", total=total)
            result = service.verify(session, progress=lambda n: bar.update(task, completed=n))
    try:
        with unit_of_work() as (session, _settings, _db):
            kept = service.keep_command_check(session, cli_actor(), started, total, result)
        err_console.print(f"kept as check {kept.id}", highlight=False)
    except (CyberpactError, SQLAlchemyError) as exc:
        # The verdict stands without it: the walk is what an inspector runs when the node is in trouble. The
        # driver's own line, not SQLAlchemy's, which goes on with the statement and its parameters.
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        err_console.print(
            f"[yellow]not kept among the checks[/yellow]: {escape(why)}", highlight=False, soft_wrap=True
        )
    if result.finding is None:
        console.print(f"ok: {result.records:,} records, {result.anchors:,} signed anchors, chain intact")
        return
    f = result.finding
    err_console.print(f"[red]FAILED[/red] at record {f.seq}: {f.kind}: {escape(f.message)}", highlight=False)
    raise typer.Exit(2)


@app.command("anchor")
@friendly
def anchor() -> None:
    """Sign the current chain head now and print the anchor (publish it anywhere you like)."""
    with unit_of_work() as (session, settings, _db):
        row = service.anchor(session, keystore(settings), settings.node_name)
        if row is None:
            console.print("nothing to anchor: the chain is empty or its head is already anchored")
            return
        console.print(f"anchored record {row.seq} head {row.head_hash}")
        typer.echo(row.jws)
