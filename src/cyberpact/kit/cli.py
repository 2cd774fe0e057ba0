"""Helpers every feature's CLI uses: settings, a unit of work, the CLI actor and error reporting."""

from __future__ import annotations

import functools
import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, ParamSpec, TypeVar

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy.orm import Session

from cyberpact.config import Settings
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.keystore import KeyStore

# The widest row key kept whole on one line: a UUID (36), a key fingerprint (39). A longer one folds over
# lines instead, since a column held wider than the terminal crops every column after it.
KEY_WIDTH = 40


@dataclass
class References(Column):
    """A column of what a person copies into the next command or reads out to compare: a node's id, a case's
    reference, a key's fingerprint, a username. Kept whole as ids are (:func:`keep_ids`), whatever they look
    like: a cut one names nothing, and one cut at the end reads like the right one."""


def keep_ids(table: Table) -> Table:
    """Never shorten an id: it is what a person copies into the next command, and a cut one names nothing
    (``requests show faddc654-c79…`` is refused). The row's own id, the first column of ids, stays whole
    on one line however narrow the terminal, and the other columns give way; a further column of ids
    (a package's case) folds over lines rather than lose its end, since two ids on one line would leave
    no room for the rest at 80 columns. A column of ids is one whose every cell is a UUID (blank cells
    aside), whatever its header says, or one the command built as :class:`References`."""
    first = True
    for column in table.columns:
        cells = [c.plain if isinstance(c, Text) else c for c in column.cells]
        written = [c for c in cells if c != ""]
        if not isinstance(column, References) and (
            not written or not all(isinstance(c, str) and parse_uuid(c) is not None for c in written)
        ):
            continue
        column.overflow = "fold"
        widest = max((cell_len(line) for c in written for line in str(c).splitlines()), default=0)
        if first and widest <= KEY_WIDTH:
            column.no_wrap = True
            column.min_width = max(column.min_width or 0, widest)
        first = False
    return table


def plain_cells(table: Table) -> Table:
    """Show every text cell as written. A table's cells hold data (a request's title, a bundle member's
    name, a peer's error), and Rich would read ``[/x]`` in one as markup and stop the command with a
    traceback, or take ``[bold]`` as a style and hide it; a cell meant to be styled is given as
    ``Text``."""
    for column in table.columns:
        # Column keeps its cells in a private list; Rich has no public way to rewrite them.
        column._cells = [Text(c) if isinstance(c, str) else c for c in column._cells]
    return table


class _Console(Console):
    """Rich's console, keeping the ids of every table a command prints whole (:func:`keep_ids`) and its
    cells as written (:func:`plain_cells`): done here, not in each command, so that no listing can
    forget it."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        for item in objects:
            if isinstance(item, Table):
                keep_ids(plain_cells(item))
        super().print(*objects, **kwargs)


console = _Console()
err_console = _Console(stderr=True)


def count_progress(label: str) -> Progress:
    """A bar counting records or objects, on standard error and gone when done: what a command prints on
    standard output stays what a script reads, however long the work took."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        # Piped or under cron there is nothing to redraw; Rich would still leave a blank line behind.
        disable=not err_console.is_terminal,
    )


P = ParamSpec("P")
R = TypeVar("R")


def settings() -> Settings:
    s = Settings()
    s.check_secure()
    return s


def cli_actor() -> Actor:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(
        user_id=None, username=f"cli:{who}", roles=frozenset({"admin", "system"}), source="cli", operator=True
    )


@contextmanager
def unit_of_work(read_only: bool = False) -> Iterator[tuple[Session, Settings, Database]]:
    s = settings()
    db = Database(s.sqlalchemy_url)
    try:
        with db.transaction(read_only=read_only) as session:
            yield session, s, db
    finally:
        db.dispose()


def keystore(s: Settings) -> KeyStore:
    return KeyStore(s.key_passphrase_value(), s.key_kdf_iterations)


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr and exit status 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CyberpactError as exc:
            # Escaped: a citation's "[parallel: UNTOC 18(21)]" is text, not a Rich style to swallow. Several
            # problems are listed one to a line: a person fixes them all in one go, not one per run.
            several = len(exc.problems) > 1
            err_console.print(
                f"[red]error[/red] ({exc.code}): {escape(exc.detail if several else str(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            for p in exc.problems if several else ():
                err_console.print(
                    f"  {escape(p.field)}: {escape(p.message)}", highlight=False, soft_wrap=True
                )
            sys.exit(1)

    return wrapper


def when(at: datetime, zone: tzinfo = UTC) -> str:
    """A time as the commands print it: to the minute, on ``zone``'s clock, with the zone's abbreviation
    or offset (``2026-12-01 17:41 UTC``, ``2026-12-02 00:41 +07``)."""
    return f"{at.astimezone(zone):%Y-%m-%d %H:%M %Z}"


def print_json(data: Any) -> None:
    import json

    console.print_json(json.dumps(data, default=str, ensure_ascii=False))
