"""SQLite's WAL is copied back into the database file by a thread of the Database, not by the committing
request: a commit returns with its pages in the WAL, and they reach the main file shortly after."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text

from cyberpact.kit.db import Database


def _checkpoint_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "sqlite-checkpoint" and t.is_alive())


def test_committed_pages_reach_the_database_file_without_a_commit_checkpointing(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.transaction() as s:
            s.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body TEXT)"))
        time.sleep(0.5)  # the table's own pages checkpointed
        before = path.stat().st_size
        with db.transaction() as s:
            # About 4 MB: a thousand pages, far below the commit's own backstop (40,000 pages).
            s.execute(text("INSERT INTO blobs (body) VALUES (:b)"), [{"b": "x" * 4000} for _ in range(1000)])
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + 3_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= before + 3_000_000, "the WAL was not checkpointed into the file"
        # Nothing lost or changed on the way: another connection reads every row back.
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT count(*), sum(length(body)) FROM blobs").fetchone() == (
                1000,
                4_000_000,
            )
    finally:
        db.dispose()


def test_dispose_stops_the_checkpoint_thread_and_read_only_work_starts_none(tmp_path: Path) -> None:
    running = _checkpoint_threads()
    db = Database(f"sqlite:///{tmp_path / 'node.db'}")
    with db.transaction(read_only=True) as s:
        s.execute(text("SELECT 1"))
    assert _checkpoint_threads() == running  # started by the first write, not by reads
    with db.transaction() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    assert _checkpoint_threads() == running + 1
    db.dispose()
    assert _checkpoint_threads() == running


def test_an_in_memory_database_has_no_checkpointer() -> None:
    running = _checkpoint_threads()
    db = Database("sqlite://")
    with db.transaction() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    assert _checkpoint_threads() == running
    db.dispose()
