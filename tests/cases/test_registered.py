"""Requests that arrive outside the network (e-mail, fax, post): registered, tracked and decided like any
other, their steps recorded as to be answered the same way, and nothing sent to any peer."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cyberpact.cases.models import Request
from cyberpact.catalog.service import get_catalog
from cyberpact.federation.models import OutboxMessage
from web.helpers import person, text_of

from .conftest import HEADER, PRESERVATION, Side, act, count_rows, sent, sent_follow_up

ARRIVED = datetime(2026, 11, 28, 20, 5, tzinfo=UTC)


def _register(side: Side, who: str = "ca", **overrides: Any) -> Any:
    body = {
        "type": "preservation",
        "country": "VN",
        "authority": "Ministry of Public Security of Viet Nam (A05)",
        "channel": "email",
        "received_at": ARRIVED.isoformat(),
        "header": {**HEADER, "our_reference": "VN-A05-2026-200"},
        "fields": {k: v for k, v in PRESERVATION.items() if k != "necessity"},
        **overrides,
    }
    return getattr(side, who).post("/api/v1/requests/received", json=body)


def test_a_request_received_by_e_mail_is_registered_tracked_and_decided(two_sides: tuple[Side, Side]) -> None:
    _vn, au = two_sides
    r = _register(au)
    assert r.status_code == 201, r.text
    row, check = r.json()["request"], r.json()["check"]
    assert (row["direction"], row["status"], row["counterpart"], row["counterpart_country"]) == (
        "incoming",
        "received",
        None,
        "VN",
    )
    # What the convention requires and the e-mail lacks: what to ask Viet Nam for.
    assert [e["field"] for e in check["errors"]] == ["fields.necessity"]
    # The 24 hours to acknowledge run from its arrival, not from when it was typed in.
    assert datetime.fromisoformat(row["due_at"]) == ARRIVED + timedelta(hours=24)
    assert row["overdue"] is True and "acknowledge" in row["allowed_actions"]
    rid = row["id"]
    assert act(au.ca, rid, "acknowledge", reference="AU-PRES-900").status_code == 200
    r = act(au.ca, rid, "request_info", questions="Why must the data be preserved?")
    assert r.status_code == 200, r.text
    timeline = au.ca.get(f"/api/v1/requests/{rid}/timeline").json()
    assert [e["action"] for e in timeline] == ["registered", "acknowledge", "request_info"]
    assert timeline[0]["detail"]["channel"] == "email" and timeline[0]["actor"] == "au-ca"
    # No peer to send to: each step says it must go back by e-mail, and the outbox stays empty.
    assert all(e["detail"]["outside_network"] == "email" for e in timeline[1:])
    assert count_rows(au, OutboxMessage) == 0
    # The formal document says where it came from, and that no signature protects it.
    doc = au.ca.get(f"/api/v1/requests/{rid}/document").text
    assert "Received outside the network, by" in doc and "e-mail" in doc and "au-ca" in doc
    assert "No signature protects this content" in doc
    # On the desk, in the reader's language: how it came and how to answer.
    page = text_of(person(au.node, "kim", "central_authority").get(f"/desk/requests/{rid}").text)
    assert "Registered: received outside the network" in page and "Received by e-mail" in page
    assert "Not sent through the network: answer by e-mail" in page


def test_registration_needs_the_role_and_refuses_bad_input_storing_nothing(
    two_sides: tuple[Side, Side],
) -> None:
    _vn, au = two_sides
    assert _register(au, "plain").status_code == 403
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    cases = [
        ({"country": "ZZ"}, "country"),
        ({"channel": "pigeon"}, "channel"),
        ({"received_at": future}, "received_at"),
        ({"received_at": "2026-11-28T20:05:00"}, "received_at"),  # no time zone
        ({"type": "asset_recovery"}, "type"),
        ({"fields": {"offence": 42}}, "fields.offence"),
    ]
    for overrides, field in cases:
        r = _register(au, **overrides)
        assert r.status_code == 422, (overrides, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (overrides, r.json())
    assert count_rows(au, Request) == 0


def _preserved_by_e_mail(au: Side, ticket: str) -> str:
    """A preservation registered as received by e-mail from Viet Nam, acknowledged with ``ticket`` and
    preserved for 90 days; its id."""
    rid = str(_register(au).json()["request"]["id"])
    assert act(au.ca, rid, "acknowledge", reference=ticket).status_code == 200
    until = (datetime.now(UTC).date() + timedelta(days=90)).isoformat()
    assert act(au.ca, rid, "preserve", preserved_until=until).status_code == 200
    return rid


def test_a_follow_up_registered_from_the_same_state_holds_the_registered_preservation(
    two_sides: tuple[Side, Side],
) -> None:
    _vn, au = two_sides
    rid = _preserved_by_e_mail(au, "AU-PRES-901")
    fields = {
        "subject_matter": "Ransomware against hospitals",
        "facts_summary": "Systems encrypted on 2 Nov 2026.",
        "assistance_sought": "Produce the preserved data.",
        "data_sought": "The mailbox preserved under AU-PRES-901",
        "purpose": "Evidence at trial.",
    }
    header = {**HEADER, "request_kind": "follow_up_to_preservation", "related_ticket": "AU-PRES-901"}
    for country, held in (("PL", False), ("VN", True)):  # the same ticket from another State holds nothing
        r = _register(au, type="stored_data", country=country, header=header, fields=fields)
        assert r.status_code == 201, r.text
        view = au.ca.get(f"/api/v1/requests/{rid}").json()
        assert (view["held_by"] == r.json()["request"]["id"]) is held


def test_a_follow_up_over_the_network_holds_a_preservation_received_by_e_mail(
    two_sides: tuple[Side, Side],
) -> None:
    # Viet Nam's 24/7 point of contact e-mailed the preservation; its MLA request follows over the network.
    vn, au = two_sides
    rid = _preserved_by_e_mail(au, "AU-PRES-902")
    sent_follow_up(vn, "AU-PRES-902")
    view = au.ca.get(f"/api/v1/requests/{rid}").json()
    assert view["held_by"] is not None, "art. 42: preserved until the follow-up is decided"
    follow_up = au.ca.get(f"/api/v1/requests/{view['held_by']}").json()
    assert (follow_up["type"], follow_up["counterpart_country"]) == ("stored_data", "VN")
    assert follow_up["counterpart"] is not None, "it came over the network"


def test_the_desk_registers_a_request_received_by_post(two_sides: tuple[Side, Side]) -> None:
    _vn, au = two_sides
    kim = person(au.node, "kim", "central_authority", timezone="Australia/Sydney")
    assert 'href="/desk/received"' in kim.get("/desk/inbox").text
    assert person(au.node, "olaf", "officer").get("/desk/received").status_code == 403
    assert 'value="preservation"' in kim.get("/desk/received").text
    kim.get("/desk/received", params={"type": "preservation"})
    form = {
        "type": "preservation",
        "country": "VN",
        "authority": "",  # forgotten: the page comes back with the values typed and the problem named
        "channel": "post",
        "received_at": "2026-11-27T09:30",
        **{f"header.{k}": v for k, v in HEADER.items()},
        **{f"fields.{k}": v for k, v in PRESERVATION.items() if k not in ("necessity", "mla_intended")},
        "fields.mla_intended": "on",
    }
    r = kim.post("/desk/received", form)
    assert r.status_code == 422 and "name the authority that sent it" in text_of(r.text)
    assert "A05 Investigation Division" in r.text, "what was typed is kept"
    assert count_rows(au, Request) == 0
    r = kim.post("/desk/received", {**form, "authority": "Embassy of Viet Nam, Canberra"})
    assert r.status_code == 303, text_of(r.text)
    rid = r.headers["location"].rsplit("/", 1)[1]
    view = au.ca.get(f"/api/v1/requests/{rid}").json()
    # 09:30 on the officer's clock in Sydney (UTC+11 in summer) is 22:30 UTC the day before.
    assert (view["counterpart_country"], view["sent_at"][:16]) == ("VN", "2026-11-26T22:30")
    page = text_of(kim.get(f"/desk/requests/{rid}").text)
    assert "As received, it lacks what the convention requires: ask the requesting State for" in page
    assert "Why preservation is necessary" in page and "Received by post or courier" in page


def test_a_received_date_in_the_future_or_before_the_convention_is_refused(
    two_sides: tuple[Side, Side],
) -> None:
    _vn, au = two_sides
    before = (
        "is before 24 December 2024, when the UN General Assembly adopted the convention: no request under "
        "it arrived earlier; check the year"
    )
    for at, says in [
        ("1900-01-01T09:00:00+00:00", before),
        ("2024-12-23T23:59:00+00:00", before),
        (
            (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "is in the future: give the moment it arrived",
        ),
    ]:
        r = _register(au, received_at=at)
        assert r.status_code == 422, (at, r.text)
        assert [(e["field"], e["message"]) for e in r.json()["errors"]] == [("received_at", says)]
    assert count_rows(au, Request) == 0
    # The day of adoption is judged as the sender's clock wrote it; a workstation clock a little fast is no
    # reason to refuse.
    soon = datetime.now(UTC) + timedelta(minutes=2)
    assert _register(au, received_at="2024-12-24T00:30:00+14:00").status_code == 201
    assert (
        _register(au, received_at=soon.isoformat(), header={**HEADER, "our_reference": "X-2"}).status_code
        == 201
    )
    assert get_catalog().head.adopted == date(2024, 12, 24), "the day the problem names"


def test_the_same_request_registered_twice_is_refused_naming_the_first(two_sides: tuple[Side, Side]) -> None:
    _vn, au = two_sides
    first = _register(au).json()["request"]
    case = au.ca.get(f"/api/v1/cases/{first['case_id']}").json()["reference"]
    # The original by post after the e-mailed copy, and the same reference typed a little differently.
    for reference in ("VN-A05-2026-200", " vn-a05-2026-200 "):
        header = {**HEADER, "our_reference": reference}
        r = _register(
            au, channel="post", header=header, received_at=(ARRIVED + timedelta(hours=12)).isoformat()
        )
        assert r.status_code == 422, r.text
        [problem] = r.json()["errors"]
        assert (problem["field"], problem["code"]) == ("header.our_reference", "duplicate")
        assert problem["message"] == (
            f"VN-A05-2026-200 from VN is already on this node: request {first['id']} in case {case}, "
            "received 2026-11-28; open it rather than register it again"
        )
        assert r.json()["existing_request"] == first["id"]
    assert count_rows(au, Request) == 1
    # Not the same request: another State's with the same number, and Viet Nam's next request in the same
    # matter, which quotes the same case reference.
    assert _register(au, country="PL").status_code == 201
    follow_up = {**HEADER, "our_reference": "VN-A05-2026-200", "request_kind": "extension"}
    follow_up["related_ticket"] = "AU-PRES-1"
    assert _register(au, header=follow_up).status_code == 201
    assert count_rows(au, Request) == 3


def test_a_request_that_came_over_the_network_is_not_registered_again(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent(vn)
    r = _register(au, header=HEADER)  # the same request, e-mailed as well
    assert r.status_code == 422 and r.json()["existing_request"] == rid
    assert f"request {rid}" in r.json()["errors"][0]["message"]


def test_the_desk_says_what_is_wrong_beside_each_field_and_links_the_request_already_registered(
    two_sides: tuple[Side, Side],
) -> None:
    _vn, au = two_sides
    first = _register(au).json()["request"]["id"]
    kim = person(au.node, "kim", "central_authority", timezone="Australia/Sydney")
    kim.get("/desk/received", params={"type": "preservation"})
    form = {
        "type": "preservation",
        "country": "VN",
        "authority": "Embassy of Viet Nam, Canberra",
        "channel": "post",
        "received_at": "1900-11-27T09:30",
        **{f"header.{k}": v for k, v in HEADER.items()},
        "header.our_reference": "VN-A05-2026-200",
        **{f"fields.{k}": v for k, v in PRESERVATION.items() if k != "mla_intended"},
        "fields.mla_intended": "on",
    }
    r = kim.post("/desk/received", form)
    assert r.status_code == 422
    beside = re.search(r'<span class="problem" id="received_at-p">(.*?)</span>\s*</div>', r.text, re.S)
    assert beside is not None and "is before 24 December 2024" in text_of(beside[1])
    assert 'id="received_at" aria-invalid="true" aria-describedby="received_at-p"' in r.text
    reference = re.search(r'id="f-header-our_reference-p">(.*?)</span>', r.text, re.S)
    assert reference is not None and f"is already on this node: request {first}" in text_of(reference[1])
    assert f'<a href="/desk/requests/{first}">Open the request already registered</a>' in r.text
    assert count_rows(au, Request) == 1
