"""The desk's request page when the other side's node cannot be sent to: it says why the steps that would
message it are missing, names them, offers a removed node's request the local ending with its reason
field, and refuses a sending step posted anyway."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select

from cases.conftest import Side, count_rows, sent
from cyberpact.cases.models import RequestEvent
from cyberpact.federation.models import OutboxMessage

from .helpers import person, text_of

REASON = "The Vietnamese authority's node was decommissioned; the matter continues by diplomatic note."


def set_peer(side: Side, peer: str, action: str) -> None:
    admin = side.node.client(side.node.admin_token)
    assert admin.post(f"/api/v1/federation/peers/{peer}/{action}").status_code == 200


def offered(page: str) -> set[str]:
    return set(re.findall(r'id="action-([a-z_]+)"', page))


def test_a_suspended_node_s_request_says_why_its_steps_are_missing(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent(vn)
    kate = person(au.node, "kate", "central_authority", "officer")
    sue = person(au.node, "sue", "supervisor")
    assert offered(kate.get(f"/desk/requests/{rid}").text) == {"acknowledge", "refuse"}
    set_peer(au, "vn-24x7", "suspend")

    page = kate.get(f"/desk/requests/{rid}").text
    text = text_of(page)
    assert offered(page) == set() and "/actions/" not in page
    assert (
        f"VN-24X7 (vn-24x7) was suspended in this node's directory of peers on {date.today()}: nothing can "
        "be sent to it until an administrator resumes it, so no step that would send it a message is offered "
        in text
    )
    assert "Not offered for that reason: Acknowledge, Refuse " in text
    assert "the other steps come back when an administrator resumes the node" in text
    assert "Nothing that would reach the other State: see why above." in text
    # A supervisor is not offered the local ending for a suspension.
    assert offered(sue.get(f"/desk/requests/{rid}").text) == set()

    # Posted anyway (a page left open since before the suspension): refused in words, nothing sent.
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "AU-PRES-7"})
    assert r.status_code == 409
    assert "acknowledge sends a message to VN-24X7 (vn-24x7), which was suspended" in text_of(r.text)
    assert "counterpart_suspended" in r.text
    assert count_rows(au, OutboxMessage) == 0


def test_a_removed_node_s_request_is_ended_here_with_a_reason(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent(vn)
    set_peer(au, "vn-24x7", "remove")
    kate = person(au.node, "kate", "central_authority", "officer")
    sue = person(au.node, "sue", "supervisor")

    text = text_of(kate.get(f"/desk/requests/{rid}").text)
    assert f"VN-24X7 (vn-24x7) was removed from this node's directory of peers on {date.today()}" in text
    assert "Not offered for that reason: Acknowledge, Refuse " in text
    assert (
        "A supervisor who did not draft or submit this request can end it on this node, with a reason."
        in text
    )

    page = sue.get(f"/desk/requests/{rid}").text
    assert offered(page) == {"end_locally"}
    form = page[page.index('id="action-end_locally"') :]
    assert 'name="data.reason"' in form and "required" in form[: form.index("</form>")]
    assert "Nothing is sent to the other State, and it is not told" in text_of(form)
    assert "A supervisor who did not draft" not in text_of(page)

    r = sue.post(f"/desk/requests/{rid}/actions/end_locally", {"data.reason": ""})
    assert r.status_code == 422
    assert 'aria-invalid="true"' in r.text and "say why the request ends here" in text_of(r.text)
    with au.node.db.transaction(read_only=True) as s:
        assert "end_locally" not in s.scalars(select(RequestEvent.action)).all()

    r = sue.post(f"/desk/requests/{rid}/actions/end_locally", {"data.reason": REASON})
    assert r.status_code == 303, r.text
    page = sue.get(r.headers["location"]).text
    text = text_of(page)
    assert "Done: End on this node." in text and "Closed" in text
    assert "End on this node" in text[text.index("Timeline") :] and REASON in text
    assert offered(page) == set()
    assert count_rows(au, OutboxMessage) == 0
