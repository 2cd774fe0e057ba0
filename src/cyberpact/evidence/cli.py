"""`cyberpact evidence`: add files as a sealed package, export and verify court bundles, send to peers."""

from __future__ import annotations

import contextlib
import mimetypes
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from cyberpact.evidence import bundle, chunks, custody, sending, service, transfer, uploads
from cyberpact.evidence.schemas import Acquisition
from cyberpact.federation import peers
from cyberpact.kit.cli import (
    References,
    cli_actor,
    console,
    err_console,
    friendly,
    keystore,
    print_json,
    settings,
)
from cyberpact.kit.db import Database
from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.storage import build_storage
from cyberpact.kit.time import utcnow

app = typer.Typer(help="Evidence packages, transfers, custody log and court bundles.", no_args_is_help=True)
log_app = typer.Typer(help="The custody log.", no_args_is_help=True)
app.add_typer(log_app, name="log")


@contextlib.contextmanager
def _node() -> Iterator[tuple[Database, service.Context]]:
    s = settings()
    db = Database(s.sqlalchemy_url)
    try:
        yield db, service.Context(s, keystore(s), build_storage(s))
    finally:
        db.dispose()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


@app.command("add")
@friendly
def add(
    case: Annotated[str, typer.Argument(help="the case reference")],
    files: Annotated[
        list[Path], typer.Argument(help="files to add", exists=True, dir_okay=False, readable=True)
    ],
    title: Annotated[str | None, typer.Option(help="default: the first file's name")] = None,
    request: Annotated[str | None, typer.Option(help="the request reference")] = None,
    by: Annotated[str, typer.Option(help="who acquired the files")] = "",
    at: Annotated[str | None, typer.Option(help="when (RFC 3339); default: now")] = None,
    where: Annotated[str, typer.Option(help="where they were acquired")] = "",
    method: Annotated[str, typer.Option(help="how they were acquired")] = "",
    tool: Annotated[str, typer.Option(help="acquisition tool")] = "",
    tool_version: Annotated[str, typer.Option(help="its version")] = "",
    authority: Annotated[str, typer.Option(help="legal authority or order reference")] = "",
    media_type: Annotated[str | None, typer.Option(help="default: guessed from the name")] = None,
) -> None:
    """Stream FILE... into a new sealed package of CASE: hashed and encrypted while read, with progress."""
    actor = cli_actor()
    try:
        acquisition = Acquisition(
            by=by or actor.username,
            at=datetime.fromisoformat(at) if at else utcnow(),
            where=where or "unknown",
            method=method or "file copy",
            tool=tool or "cyberpact",
            tool_version=tool_version or "-",
            authority=authority or "unspecified",
        )
    except ValueError as exc:
        raise InvalidInput("Bad acquisition details", [Problem("acquisition", str(exc))]) from exc
    with _node() as (db, ctx):
        with db.transaction() as session:
            package = service.create_package(
                session, ctx, actor, case_ref=case, request_ref=request, title=title or files[0].name
            )
            for path in files:
                service.add_file(
                    session,
                    ctx,
                    actor,
                    package,
                    name=path.name,
                    size=path.stat().st_size,
                    media_type=media_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                    acquisition=acquisition,
                )
            pid = package.id
            custody.sign_head(session, ctx.keys, ctx.node_id)
        with _progress() as bar:
            for index, path in enumerate(files):
                size = path.stat().st_size
                task = bar.add_task(path.name, total=size)
                up = uploads.Upload(db, ctx, actor, pid, index, 0, in_flight=chunks.IN_FLIGHT_BULK)
                try:
                    with path.open("rb") as src:
                        while piece := src.read(up.chunk_size):
                            up.write(piece)
                            bar.advance(task, len(piece))
                    up.finish()
                except BaseException:
                    with contextlib.suppress(Exception):
                        up.pause()
                    raise
        with db.transaction() as session:
            package = service.seal(session, ctx, actor, service.get_package(session, pid))
            custody.sign_head(session, ctx.keys, ctx.node_id)
            console.print(f"package {package.id} sealed; manifest digest {package.manifest_digest}")
            for f in service.files_of(session, package):
                console.print(f"  {f.index}: {escape(f.name)}  {f.size} bytes  sha256 {f.sha256}")


@app.command("list")
@friendly
def list_(case: Annotated[str | None, typer.Option(help="only this case")] = None) -> None:
    """List packages, newest first."""
    from cyberpact.audit import service as audit

    with _node() as (db, _ctx), db.transaction() as session:
        rows = service.list_packages(session, case_ref=case)
        audit.record(
            session,
            cli_actor(),
            "evidence.package.list",
            "evidence_package",
            None,
            detail={"case": case, "count": len(rows)},
        )
        table = Table("id", References("case"), References("request"), "title", "status", "origin", "created")
        for p in rows:
            table.add_row(
                str(p.id),
                p.case_ref,
                p.request_ref or "",
                p.title,
                p.status,
                p.origin_node,
                f"{p.created_at:%Y-%m-%d %H:%M}",
            )
        console.print(table)


@app.command("show")
@friendly
def show(package: str) -> None:
    """Show a package, its files and its custody events (a read: audited and in custody)."""
    with _node() as (db, ctx), db.transaction() as session:
        p = service.get_package(session, package)
        service.view(session, ctx, cli_actor(), p)
        custody.sign_head(session, ctx.keys, ctx.node_id)
        print_json(
            {
                "id": str(p.id),
                "case_ref": p.case_ref,
                "request_ref": p.request_ref,
                "title": p.title,
                "status": p.status,
                "origin": p.origin_node,
                "manifest_digest": p.manifest_digest,
                "files": [
                    {"index": f.index, "name": f.name, "size": f.size, "sha256": f.sha256}
                    for f in service.files_of(session, p)
                ],
                "custody": [
                    {"seq": e.seq, "kind": e.kind, "at": e.at, "actor": e.actor}
                    for e in custody.events_of(session, str(p.id))
                ],
            }
        )


@app.command("withdraw")
@friendly
def withdraw(
    package: str,
    index: Annotated[int, typer.Argument(min=0, help="the file's index, as `evidence show` lists it")],
    reason: Annotated[str, typer.Option(help="why: the custody log keeps it for a court to read")],
) -> None:
    """Withdraw file INDEX from PACKAGE while it is not sealed: its stored bytes are destroyed, the custody
    log records who withdrew what and why, and the index is never given to another file."""
    with _node() as (db, ctx), db.transaction() as session:
        f = service.withdraw_file(
            session, ctx, cli_actor(), service.get_package(session, package), index, reason
        )
        custody.sign_head(session, ctx.keys, ctx.node_id)
        console.print(f"file {f.index} ({escape(f.name)}) withdrawn from package {escape(package)}")


@app.command("check")
@friendly
def check(package: str) -> None:
    """Re-verify a stored package: manifest signature, database rows, every chunk and digest."""
    with _node() as (db, ctx), db.transaction() as session:
        p = service.get_package(session, package)
        service.verify_package(session, ctx, cli_actor(), p)
        custody.sign_head(session, ctx.keys, ctx.node_id)
    console.print(f"package {escape(package)}: every file matches the signed manifest")


@app.command("export")
@friendly
def export(package: str, out: Annotated[Path | None, typer.Option(help="bundle file")] = None) -> None:
    """Write a court bundle: files, signed manifest, custody events with proofs, heads, keys, report."""
    with _node() as (db, ctx), db.transaction() as session:
        p = service.get_package(session, package)
        target = out or Path(f"evidence-{p.id}.zip")
        total = sum(f.size for f in service.files_of(session, p))
        with _progress() as bar:
            task = bar.add_task("export", total=total)
            bundle.export(session, ctx, cli_actor(), p, target, lambda n: bar.advance(task, n))
    console.print(f"bundle written to {escape(str(target))}")


@app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help="the bundle (.zip)", exists=True, dir_okay=False)],
    extract: Annotated[
        Path | None, typer.Option(help="after a clean check, extract into this directory")
    ] = None,
) -> None:
    """Check a court bundle with no database and no network; name exactly what fails."""
    try:
        result = bundle.verify_bundle(path, extract)
    except Exception as exc:
        from cyberpact.kit.errors import CyberpactError

        if not isinstance(exc, CyberpactError):
            raise
        err_console.print(
            f"[red]REJECTED[/red] ({exc.code}): {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None
    table = Table("check", "result", "detail")
    for c in result.checks:
        table.add_row(c.name, Text("ok", style="green") if c.ok else Text("FAIL", style="red"), c.detail)
    console.print(table)
    _print_signers(result)
    if not result.ok:
        for c in result.failures:
            err_console.print(
                f"[red]FAIL[/red] {escape(c.name)}: {escape(c.detail)}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(1)
    console.print(f"bundle of package {result.package_id}: all {len(result.checks)} checks passed")


def _print_signers(result: bundle.BundleReport) -> None:
    # A bundle ships the keys it is checked against, so a valid signature proves only that the signer held
    # a key in the bundle; who that was is settled by comparing fingerprints with what each authority
    # published, out of band.
    if not result.signers:
        return
    console.print("signing keys this bundle relies on:")
    for node, prints in sorted(result.signers.items()):
        for fp, signed in prints.items():
            console.print(f"  {escape(node)}  {fp}  signed {escape(', '.join(signed))}", soft_wrap=True)
    console.print(
        "Compare each fingerprint with the one its authority published (read out by phone, or in a roster "
        "you trust). A different fingerprint means the bundle was not signed by that node.",
        soft_wrap=True,
    )


@app.command("send")
@friendly
def send(package: str, peer: str) -> None:
    """Offer PACKAGE to PEER through the outbox; `evidence push` (or the node's worker) sends the chunks."""
    with _node() as (db, ctx), db.transaction() as session:
        t = transfer.offer(session, ctx, cli_actor(), service.get_package(session, package), peer)
        console.print(f"transfer {t.id} offered to {escape(peer)}")


@app.command("push")
@friendly
def push(
    transfer_id: Annotated[str | None, typer.Argument(help="default: every ready transfer")] = None,
) -> None:
    """Send (or resume) outgoing transfers whose offer the peer has; safe to run again after any failure."""
    with _node() as (db, ctx):
        if transfer_id is None:
            with db.transaction(read_only=True) as session:
                ids = [str(t) for t in sending.ready_transfers(session)]
        else:
            ids = [transfer_id]
        with peers.http_client(ctx.settings, timeout=120) as client, _progress() as bar:
            for tid in ids:
                task = bar.add_task(f"transfer {tid[:8]}", total=None)

                def progress(_index: int, done: int, task: TaskID = task) -> None:
                    bar.update(task, completed=done)

                t = sending.push(db, ctx, tid, client, progress)
                console.print(f"transfer {tid}: {t.status}" + (f" ({escape(t.error)})" if t.error else ""))


@log_app.command("verify")
@friendly
def log_verify() -> None:
    """Recompute every custody event, tree node and signed head; name the first that does not hold."""
    with _node() as (db, ctx), db.transaction(read_only=True) as session:
        result = custody.verify_log(session, ctx.keys)
    console.print(f"custody log intact: {result.events} events, {result.heads} signed heads")


@log_app.command("head")
@friendly
def log_head() -> None:
    """Sign (if needed) and print the current tree head."""
    with _node() as (db, ctx), db.transaction() as session:
        head = custody.sign_head(session, ctx.keys, ctx.node_id)
        console.print(f"size {head.size} root {custody.b64(head.root)}")
        console.print(head.jws, soft_wrap=True)
