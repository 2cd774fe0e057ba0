"""The audit record on the desk: inspectors read it, narrow it and check its chain; nobody else does."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update
from starlette.datastructures import QueryParams
from typer.testing import CliRunner

from conftest import LiveNode
from cyberpact.audit import service as audit
from cyberpact.audit.models import AuditCheck, AuditRecord
from cyberpact.cli import app
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.errors import InvalidInput
from cyberpact.kit.jobs import JobWorker
from cyberpact.web.audit import parse_filters
from web.helpers import person, text_of

LABELS = {"cursor": "Page", "since": "From (day)", "until": "To (day)", "outcome": "Outcome", "actor": "Who"}
_ROW = re.compile(r"<tr>\s*<td>(\d+)</td>")


def seqs(page: str) -> list[int]:
    return [int(n) for n in _ROW.findall(page)]


def reads(node: LiveNode, actor: str) -> list[AuditRecord]:
    with node.db.transaction(read_only=True) as s:
        query = select(AuditRecord).where(AuditRecord.action == "audit.read", AuditRecord.actor == actor)
        return list(s.scalars(query.order_by(AuditRecord.seq)))


def test_only_inspectors_read_the_record_on_the_desk(node: LiveNode) -> None:
    officer = person(node, "olga", "officer")
    assert "/desk/audit" not in officer.get("/desk").text
    assert officer.get("/desk/audit").status_code == 403
    assert officer.post("/desk/audit/check").status_code == 403
    auditor = person(node, "aud", "auditor")
    assert 'href="/desk/audit"' in auditor.get("/desk").text
    r = auditor.get("/desk/audit", params={"outcome": "denied"})
    assert r.status_code == 200
    # The officer's two refused attempts are there, newest first, with who and what.
    page = text_of(r.text)
    assert page.count("olga") == 2 and "/desk/audit/check" in page and "Refused" in page
    assert seqs(r.text) == sorted(seqs(r.text), reverse=True) and len(seqs(r.text)) == 2
    # Reading it is itself recorded, with what was asked.
    [seen] = reads(node, "aud")
    assert seen.detail["query"] == {"outcome": "denied"} and seen.detail["returned"] == 2


def test_filters_and_pages_neither_skip_nor_repeat(node: LiveNode) -> None:
    with node.db.transaction() as s:
        for n in range(130):
            audit.record(s, SYSTEM, "test.many", "thing", f"t{n}")
    auditor = person(node, "aud", "auditor")
    r = auditor.get("/desk/audit", params={"action": "test.", "object_type": "thing"})
    first = seqs(r.text)
    assert len(first) == 100 and "Older records" in r.text
    older = re.search(r'<a href="([^"]+)" rel="next">', r.text)
    assert older is not None
    r = auditor.get("/desk/audit" + older.group(1).replace("&amp;", "&"))
    rest = seqs(r.text)
    assert len(rest) == 30 and "Older records" not in r.text and "Newest records" in r.text
    assert first + rest == sorted(first + rest, reverse=True) and len(set(first + rest)) == 130
    one = auditor.get("/desk/audit", params={"object_id": "t7"})
    assert len(seqs(one.text)) == 1 and "t7" in text_of(one.text)
    none = auditor.get("/desk/audit", params={"actor": "nobody"})
    assert seqs(none.text) == [] and "No record matches these filters." in text_of(none.text)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "forged"}, "cursor"),
        ({"cursor": "eyJzIjoiYXVkaXQiLCJrIjpbIngiXX0"}, "cursor"),  # {"s":"audit","k":["x"]}: not a number
        ({"cursor": "eyJzIjoiaW50ZWwiLCJrIjpbNV19"}, "cursor"),  # {"s":"intel","k":[5]}: another listing's
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-03-04", "until": "2026-03-03"}, "until"),
        ({"outcome": "maybe"}, "outcome"),
        ({"actor": "x" * 121}, "actor"),
    ],
)
def test_hostile_filters_are_refused_and_nothing_is_recorded(
    node: LiveNode, params: dict[str, str], field: str
) -> None:
    auditor = person(node, "aud", "auditor")
    r = auditor.get("/desk/audit", params=params)
    assert r.status_code == 422
    # Named beside the filters, with the form still there to correct it.
    notice = re.search(r'<div class="notice error" role="alert" id="problems">(.*?)</div>', r.text, re.S)
    assert notice is not None and LABELS[field] in text_of(notice.group(1))
    assert 'name="actor"' in r.text and seqs(r.text) == []
    assert reads(node, "aud") == []
    # The API shares the cursor check: a cursor that decodes to no record number is a 422, not a 500.
    if field == "cursor":
        api = node.client(node.user("api-aud", "auditor"))
        r = api.get("/api/v1/audit", params=params)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cursor"


def test_the_days_filtered_are_the_readers_own() -> None:
    params = QueryParams({"since": "2026-03-03", "until": "2026-03-03"})
    f = parse_filters(params, "Asia/Ho_Chi_Minh")
    assert f.since == datetime(2026, 3, 2, 17, tzinfo=UTC) and f.until == datetime(2026, 3, 3, 17, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        parse_filters(QueryParams({"since": "2026-02-30"}), "UTC")


def test_the_chain_check_runs_in_the_background_and_its_finding_reaches_inspectors(node: LiveNode) -> None:
    auditor = person(node, "aud", "auditor")
    auditor.get("/desk/audit")
    assert auditor.post("/desk/audit/check", csrf="").status_code == 403  # no form token: nothing queued
    with node.db.transaction(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(AuditCheck)) == 0
        before = s.scalar(select(func.count()).select_from(AuditRecord)) or 0
    r = auditor.post("/desk/audit/check?actor=aud")
    # Back to the page as it was filtered, at the check: the walk waits for the job worker.
    assert r.status_code == 303 and r.headers["location"] == "/desk/audit?actor=aud#h-check"
    assert "A check of the chain is waiting to start." in text_of(auditor.get(r.headers["location"]).text)
    assert JobWorker(node.db).run_once() == 1
    page = text_of(auditor.get("/desk/audit").text)
    assert "The chain is intact." in page and "A check of the chain is" not in page
    with node.db.transaction() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(actor="someone else"))
    auditor.post("/desk/audit/check")
    assert JobWorker(node.db).run_once() == 1
    page = text_of(auditor.get("/desk/audit").text)
    assert "The chain does not hold." in page and "A record was changed after it was written." in page
    assert "First record that does not hold: 3" in page
    # Both checks listed, newest first: the one that found the break, then the one before it.
    assert re.search(r"Does not hold\s+\S+\s+3: A record was changed.*Intact", page, re.S), page
    # Whoever answers for the chain sees the break on Today; an officer does not.
    today = text_of(auditor.get("/desk").text)
    assert "The audit chain does not hold." in today and "First record that does not hold: 3" in today
    assert "audit chain" not in text_of(person(node, "olga", "officer").get("/desk").text)
    with node.db.transaction(read_only=True) as s:
        asked = list(s.scalars(select(AuditRecord).where(AuditRecord.action == "audit.check.request")))
        walked = list(s.scalars(select(AuditRecord).where(AuditRecord.action == "audit.verify")))
    assert [a.actor for a in asked] == ["aud", "aud"]
    assert [w.actor for w in walked] == ["system", "system"]
    assert walked[0].detail["records"] >= before > 0 and "finding" not in walked[0].detail
    assert walked[1].detail["finding"] == {"seq": 3, "kind": "altered"}
    assert walked[1].detail["requested_by"] == "aud"


def test_a_walk_that_could_not_finish_leaves_what_the_chain_was_last_found_to_be(
    node: LiveNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    auditor = person(node, "aud", "auditor")
    auditor.get("/desk/audit")
    auditor.post("/desk/audit/check")
    assert JobWorker(node.db).run_once() == 1

    def unreadable(*_: object, **__: object) -> audit.VerifyResult:
        raise OSError("disk read error")

    monkeypatch.setattr(audit, "verify", unreadable)
    auditor.post("/desk/audit/check")
    assert JobWorker(node.db).run_once() == 1
    page = text_of(auditor.get("/desk/audit").text)
    assert "The last check could not finish. OSError" in page and "The chain is intact." in page
    assert re.search(r"Could not finish.*Intact", page, re.S), "newest first"
    # Asked again, the walk ends, and the failure is history.
    monkeypatch.undo()
    auditor.post("/desk/audit/check")
    assert JobWorker(node.db).run_once() == 1
    assert "could not finish" not in text_of(auditor.get("/desk/audit").text).split("Latest checks")[0]


def test_a_walk_on_the_command_line_is_listed_with_the_checks_and_its_break_raises_the_alarm(
    node: LiveNode, cli_env: dict[str, str]
) -> None:
    with node.db.transaction() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(actor="someone else"))
    r = CliRunner().invoke(app, ["audit", "verify"])
    assert r.exit_code == 2 and "record 2: altered" in r.output, r.output
    auditor = person(node, "aud", "auditor")
    page = text_of(auditor.get("/desk/audit").text)
    assert "The chain does not hold." in page and "First record that does not hold: 2" in page
    assert re.search(r"cli:\S+, on the command line\s+Does not hold", page), page
    assert "The audit chain does not hold." in text_of(auditor.get("/desk").text)
