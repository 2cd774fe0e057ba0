"""The durable job queue: a long job runs outside one transaction, and no job runs twice when a long one
outlasts the claim of the jobs queued behind it."""

from __future__ import annotations

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
OTHER: list[JobWorker] = []


@jobs.runner("test.short")
def _short(session: Session, payload: dict[str, Any]) -> None:
    RUNS.append(payload["name"])


@jobs.long_runner("test.long")
def _long(db: Database, payload: dict[str, Any], alive: Callable[[], None]) -> None:
    RUNS.append(payload["name"])
    alive()
    # This job outlasts the lease of the claim on the job queued behind it (the clock moved on, here by
    # hand); another worker finds that claim lapsed and takes the job.
    with db.transaction() as s:
        s.execute(
            update(Job).where(Job.kind == "test.short").values(locked_until=utcnow() - timedelta(seconds=1))
        )
    assert OTHER[0].run_once() == 1


def test_a_job_taken_over_by_another_worker_runs_once(db: Database) -> None:
    RUNS.clear()
    start = utcnow() - timedelta(seconds=5)
    with db.transaction() as s:
        jobs.schedule(s, "test.long", start, {"name": "long"})
        jobs.schedule(s, "test.short", start + timedelta(seconds=1), {"name": "short"})
    first = JobWorker(db)
    OTHER[:] = [JobWorker(db)]
    assert first.run_once() == 1, "the short job was the other worker's by then"
    assert RUNS == ["long", "short"]
    with db.transaction(read_only=True) as s:
        assert set(s.scalars(select(Job.status))) == {"done"}
        long = s.scalars(select(Job).where(Job.kind == "test.long")).one()
        assert long.attempts == 1 and long.locked_by is None
