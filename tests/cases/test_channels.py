"""A request type goes through a channel (the 24/7 network or the central authorities); a requested node says
which it serves. Addressing one to a node that serves only the other is said plainly, as a warning: the
24/7 point of contact coordinates with its central authority (art. 41), and some States route everything
through one office."""

from __future__ import annotations

import pytest

from cyberpact.federation.models import Peer
from web.helpers import person, text_of

from .conftest import Side, act, draft

STORED_DATA = {
    "subject_matter": "Criminal investigation of a ransomware group attacking hospitals in Hanoi",
    "facts_summary": "Hospital systems in Hanoi were encrypted on 2 Nov 2026.",
    "assistance_sought": "Produce the stored data with a certificate of authenticity.",
    "data_sought": "All stored content and logs of the account minh.tran.88@cloudmail.example",
    "purpose": "Identify the operators and use the data as evidence at trial.",
}


def serves(side: Side, peer: str, *roles: str) -> None:
    """What ``side`` holds of ``peer``'s roles, as its node card said."""
    with side.node.db.transaction() as s:
        s.get_one(Peer, peer).roles = list(roles)


def channel_warnings(check: dict) -> list[str]:
    return [w["message"] for w in check["warnings"] if w["code"] == "wrong_channel"]


def test_a_preservation_to_a_node_that_is_only_a_central_authority_is_warned_of(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    serves(vn, "au-24x7", "central_authority")
    r = draft(vn)
    assert r.status_code == 201, r.text
    check = r.json()["check"]
    assert check["complete"] is True, "a warning, not a refusal"
    [message] = channel_warnings(check)
    assert message == (
        "art. 41: a request for expedited preservation of stored electronic data goes to a 24/7 point of "
        "contact; AU-24X7 (au-24x7) serves only as a central authority: choose a node that serves as a 24/7 "
        "point of contact, unless that State takes such requests there"
    )
    # Nothing stops it going: the officer decided.
    rid = r.json()["request"]["id"]
    assert act(vn.officer, rid, "submit").status_code == 200
    # The stand-alone check (what the wizard and other clients call) says the same.
    body = {"type": "preservation", "counterpart": "au-24x7", "header": {}, "fields": {}}
    assert channel_warnings(vn.officer.post("/api/v1/requests/check", json=body).json()) == [message]


def test_mutual_assistance_to_a_node_that_is_only_a_24_7_point_of_contact_is_warned_of(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    serves(vn, "au-24x7", "contact_point_24_7")
    r = draft(vn, type_="stored_data", fields=STORED_DATA)
    [message] = channel_warnings(r.json()["check"])
    assert message.startswith("art. 40(13): a request for mutual legal assistance in accessing stored")
    assert "goes to a central authority; AU-24X7 (au-24x7) serves only as a 24/7 point of contact" in message
    # The channel it serves draws no warning.
    assert channel_warnings(draft(vn).json()["check"]) == []


@pytest.mark.parametrize(
    "roles",
    [
        ("contact_point_24_7", "central_authority"),  # a node may serve both
        (),  # a node that names no role has told us nothing to go by
        ("secretariat",),  # nor one that names only roles this node does not know
    ],
)
def test_no_warning_when_the_node_serves_the_channel_or_says_nothing(
    two_sides: tuple[Side, Side], roles: tuple[str, ...]
) -> None:
    vn, _ = two_sides
    serves(vn, "au-24x7", *roles)
    assert channel_warnings(draft(vn).json()["check"]) == []
    assert channel_warnings(draft(vn, type_="stored_data", fields=STORED_DATA).json()["check"]) == []


def test_the_wizard_shows_the_warning_beside_the_choice_and_on_review(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    serves(vn, "au-24x7", "central_authority")
    olaf = person(vn.node, "olaf", "officer", "contact_point")
    # Choosing: each node says what it serves.
    assert "AU-24X7 (au-24x7) — Central authority" in text_of(olaf.get("/desk/new").text)
    rid = draft(vn).json()["request"]["id"]
    lead = "The requested node does not serve as the office this type of request goes to"
    detail = "AU-24X7 (au-24x7) serves only as a central authority"
    for step in ("authority", "review"):
        page = text_of(olaf.get(f"/desk/requests/{rid}/edit/{step}").text)
        assert lead in page and detail in page, step
    # The lead and the detail are said in the reader's language, the node's name as it is.
    olaf.post("/desk/language", {"lang": "fr", "back": "/desk"})
    page = text_of(olaf.get(f"/desk/requests/{rid}/edit/review").text)
    assert "AU-24X7 (au-24x7) n'intervient qu'en tant qu'une autorité centrale" in page
    assert "serves only as" not in page
