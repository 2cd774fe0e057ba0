from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from cyberpact.audit import service
from cyberpact.audit.models import AuditRecord
from cyberpact.kit.cli import console, err_console, friendly, keystore, unit_of_work

app = typer.Typer(help="Check and anchor the audit record.", no_args_is_help=True)


@app.command("verify")
@friendly
def verify() -> None:
    """Check the whole hash chain and its signed anchors; name the first record that does not hold."""
    with unit_of_work(read_only=True) as (session, _settings, _db):
        total = session.scalar(select(func.count()).select_from(AuditRecord)) or 0
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("audit", total=total)
            result = service.verify(session, progress=lambda n: bar.update(task, completed=n))
    if result.finding is None:
        console.print(f"ok: {result.records:,} records, {result.anchors:,} signed anchors, chain intact")
        return
    f = result.finding
    err_console.print(f"[red]FAILED[/red] at record {f.seq}: {f.kind}: {f.message}", highlight=False)
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
