"""A peer an administrator removed from the directory gets nothing more from this node: its requests offer no
step that would send it a message, the page says why, and the service refuses such a step in those words.
What stays on this node (notes, returning a draft to its drafter) stays open."""

from __future__ import annotations

from datetime import date

from cyberpact.federation.models import OutboxMessage
from web.helpers import person, text_of

from .conftest import Side, act, count_rows, draft, sent

GONE = "was removed from this node's directory of peers: nothing more can be sent to it"


def gone(peer: str, step: str | None = None) -> str:
    """How a refused step or the request's page names a removed node: with the day of its removal."""
    said = f"{step} sends a message to {peer}, which was" if step else f"{peer} was"
    on = date.today().isoformat()
    return f"{said} removed from this node's directory of peers on {on}: nothing more can be sent to it"


def remove(side: Side, peer: str) -> None:
    admin = side.node.client(side.node.admin_token)
    assert admin.post(f"/api/v1/federation/peers/{peer}/remove").json()["status"] == "removed"


def test_a_request_from_a_removed_peer_offers_only_what_stays_here(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent(vn)
    remove(au, "vn-24x7")

    r = act(au.ca, rid, "acknowledge", reference="AU-PRES-1")
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "counterpart_removed"
    assert r.json()["detail"] == gone("VN-24X7 (vn-24x7)", "acknowledge")
    assert au.ca.get(f"/api/v1/requests/{rid}").json()["status"] == "received"
    assert count_rows(au, OutboxMessage) == 0

    kim = person(au.node, "kim", "central_authority")
    page = kim.get(f"/desk/requests/{rid}").text
    assert "/actions/" not in page, "every step of a received request answers the other State"
    assert f"{gone('VN-24X7 (vn-24x7)')}, so no step that would send it a message is offered" in text_of(page)
    assert "Nothing that would reach the other State" in text_of(page)
    r = kim.post(f"/desk/requests/{rid}/notes", {"text": "Called their embassy: they have a new node."})
    assert r.status_code == 303
    assert "Called their embassy" in kim.get(f"/desk/requests/{rid}").text


def test_a_draft_or_a_request_waiting_for_approval_to_a_removed_peer(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    drafted = draft(vn).json()["request"]["id"]
    waiting = draft(vn).json()["request"]["id"]
    assert act(vn.officer, waiting, "submit").status_code == 200
    remove(vn, "au-24x7")

    # The draft still opens, and says why it cannot go; submitting it is refused for the same reason.
    olaf = person(vn.node, "olaf", "officer", "contact_point")
    for path in (f"/desk/requests/{drafted}", f"/desk/requests/{drafted}/edit/review"):
        r = olaf.get(path)
        assert r.status_code == 200 and f"AU-24X7 (au-24x7) {GONE}" in text_of(r.text), path
    r = act(vn.officer, drafted, "submit")
    assert r.status_code == 422
    assert r.json()["errors"][0] == {
        "field": "counterpart",
        "code": "peer_removed",
        "message": f"AU-24X7 (au-24x7) {GONE}; choose another requested node",
    }

    # Approving would send it: not offered, and refused; returning it to the drafter stays.
    sue = person(vn.node, "sue", "supervisor")
    page = sue.get(f"/desk/requests/{waiting}").text
    assert "/actions/approve" not in page and f"/desk/requests/{waiting}/actions/return" in page
    assert "/actions/approve" not in sue.get("/desk/approvals").text
    r = act(vn.supervisor, waiting, "approve")
    assert r.status_code == 409 and r.json()["code"] == "counterpart_removed"
    assert r.json()["detail"] == gone("AU-24X7 (au-24x7)", "approve")
    assert count_rows(vn, OutboxMessage) == 0
    assert act(vn.supervisor, waiting, "return", comments="Address it to their new node.").status_code == 200
