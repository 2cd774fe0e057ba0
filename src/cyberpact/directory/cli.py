"""``cyberpact directory``: import and export the directory, and show where art. 65 stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from cyberpact.directory import io, service
from cyberpact.kit.cli import cli_actor, console, friendly, unit_of_work
from cyberpact.kit.errors import InvalidInput, Problem

app = typer.Typer(help="States, authorities and treaty status.", no_args_is_help=True)


def say(line: str) -> None:
    # No wrapping and no highlighting: scripts and tests read these lines.
    console.print(line, highlight=False, soft_wrap=True, markup=False)


FormatOption = Annotated[
    Literal["csv", "json"] | None, typer.Option("--format", help="default: from the file name's extension")
]


@app.command("import")
@friendly
def import_(
    files: Annotated[list[Path], typer.Argument(help="JSON documents or CSV files (one kind each)")],
    fmt: FormatOption = None,
) -> None:
    """Import parties, authorities and treaty status, upserting by natural key.

    All files are applied in one transaction: one bad row rejects the whole import and names the row.
    """
    batch = io.read_files(files, fmt)
    with unit_of_work() as (session, _, _db):
        summary = io.import_batch(session, cli_actor(), batch)
    say(f"imported: {summary}")


@app.command("export")
@friendly
def export(
    file: Annotated[Path, typer.Argument(help="where to write; the extension picks the format")],
    fmt: FormatOption = None,
    what: Annotated[
        Literal["all", "parties", "authorities", "treaty"],
        typer.Option(help="which records; CSV needs one kind per file"),
    ] = "all",
) -> None:
    """Export the directory as one JSON document, or one kind of record as CSV."""
    chosen = io.guess_format(file, fmt)
    with unit_of_work(read_only=True) as (session, _, _db):
        data = io.export(session, chosen, what)
    try:
        file.write_bytes(data)
    except OSError as exc:
        raise InvalidInput("Cannot write the export", [Problem("file", f"{file}: {exc.strerror}")]) from exc
    say(f"wrote {file} ({len(data)} bytes)")


@app.command("convention")
@friendly
def convention() -> None:
    """Show how many instruments count towards entry into force (art. 65) and when it happens."""
    with unit_of_work(read_only=True) as (session, _, _db):
        view = service.convention(session)
    eif = view.status
    say(f"signatories: {view.signatories}; instruments counted: {eif.counted} of {eif.required}")
    if eif.convention is None:
        say(f"not in force: {eif.still_needed} more instrument(s) needed")
    else:
        say(f"in force from {eif.convention} (40th instrument deposited {eif.fortieth_deposit})")
    for party in eif.not_counted:
        say(f"not counted: {party} (regional economic integration organization)")
