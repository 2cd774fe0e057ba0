"""Notes on a case or a request: kept on this node, seen by exactly those who may see what they are about."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from cases.conftest import HEADER, Side, act, draft
from cyberpact.audit.models import AuditRecord
from cyberpact.cases.models import CaseNote
from cyberpact.federation.models import InboxMessage, OutboxMessage
from web.helpers import person, text_of

SECRET = "Called the AU duty officer at 03:10; the account is still active"


def count_notes(side: Side) -> int:
    with side.node.db.transaction(read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(CaseNote)) or 0)


def test_notes_are_seen_by_exactly_those_who_may_see_what_they_are_about(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = draft(vn).json()["request"]["id"]
    case_id = vn.officer.get(f"/api/v1/requests/{rid}").json()["case_id"]
    r = vn.officer.post(f"/api/v1/cases/{case_id}/notes", json={"text": f"  {SECRET}  "})
    assert r.status_code == 201 and r.json()["text"] == SECRET and r.json()["request_id"] is None
    r = vn.officer.post(f"/api/v1/requests/{rid}/notes", json={"text": "Supervisor to approve before 06:00"})
    assert r.status_code == 201 and r.json()["case_id"] == case_id
    assert [n["text"] for n in vn.officer.get(f"/api/v1/cases/{case_id}/notes").json()] == [
        SECRET,
        "Supervisor to approve before 06:00",
    ]
    assert [n["text"] for n in vn.supervisor.get(f"/api/v1/requests/{rid}/notes").json()] == [
        "Supervisor to approve before 06:00"
    ]
    # Hostile or empty: a clear 4xx, nothing stored.
    before = count_notes(vn)
    for body in ({"text": "   "}, {"text": ""}, {"text": "x" * 10_001}, {"text": SECRET, "to": "au"}, {}):
        r = vn.officer.post(f"/api/v1/cases/{case_id}/notes", json=body)
        assert r.status_code == 422, (body, r.text)
    assert vn.officer.post(f"/api/v1/cases/{rid}/notes", json={"text": "x"}).status_code == 404
    assert vn.auditor.post(f"/api/v1/cases/{case_id}/notes", json={"text": "x"}).status_code == 404
    assert count_notes(vn) == before

    # A note never leaves the node, even once the request it is on has gone to Australia.
    assert act(vn.officer, rid, "submit").status_code == 200
    assert act(vn.supervisor, rid, "approve").status_code == 200
    assert vn.deliver() == 1
    with vn.node.db.transaction(read_only=True) as s:
        payloads = [str(m.payload) for m in s.scalars(select(OutboxMessage))]
        audited = s.scalars(select(AuditRecord).where(AuditRecord.action == "cases.note.add")).all()
    assert payloads and not any("03:10" in p for p in payloads)
    with au.node.db.transaction(read_only=True) as s:
        assert not any("03:10" in str(m.envelope) for m in s.scalars(select(InboxMessage)))
    assert count_notes(au) == 0
    # Recorded, without the text: administrators read the audit record, and no case material.
    assert len(audited) == 2 and not any("03:10" in str(a.detail) for a in audited)


def test_a_note_on_a_confidential_request_is_as_confidential(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = draft(vn, header={**HEADER, "confidentiality": "fact_and_substance"}).json()["request"]["id"]
    act(vn.officer, rid, "submit")
    act(vn.supervisor, rid, "approve")
    vn.deliver()
    case_id = au.ca.get(f"/api/v1/requests/{rid}").json()["case_id"]
    assert au.ca.post(f"/api/v1/requests/{rid}/notes", json={"text": "Informant named"}).status_code == 201
    # A plain officer of the node learns nothing of it, nor can write into it.
    assert au.plain.get(f"/api/v1/requests/{rid}/notes").status_code == 404
    assert au.plain.get(f"/api/v1/cases/{case_id}/notes").status_code == 404
    assert au.plain.post(f"/api/v1/requests/{rid}/notes", json={"text": "x"}).status_code == 404
    assert au.plain.post(f"/api/v1/cases/{case_id}/notes", json={"text": "x"}).status_code == 404
    assert count_notes(au) == 1
    assert [n["text"] for n in au.ca.get(f"/api/v1/cases/{case_id}/notes").json()] == ["Informant named"]


def test_notes_on_the_desk(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    case_id = vn.officer.get(f"/api/v1/requests/{rid}").json()["case_id"]
    lan = person(vn.node, "lan", "officer", "contact_point")
    lan.get(f"/desk/cases/{case_id}")
    assert "Add a note" in text_of(lan.page)
    r = lan.post(f"/desk/cases/{case_id}/notes", {"text": SECRET})
    assert r.status_code == 303 and r.headers["location"].startswith(f"/desk/cases/{case_id}")
    r = lan.post(f"/desk/cases/{case_id}/notes", {"text": "  "})
    assert r.status_code == 422 and "Missing" in text_of(r.text)
    assert lan.post(f"/desk/cases/{case_id}/notes", {"text": "no token"}, csrf="").status_code == 403
    lan.get(f"/desk/requests/{rid}")
    r = lan.post(f"/desk/requests/{rid}/notes", {"text": ""})
    assert r.status_code == 422 and "Missing" in text_of(r.text)
    r = lan.post(f"/desk/requests/{rid}/notes", {"text": "<script>alert(1)</script> check the logs"})
    assert r.status_code == 303
    case_page = lan.get(f"/desk/cases/{case_id}").text
    assert SECRET in text_of(case_page) and "check the logs" in text_of(case_page)
    assert "<script>alert(1)</script>" not in case_page, "a note is shown as text"
    request_page = text_of(lan.get(f"/desk/requests/{rid}").text)
    assert "check the logs" in request_page and SECRET not in request_page
    assert len(re.findall(r"\bNote\b", request_page)) >= 1
    assert count_notes(vn) == 2
