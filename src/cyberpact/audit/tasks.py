"""The background walk of the whole audit chain (``audit.service.request_check`` queues it)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from cyberpact.audit import service
from cyberpact.kit import jobs
from cyberpact.kit.db import Database

log = logging.getLogger("cyberpact.audit")
BATCH = 20_000  # records read per round trip; progress is kept and the lease renewed once per batch


@jobs.long_runner(service.CHECK_JOB)
def run_check(db: Database, payload: dict[str, Any], alive: Callable[[], None]) -> None:
    check_id = uuid.UUID(payload["check"])
    with db.transaction() as session:
        if not service.start_check(session, check_id):
            return

    def progress(records: int) -> None:
        # A unit of work of its own, so the page shows how far the walk is while it runs.
        with db.transaction() as session:
            service.note_progress(session, check_id, records)
        alive()

    try:
        # A read-only snapshot, not the job's writing transaction: on SQLite that would hold the node's only
        # write lock for the whole walk (about 40 s a million records), and every officer's change would
        # wait for the inspector's check, or fail after the database's busy timeout.
        with db.transaction(read_only=True) as session:
            result = service.verify(session, batch=BATCH, progress=progress)
    except Exception as exc:  # the check says it could not finish; the inspector may ask again
        log.exception("audit chain check %s could not finish", check_id)
        with db.transaction() as session:
            service.finish_check(session, check_id, None, type(exc).__name__)
        return
    with db.transaction() as session:
        service.finish_check(session, check_id, result)
