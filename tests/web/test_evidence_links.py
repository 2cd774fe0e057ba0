"""A request's and a case's page show the evidence filed under them as far as the reader may open it: a
supervisor sees the request, and that evidence was filed, but is offered no link that ends on a 403 and
no package title (evidence is read by the evidence roles only)."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from cases.conftest import Side
from cyberpact.cases.models import Request as RequestRow
from evidence.helpers import declare, incoming_request, make_package, put

from .helpers import person, text_of

TITLE = "Mailbox export of the suspect"


@pytest.mark.parametrize("confidentiality", ["none", "fact_and_substance"])
def test_a_supervisor_gets_no_link_to_evidence_they_may_not_open(
    two_sides: tuple[Side, Side], confidentiality: str
) -> None:
    vn, au = two_sides
    node = vn.node
    rid = incoming_request(node, au.node.settings.node_id, confidentiality)
    with node.db.transaction(read_only=True) as s:
        case_id = s.scalars(select(RequestRow.case_id).where(RequestRow.id == uuid.UUID(rid))).one()
    channel = node.client(node.user("cp-filer", "contact_point"))
    pkg = make_package(channel, request_ref=rid, title=TITLE)
    declare(channel, pkg["id"], "mail.eml", 4)
    assert put(channel, pkg["id"], 0, b"mail").json()["complete"]
    assert channel.post(f"/api/v1/evidence/packages/{pkg['id']}/seal").status_code == 200
    link = f'href="/desk/evidence/{pkg["id"]}"'

    binh = person(node, "binh", "supervisor")
    for path in (f"/desk/requests/{rid}", f"/desk/cases/{case_id}"):
        r = binh.get(path)
        assert r.status_code == 200, path
        text = text_of(r.text)
        # The request itself, and that evidence was filed and sealed on it ...
        assert "Evidence package Sealed" in text, path
        assert "Title and case hidden: your roles do not open this package." in text
        assert "Evidence package sealed" in text  # the timeline's custody entry
        # ... but no way to a page that refuses them, and not what the package is.
        assert "/desk/evidence/" not in r.text, path
        assert TITLE not in r.text, path
        assert "File evidence for this request" not in text
    # Which is what the link would have led to.
    assert binh.get(f"/desk/evidence/{pkg['id']}").status_code == 403

    # Whoever may open it keeps the link and the title, on both pages.
    kim = person(node, "kim", "contact_point", "supervisor")
    for path in (f"/desk/requests/{rid}", f"/desk/cases/{case_id}"):
        page = kim.get(path).text
        assert link in page and TITLE in page, path
        assert "Title and case hidden" not in page
        assert re.search(r"Evidence package sealed .*" + re.escape(TITLE), text_of(page)), path
    assert kim.get(f"/desk/evidence/{pkg['id']}").status_code == 200
    assert "File evidence for this request" in text_of(kim.get(f"/desk/requests/{rid}").text)


def test_an_administrator_who_also_supervises_is_offered_no_evidence_form(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = incoming_request(vn.node, au.node.settings.node_id)
    boss = person(vn.node, "boss", "admin", "supervisor")
    page = boss.get(f"/desk/requests/{rid}").text
    assert "/desk/evidence/new" not in page
    assert boss.get(f"/desk/evidence/new?request={rid}").status_code == 403
