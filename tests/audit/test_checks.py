"""Checks of the whole audit chain run in the background: the node keeps working while one walks, and each
keeps what it found."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from conftest import LiveNode
from cyberpact.audit import service as audit
from cyberpact.audit import tasks
from cyberpact.audit.models import AuditCheck, AuditRecord
from cyberpact.config import Settings
from cyberpact.kit.actor import SYSTEM, Actor
from cyberpact.kit.db import Database
from cyberpact.kit.jobs import Job, JobWorker
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import utcnow

INSPECTOR = Actor(user_id=None, username="ines", roles=frozenset({"auditor"}), source="test")


def _fill(db: Database, n: int) -> None:
    with db.transaction() as s:
        for i in range(n):
            audit.record(s, SYSTEM, "test.write", "thing", i, detail={"i": i})


def _ask(db: Database) -> uuid.UUID:
    with db.transaction() as s:
        check, new = audit.request_check(s, INSPECTOR)
        assert new
        return check.id


def _check(db: Database, check_id: uuid.UUID) -> AuditCheck:
    with db.transaction(read_only=True) as s:
        check = s.get_one(AuditCheck, check_id)
        s.expunge(check)
        return check


def test_the_node_goes_on_writing_while_a_check_walks_the_chain(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(db, 12)
    with db.transaction() as s:
        audit.anchor(s, KeyStore(settings.key_passphrase_value(), settings.key_kdf_iterations), "test")
    check_id = _ask(db)
    monkeypatch.setattr(tasks, "BATCH", 4)
    seen: list[int] = []

    def alive() -> None:
        # An officer's change in the middle of the walk. Were the walk inside a writing transaction, this
        # would wait on SQLite's only write lock (and the walk's own progress could not be kept either).
        with db.transaction() as s:
            audit.record(s, SYSTEM, "test.during", "thing", len(seen))
        seen.append(_check(db, check_id).records_checked)

    tasks.run_check(db, {"check": str(check_id)}, alive)
    check = _check(db, check_id)
    # Progress was kept as it went, against the length of the chain when the walk began (12 records and
    # the request's own record); the records written during the walk were not part of it.
    assert seen == [4, 8, 12]
    assert (check.status, check.records_total, check.records_checked, check.anchors) == ("intact", 13, 13, 1)
    assert check.started_at is not None and check.finished_at is not None and check.finding_seq is None
    with db.transaction(read_only=True) as s:
        done = s.scalars(select(AuditRecord).where(AuditRecord.action == "audit.verify")).one()
        assert done.object_id == str(check_id) and done.actor == "system"
        assert done.detail == {"requested_by": "ines", "status": "intact", "records": 13, "anchors": 1}
        assert s.scalar(select(func.count()).where(AuditRecord.action == "test.during")) == 3
    # The job ran again (its worker died before marking it done): the finished check is left as it is.
    tasks.run_check(db, {"check": str(check_id)}, alive)
    assert _check(db, check_id).finished_at == check.finished_at and len(seen) == 3


def test_a_check_keeps_the_first_record_that_does_not_hold(db: Database) -> None:
    _fill(db, 6)
    with db.transaction() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 4).values(actor="someone else"))
    check_id = _ask(db)
    assert JobWorker(db).run_once() == 1
    check = _check(db, check_id)
    assert (check.status, check.finding_seq, check.finding_kind) == ("broken", 4, "altered")
    assert check.finding_message == "record 4: content does not match its hash"
    with db.transaction(read_only=True) as s:
        assert audit.last_finished_check(s) is not None
        assert s.scalar(select(Job.status).where(Job.kind == audit.CHECK_JOB)) == "done"


def test_asking_while_a_check_is_under_way_gives_that_check(db: Database) -> None:
    first = _ask(db)
    with db.transaction() as s:
        again, new = audit.request_check(s, SYSTEM, reason="scheduled")
        assert again.id == first and not new
        assert s.scalar(select(func.count()).select_from(AuditCheck)) == 1
    assert JobWorker(db).run_once() == 1
    with db.transaction() as s:
        _, new = audit.request_check(s, SYSTEM, reason="scheduled")
        assert new, "once it ended, a new check is queued"


def test_inspectors_asking_at_the_same_moment_share_one_check(db: Database) -> None:
    askers = 6
    start = threading.Barrier(askers)

    def ask(_: int) -> tuple[uuid.UUID, bool]:
        start.wait()
        with db.transaction() as s:
            check, new = audit.request_check(s, INSPECTOR)
            return check.id, new

    with ThreadPoolExecutor(askers) as pool:
        answers = list(pool.map(ask, range(askers)))
    assert len({check_id for check_id, _ in answers}) == 1
    assert sum(new for _, new in answers) == 1
    with db.transaction(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(AuditCheck)) == 1
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_a_walk_that_cannot_finish_says_so(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(db, 3)
    check_id = _ask(db)

    def unreadable(*_: object, **__: object) -> audit.VerifyResult:
        raise OSError("disk read error")  # what a failing disk under the database looks like to the walk

    monkeypatch.setattr(audit, "verify", unreadable)
    assert JobWorker(db).run_once() == 1
    check = _check(db, check_id)
    assert (check.status, check.error, check.finding_seq) == ("failed", "OSError", None)
    with db.transaction(read_only=True) as s:
        assert audit.last_finished_check(s) is None, "a walk that did not end says nothing about the chain"


def test_inspectors_ask_for_and_follow_checks_over_the_api(node: LiveNode) -> None:
    auditor = node.client(node.user("ines", "auditor"))
    r = auditor.post("/api/v1/audit/checks")
    assert r.status_code == 202 and r.json()["status"] == "queued"
    location = r.headers["location"]
    assert location == f"/api/v1/audit/checks/{r.json()['id']}"
    assert auditor.post("/api/v1/audit/checks").json()["id"] == r.json()["id"]
    assert JobWorker(node.db).run_once() == 1
    done = auditor.get(location).json()
    assert done["status"] == "intact" and done["records_checked"] >= 1 and done["finding_seq"] is None
    assert [c["id"] for c in auditor.get("/api/v1/audit/checks").json()] == [r.json()["id"]]
    assert auditor.get(f"/api/v1/audit/checks/{uuid.uuid4()}").status_code == 404
    assert auditor.get("/api/v1/audit/checks/not-a-check").status_code == 422
    officer = node.client(node.user("olga", "officer"))
    assert officer.post("/api/v1/audit/checks").status_code == 403
    assert officer.get(location).status_code == 403
    with node.db.transaction(read_only=True) as s:
        asked = s.scalars(select(AuditRecord).where(AuditRecord.action == "audit.check.request")).all()
        reads = s.scalars(select(AuditRecord).where(AuditRecord.action == "audit.check.read")).all()
        assert [a.actor for a in asked] == ["ines"], "asking again while one is queued queues nothing"
        assert len(reads) == 2 and all(a.actor == "ines" for a in reads)


def test_the_nodes_own_schedule_counts_from_the_last_check(db: Database) -> None:
    day = timedelta(hours=24)
    with db.transaction() as s:
        assert audit.request_check_if_due(s, day), "a node never checked is due at once"
        assert not audit.request_check_if_due(s, day), "queued already"
    assert JobWorker(db).run_once() == 1
    with db.transaction() as s:
        assert not audit.request_check_if_due(s, day), "checked within the day: a restart changes nothing"
        s.execute(update(AuditCheck).values(requested_at=utcnow() - day - timedelta(minutes=1)))
    with db.transaction() as s:
        assert audit.request_check_if_due(s, day)
        scheduled = s.scalars(select(AuditCheck).where(AuditCheck.status == "queued")).one()
        assert (scheduled.reason, scheduled.requested_by) == ("scheduled", "system")
