"""Helpers every feature's CLI uses: settings, a unit of work, the CLI actor and error reporting."""

from __future__ import annotations

import functools
import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from rich.console import Console
from sqlalchemy.orm import Session

from cyberpact.config import Settings
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.keystore import KeyStore

console = Console()
err_console = Console(stderr=True)
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
    return Actor(user_id=None, username=f"cli:{who}", roles=frozenset({"admin", "system"}), source="cli")


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
            err_console.print(f"[red]error[/red] ({exc.code}): {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper


def print_json(data: Any) -> None:
    import json

    console.print_json(json.dumps(data, default=str, ensure_ascii=False))
