"""A request whose other side's node cannot be sent to: suspended for a while, or removed for good.

Every step that would message it is left out of what the API and the command line offer, with the reason,
and refused (409, by its code) if taken anyway; a removed counterpart's request can still be ended on this
node, by a supervisor under four eyes, with a reason, sending nothing and recorded in its timeline and the
audit record. Over two real nodes on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from cyberpact.audit.models import AuditRecord
from cyberpact.cli import app
from cyberpact.federation import outbox
from cyberpact.federation.models import OutboxMessage
from cyberpact.kit.actor import SYSTEM

from .conftest import HEADER, PRESERVATION, Side, act, count_rows, sent

runner = CliRunner()
REASON = "The Vietnamese authority's node was decommissioned; the matter continues by diplomatic note."


def set_peer(side: Side, peer: str, action: str) -> None:
    admin = side.node.client(side.node.admin_token)
    r = admin.post(f"/api/v1/federation/peers/{peer}/{action}")
    assert r.status_code == 200, r.text


def shown(side: Side, who: str, rid: str) -> dict[str, Any]:
    r = getattr(side, who).get(f"/api/v1/requests/{rid}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def timeline(side: Side, rid: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = side.ca.get(f"/api/v1/requests/{rid}/timeline").json()
    return events


def audited(side: Side, action: str) -> list[AuditRecord]:
    with side.node.db.transaction(read_only=True) as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action == action)))


def test_what_is_offered_for_an_active_a_suspended_and_a_removed_counterpart(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent(vn)
    today = date.today().isoformat()

    active = shown(au, "ca", rid)
    assert active["allowed_actions"] == ["acknowledge", "refuse"] and active["counterpart_away"] is None
    assert "end_locally" not in shown(au, "supervisor", rid)["allowed_actions"]

    set_peer(au, "vn-24x7", "suspend")
    suspended = shown(au, "ca", rid)
    assert suspended["allowed_actions"] == []
    assert suspended["counterpart_away"] == {
        "node_id": "vn-24x7",
        "status": "suspended",
        "since": today,
        "withheld_actions": ["acknowledge", "refuse"],
        "reason": f"VN-24X7 (vn-24x7) was suspended in this node's directory of peers on {today}: nothing "
        "can be sent to it until an administrator resumes it, so no step that would send it a message is "
        "offered",
    }
    # Suspension is lifted in time: the request is not ended for it.
    assert shown(au, "supervisor", rid)["allowed_actions"] == []

    set_peer(au, "vn-24x7", "resume")
    assert shown(au, "ca", rid)["allowed_actions"] == ["acknowledge", "refuse"]

    set_peer(au, "vn-24x7", "remove")
    removed = shown(au, "ca", rid)
    assert removed["allowed_actions"] == []
    assert removed["counterpart_away"]["status"] == "removed"
    assert removed["counterpart_away"]["withheld_actions"] == ["acknowledge", "refuse"]
    assert removed["counterpart_away"]["reason"].startswith(
        f"VN-24X7 (vn-24x7) was removed from this node's directory of peers on {today}: nothing more"
    )
    assert shown(au, "supervisor", rid)["allowed_actions"] == ["end_locally"]
    # The listing says the same as the request itself.
    listed = au.ca.get("/api/v1/requests", params={"direction": "incoming"}).json()["items"]
    assert [(r["allowed_actions"], r["counterpart_away"]["status"]) for r in listed] == [([], "removed")]

    # On the requesting side, withdrawing is a message too.
    assert shown(vn, "officer", rid)["allowed_actions"] == ["withdraw"]
    set_peer(vn, "au-24x7", "suspend")
    assert shown(vn, "officer", rid)["allowed_actions"] == []
    assert shown(vn, "officer", rid)["counterpart_away"]["withheld_actions"] == ["withdraw"]


def test_a_step_to_a_suspended_counterpart_is_refused_by_its_code_and_waits_for_the_resumption(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent(vn)
    set_peer(au, "vn-24x7", "suspend")
    today = date.today().isoformat()

    r = act(au.ca, rid, "acknowledge", reference="AU-PRES-9")
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "counterpart_suspended"
    assert body["detail"] == (
        f"acknowledge sends a message to VN-24X7 (vn-24x7), which was suspended in this node's directory of "
        f"peers on {today}: nothing can be sent to it until an administrator resumes it"
    )
    assert body["allowed"] == [] and body["counterpart"] == "vn-24x7" and body["since"] == today
    assert shown(au, "ca", rid)["status"] == "received"
    assert count_rows(au, OutboxMessage) == 0

    # Nor is a local ending a way round a suspension.
    r = act(au.supervisor, rid, "end_locally", reason=REASON)
    assert r.status_code == 409 and r.json()["code"] == "transition_not_allowed"
    assert shown(au, "ca", rid)["status"] == "received"

    set_peer(au, "vn-24x7", "resume")
    assert act(au.ca, rid, "acknowledge", reference="AU-PRES-9").status_code == 200
    assert count_rows(au, OutboxMessage) == 1


def test_a_step_to_a_removed_counterpart_is_refused_by_its_code(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    rid = sent(vn)
    set_peer(vn, "au-24x7", "remove")
    r = act(vn.officer, rid, "withdraw", reason="No longer needed.")
    assert r.status_code == 409
    assert r.json()["code"] == "counterpart_removed"
    assert "which was removed from this node's directory of peers on" in r.json()["detail"]
    assert shown(vn, "officer", rid)["status"] == "delivered"
    assert count_rows(vn, OutboxMessage) == 1  # the request itself, delivered before the removal


def test_a_local_ending_needs_a_reason_and_changes_nothing_without_one(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent(vn)
    set_peer(au, "vn-24x7", "remove")
    before = timeline(au, rid)

    for data in ({}, {"reason": "   "}):
        r = act(au.supervisor, rid, "end_locally", **data)
        assert r.status_code == 422, r.text
        assert [(p["field"], p["code"]) for p in r.json()["errors"]] == [("data.reason", "missing")]
    assert shown(au, "ca", rid)["status"] == "received"
    assert timeline(au, rid) == before
    assert audited(au, "cases.request.end_locally") == []


def test_a_local_ending_closes_the_request_here_records_it_and_sends_nothing(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent(vn)
    set_peer(au, "vn-24x7", "remove")
    queued = count_rows(au, OutboxMessage)

    r = act(au.supervisor, rid, "end_locally", reason=REASON)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["allowed_actions"] == []
    assert r.json()["counterpart_away"]["withheld_actions"] == []
    assert count_rows(au, OutboxMessage) == queued == 0

    last = timeline(au, rid)[-1]
    assert (last["action"], last["side"], last["from_status"], last["to_status"]) == (
        "end_locally",
        "local",
        "received",
        "closed",
    )
    assert last["actor"] == "au-supervisor" and last["detail"] == {"reason": REASON}
    assert last["message_id"] is None
    [record] = audited(au, "cases.request.end_locally")
    assert record.actor == "au-supervisor" and record.object_id == rid
    assert record.detail == {
        "from": "received",
        "to": "closed",
        "counterpart": "vn-24x7",
        "counterpart_status": "removed",
        "sent": False,
    }
    # Ended is ended: nothing further is open, a second ending included.
    assert act(au.supervisor, rid, "end_locally", reason=REASON).status_code == 409


def test_a_local_ending_takes_a_supervisor_who_did_not_draft_the_request(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    body = {
        "type": "preservation",
        "case_title": "Hanoi hospital ransomware",
        "counterpart": "au-24x7",
        "header": HEADER,
        "fields": PRESERVATION,
    }
    r = vn.supervisor2.post("/api/v1/requests", json=body)  # a supervisor who is also an officer drafts
    assert r.status_code == 201, r.text
    rid = r.json()["request"]["id"]
    assert act(vn.supervisor2, rid, "submit").status_code == 200
    assert act(vn.supervisor, rid, "approve").status_code == 200
    assert vn.deliver() == 1
    set_peer(vn, "au-24x7", "remove")
    queued = count_rows(vn, OutboxMessage)

    assert shown(vn, "supervisor2", rid)["allowed_actions"] == []
    r = act(vn.supervisor2, rid, "end_locally", reason=REASON)
    assert r.status_code == 403 and "Four eyes" in r.json()["detail"]
    r = act(vn.officer, rid, "end_locally", reason=REASON)
    assert r.status_code == 403 and "supervisor" in r.json()["detail"]
    assert shown(vn, "officer", rid)["status"] == "delivered"

    assert shown(vn, "supervisor", rid)["allowed_actions"] == ["end_locally"]
    r = act(vn.supervisor, rid, "end_locally", reason=REASON)
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert count_rows(vn, OutboxMessage) == queued


def test_a_request_still_queued_for_a_removed_node_is_taken_back_when_ended_here(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    r = vn.officer.post(
        "/api/v1/requests",
        json={"type": "preservation", "case_title": "C", "counterpart": "au-24x7", "header": HEADER,
              "fields": PRESERVATION},
    )  # fmt: skip
    rid = r.json()["request"]["id"]
    assert act(vn.officer, rid, "submit").status_code == 200
    assert act(vn.supervisor, rid, "approve").status_code == 200
    set_peer(vn, "au-24x7", "remove")  # before the worker sent it

    assert act(vn.supervisor2, rid, "end_locally", reason=REASON).status_code == 200
    with vn.node.db.transaction(read_only=True) as s:
        assert [m.status for m in s.scalars(select(OutboxMessage))] == ["cancelled"]
    assert timeline(vn, rid)[-1]["detail"] == {"reason": REASON, "undelivered_request": "cancelled"}
    # Were the node ever added again, it would not receive the request ended here.
    assert vn.deliver() == 0


def test_a_peer_cannot_end_or_approve_a_request_by_sending_the_step(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent(vn)
    with vn.node.db.transaction() as s:
        outbox.enqueue(
            s,
            SYSTEM,
            recipient="au-24x7",
            message_type="cp.step",
            conversation_id=rid,
            payload={"request_id": rid, "action": "end_locally", "data": {"reason": "x"}, "status": "closed"},
        )
    assert vn.deliver() == 1
    with vn.node.db.transaction(read_only=True) as s:
        step = s.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "cp.step")).one()
        assert step.status == "rejected", step.last_error
    assert shown(au, "ca", rid)["status"] == "received"


# --- the command line -----------------------------------------------------------------------------------


def cli(*args: str) -> Any:
    return runner.invoke(app, ["requests", *args])


def test_the_command_line_says_what_is_withheld_and_why_and_ends_a_request_here(
    vn_cli: tuple[Side, Side], tmp_path: Path
) -> None:
    vn, _ = vn_cli
    rid = sent(vn)
    today = date.today().isoformat()
    r = cli("show", rid, "--as", "vn-officer")
    assert r.exit_code == 0 and "allowed now: withdraw" in r.output and "not offered" not in r.output

    set_peer(vn, "au-24x7", "suspend")
    r = cli("show", rid, "--as", "vn-officer")
    assert r.exit_code == 0, r.output
    assert "allowed now: nothing" in r.output
    assert f"AU-24X7 (au-24x7) was suspended in this node's directory of peers on {today}" in r.output
    assert "not offered for that reason: withdraw" in r.output
    r = cli("respond", rid, "withdraw", "--as", "vn-officer", "-d", "reason=No longer needed.")
    assert r.exit_code == 1 and "which was suspended" in r.output and "Traceback" not in r.output

    set_peer(vn, "au-24x7", "remove")
    r = cli("show", rid, "--as", "vn-supervisor")
    assert "allowed now: end_locally" in r.output and "was removed from this node's directory" in r.output
    r = cli("respond", rid, "end_locally", "--as", "vn-supervisor")
    assert r.exit_code == 1 and "data.reason" in r.output
    r = cli("respond", rid, "end_locally", "--as", "vn-supervisor", "-d", f"reason={REASON}")
    assert r.exit_code == 0 and f"{rid}: closed" in r.output
    assert count_rows(vn, OutboxMessage) == 1  # the request itself, delivered before all this
