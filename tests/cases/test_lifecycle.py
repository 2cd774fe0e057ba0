"""The two-sided life cycle over two real nodes: every cross-border step on both timelines."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select, update

from cyberpact.cases import lifecycle
from cyberpact.cases.models import Request
from cyberpact.federation.models import OutboxMessage
from cyberpact.kit import i18n
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.jobs import Job, JobWorker
from web.helpers import person, text_of

from .conftest import HEADER, PRESERVATION, Side, act, draft, sent_follow_up, sent_preservation

_OFFICER = Actor(user_id=None, username="desk-officer", roles=frozenset({"officer"}))


def status(side: Side, rid: str) -> str:
    return str(side.ca.get(f"/api/v1/requests/{rid}").json()["status"])


def actions_on(side: Side, rid: str) -> list[str]:
    return [e["action"] for e in side.ca.get(f"/api/v1/requests/{rid}/timeline").json()]


def test_preservation_on_both_sides(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    assert status(vn, rid) == "delivered"
    incoming = au.ca.get("/api/v1/requests", params={"direction": "incoming"}).json()["items"]
    assert [r["id"] for r in incoming] == [rid]
    assert incoming[0]["status"] == "received" and incoming[0]["counterpart"] == "vn-24x7"
    assert incoming[0]["due_at"] is not None, "24 hours to acknowledge, from the catalog"
    assert set(incoming[0]["allowed_actions"]) >= {"acknowledge", "refuse"}

    assert act(au.ca, rid, "acknowledge", reference="AU-PRES-5521").status_code == 200
    vn.deliver(), au.deliver()
    vn_view = vn.ca.get(f"/api/v1/requests/{rid}").json()
    assert vn_view["status"] == "acknowledged" and vn_view["remote_reference"] == "AU-PRES-5521"

    until = (date.today() + timedelta(days=90)).isoformat()
    too_soon = (date.today() + timedelta(days=30)).isoformat()
    r = act(au.ca, rid, "preserve", preserved_until=too_soon)
    assert r.status_code == 422 and "not less than 60 days" in r.json()["errors"][0]["message"]
    assert act(au.ca, rid, "preserve", preserved_until=until).status_code == 200
    au.deliver()
    vn_view = vn.ca.get(f"/api/v1/requests/{rid}").json()
    assert vn_view["status"] == "preserved" and vn_view["preserved_until"] == until
    assert vn_view["expiry"] == "ok"

    later = (date.today() + timedelta(days=150)).isoformat()
    assert (
        act(vn.officer, rid, "request_extension", until=later, reason="MLA request submitted").status_code
        == 200
    )
    vn.deliver()
    assert act(au.ca, rid, "grant_extension", preserved_until=later).status_code == 200
    au.deliver()
    assert vn.ca.get(f"/api/v1/requests/{rid}").json()["preserved_until"] == later
    # Reminders are durable jobs, rescheduled for the new date.
    with vn.node.db.transaction(read_only=True) as s:
        pending = s.scalars(select(Job).where(Job.status == "pending")).all()
    assert sorted(j.payload["days_before"] for j in pending) == [0, 2, 7, 14]
    assert {j.payload["until"] for j in pending} == {later}

    assert act(au.ca, rid, "release", reason="MLA executed").status_code == 200
    au.deliver()
    assert status(vn, rid) == "released"
    expected = ["received", "acknowledge", "preserve", "request_extension", "grant_extension", "release"]
    assert actions_on(au, rid) == expected
    assert actions_on(vn, rid) == ["drafted", "submit", "approve", "sent", "delivered", *expected[1:]]


def test_mla_with_rounds_of_information_then_execution(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    fields = {
        "subject_matter": "Ransomware against hospitals",
        "facts_summary": "See preservation VN-A05-117",
        "assistance_sought": "Disclose the preserved mailbox content and logs",
        "data_sought": "Mailbox minh.tran.88@cloudmail.example, 1 Oct to 15 Nov 2026",
        "purpose": "Identify and prosecute the operators",
    }
    rid = draft(vn, type_="stored_data", fields=fields).json()["request"]["id"]
    assert act(vn.officer, rid, "submit").status_code == 200
    assert act(vn.supervisor, rid, "approve").status_code == 200
    vn.deliver()
    assert act(au.ca, rid, "acknowledge", reference="AU-MLA-88").status_code == 200
    for round_ in range(2):
        assert act(au.ca, rid, "request_info", questions=f"Question round {round_}").status_code == 200
        au.deliver()
        assert status(vn, rid) == "info_requested"
        assert act(vn.officer, rid, "provide_info", answers=f"Answer {round_}").status_code == 200
        vn.deliver()
        assert status(au, rid) == "info_provided"
    assert act(au.ca, rid, "start_execution").status_code == 200
    assert (
        act(
            au.ca, rid, "execute", results="Mailbox content produced", evidence_refs=["PKG-2026-0042"]
        ).status_code
        == 200
    )
    au.deliver()
    assert status(vn, rid) == "executed"
    assert act(vn.officer, rid, "close").status_code == 200
    vn.deliver()
    assert status(au, rid) == "closed"
    timeline = vn.ca.get(f"/api/v1/requests/{rid}/timeline").json()
    execute = next(e for e in timeline if e["action"] == "execute")
    assert execute["side"] == "remote" and execute["detail"]["evidence_refs"] == ["PKG-2026-0042"]


MLA_FIELDS = {
    "subject_matter": "Ransomware against hospitals",
    "facts_summary": "See preservation VN-A05-117",
    "assistance_sought": "Disclose the preserved mailbox content and logs",
    "data_sought": "Mailbox minh.tran.88@cloudmail.example, 1 Oct to 15 Nov 2026",
    "purpose": "Identify and prosecute the operators",
}


def test_a_deadline_ends_on_the_requesting_contact_s_clock_and_a_postponement_is_due_when_it_ends(
    two_sides: tuple[Side, Side],
) -> None:
    # 10 days from now "in Hanoi" ends at 23:59 in Hanoi, 16:59 UTC: seven hours before the UTC day ends.
    vn, au = two_sides
    day = date.today() + timedelta(days=10)
    header = {**HEADER, "deadline": day.isoformat(), "deadline_reason": "Suspects' custody ends that day"}
    rid = draft(vn, type_="stored_data", header=header, fields=MLA_FIELDS).json()["request"]["id"]
    act(vn.officer, rid, "submit")
    act(vn.supervisor, rid, "approve")
    vn.deliver()
    assert act(au.ca, rid, "acknowledge", reference="AU-MLA-9").status_code == 200
    due = datetime.fromisoformat(au.ca.get(f"/api/v1/requests/{rid}").json()["due_at"])
    assert due == datetime.combine(day, time(16, 59), tzinfo=UTC)
    # Postponed until a date: due again that day, on every list of what is due, instead of on none.
    until = date.today() + timedelta(days=30)
    r = act(
        au.ca,
        rid,
        "postpone",
        until=until.isoformat(),
        reason="A domestic undercover operation",
        consultation="Agreed by telephone with Nguyen Van An on 3 Dec",
    )
    assert r.status_code == 200, r.text
    due = datetime.fromisoformat(au.ca.get(f"/api/v1/requests/{rid}").json()["due_at"])
    assert due == datetime.combine(until, time(23, 59), tzinfo=UTC)
    au.deliver()
    due = datetime.fromisoformat(vn.ca.get(f"/api/v1/requests/{rid}").json()["due_at"])
    assert due == datetime.combine(until, time(23, 59), tzinfo=UTC), "the requesting side sees it too"


def test_a_preservation_ends_at_most_two_years_ahead_and_is_extended_after(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    assert act(au.ca, rid, "acknowledge", reference="AU-PRES-30").status_code == 200
    latest = date.today() + timedelta(days=730)
    says = (
        f"Preserved until is more than 730 days ahead: give {latest.isoformat()} at the latest; a longer "
        "period is granted as an extension when it is needed"
    )
    for far in ("9999-12-31", (latest + timedelta(days=1)).isoformat()):
        r = act(au.ca, rid, "preserve", preserved_until=far)
        assert r.status_code == 422, r.text
        [problem] = r.json()["errors"]
        assert (problem["field"], problem["cite"]) == (
            "data.preserved_until",
            "art. 42(7) [parallel: Budapest 29(7)]",
        )
        assert problem["message"].endswith(says)
    assert status(au, rid) == "acknowledged"
    # On the desk, beside the date, with what the limit is for.
    kate = person(au.node, "kate", "central_authority", "officer")
    kate.get(f"/desk/requests/{rid}")
    r = kate.post(f"/desk/requests/{rid}/actions/preserve", {"data.preserved_until": "9999-12-31"})
    assert r.status_code == 422 and says in text_of(r.text)
    assert "at most two years: a longer preservation is granted as an extension" in text_of(r.text)

    assert act(au.ca, rid, "preserve", preserved_until=latest.isoformat()).status_code == 200
    au.deliver()
    # The requesting side asks, and the requested side grants, within the same bound.
    r = act(vn.officer, rid, "request_extension", until="9999-12-31", reason="MLA request submitted")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "data.until"
    assert "Until is more than 730 days ahead" in r.json()["errors"][0]["message"]


def test_a_peer_that_preserves_for_longer_is_recorded_as_it_decided(two_sides: tuple[Side, Side]) -> None:
    """The two-year bound is ours, for our officers' typing: a peer on an older catalog, or whose law
    orders a longer period, is not refused for it, or the requesting side would never learn the data is
    held."""
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    act(au.ca, rid, "acknowledge", reference="AU-PRES-32")
    au.deliver()
    far = (date.today() + timedelta(days=3 * 365)).isoformat()
    fields = au.node.app.state.catalog.lifecycle.actions["preserve"].fields
    (at,) = [k for k, f in enumerate(fields) if f.name == "preserved_until"]
    bounded = fields[at]
    fields[at] = bounded.model_copy(update={"max_days_ahead": None})  # the requested node's older catalog
    try:
        r = act(au.ca, rid, "preserve", preserved_until=far)
        assert r.status_code == 200, r.text
    finally:
        fields[at] = bounded
    au.deliver()
    view = vn.ca.get(f"/api/v1/requests/{rid}").json()
    assert (view["status"], view["preserved_until"]) == ("preserved", far)


def test_an_extension_is_granted_at_most_two_years_ahead(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    act(au.ca, rid, "acknowledge", reference="AU-PRES-31")
    act(au.ca, rid, "preserve", preserved_until=(date.today() + timedelta(days=90)).isoformat())
    au.deliver()
    later = (date.today() + timedelta(days=150)).isoformat()
    assert (
        act(vn.officer, rid, "request_extension", until=later, reason="MLA request sent").status_code == 200
    )
    vn.deliver()
    r = act(au.ca, rid, "grant_extension", preserved_until="9999-12-31")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "data.preserved_until"
    assert "is more than 730 days ahead" in r.json()["errors"][0]["message"]
    assert status(au, rid) == "extension_requested"


def test_illegal_transition_is_409_with_allowed_actions(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    r = act(au.ca, rid, "grant_extension", preserved_until="2030-01-01")
    assert r.status_code == 409
    assert set(r.json()["allowed"]) == {"acknowledge", "refuse"}
    r = act(vn.officer, rid, "acknowledge", reference="x")  # the requesting side cannot acknowledge
    assert r.status_code == 409
    assert status(au, rid) == "received"


def test_refusal_needs_applicable_grounds_and_reasons(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    r = act(au.ca, rid, "refuse", grounds=["political_offence"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "data.reasons"
    r = act(au.ca, rid, "refuse", grounds=["fiscal_matters"], reasons="...")
    assert r.status_code == 422 and "does not apply" in r.json()["errors"][0]["message"]
    r = act(au.ca, rid, "refuse", grounds=[], reasons="...")
    assert r.status_code == 422
    assert status(au, rid) == "received"
    r = act(au.ca, rid, "refuse", grounds=["political_offence"], reasons="Considered a political offence.")
    assert r.status_code == 200
    au.deliver()
    refused = [e for e in vn.ca.get(f"/api/v1/requests/{rid}/timeline").json() if e["action"] == "refuse"]
    assert refused[0]["detail"]["grounds"] == ["political_offence"]


def test_mla_is_refused_or_postponed_only_after_consulting_the_requesting_state(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = draft(vn, type_="stored_data", fields=MLA_FIELDS).json()["request"]["id"]
    act(vn.officer, rid, "submit")
    act(vn.supervisor, rid, "approve")
    vn.deliver()
    act(au.ca, rid, "acknowledge", reference="AU-MLA-12")
    # Absence of dual criminality is a ground for the coercive MLA types (art. 40(9) [parallel: UNTOC 18(9)]).
    reasons = "Not an offence here, and a production order is coercive."
    grounds = {"grounds": ["no_dual_criminality"], "reasons": reasons}
    for step, data in (("refuse", grounds), ("postpone", {"until": "2099-01-01", "reason": "Trial pending"})):
        r = act(au.ca, rid, step, **data)
        assert r.status_code == 422, r.text
        problem = r.json()["errors"][0]
        assert problem["field"] == "data.consultation" and "UNTOC 18(26)" in problem["message"]
    # Every gap in one answer: an empty refusal names its grounds, its reasons and the consultation
    # together, not the consultation only once the others are filled in.
    r = act(au.ca, rid, "refuse")
    assert r.status_code == 422
    assert {p["field"] for p in r.json()["errors"]} == {"data.grounds", "data.reasons", "data.consultation"}
    assert status(au, rid) == "acknowledged"
    # Consulted through the network: the step itself is the record, on both sides.
    subject = "Could a narrower order for logs only be enough?"
    assert act(au.ca, rid, "consult", subject=subject).status_code == 200
    assert act(au.ca, rid, "refuse", **grounds).status_code == 200
    au.deliver()
    assert status(vn, rid) == "refused"
    assert [a for a in actions_on(vn, rid) if a in ("consult", "refuse")] == ["consult", "refuse"]


def test_withdrawal_at_any_time(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    assert act(vn.officer, rid, "withdraw").status_code == 422  # a reason is required
    assert (
        act(vn.officer, rid, "withdraw", reason="Suspect arrested; data no longer needed").status_code == 200
    )
    vn.deliver()
    assert status(au, rid) == "withdrawn"
    assert au.ca.get(f"/api/v1/requests/{rid}").json()["allowed_actions"] == []


def test_steps_from_the_wrong_node_or_for_unknown_requests_are_refused(two_sides: tuple[Side, Side]) -> None:
    """A peer cannot act for the other side of someone else's request, or for one that does not exist."""
    import uuid

    from cyberpact.federation import outbox
    from cyberpact.kit.actor import SYSTEM

    vn, au = two_sides
    rid = sent_preservation(vn, au)
    # VN (the requesting side) forges a requested-side step on its own request: AU must refuse it.
    with vn.node.db.transaction() as s:
        outbox.enqueue(
            s,
            SYSTEM,
            recipient="au-24x7",
            message_type="cp.step",
            conversation_id=rid,
            payload={
                "request_id": rid,
                "action": "preserve",
                "status": "preserved",
                "data": {"preserved_until": "2030-01-01"},
            },
        )
        outbox.enqueue(
            s,
            SYSTEM,
            recipient="au-24x7",
            message_type="cp.step",
            payload={"request_id": str(uuid.uuid4()), "action": "withdraw", "data": {"reason": "x"}},
        )
    assert vn.deliver() == 2
    with vn.node.db.transaction(read_only=True) as s:
        rejected = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "rejected")).all()
    assert len(rejected) == 2 and all("refused" in (m.last_error or "") for m in rejected)
    assert status(au, rid) == "received"


def test_confidential_requests_are_hidden_from_plain_officers(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = draft(
        vn,
        header={**HEADER, "confidentiality": "fact_and_substance", "use_limitation": "Only for case VN-117"},
    ).json()["request"]["id"]
    act(vn.officer, rid, "submit")
    act(vn.supervisor, rid, "approve")
    vn.deliver()
    assert au.plain.get(f"/api/v1/requests/{rid}").status_code == 404
    assert au.plain.get("/api/v1/requests").json()["items"] == []
    seen = au.ca.get(f"/api/v1/requests/{rid}").json()
    assert seen["use_limitation"] == "Only for case VN-117"
    # The case opened for it is named after it: as confidential as the request.
    case_id = seen["case_id"]
    assert au.plain.get(f"/api/v1/cases/{case_id}").status_code == 404
    assert case_id not in [c["id"] for c in au.plain.get("/api/v1/cases").json()["items"]]
    assert case_id in [c["id"] for c in au.ca.get("/api/v1/cases").json()["items"]]
    assert au.ca.get(f"/api/v1/cases/{case_id}").status_code == 200
    # A request the plain officer could see, filed into that case (to a third State in the same matter),
    # does not open the case to them: they read that request alone.
    body = {"type": "preservation", "case_id": case_id, "counterpart": "vn-24x7", "header": HEADER}
    follow = au.ca.post("/api/v1/requests", json={**body, "fields": PRESERVATION})
    assert follow.status_code == 201, follow.text
    assert au.plain.get(f"/api/v1/requests/{follow.json()['request']['id']}").status_code == 200
    assert au.plain.get(f"/api/v1/cases/{case_id}").status_code == 404
    assert case_id not in [c["id"] for c in au.plain.get("/api/v1/cases").json()["items"]]
    # Nor through the federation's record of the conversation that carried it.
    conversation = f"/api/v1/federation/conversations/{rid}/events"
    assert au.plain.get(conversation).status_code == 404
    assert [e["kind"] for e in au.ca.get(conversation).json()] == ["received"]
    act(au.ca, rid, "acknowledge", reference="AU-1")
    events = au.ca.get(f"/api/v1/requests/{rid}/timeline").json()
    assert all(e["detail"]["use_limitation"] == "Only for case VN-117" for e in events)
    audit = (
        au.node.client(au.node.user("au-aud", "auditor"))
        .get("/api/v1/audit", params={"object_type": "request", "object_id": rid})
        .json()["items"]
    )
    assert {(a["actor"], a["outcome"]) for a in audit} >= {("au-plain", "denied"), ("au-ca", "allowed")}
    # Administrators read the record too: a read is marked use-limited, the conditions stay on the request.
    reads = [a for a in audit if a["action"] == "cases.request.read" and a["outcome"] == "allowed"]
    assert reads and all(a["detail"] == {"use_limited": True} for a in reads)


def test_reminders_are_durable_jobs_that_fire(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    act(au.ca, rid, "acknowledge", reference="AU-2")
    until = (date.today() + timedelta(days=60)).isoformat()
    act(au.ca, rid, "preserve", preserved_until=until)
    au.deliver()
    # Pretend the days have passed: the jobs are rows, so any worker (after any restart) runs them.
    with vn.node.db.transaction() as s:
        for job in s.scalars(select(Job)):
            job.run_at = job.created_at
    assert JobWorker(vn.node.db).run_once() == 4
    reminders = [
        e
        for e in vn.ca.get(f"/api/v1/requests/{rid}/timeline").json()
        if e["action"] in ("reminder", "expires_today")
    ]
    assert sorted(e["detail"]["days_left"] for e in reminders) == [0, 2, 7, 14]
    assert JobWorker(vn.node.db).run_once() == 0, "each reminder fires once"


def test_overdue_list(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    from cyberpact.cases.models import Request
    from cyberpact.kit.time import utcnow

    assert au.ca.get("/api/v1/requests", params={"overdue": True}).json()["items"] == []
    with au.node.db.transaction() as s:
        s.get_one(Request, __import__("uuid").UUID(rid)).due_at = utcnow() - timedelta(hours=1)
    overdue = au.ca.get("/api/v1/requests", params={"overdue": True}).json()["items"]
    assert [r["id"] for r in overdue] == [rid] and overdue[0]["overdue"] is True


def test_conditions_on_spontaneous_information_bind_the_receiver(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    fields = {
        "information": "Wallet bc1q… received ransom payments from Australian victims.",
        "relevance": "Victims in Sydney; the same group.",
        "conditions": "Intelligence only: not to be used as evidence without consent.",
    }
    rid = draft(vn, type_="spontaneous_information", fields=fields).json()["request"]["id"]
    act(vn.officer, rid, "submit")
    act(vn.supervisor, rid, "approve")
    vn.deliver()
    seen = au.ca.get(f"/api/v1/requests/{rid}").json()
    assert seen["use_limitation"] == fields["conditions"]
    act(au.ca, rid, "acknowledge", reference="AU-INFO-1")
    events = au.ca.get(f"/api/v1/requests/{rid}/timeline").json()
    assert all(e["detail"]["use_limitation"] == fields["conditions"] for e in events)
    # Once received there is nothing to execute: either side concludes it, and both timelines say so.
    assert "conclude" in au.ca.get(f"/api/v1/requests/{rid}").json()["allowed_actions"]
    assert act(au.ca, rid, "conclude", note="Passed to the AFP financial unit").status_code == 200
    au.deliver()
    assert status(vn, rid) == "closed" and status(au, rid) == "closed"


def test_preservation_keeps_running_through_the_path_disclosure_and_a_declined_extension(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    act(au.ca, rid, "acknowledge", reference="AU-PRES-9")
    until = (date.today() + timedelta(days=90)).isoformat()
    assert act(au.ca, rid, "preserve", preserved_until=until).status_code == 200
    # Art. 43: the traffic data found on the way go out at once; the data stay preserved and tracked.
    assert "execute" not in au.ca.get(f"/api/v1/requests/{rid}").json()["allowed_actions"]
    path = "Relayed through mx2.mailhost.example (MailHost GmbH, Frankfurt) on 2 Nov 2026 03:12 UTC"
    assert act(au.ca, rid, "disclose_path", traffic_data=path).status_code == 200
    au.deliver()
    for side in (vn, au):
        view = side.ca.get(f"/api/v1/requests/{rid}").json()
        assert (view["status"], view["preserved_until"], view["expiry"]) == ("preserved", until, "ok")
    disclosed = next(
        e for e in vn.ca.get(f"/api/v1/requests/{rid}/timeline").json() if e["action"] == "disclose_path"
    )
    assert disclosed["side"] == "remote" and disclosed["detail"]["traffic_data"] == path

    # An "extension" to a date before the current end would shorten the preservation: refused.
    earlier = (date.today() + timedelta(days=70)).isoformat()
    r = act(vn.officer, rid, "request_extension", until=earlier, reason="MLA request on its way")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "data.until"
    later = (date.today() + timedelta(days=150)).isoformat()
    assert (
        act(vn.officer, rid, "request_extension", until=later, reason="MLA request on its way").status_code
        == 200
    )
    vn.deliver()
    r = act(au.ca, rid, "grant_extension", preserved_until=earlier)
    assert r.status_code == 422 and "after the current end" in r.json()["errors"][0]["message"]
    # Declining is not releasing: the data stay preserved until the date already given.
    assert (
        act(au.ca, rid, "decline_extension", reason="Domestic law allows no more than 90 days").status_code
        == 200
    )
    au.deliver()
    for side in (vn, au):
        view = side.ca.get(f"/api/v1/requests/{rid}").json()
        assert (view["status"], view["preserved_until"]) == ("preserved", until)


def test_the_clock_waits_while_the_requesting_side_owes_answers(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = draft(vn, type_="stored_data", fields=MLA_FIELDS).json()["request"]["id"]
    act(vn.officer, rid, "submit")
    act(vn.supervisor, rid, "approve")
    vn.deliver()
    act(au.ca, rid, "acknowledge", reference="AU-MLA-10")
    assert au.ca.get(f"/api/v1/requests/{rid}").json()["due_at"] is not None
    assert act(au.ca, rid, "request_info", questions="Which court issued the order?").status_code == 200
    au.deliver()
    for side in (vn, au):
        view = side.ca.get(f"/api/v1/requests/{rid}").json()
        assert (view["status"], view["due_at"], view["overdue"]) == ("info_requested", None, False)
    # If the answers never come, the requested side can still close the matter with a ground.
    assert "refuse" in au.ca.get(f"/api/v1/requests/{rid}").json()["allowed_actions"]
    act(vn.officer, rid, "provide_info", answers="The Hanoi People's Court, order 12/2026")
    vn.deliver()
    assert au.ca.get(f"/api/v1/requests/{rid}").json()["due_at"] is not None, "the answers restart it"


def _pending_reminders(side: Side, rid: str) -> list[int]:
    with side.node.db.transaction(read_only=True) as s:
        jobs = s.scalars(select(Job).where(Job.status == "pending")).all()
    return sorted(j.payload["days_before"] for j in jobs if j.payload.get("request_id") == rid)


def test_a_preservation_is_held_until_its_follow_up_request_is_decided(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    act(au.ca, rid, "acknowledge", reference="AU-PRES-77")
    until = (date.today() + timedelta(days=60)).isoformat()
    assert act(au.ca, rid, "preserve", preserved_until=until).status_code == 200
    au.deliver()
    assert _pending_reminders(au, rid) == [0, 2, 7, 14] == _pending_reminders(vn, rid)

    # Art. 42: once the MLA request that follows arrives, the data stay preserved until it is decided.
    # It cites the ticket the requested side gave in its acknowledgement.
    mla, warned = sent_follow_up(vn, "AU-PRES-77")
    assert "preservation_unknown" not in warned
    for side in (au, vn):
        view = side.ca.get(f"/api/v1/requests/{rid}").json()
        assert (view["held_by"], view["expiry"], view["preserved_until"]) == (mla, "held", until)
        assert _pending_reminders(side, rid) == [], "a held preservation does not run out"
        assert "held" in actions_on(side, rid)
    assert "release" not in au.ca.get(f"/api/v1/requests/{rid}").json()["allowed_actions"]
    r = act(au.ca, rid, "release", reason="Period over")
    assert r.status_code == 409 and "Art. 42" in r.json()["detail"]
    assert status(au, rid) == "preserved"
    # Even past its date it is not "expired", and the Today page does not list it as ending.
    with au.node.db.transaction() as s:
        s.get_one(Request, uuid.UUID(rid)).preserved_until = date.today() - timedelta(days=1)
    assert au.ca.get(f"/api/v1/requests/{rid}").json()["expiry"] == "held"

    # Decided (here withdrawn by the requesting side): the period runs again on both sides, and since it
    # has passed on the requested side meanwhile, the reminder that it ends comes at once.
    assert act(vn.officer, mla, "withdraw", reason="The suspect was identified otherwise").status_code == 200
    vn.deliver()
    assert status(au, mla) == "withdrawn"
    for side in (au, vn):
        view = side.ca.get(f"/api/v1/requests/{rid}").json()
        assert view["held_by"] is None and "hold_ended" in actions_on(side, rid)
    assert au.ca.get(f"/api/v1/requests/{rid}").json()["expiry"] == "expired"
    assert _pending_reminders(au, rid) == [0]
    assert _pending_reminders(vn, rid) == [0, 2, 7, 14]
    assert JobWorker(au.node.db).run_once() == 1
    assert actions_on(au, rid)[-1] == "expires_today"
    assert act(au.ca, rid, "release", reason="Period over").status_code == 200


def test_a_follow_up_citing_an_unknown_preservation_says_so_and_holds_nothing(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    act(au.ca, rid, "acknowledge", reference="AU-PRES-78")
    act(au.ca, rid, "preserve", preserved_until=(date.today() + timedelta(days=60)).isoformat())
    au.deliver()
    mla, warned = sent_follow_up(vn, "AU-PRES-7")  # a typing slip
    assert "preservation_unknown" in warned, "the drafter is told before sending"
    assert au.ca.get(f"/api/v1/requests/{rid}").json()["expiry"] == "ok"
    assert _pending_reminders(au, rid) == [0, 2, 7, 14]
    events = au.ca.get(f"/api/v1/requests/{mla}/timeline").json()
    missing = [e for e in events if e["action"] == "preservation_not_found"]
    assert len(missing) == 1 and missing[0]["detail"]["reference"] == "AU-PRES-7"


def _approved(vn: Side) -> str:
    rid = draft(vn).json()["request"]["id"]
    assert act(vn.officer, rid, "submit").status_code == 200
    assert act(vn.supervisor, rid, "approve").status_code == 200
    return rid


def _outbox(side: Side, rid: str) -> list[tuple[str, str]]:
    with side.node.db.transaction(read_only=True) as s:
        rows = s.scalars(
            select(OutboxMessage).where(OutboxMessage.conversation_id == rid).order_by(OutboxMessage.seq)
        )
        return [(m.message_type, m.status) for m in rows]


def test_a_request_withdrawn_before_it_left_is_never_disclosed(two_sides: tuple[Side, Side]) -> None:
    # Addressed to the wrong State, the peer away: withdrawn before any try, nothing of it ever leaves.
    vn, au = two_sides
    rid = _approved(vn)
    r = act(vn.officer, rid, "withdraw", reason="addressed to the wrong State")
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    assert _outbox(vn, rid) == [("cp.request", "cancelled")]
    vn.deliver()
    assert au.ca.get(f"/api/v1/requests/{rid}").status_code == 404
    events = vn.officer.get(f"/api/v1/requests/{rid}/timeline").json()
    assert [e["detail"].get("undelivered_request") for e in events if e["action"] == "withdraw"] == [
        "cancelled"
    ], events
    with vn.node.db.transaction(read_only=True) as s:
        message_id = s.scalars(select(OutboxMessage.message_id)).one()
    admin = vn.node.client(vn.node.user("vn-root", "admin"))
    retried = admin.post(f"/api/v1/federation/outbox/{message_id}/retry")
    assert retried.status_code == 409 and "taken back before delivery" in retried.json()["detail"]


def test_a_request_tried_without_an_answer_is_taken_back_and_the_withdrawal_follows(
    two_sides: tuple[Side, Side],
) -> None:
    # A try whose answer was lost may have arrived: the request is not sent again, and the withdrawal
    # goes after it, so the peer that has it learns it is withdrawn, and one that does not learns little.
    vn, au = two_sides
    rid = _approved(vn)
    with vn.node.db.transaction() as s:
        s.execute(update(OutboxMessage).values(attempts=1, last_error="timed out"))
    assert act(vn.officer, rid, "withdraw", reason="no longer needed").status_code == 200
    assert _outbox(vn, rid) == [("cp.request", "cancelled"), ("cp.step", "pending")]
    vn.deliver()
    assert au.ca.get(f"/api/v1/requests/{rid}").status_code == 404  # its content never went
    assert _outbox(vn, rid)[1] == ("cp.step", "rejected")  # the peer knows no such request


def test_a_refused_step_says_missing_only_when_something_is(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    r = act(au.ca, rid, "acknowledge")
    assert (
        r.status_code == 422 and r.json()["detail"] == "acknowledge is missing what the convention requires"
    )
    assert act(au.ca, rid, "acknowledge", reference="AU-3").status_code == 200
    r = act(au.ca, rid, "preserve", preserved_until="31/12/2027")
    assert r.status_code == 422 and "missing or not valid" in r.json()["detail"]
    assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [("data.preserved_until", "invalid")]


def _refused(
    side: Side, rid: str, actor: Actor, name: str, data: dict[str, str], **kw: int
) -> CyberpactError:
    """The refusal of step ``name`` as the desk receives it: taken where the desk takes it."""
    with side.node.db.transaction() as s:
        row = s.get_one(Request, uuid.UUID(rid))
        with pytest.raises(CyberpactError) as refused:
            lifecycle.act(s, actor, side.node.app.state.catalog, row, name, data, **kw)
    return refused.value


def _in_french(text: str) -> str | None:
    assert isinstance(text, i18n.Phrase), "a refusal's words keep what they were made from"
    return text.translated(i18n.translator("fr"))


def test_a_refused_step_reads_in_english_for_clients_and_in_the_readers_language_on_the_desk(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)

    r = act(vn.officer, rid, "acknowledge", reference="VN-1")
    expected = "acknowledge is taken by the requested side, and this node is the requesting side"
    assert r.status_code == 409 and r.json()["detail"] == expected
    refused = _refused(vn, rid, _OFFICER, "acknowledge", {"reference": "VN-1"})
    assert refused.detail == expected
    assert _in_french(refused.detail) == (
        "L'étape « Accuser réception » revient à la partie requise, et ce nœud est la partie requérante"
    )

    auditor = Actor(user_id=None, username="au-reader", roles=frozenset({"auditor"}))
    refused = _refused(au, rid, auditor, "acknowledge", {"reference": "AU-1"})
    assert refused.detail == "acknowledge needs one of the roles: central_authority, contact_point, officer"
    assert _in_french(refused.detail) == (
        "L'étape « Accuser réception » exige l'un des rôles suivants : "
        "central_authority, contact_point, officer"
    )

    version = au.ca.get(f"/api/v1/requests/{rid}").json()["version"]
    refused = _refused(au, rid, _OFFICER, "acknowledge", {"reference": "AU-1"}, expected_version=version + 1)
    assert refused.detail == (
        f"The request was edited since you read it (you read version {version + 1}, it is now version "
        f"{version}); read it again"
    )
    assert _in_french(refused.detail) == (
        "La demande a été modifiée depuis que vous l'avez lue "
        f"(vous avez lu la version {version + 1}, elle en est maintenant à la version {version}) ; relisez-la"
    )

    # A value the catalog refuses: the field's label and the limit, in French where the desk shows them.
    refused = _refused(au, rid, _OFFICER, "acknowledge", {"reference": "X" * 501})
    (problem,) = refused.problems
    assert problem.message == "T-CY template: ticket number: Reference is longer than 500 characters"
    assert _in_french(problem.message) == "Référence : plus de 500 caractères"
