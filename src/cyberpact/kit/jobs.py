"""Durable background jobs: rows in the database, written in the transaction of the change that causes
them, run by a worker after their time, retried with backoff, never lost to a restart.

Claims are leases, serialised by an advisory lock on PostgreSQL, so several workers share the queue. A job
runs in one transaction, which also marks it done; a long job (``long_runner``: a walk over millions of
rows) runs outside one, opening short ones of its own, and renews its lease as it goes. Long jobs have a
thread of their own in each worker, so the short ones do not wait for them.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, String, Text, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Base, Database, IdMixin, Lock, advisory_lock
from cyberpact.kit.errors import Conflict, NotFound
from cyberpact.kit.features import Features
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.time import utcnow

log = logging.getLogger("cyberpact.jobs")
Runner = Callable[[Session, dict[str, Any]], None]
# (database, payload, alive): alive() renews the worker's lease, so another worker does not take the job
# over while it still runs.
LongRunner = Callable[[Database, dict[str, Any], Callable[[], None]], None]
_RUNNERS: dict[str, Runner] = {}
_LONG_RUNNERS: dict[str, LongRunner] = {}
# The modules that register runners, loaded before any job is claimed: a worker started from anything but
# the server's factory would otherwise claim an audit check in the short lane and fail it for want of a
# runner.
FEATURES = Features("cyberpact.audit.tasks", "cyberpact.cases.deadlines")
_load = FEATURES.load
LANES = ("short", "long")
MAX_ATTEMPTS = 10  # then the job is "failed": no longer tried, and shown to administrators


class Job(IdMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "status", "run_at"),)

    kind: Mapped[str] = mapped_column(String(80))
    key: Mapped[str | None] = mapped_column(
        String(200), unique=True
    )  # one job per key: scheduling is idempotent
    run_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending, done, failed, cancelled
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(80))
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


def runner(kind: str) -> Callable[[Runner], Runner]:
    def add(fn: Runner) -> Runner:
        _RUNNERS[kind] = fn
        return fn

    return add


def long_runner(kind: str) -> Callable[[LongRunner], LongRunner]:
    """Register work too long for one transaction: on SQLite a writing transaction holds the database's
    only write lock, and every other change would wait out the walk. The runner opens its own units of
    work; it runs again from the start if its worker dies, so it must be safe to repeat."""

    def add(fn: LongRunner) -> LongRunner:
        _LONG_RUNNERS[kind] = fn
        return fn

    return add


def known_kinds() -> dict[str, str]:
    """Every job kind a worker runs, and its lane."""
    _load()
    return {**dict.fromkeys(_RUNNERS, "short"), **dict.fromkeys(_LONG_RUNNERS, "long")}


def schedule(
    session: Session, kind: str, run_at: datetime, payload: dict[str, Any], key: str | None = None
) -> Job | None:
    """Add a job in the caller's transaction; with ``key``, a second call for the same key does nothing."""
    if key is not None:
        existing = session.scalar(select(Job).where(Job.key == key))
        if existing is not None:
            return None
    job = Job(
        kind=kind, key=key, run_at=run_at, payload=payload, status="pending", attempts=0, created_at=utcnow()
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        return None  # scheduled concurrently under the same key
    return job


def cancel(session: Session, key_prefix: str) -> int:
    result = session.execute(
        update(Job)
        .where(Job.key.startswith(key_prefix, autoescape=True), Job.status == "pending")
        .values(status="cancelled")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def given_up(session: Session, limit: int = 20) -> tuple[int, list[Job]]:
    """How many jobs failed ``MAX_ATTEMPTS`` times and are no longer tried, and the latest ``limit`` of
    them."""
    count = session.scalar(select(func.count()).select_from(Job).where(Job.status == "failed")) or 0
    return int(count), list_jobs(session, "failed", limit) if count else []


def list_jobs(session: Session, status: str | None = None, limit: int = 50) -> list[Job]:
    query = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    return list(session.scalars(query))


def retry(session: Session, actor: Actor, job_id: str) -> Job:
    """Give a job that gave up a fresh set of attempts, due now."""
    # Imported here: the audit chain queues its checks through this module.
    from cyberpact.audit import service as audit

    job_uuid = parse_uuid(job_id)
    job = session.get(Job, job_uuid) if job_uuid else None
    if job is None:
        raise NotFound(f"No job {job_id}")
    if job.status != "failed":
        raise Conflict(f"Job {job_id} is {job.status}; only one that gave up is tried again")
    job.status, job.attempts, job.run_at = "pending", 0, utcnow()
    job.locked_by = job.locked_until = None
    session.flush()
    audit.record(session, actor, "jobs.retry", "job", str(job.id), detail={"kind": job.kind})
    return job


class JobWorker:
    """Runs due jobs on two threads: one for the short jobs, one for the long ones, so that an hour's walk
    of the audit chain does not hold back a deadline reminder due meanwhile."""

    def __init__(self, db: Database, poll_seconds: float = 1.0, lease_seconds: int = 120) -> None:
        self.db, self.poll, self.lease = db, poll_seconds, lease_seconds
        self.worker_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._wake = {lane: threading.Event() for lane in LANES}
        self._threads: list[threading.Thread] = []

    def wake(self) -> None:
        """Look for due jobs now rather than at the next poll: someone is waiting for one just scheduled."""
        for event in self._wake.values():
            event.set()

    def _claim(self, now: datetime, lane: str) -> list[uuid.UUID]:
        _load()
        long_kinds = list(_LONG_RUNNERS)
        kind = Job.kind.in_(long_kinds) if lane == "long" else Job.kind.not_in(long_kinds)
        # One long job at a time: a claim of several would leave the later ones leased, and idle, for the
        # whole of the first one's walk.
        limit = 1 if lane == "long" else 50
        with self.db.transaction() as session:
            advisory_lock(session, Lock.JOB_CLAIM)
            rows = session.scalars(
                select(Job)
                .where(Job.status == "pending", Job.run_at <= now, kind)
                .where((Job.locked_until.is_(None)) | (Job.locked_until <= now))
                .order_by(Job.run_at)
                .limit(limit)
            ).all()
            for job in rows:
                job.locked_by, job.locked_until = self.worker_id, now + timedelta(seconds=self.lease)
            return [j.id for j in rows]

    def run_once(self, lane: str | None = None) -> int:
        """Run the jobs due now in one lane (``"short"`` or ``"long"``), or in both, the short ones first;
        how many were done."""
        return sum(self._run(self._claim(utcnow(), name)) for name in ((lane,) if lane else LANES))

    def _run(self, claimed: list[uuid.UUID]) -> int:
        done = 0
        for job_id in claimed:
            try:
                with self.db.transaction(read_only=True) as session:
                    job = session.get_one(Job, job_id)
                    if not self._holds(job):
                        continue
                    kind, payload = job.kind, dict(job.payload)
                long = _LONG_RUNNERS.get(kind)
                if long is not None:
                    long(self.db, payload, functools.partial(self._renew, job_id))
                with self.db.transaction() as session:
                    # Locked, and checked again: a slow job before this one may have outlasted the lease of
                    # this claim, and another worker may have claimed and run it meanwhile.
                    job = session.get_one(Job, job_id, with_for_update=True)
                    if long is None and not self._holds(job):
                        continue
                    if long is None:
                        fn = _RUNNERS.get(kind)
                        if fn is None:
                            raise LookupError(f"no runner for job kind {kind!r}")
                        fn(session, job.payload)
                    job.status, job.done_at, job.locked_by, job.locked_until = "done", utcnow(), None, None
                    job.attempts += 1
                done += 1
            except Exception as exc:  # a failing job is retried later; it must not stop the others
                log.exception("job %s failed", job_id)
                with self.db.transaction() as session:
                    job = session.get_one(Job, job_id)
                    job.attempts += 1
                    job.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                    job.locked_by = job.locked_until = None
                    if job.attempts >= MAX_ATTEMPTS:
                        job.status = "failed"
                    else:
                        job.run_at = utcnow() + timedelta(seconds=min(2**job.attempts * 5, 3600))
        return done

    def _holds(self, job: Job) -> bool:
        return job.status == "pending" and job.locked_by == self.worker_id

    def _renew(self, job_id: uuid.UUID) -> None:
        with self.db.transaction() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.locked_by == self.worker_id)
                .values(locked_until=utcnow() + timedelta(seconds=self.lease))
            )

    def start(self) -> None:
        for lane in LANES:
            thread = threading.Thread(
                target=self._loop, args=(lane,), name=f"jobs-{lane}-{self.worker_id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10) -> None:
        """Stop both lanes; a long job still running after ``timeout`` is left to its daemon thread, and
        runs again from the start when its lease lapses (long runners are safe to repeat)."""
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, lane: str) -> None:
        wake = self._wake[lane]
        while not self._stop.is_set():
            try:
                ran = self.run_once(lane)
            except Exception:  # keep the loop alive across a database hiccup
                log.exception("job round failed")
                ran = 0
            if not ran and not self._stop.is_set():
                wake.wait(self.poll)
                wake.clear()
