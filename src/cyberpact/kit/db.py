"""Database plumbing: the declarative base, column types that behave the same on SQLite and PostgreSQL,
engine creation and the one-transaction-per-unit-of-work helper.

Services take a ``Session`` and flush; only :meth:`Database.transaction` (used by the request and job
boundaries) commits.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import IntEnum, unique
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("cyberpact.db")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC times only")
        value = value.astimezone(UTC)
        # SQLite keeps the text; drop the offset so lexical order equals time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONType(TypeDecorator[Any]):
    """JSON everywhere, stored as JSONB on PostgreSQL (indexable, compact)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType, list[Any]: JSONType}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Python's sqlite3 opens transactions lazily and on its own terms; take that over so that a
    # unit of work that will write can begin with BEGIN IMMEDIATE (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    # Checkpoints (WAL pages copied back into the database file, which is then fsynced) are the
    # Checkpointer's work, off the committing thread; a commit does one itself only as a backstop, once the
    # WAL holds 40,000 pages (160 MB), and a WAL grown that large is cut back to 64 MB once reset.
    cur.execute("PRAGMA wal_autocheckpoint=40000")
    cur.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when another
    # connection committed in between (WAL snapshots cannot be upgraded). Writers therefore take the
    # write lock up front; read-only units of work stay deferred so readers never queue behind writers.
    mode = "DEFERRED" if conn.get_execution_options().get("cyberpact_read_only") else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


def build_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


@unique
class Lock(IntEnum):
    """The advisory lock of each section that PostgreSQL writers must pass one at a time. Kept in one
    place, and unique, because a key two sections share serialises them against each other for nothing
    (case references and the custody log once did)."""

    AUDIT_CHAIN = 0x6379_6265_7250
    OUTBOX_CLAIM = 0x6379_6265_7251
    JOB_CLAIM = 0x6379_6265_7252
    CASE_REFERENCE = 0x6379_6265_7253
    CUSTODY_LOG = 0x6379_6265_7254
    AUDIT_CHECK_REQUEST = 0x6379_6265_7255
    CORRELATION = 0x6379_696E_7465
    DIRECTORY_SEED = 0x6379_6469_7200
    ROSTER_SIGN = 0x6379_726F_7374
    ADMINISTRATORS = 0x6379_6164_6D6E


def advisory_lock(session: Session, key: Lock) -> None:
    """Serialise the rest of this transaction with every other holder of ``key``.

    PostgreSQL: a transaction-scoped advisory lock. SQLite needs nothing: a writing transaction already
    holds the database's single write lock (BEGIN IMMEDIATE).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": int(key)})


def insert_missing(session: Session, model: type[Base], **values: Any) -> None:
    """Insert the row unless one with its key exists, without raising.

    Get-then-add races: two transactions that both found the row missing both insert it, and the second
    fails on the key after doing all its other work. Here, on PostgreSQL, the second waits for the first
    and then inserts nothing.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing())


class _Checkpointer:
    """Copies committed WAL pages back into a SQLite database file on a thread of its own.

    Left to itself SQLite checkpoints inside the commit that crosses ``wal_autocheckpoint``: that writer,
    holding the only write lock, copies thousands of pages and fsyncs the file while every other writer
    waits. A TAXII ingest of 1,000,000 objects ran at 9,100-9,900 objects/s that way, 11,200-12,300 with
    the copy here (benchmarks/bench_taxii.py). Woken by write commits, at most every ``INTERVAL`` seconds;
    PASSIVE, so it never waits for, or blocks, a reader or a writer. Commits stay durable exactly as before:
    they are in the WAL when they return, checkpointed or not.
    """

    INTERVAL = 0.25

    def __init__(self, path: str) -> None:
        self._path = path
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                    self._thread.start()
        self._due.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=0)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            while not self._stopping.is_set():
                self._due.wait()
                self._due.clear()
                if self._stopping.is_set():
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the next commit's nudge tries again; the backstop remains
                    log.warning("background checkpoint of %s failed: %s", self._path, exc)
                self._stopping.wait(self.INTERVAL)  # commits meanwhile are taken by the next round
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(10)


class Database:
    """An engine and its session factory; built by the app factory or the CLI, never at import."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = build_engine(url, echo=echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(cyberpact_read_only=True), expire_on_commit=False
        )
        path = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        in_memory = path == ":memory:" or "mode=memory" in url
        self._checkpointer = _Checkpointer(path) if path and not in_memory else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """One unit of work: commits when the block ends cleanly, rolls back otherwise."""
        session = (self._read_sessions if read_only else self._sessions)()
        try:
            yield session
            session.commit()
            if not read_only and self._checkpointer is not None:
                self._checkpointer.nudge()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
