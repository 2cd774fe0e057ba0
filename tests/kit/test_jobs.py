"""The durable job queue: a long job runs outside one transaction and beside the short ones, not ahead of
them, and no job runs twice when its claim lapses before its turn comes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cyberpact.kit import jobs
from cyberpact.kit.db import Database
from cyberpact.kit.jobs import Job, JobWorker
from cyberpact.kit.time import utcnow

RUNS: list[str] = []
RELEASE = threading.Event()


@jobs.runner("test.short")
def _short(session: Session, payload: dict[str, Any]) -> None:
    RUNS.append(payload["name"])


@jobs.long_runner("test.long")
def _long(db: Database, payload: dict[str, Any], alive: Callable[[], None]) -> None:
    RUNS.append(payload["name"])
    # The walk goes on until the test lets it end, renewing its lease as a real one does.
    while not RELEASE.wait(0.05):
        alive()
    RUNS.append(payload["name"] + " ended")


def _statuses(db: Database) -> dict[str, str]:
    with db.transaction(read_only=True) as s:
        return {j.payload["name"]: j.status for j in s.scalars(select(Job))}


def test_a_short_job_due_during_a_long_one_runs_without_waiting_for_it(db: Database) -> None:
    RUNS.clear()
    RELEASE.clear()
    start = utcnow() - timedelta(seconds=5)
    with db.transaction() as s:
        jobs.schedule(s, "test.long", start, {"name": "walk"})
    worker = JobWorker(db, poll_seconds=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while "walk" not in RUNS and time.monotonic() < deadline:
            time.sleep(0.02)
        with db.transaction() as s:
            jobs.schedule(s, "test.short", utcnow(), {"name": "reminder"})
        worker.wake()
        while "reminder" not in RUNS and time.monotonic() < deadline:
            time.sleep(0.02)
        assert RUNS == ["walk", "reminder"], "the reminder waited for the walk"
        # The job has run; its "done" is committed just after it returns (under load, after this check).
        while _statuses(db)["reminder"] != "done" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _statuses(db) == {"walk": "pending", "reminder": "done"}
        RELEASE.set()
        while _statuses(db)["walk"] != "done" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        RELEASE.set()
        worker.stop()
    assert RUNS == ["walk", "reminder", "walk ended"]
    with db.transaction(read_only=True) as s:
        walk = s.scalars(select(Job).where(Job.kind == "test.long")).one()
        assert (walk.status, walk.attempts, walk.locked_by) == ("done", 1, None)


def test_a_job_whose_claim_lapsed_before_its_turn_is_run_once(db: Database) -> None:
    RUNS.clear()
    with db.transaction() as s:
        jobs.schedule(s, "test.short", utcnow() - timedelta(seconds=5), {"name": "short"})
    first, other = JobWorker(db), JobWorker(db)
    claimed = first._claim(utcnow(), "short")
    assert len(claimed) == 1
    # The first worker is slow to reach it (a job before it in its claim ran long): its lease runs out,
    # and the other worker takes the job and runs it.
    with db.transaction() as s:
        s.execute(update(Job).values(locked_until=utcnow() - timedelta(seconds=1)))
    assert other.run_once() == 1
    assert first._run(claimed) == 0, "the job was the other worker's by then"
    assert RUNS == ["short"]
    with db.transaction(read_only=True) as s:
        job = s.scalars(select(Job)).one()
        assert (job.status, job.attempts, job.locked_by) == ("done", 1, None)


def test_one_long_job_is_claimed_at_a_time(db: Database) -> None:
    start = utcnow() - timedelta(seconds=5)
    with db.transaction() as s:
        for name in ("first", "second"):
            jobs.schedule(s, "test.long", start, {"name": name})
        jobs.schedule(s, "test.short", start, {"name": "short"})
    worker, other = JobWorker(db), JobWorker(db)
    assert len(worker._claim(utcnow(), "long")) == 1
    # The second walk stays free for another worker rather than leased, idle, behind the first one.
    assert len(other._claim(utcnow(), "long")) == 1
    assert len(other._claim(utcnow(), "long")) == 0
    assert len(worker._claim(utcnow(), "short")) == 1, "the long lane never took the short job"
