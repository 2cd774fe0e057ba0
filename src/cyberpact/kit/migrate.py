"""Alembic, driven from code: the migrations ship inside the package so an installed node can upgrade
itself without a source checkout.

A serving node only asks whether its database is at ``HEAD``; that is one query on Alembic's own table,
so Alembic itself (and Mako and Pygments behind it, about 10 MB resident) is loaded only by the commands
that migrate. A test keeps ``HEAD`` equal to the head of the scripts in ``migrations/versions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
HEAD = "0019"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The head according to the migration scripts themselves."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    # One row on a linear history; anything else is not a database this release migrated.
    return str(rows[0]) if len(rows) == 1 else None


def at_head(engine: Engine) -> bool:
    return current_revision(engine) == HEAD
