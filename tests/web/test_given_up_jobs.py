"""A background job that keeps failing is given up after ``MAX_ATTEMPTS`` tries, and then it is not silent:
administrators see it on Today and try it again there or from the command line."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from conftest import LiveNode
from cyberpact.audit import service as audit
from cyberpact.audit.models import AuditRecord
from cyberpact.cases import deadlines
from cyberpact.cli import app
from cyberpact.kit import jobs
from cyberpact.kit.jobs import Job, JobWorker
from cyberpact.kit.time import utcnow
from cyberpact.web.render import JOB_KINDS
from web.helpers import person, text_of

runner = CliRunner()
FIXED: list[bool] = []


@jobs.runner("test.printer")
def _print(session: Session, payload: dict[str, Any]) -> None:
    if not FIXED:
        raise RuntimeError("printer on fire")


def _fail_until_given_up(node: LiveNode) -> None:
    worker = JobWorker(node.db)
    for _ in range(jobs.MAX_ATTEMPTS):
        with node.db.transaction() as s:  # due again now, not after its backoff
            s.execute(update(Job).values(run_at=utcnow()))
        assert worker.run_once("short") == 0


def test_a_job_that_gave_up_is_shown_to_administrators_and_can_be_tried_again(
    node: LiveNode, cli_env: dict[str, str]
) -> None:
    FIXED.clear()
    with node.db.transaction() as s:
        jobs.schedule(s, "test.printer", utcnow(), {"what": "reminder"})
    _fail_until_given_up(node)
    with node.db.transaction(read_only=True) as s:
        job = s.scalars(select(Job)).one()
        assert (job.status, job.attempts) == ("failed", jobs.MAX_ATTEMPTS)
        assert job.last_error == "RuntimeError: printer on fire"
        assert jobs.given_up(s)[0] == 1
    admin = text_of(person(node, "ada", "admin").get("/desk").text)
    assert "Background work that gave up" in admin
    assert f"Jobs that failed {jobs.MAX_ATTEMPTS} times and are no longer tried: 1." in admin
    assert "test.printer" in admin and "RuntimeError: printer on fire" in admin
    assert "gave up" not in text_of(person(node, "olga", "officer").get("/desk").text)

    listed = runner.invoke(app, ["jobs", "list", "--failed"])
    assert listed.exit_code == 0 and str(job.id) in listed.output
    assert "RuntimeError: printer on fire" in listed.output
    FIXED.append(True)
    retried = runner.invoke(app, ["jobs", "retry", str(job.id)])
    assert retried.exit_code == 0 and "queued again" in retried.output, retried.output
    assert JobWorker(node.db).run_once("short") == 1
    again = runner.invoke(app, ["jobs", "retry", str(job.id)])
    assert again.exit_code == 1 and "only one that gave up is tried again" in again.output
    assert runner.invoke(app, ["jobs", "retry", "not-a-job"]).exit_code == 1
    with node.db.transaction(read_only=True) as s:
        assert s.get_one(Job, job.id).status == "done"
        record = s.scalars(select(AuditRecord).where(AuditRecord.action == "jobs.retry")).one()
        assert record.object_id == str(job.id) and record.actor.startswith("cli:")
    assert "gave up" not in text_of(person(node, "ana", "admin").get("/desk").text)


def test_an_administrator_tries_a_job_again_from_today(node: LiveNode) -> None:
    FIXED.clear()
    with node.db.transaction() as s:
        jobs.schedule(s, "test.printer", utcnow(), {"what": "reminder"})
    _fail_until_given_up(node)
    with node.db.transaction(read_only=True) as s:
        job_id = str(s.scalars(select(Job.id)).one())
    retry = f"/desk/admin/jobs/{job_id}/retry"

    olga = person(node, "olga", "officer")
    olga.get("/desk")
    assert olga.post(retry).status_code == 403
    ada = person(node, "ada", "admin")
    today = ada.get("/desk").text
    assert f'action="{retry}"' in today and "Retry now" in text_of(today)
    assert "cyberpact jobs list --failed" not in today  # every job that gave up is on the page
    assert ada.post(retry, csrf="").status_code == 403  # a forged form, without the page's token
    with node.db.transaction(read_only=True) as s:
        assert s.get_one(Job, uuid.UUID(job_id)).status == "failed"
        assert not s.scalars(select(AuditRecord).where(AuditRecord.action == "jobs.retry")).all()

    FIXED.append(True)
    done = ada.post(retry)
    assert done.status_code == 303 and done.headers["location"] == "/desk#jobs-given-up"
    with node.db.transaction(read_only=True) as s:
        job = s.get_one(Job, uuid.UUID(job_id))
        assert (job.status, job.attempts) == ("pending", 0)
        record = s.scalars(select(AuditRecord).where(AuditRecord.action == "jobs.retry")).one()
        assert (record.actor, record.object_id) == ("ada", job_id)
    assert JobWorker(node.db).run_once("short") == 1
    assert "Background work that gave up" not in text_of(ada.get("/desk").text)
    again = ada.post(retry)
    assert again.status_code == 409 and "only one that gave up is tried again" in text_of(again.text)
    ada.get("/desk")
    assert ada.post(f"/desk/admin/jobs/{uuid.uuid4()}/retry").status_code == 404
    ada.get("/desk")
    assert ada.post("/desk/admin/jobs/not-a-job/retry").status_code == 404


def test_today_lists_the_latest_jobs_that_gave_up_and_points_to_the_rest(node: LiveNode) -> None:
    with node.db.transaction() as s:
        for n in range(25):
            jobs.schedule(s, "test.printer", utcnow(), {"n": n})
        s.execute(update(Job).values(status="failed", attempts=jobs.MAX_ATTEMPTS, last_error="<b>x</b>"))
    page = person(node, "ada", "admin").get("/desk").text
    assert "no longer tried: 25." in text_of(page)
    assert page.count("/desk/admin/jobs/") == 20
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "cyberpact jobs list --failed" in page


def test_every_kind_of_job_the_node_runs_has_a_name_for_people() -> None:
    assert {deadlines.REMINDER, audit.CHECK_JOB} <= set(JOB_KINDS)
