"""Guided drafting: every gap named with the article that requires it; soft checks as warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cyberpact.cases.models import Request
from cyberpact.catalog.service import get_catalog, load
from cyberpact.federation.models import OutboxMessage
from cyberpact.kit.errors import ConfigurationError

from .conftest import HEADER, PRESERVATION, Side, act, count_rows, draft, edited_catalog

REQUIRED = [f.name for f in get_catalog().type("preservation").fields if f.required]


def test_complete_draft_checks_clean(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    r = draft(vn)
    assert r.status_code == 201, r.text
    check = r.json()["check"]
    assert check["complete"] is True and check["errors"] == []
    # AU's seeded authorities accept English; AU signed in Hanoi but has not ratified.
    assert [w["code"] for w in check["warnings"]] == ["not_ratified"]


@pytest.mark.parametrize("name", REQUIRED)
def test_each_missing_required_field_is_named_with_its_article(
    two_sides: tuple[Side, Side], name: str
) -> None:
    vn, _ = two_sides
    fields = {k: v for k, v in PRESERVATION.items() if k != name}
    r = draft(vn, fields=fields)
    assert r.status_code == 201
    errors = r.json()["check"]["errors"]
    assert [e["field"] for e in errors] == [f"fields.{name}"]
    f = next(f for f in get_catalog().type("preservation").fields if f.name == name)
    assert errors[0]["cite"] == f.cite and errors[0]["message"].startswith(f.cite + ":")
    # An incomplete draft cannot be submitted; the refusal lists the same gap.
    rid = r.json()["request"]["id"]
    refused = act(vn.officer, rid, "submit")
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == [f"fields.{name}"]


def test_the_issue_example_message(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    fields = {k: v for k, v in PRESERVATION.items() if k != "necessity"}
    errors = draft(vn, fields=fields).json()["check"]["errors"]
    assert errors[0]["message"] == "art. 42(2)(e): state why preservation is necessary"


@pytest.mark.parametrize(
    ("header", "fields", "field"),
    [
        (HEADER, {**PRESERVATION, "mla_intended": "yes"}, "fields.mla_intended"),
        (HEADER, {**PRESERVATION, "preservation_days": "ninety"}, "fields.preservation_days"),
        (HEADER, {**PRESERVATION, "preservation_days": 30}, "fields.preservation_days"),
        (HEADER, {**PRESERVATION, "offence": "x" * 501}, "fields.offence"),
        (HEADER, {**PRESERVATION, "colour": "blue"}, "fields.colour"),
        ({**HEADER, "contact_timezone": "Mars/Base"}, PRESERVATION, "header.contact_timezone"),
        ({**HEADER, "language": "xx-!!"}, PRESERVATION, "header.language"),
        ({**HEADER, "contact_email": "nobody"}, PRESERVATION, "header.contact_email"),
    ],
)
def test_wrong_types_are_refused_and_nothing_is_stored(
    two_sides: tuple[Side, Side], header: dict, fields: dict, field: str
) -> None:
    vn, _ = two_sides
    r = draft(vn, header=header, fields=fields)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert count_rows(vn, Request) == 0


def test_unknown_type_and_unknown_peer(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    r = draft(vn, type_="teleportation")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "type"
    r = draft(vn, to="nowhere")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "counterpart"
    assert count_rows(vn, Request) == 0


def test_soft_checks_are_warnings(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    fields = {k: v for k, v in PRESERVATION.items() if k != "follow_up_mla_planned"}
    r = draft(vn, header={**HEADER, "language": "vi", "emergency": True}, fields=fields)
    check = r.json()["check"]
    assert check["complete"] is True
    codes = {w["code"] for w in check["warnings"]}
    assert codes == {"language_not_accepted", "not_ratified", "no_follow_up", "emergency_unjustified"}


def test_check_endpoint_stores_nothing(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    r = vn.officer.post(
        "/api/v1/requests/check",
        json={"type": "stored_data", "counterpart": "au-24x7", "header": {}, "fields": {}},
    )
    assert r.status_code == 200
    cites = {e["cite"] for e in r.json()["errors"]}
    assert {"art. 40(15)(b)", "art. 40(15)(c)", "art. 40(15)(d)", "art. 40(15)(f)"} <= cites
    assert count_rows(vn, Request) == 0
    # Its warnings read this node's requests: only those who may draft may ask.
    for role in ("admin", "auditor"):
        other = vn.node.client(vn.node.user(f"vn-{role}", role))
        assert other.post("/api/v1/requests/check", json={"type": "preservation"}).status_code == 403


def test_four_eyes(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    assert act(vn.supervisor, rid, "approve").status_code == 409  # not submitted yet
    assert act(vn.officer, rid, "submit").status_code == 200
    r = act(vn.officer, rid, "approve")
    assert r.status_code == 403
    assert count_rows(vn, OutboxMessage) == 0, "nothing reaches the outbox before approval"
    r = act(vn.supervisor, rid, "return")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "data.comments"
    r = act(vn.supervisor, rid, "return", comments="Name the provider's legal entity.")
    assert r.status_code == 200 and r.json()["status"] == "returned"
    body = {
        "counterpart": "au-24x7",
        "header": HEADER,
        "version": r.json()["version"],
        "fields": {**PRESERVATION, "custodian_or_location": "CloudMail Pty Ltd (ACN 000 000 000), Sydney"},
    }
    assert vn.officer.put(f"/api/v1/requests/{rid}", json=body).status_code == 200
    assert act(vn.officer, rid, "submit").status_code == 200
    revisions = vn.supervisor.get(f"/api/v1/requests/{rid}/revisions").json()
    assert [r["reason"] for r in revisions] == ["submitted", "returned", "submitted"]
    assert revisions[1]["comments"] == "Name the provider's legal entity."
    r = act(vn.supervisor, rid, "approve")
    assert r.status_code == 200 and r.json()["status"] == "sent"
    with vn.node.db.transaction(read_only=True) as s:
        msg = s.scalars(select(OutboxMessage)).one()
    assert msg.payload["approval"]["approved_by"] == "vn-supervisor"
    assert msg.payload["approval"]["drafted_by"] == "vn-officer"
    assert len(msg.payload["approval"]["digest"]) == 64


def test_a_supervisor_cannot_approve_their_own_draft(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    body = {
        "type": "preservation",
        "case_title": "x",
        "counterpart": "au-24x7",
        "header": HEADER,
        "fields": PRESERVATION,
    }
    rid = vn.supervisor2.post("/api/v1/requests", json=body).json()["request"]["id"]
    assert act(vn.supervisor2, rid, "submit").status_code == 200
    r = act(vn.supervisor2, rid, "approve")
    assert r.status_code == 403 and "Four eyes" in r.json()["detail"]
    assert act(vn.supervisor, rid, "approve").status_code == 200


def test_a_supervisor_who_rewrote_someone_else_s_draft_cannot_approve_it(
    two_sides: tuple[Side, Side],
) -> None:
    # Drafted by the officer, rewritten by supervisor2: approving it would be one person's words under two
    # names. Another supervisor, who only reads it, may approve.
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    body = {
        "counterpart": "au-24x7",
        "header": HEADER,
        "version": 1,
        "fields": {
            **PRESERVATION,
            "necessity": "Rewritten by the supervisor: the account is about to be closed.",
        },
    }
    assert vn.supervisor2.put(f"/api/v1/requests/{rid}", json=body).status_code == 200
    assert act(vn.officer, rid, "submit").status_code == 200
    shown = vn.supervisor2.get(f"/api/v1/requests/{rid}").json()
    assert "approve" not in shown["allowed_actions"] and "return" not in shown["allowed_actions"]
    r = act(vn.supervisor2, rid, "approve")
    assert r.status_code == 403 and "edited" in r.json()["detail"]
    assert count_rows(vn, OutboxMessage) == 0
    assert act(vn.supervisor, rid, "approve").status_code == 200
    assert count_rows(vn, OutboxMessage) == 1


def test_an_emergency_disclosure_is_an_emergency_by_its_type(two_sides: tuple[Side, Side]) -> None:
    # Art. 41: the type says so; an officer at 3 a.m. should not also have to tick a box for the request to
    # show among the emergencies and be marked on its document.
    vn, _ = two_sides
    r = draft(vn, type_="emergency_disclosure", fields={})
    assert r.status_code == 201, r.text
    assert r.json()["request"]["emergency"] is True
    assert draft(vn).json()["request"]["emergency"] is False


def test_an_approval_is_of_the_version_the_supervisor_read(two_sides: tuple[Side, Side]) -> None:
    # Read at version 1, returned by someone else, rewritten and resubmitted as version 2 while the first
    # page stayed open: approving from that page would approve words the supervisor never saw.
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    act(vn.officer, rid, "submit")
    read = vn.supervisor.get(f"/api/v1/requests/{rid}").json()["version"]
    assert act(vn.supervisor2, rid, "return", comments="Name the legal entity.").status_code == 200
    body = {
        "counterpart": "au-24x7",
        "header": HEADER,
        "version": read,
        "fields": {**PRESERVATION, "offence": "Other"},
    }
    assert vn.officer.put(f"/api/v1/requests/{rid}", json=body).status_code == 200
    assert act(vn.officer, rid, "submit").status_code == 200
    stale = vn.supervisor.post(f"/api/v1/requests/{rid}/actions/approve", json={"data": {}, "version": read})
    assert stale.status_code == 409 and "edited since you read it" in stale.json()["detail"]
    assert count_rows(vn, OutboxMessage) == 0
    now = vn.supervisor.get(f"/api/v1/requests/{rid}").json()["version"]
    r = vn.supervisor.post(f"/api/v1/requests/{rid}/actions/approve", json={"data": {}, "version": now})
    assert r.status_code == 200 and r.json()["status"] == "sent"


def test_a_catalog_that_asks_for_consultation_without_the_consult_step_does_not_load(tmp_path: Path) -> None:
    asks = 'follow_up = []\nconsult_before = ["refuse"]'
    data = edited_catalog(tmp_path, "le_exchange.toml", "follow_up = []", asks)
    with pytest.raises(ConfigurationError, match="consult_before names 'refuse'"):
        load(data)
    assert get_catalog().type("stored_data").consult_before == ["refuse", "postpone"]


def test_a_day_limit_on_a_field_that_is_not_a_date_does_not_load(tmp_path: Path) -> None:
    data = edited_catalog(tmp_path, "preservation.toml", "max = 365\n", "max = 365\nmax_days_ahead = 30\n")
    with pytest.raises(ConfigurationError, match="max_days_ahead on 'preservation_days', not a date field"):
        load(data)


def test_an_edit_that_leaves_out_the_requested_state_keeps_it(two_sides: tuple[Side, Side]) -> None:
    # A supervisor fixing the words of a returned draft sends only header and fields; the requested State
    # must survive, and only an explicit null takes it away (and then the check says what is missing).
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    act(vn.officer, rid, "submit")
    returned = act(vn.supervisor, rid, "return", comments="Name the legal entity.").json()
    body = {"header": HEADER, "fields": PRESERVATION, "version": returned["version"]}
    r = vn.supervisor2.put(f"/api/v1/requests/{rid}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["request"]["counterpart"] == "au-24x7" and r.json()["check"]["complete"] is True
    assert act(vn.officer, rid, "submit").status_code == 200
    act(vn.supervisor, rid, "return", comments="Not to Australia after all.")
    r = vn.officer.put(f"/api/v1/requests/{rid}", json={**body, "counterpart": None, "version": None})
    assert r.status_code == 200 and r.json()["request"]["counterpart"] is None
    assert "counterpart" in [e["field"] for e in r.json()["check"]["errors"]]


@pytest.mark.parametrize(
    ("header", "fields", "field"),
    [
        (HEADER, {**PRESERVATION, "necessity": "abc\x00def"}, "fields.necessity"),
        (HEADER, {**PRESERVATION, "offence": "lone \ud800"}, "fields.offence"),
        ({**HEADER, "our_reference": "VN-\u202egpj.exe"}, PRESERVATION, "header.our_reference"),
        ({**HEADER, "our_reference": "VN\u200b-1"}, PRESERVATION, "header.our_reference"),
    ],
)
def test_characters_that_cannot_be_stored_or_spoof_a_reference_are_refused(
    two_sides: tuple[Side, Side], header: dict, fields: dict, field: str
) -> None:
    # PostgreSQL cannot keep a NUL at all (the write failed with a 500); a bidi override makes a reference
    # read as another. Each is named, and nothing is stored, on either database.
    vn, _ = two_sides
    body = {
        "type": "preservation",
        "case_title": "t",
        "counterpart": "au-24x7",
        "header": header,
        "fields": fields,
    }
    # Sent as ASCII JSON escapes, as a hostile client would: a lone surrogate has no UTF-8 form to send.
    r = vn.officer.post(
        "/api/v1/requests", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert field in r.text and "U+" in r.text
    assert count_rows(vn, Request) == 0
    r = vn.officer.post("/api/v1/cases", json={"title": "abc\x00def"})
    assert r.status_code == 422 and "U+0000" in r.text
