"""`cyberpact requests new|validate|send|approve|respond|list|cases|show`.

Each command acts as a named user of this node (``--as``), with that user's roles, so four-eyes approval
and role checks hold on the command line exactly as in the API.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from cyberpact.accounts import service as accounts
from cyberpact.audit import service as audit
from cyberpact.cases import deadlines, lifecycle, service
from cyberpact.catalog.service import DraftReport, get_catalog
from cyberpact.kit.actor import Actor
from cyberpact.kit.cli import References, cli_actor, console, err_console, friendly, unit_of_work, when
from cyberpact.kit.errors import CyberpactError, InvalidInput, MalformedInput, Problem
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.pagination import after_time_cursor, next_time_cursor
from cyberpact.kit.time import check_timezone, utcnow

app = typer.Typer(help="Cooperation requests.", no_args_is_help=True)
AsUser = Annotated[str, typer.Option("--as", help="the user of this node acting")]


def _actor(session: Session, username: str) -> Actor:
    user = accounts.get_user(session, username)
    if user.disabled:
        raise InvalidInput("That user is disabled", [Problem("--as", username)])
    # The account acts; the audit record's source names who at this machine made it act, since the
    # command line proves no one's password.
    return Actor(
        user_id=user.id, username=user.username, roles=user.roles, source=f"cli:{cli_actor().username[4:]}"
    )


@contextmanager
def _acting(username: str, command: str) -> Iterator[tuple[Session, Actor]]:
    """A unit of work as ``username``. A refused look (a confidential request, a hidden case) rolls the
    work back and is then recorded in a unit of work of its own, as the API and the desk record theirs."""
    actor: Actor | None = None
    try:
        with unit_of_work() as (session, _s, _db):
            actor = _actor(session, username)
            yield session, actor
    except CyberpactError as exc:
        if exc.denied is not None and actor is not None:
            with unit_of_work() as (session, _s, _db):
                audit.record_denial(session, actor, exc, f"cyberpact requests {command}", action=command)
        raise


DRAFT_KEYS = ("header", "fields")
# How the command line names each kind of problem the catalog's check finds (Problem.code).
_KINDS = {"missing": "missing", "unknown_field": "unknown", "must_be": "unconfirmed"}


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (OSError, ValueError) as exc:
        raise MalformedInput(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedInput(f"{path} must hold an object")
    return data


def _draft(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A draft file's header and fields. Anything else at the top is refused, not passed over: a draft
    written flat would otherwise be reported missing every element it holds."""
    data = _load(path)
    problems = [
        Problem(key, f"not part of a draft file, which holds {' and '.join(DRAFT_KEYS)}", "unknown_field")
        for key in data
        if key not in DRAFT_KEYS
    ]
    problems += [
        Problem(key, "must be an object of names and values", "invalid")
        for key in DRAFT_KEYS
        if not isinstance(data.get(key, {}), dict)
    ]
    if problems:
        raise InvalidInput(f"{path} is not a draft file", problems)
    return data.get("header") or {}, data.get("fields") or {}


def _print_report(report: DraftReport) -> None:
    if report.complete:
        console.print("[green]complete[/green]: every element the convention requires is there")
    for p in report.errors:
        kind = _KINDS.get(p.code, "invalid")
        console.print(f"  [red]{kind}[/red] {p.field}: {escape(p.message)}", highlight=False, soft_wrap=True)
    for p in report.warnings:
        console.print(
            f"  [yellow]warning[/yellow] {p.field}: {escape(p.message)}", highlight=False, soft_wrap=True
        )


def _uuid(value: str) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise InvalidInput("Not a request id", [Problem("request_id", "a UUID is expected")])
    return parsed


@app.command("validate")
@friendly
def validate(
    file: Path,
    type_: Annotated[str, typer.Option("--type")],
    to: Annotated[str | None, typer.Option(help="the requested node")] = None,
) -> None:
    """Check a draft file (JSON or TOML: `header`, `fields`) against the catalog; exit 1 if incomplete."""
    header, fields = _draft(file)
    with unit_of_work(read_only=True) as (session, _s, _db):
        report = service.check(session, get_catalog(), service.DraftInput(type_, to, header, fields))
    _print_report(report)
    if not report.complete:
        raise typer.Exit(1)


@app.command("new")
@friendly
def new(
    file: Path,
    type_: Annotated[str, typer.Option("--type")],
    as_: AsUser,
    to: Annotated[str | None, typer.Option(help="the requested node")] = None,
    case: Annotated[str | None, typer.Option(help="existing case id")] = None,
    title: Annotated[str | None, typer.Option(help="title of a new case")] = None,
) -> None:
    """Create a draft from a file; prints what is still missing."""
    header, fields = _draft(file)
    with _acting(as_, "new") as (session, actor):
        if case:
            case_row = service.get_case(session, actor, _uuid(case))
        else:
            case_row = service.create_case(session, actor, title or f"{type_} request")
        row, report = service.create_draft(
            session,
            actor,
            get_catalog(),
            case_row,
            service.DraftInput(type_, to, header, fields),
        )
        console.print(f"draft {row.id} in case {case_row.reference}")
    _print_report(report)


@app.command("register")
@friendly
def register(
    file: Path,
    type_: Annotated[str, typer.Option("--type")],
    as_: AsUser,
    country: Annotated[str, typer.Option(help="the requesting State, ISO 3166-1 alpha-2")],
    authority: Annotated[str, typer.Option(help="the requesting authority")],
    via: Annotated[str, typer.Option(help=f"how it arrived: {', '.join(service.CHANNELS)}")],
    received: Annotated[
        str | None, typer.Option(help="when it arrived, RFC 3339 with its offset (default: now)")
    ] = None,
) -> None:
    """Register a request that arrived outside the network (file: `header`, `fields` as written)."""
    header, fields = _draft(file)
    try:
        at = datetime.fromisoformat(received) if received else utcnow()
    except ValueError:
        raise InvalidInput(
            "Not a time", [Problem("--received", "RFC 3339, e.g. 2026-11-29T08:30:00+07:00")]
        ) from None
    with _acting(as_, "register") as (session, actor):
        row, report = service.register_received(
            session,
            actor,
            get_catalog(),
            None,
            service.ReceivedInput(type_, header, fields, country.upper(), authority, via, at),
        )
        zone = ZoneInfo(check_timezone(accounts.get_user(session, as_).timezone))
        due = f"due {when(row.due_at, zone)}" if row.due_at else "no deadline"
        console.print(f"registered {row.id}: incoming from {country.upper()}, {due}", highlight=False)
    _print_report(report)


def _act(request_id: str, action: str, as_: str, data: dict[str, Any]) -> None:
    with _acting(as_, action) as (session, actor):
        row = service.get_request(session, actor, _uuid(request_id), purpose=action)
        lifecycle.act(session, actor, get_catalog(), row, action, data)
        console.print(f"{row.id}: {row.status}")


@app.command("send")
@friendly
def send(request_id: str, as_: AsUser) -> None:
    """Submit a complete draft for approval (a supervisor's approval sends it)."""
    _act(request_id, "submit", as_, {})


@app.command("approve")
@friendly
def approve(request_id: str, as_: AsUser) -> None:
    """Approve (four eyes: not the drafter) and send through the outbox."""
    _act(request_id, "approve", as_, {})


@app.command("respond")
@friendly
def respond(
    request_id: str,
    action: str,
    as_: AsUser,
    data: Annotated[list[str] | None, typer.Option("--data", "-d", help="key=value; repeat")] = None,
    file: Annotated[Path | None, typer.Option(help="JSON or TOML with the action's data")] = None,
) -> None:
    """Take a life-cycle ACTION (acknowledge, preserve, refuse, execute, ...) on a request; `end_locally`
    with `-d reason=...` ends one whose other side's node was removed, sending nothing."""
    values: dict[str, Any] = _load(file) if file else {}
    for item in data or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput("Bad --data", [Problem("--data", f"{item!r} is not key=value")])
        if key == "grounds" or key == "evidence_refs":
            values.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
        else:
            values[key] = value
    _act(request_id, action, as_, values)


Cursor = Annotated[
    str | None, typer.Option(help="start after the last page printed, with the cursor it ended with")
]


@app.command("list")
@friendly
def list_(
    as_: AsUser,
    direction: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option()] = None,
    overdue: Annotated[bool, typer.Option(help="only overdue requests")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 200,
    cursor: Cursor = None,
) -> None:
    """List requests this user may see, newest first, a page at a time."""
    with _acting(as_, "list") as (session, actor):
        f = service.RequestFilter(direction=direction, status=status, overdue=overdue)
        after = after_time_cursor(cursor, service.REQUESTS_CURSOR)
        rows = service.list_requests(session, actor, get_catalog(), f, limit + 1, after)
        table = Table("id", "dir", "type", "status", References("peer"), "due", "preserved until")
        for r in rows[:limit]:
            state = Text(r.status)
            if deadlines.is_overdue(r):
                state.append(" OVERDUE", style="red")
            table.add_row(
                str(r.id),
                r.direction[:3],
                r.type,
                state,
                r.counterpart or "",
                f"{r.due_at:%Y-%m-%d %H:%M}" if r.due_at else "",
                str(r.preserved_until or ""),
            )
        console.print(table)
        nxt = next_time_cursor(service.REQUESTS_CURSOR, rows, limit)
    _more(nxt)


@app.command("cases")
@friendly
def cases(
    as_: AsUser, limit: Annotated[int, typer.Option(min=1, max=500)] = 100, cursor: Cursor = None
) -> None:
    """List cases this user may see, newest first, a page at a time: their ids are what `new --case` takes."""
    with _acting(as_, "cases") as (session, actor):
        after = after_time_cursor(cursor, service.CASES_CURSOR)
        rows = service.list_cases(session, actor, limit + 1, after)
        table = Table("id", References("reference"), "title", "by", "created")
        for c in rows[:limit]:
            table.add_row(str(c.id), c.reference, c.title, c.created_by, when(c.created_at))
        console.print(table)
        nxt = next_time_cursor(service.CASES_CURSOR, rows, limit)
    _more(nxt)


def _more(cursor: str | None) -> None:
    # On stderr: the table on stdout stays what a script reads, and the person sees how to go on.
    if cursor:
        err_console.print(
            f"more: repeat with --cursor {cursor}", soft_wrap=True, highlight=False, markup=False
        )


@app.command("show")
@friendly
def show(
    request_id: str,
    as_: AsUser,
    tz: Annotated[str | None, typer.Option(help="show times in this IANA zone (default: the user's)")] = None,
) -> None:
    """Show a request and its two-sided timeline in the viewer's time zone."""
    with _acting(as_, "show") as (session, actor):
        zone = ZoneInfo(check_timezone(tz or accounts.get_user(session, as_).timezone, "--tz"))
        row = service.get_request(session, actor, _uuid(request_id))
        catalog = get_catalog()
        console.print(
            f"[bold]{catalog.type(row.type).label}[/bold] ({catalog.type(row.type).article}) "
            f"{row.direction} {'to' if row.direction == 'outgoing' else 'from'} {row.counterpart}"
        )
        offered = lifecycle.offer(catalog, row, actor)
        console.print(
            f"status {row.status}; allowed now: {', '.join(offered.allowed) or 'nothing'}", highlight=False
        )
        if offered.away is not None:
            # Said before the timeline, where a person looking for the missing steps reads first.
            console.print(f"[yellow]{escape(offered.away.reason())}[/yellow]", highlight=False)
            if offered.withheld:
                console.print(f"not offered for that reason: {', '.join(offered.withheld)}", highlight=False)
        if row.use_limitation:
            console.print(f"[yellow]use limited:[/yellow] {escape(row.use_limitation)}")
        for e in service.timeline(session, row):
            console.print(
                f"  {when(e.at, zone)}  {e.side:<6} {e.action:<18} "
                f"{e.from_status or ''} → {e.to_status or ''}  {e.actor}",
                highlight=False,
                markup=False,
            )
    err_console.print(f"times in {zone.key}")
