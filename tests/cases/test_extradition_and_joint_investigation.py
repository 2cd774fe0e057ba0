"""Extradition (art. 37) and joint investigations (art. 48): drafted, checked and carried like any request."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest

from cyberpact.cases.models import Request
from cyberpact.catalog.service import get_catalog, load
from cyberpact.kit.errors import ConfigurationError

from .conftest import Side, act, count_rows, draft, edited_catalog, sent

EXTRADITION: dict[str, Any] = {
    "person_sought": "TRAN Van Minh, alias 'minh88', born 4 March 1991 in Hai Phong, passport C1234567",
    "whereabouts": "Believed to live in Sydney, New South Wales",
    "extradition_for": "prosecution",
    "offences": "Illegal access (Penal Code art. 289, up to 7 years); extortion (art. 170, up to 20 years)",
    "punishable_in_both": True,
    "facts": "Between 1 and 3 Nov 2026 he encrypted the systems of two Hanoi hospitals and demanded payment.",
    "warrant_or_judgment": "Arrest warrant of the Hanoi People's Procuracy, 10 Nov 2026, no. 117/QD-VKS",
}
JOINT: dict[str, Any] = {
    "investigation": "The ransomware group that encrypted hospitals in Hanoi and clinics in Sydney in 2026",
    "offences": "Illegal access; data interference; extortion",
    "purpose_and_scope": "Identify the group's members and infrastructure, and trace the ransom payments",
    "participating_authorities": "VN: A05 Investigation Division. AU: AFP Cybercrime Operations",
    "place_of_operations": "Viet Nam and Australia",
    "duration_months": 12,
    "basis": "case_by_case",
}


def _errors(r: Any) -> dict[str, dict[str, Any]]:
    return {e["field"]: e for e in r.json()["check"]["errors"]}


def test_a_complete_extradition_request_is_checked_clean_sent_and_received(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    assert draft(vn, type_="extradition", fields=EXTRADITION).json()["check"]["errors"] == []
    rid = sent(vn, "extradition", EXTRADITION)
    received = au.ca.get(f"/api/v1/requests/{rid}").json()
    assert received["type"] == "extradition" and received["fields"]["person_sought"].startswith(
        "TRAN Van Minh"
    )
    assert set(received["allowed_actions"]) >= {"acknowledge", "refuse"}


def test_extradition_needs_dual_criminality_and_says_which_article(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    errors = _errors(draft(vn, type_="extradition", fields={**EXTRADITION, "punishable_in_both": False}))
    problem = errors["fields.punishable_in_both"]
    assert problem["cite"] == "art. 37(1) [parallel: UNTOC 16(1)]"
    assert "punishable under the law of both States" in problem["message"]
    # The part of the sentence left is asked for only when the person is sought to serve one.
    to_serve = {**EXTRADITION, "extradition_for": "enforcement_of_sentence"}
    assert "fields.sentence_remaining" in _errors(draft(vn, type_="extradition", fields=to_serve))
    assert "fields.sentence_remaining" not in _errors(draft(vn, type_="extradition", fields=EXTRADITION))


def test_extradition_is_refused_only_on_its_own_grounds_and_after_consulting(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent(vn, "extradition", EXTRADITION)
    assert act(au.ca, rid, "acknowledge", reference="AU-EXT-3").status_code == 200
    reasons = "He is an Australian national; the case goes to the Commonwealth DPP."
    r = act(au.ca, rid, "refuse", grounds=["extradition_nationality"], reasons=reasons)
    assert r.status_code == 422
    problem = r.json()["errors"][0]
    assert (
        problem["field"] == "data.consultation"
        and problem["cite"] == "art. 37 [parallel: UNTOC 16(16)] (confirm)"
    )
    # A ground of another type (MLA's essential interests) is no ground to refuse an extradition.
    wrong = act(
        au.ca, rid, "refuse", grounds=["essential_interests"], reasons=reasons, consultation="By phone"
    )
    assert wrong.status_code == 422
    assert [e["field"] for e in wrong.json()["errors"]] == ["data.grounds"]
    assert act(au.ca, rid, "consult", subject="Would you accept prosecution in Australia?").status_code == 200
    assert act(au.ca, rid, "refuse", grounds=["extradition_nationality"], reasons=reasons).status_code == 200


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({**JOINT, "basis": "agreement_in_force"}, "fields.agreement_reference"),
        ({k: v for k, v in JOINT.items() if k != "place_of_operations"}, "fields.place_of_operations"),
    ],
)
def test_a_joint_investigation_names_what_it_lacks(
    two_sides: tuple[Side, Side], fields: dict[str, Any], missing: str
) -> None:
    vn, _ = two_sides
    errors = _errors(draft(vn, type_="joint_investigation", fields=fields))
    assert list(errors) == [missing] and errors[missing]["cite"].startswith("art. 48")


def test_a_joint_investigation_beyond_five_years_is_refused_and_nothing_stored(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    r = draft(vn, type_="joint_investigation", fields={**JOINT, "duration_months": 61})
    assert r.status_code == 422 and "fields.duration_months" in [e["field"] for e in r.json()["errors"]]
    assert count_rows(vn, Request) == 0
    assert draft(vn, type_="joint_investigation", fields=JOINT).json()["check"]["errors"] == []


def test_the_new_types_and_grounds_are_in_the_catalog_with_their_articles() -> None:
    catalog = get_catalog()
    assert (catalog.type("extradition").article, catalog.type("joint_investigation").article) == (
        "art. 37",
        "art. 48",
    )
    grounds = {g.id for g in catalog.head.grounds}
    assert set(catalog.type("extradition").grounds) <= grounds
    assert {"extradition_nationality", "extradition_conditions"} <= grounds
    # Every ground an extradition may be refused on cites the extradition article, not the MLA one.
    cites = {g.id: g.cite for g in catalog.head.grounds}
    assert all(cites[g].startswith("art. 37") for g in catalog.type("extradition").grounds)


def test_a_catalog_that_labels_an_option_its_field_lacks_does_not_load(tmp_path: Path) -> None:
    data = edited_catalog(tmp_path, "extradition.toml", "prosecution = ", "persecution = ")
    with pytest.raises(
        ConfigurationError, match=r"'extradition_for' labels options it lacks: \['persecution'\]"
    ):
        load(data)


def test_the_choices_read_as_labels_on_the_document(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    to_serve = {**EXTRADITION, "extradition_for": "enforcement_of_sentence", "sentence_remaining": "4 years"}
    rid = draft(vn, type_="extradition", fields=to_serve).json()["request"]["id"]
    for lang, label in (
        ("en", "Enforcement of a sentence"),
        ("fr", "Exécution d'une peine"),
        ("vi", "Thi hành bản án"),
    ):
        page = vn.officer.get(f"/api/v1/requests/{rid}/document", params={"lang": lang, "format": "html"})
        assert page.status_code == 200, page.text
        assert label in html.unescape(page.text) and "enforcement_of_sentence" not in page.text
