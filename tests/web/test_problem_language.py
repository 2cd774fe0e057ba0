"""What is missing and why, in the reader's language: a problem's instruction comes from the catalog (a
field's message, or "give the <label>") and is read in the desk's language beside the citation that requires
it, as are the service's own words where they are phrases the catalog translates (a refused step, a value
that is not valid); anything else stays in English, marked so. Clients of the API read English throughout."""

from __future__ import annotations

from datetime import date, timedelta

from cases.conftest import PRESERVATION, Side, act, draft, sent_preservation

from .helpers import Person, person, text_of


def test_a_missing_field_of_a_draft_is_explained_in_the_readers_language(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    r = draft(vn, fields={k: v for k, v in PRESERVATION.items() if k != "necessity"})
    assert r.status_code == 201, r.text
    rid = r.json()["request"]["id"]
    an = person(vn.node, "an", "officer", "contact_point")
    english = text_of(an.get(f"/desk/requests/{rid}").text)
    assert "Missing: required by art. 42(2)(e). state why preservation is necessary" in english

    an.post("/desk/language", {"lang": "vi", "back": "/desk"})
    for path in (f"/desk/requests/{rid}", f"/desk/requests/{rid}/edit/review"):
        page = an.get(path).text
        text = text_of(page)
        assert "Lý do cần bảo quản" in text, path
        assert "Còn thiếu: theo yêu cầu của art. 42(2)(e). Nêu lý do cần bảo quản" in text, path
        assert "state why preservation is necessary" not in text, path
        assert '<span lang="en" dir="auto">Nêu lý do' not in page, path  # no longer marked as English


def reading_in_french(side: Side, rid: str) -> Person:
    """An officer of the requested side who reads the desk in French, on the request's page."""
    kate = person(side.node, "kate", "central_authority", "officer")
    kate.get("/desk")
    kate.post("/desk/language", {"lang": "fr", "back": "/desk"})
    kate.get(f"/desk/requests/{rid}")
    return kate


def test_an_action_form_says_what_to_give_and_which_template_section_asks_in_the_readers_language(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    kate = reading_in_french(au, rid)
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": ""})
    assert r.status_code == 422
    text = text_of(r.text)
    assert "Manquant : exigé par Modèle T-CY : numéro de dossier." in text
    assert "Indiquer votre référence (numéro de dossier) pour la présente demande" in text
    assert "T-CY template" not in text and "give your reference" not in text
    assert "art. 42" in text  # an article alone is a citation, written as in the convention

    # What is wrong with a value is said in French too, the field and the limit in place.
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "X" * 501})
    assert r.status_code == 422
    text = text_of(r.text)
    assert (
        "Non valide au regard de Modèle T-CY : numéro de dossier. Référence : plus de 500 caractères" in text
    )
    assert "is longer than" not in r.text

    # Why a character cannot be kept is said in French too, the field and the character in place.
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "AU\u200b-1"})
    assert r.status_code == 422
    assert "Référence : contient un caractère invisible (U+200B)" in text_of(r.text)
    assert "holds an invisible character" not in r.text


def test_a_step_refused_in_the_requests_present_state_is_explained_in_the_readers_language(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    kate = reading_in_french(au, rid)
    done = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "AU-1"})
    assert done.status_code == 303, done.text

    # The same form sent again, from a page read before the first went through.
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "AU-2"})
    assert r.status_code == 409
    assert (
        "Impossible d'effectuer l'étape « Accuser réception » sur une demande à l'état "
        "« Accusé de réception donné »" in text_of(r.text)
    )
    assert '<p lang="en"' not in r.text and "Cannot acknowledge" not in r.text

    kate.post("/desk/language", {"lang": "ar", "back": "/desk"})
    kate.get(f"/desk/requests/{rid}")
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "AU-2"})
    assert r.status_code == 409
    assert "لا يمكن اتخاذ خطوة «الإشعار بالاستلام» بشأن طلب حالته «أُشعر بالاستلام»" in text_of(r.text)
    assert '<p lang="en"' not in r.text and "Cannot acknowledge" not in r.text

    r = act(au.ca, rid, "acknowledge", reference="AU-2")
    assert r.status_code == 409
    assert r.json()["detail"] == "Cannot acknowledge a request that is acknowledged"


def test_a_refused_steps_problems_read_in_the_readers_language_with_their_values(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    assert act(au.ca, rid, "acknowledge", reference="AU-3").status_code == 200
    too_soon = (date.today() + timedelta(days=30)).isoformat()
    kate = reading_in_french(au, rid)
    r = kate.post(f"/desk/requests/{rid}/actions/preserve", {"data.preserved_until": too_soon})
    assert r.status_code == 422
    assert "Non valide au regard de art. 42(7). La conservation dure au moins 60 jours" in text_of(r.text)
    assert "not less than" not in r.text

    r = kate.post(f"/desk/requests/{rid}/actions/preserve", {"data.preserved_until": "31/12/2027"})
    assert r.status_code == 422
    assert "Conservé jusqu'au : doit être une date (AAAA-MM-JJ)" in text_of(r.text)
    assert "must be a date" not in r.text

    kate.post("/desk/language", {"lang": "ar", "back": "/desk"})
    kate.get(f"/desk/requests/{rid}")
    r = kate.post(f"/desk/requests/{rid}/actions/preserve", {"data.preserved_until": too_soon})
    assert r.status_code == 422
    assert "لا تقل مدة الحفظ بالأيام عن 60" in text_of(r.text)
    assert '<span lang="en" dir="auto">preservation lasts' not in r.text

    r = act(au.ca, rid, "preserve", preserved_until=too_soon)
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"] == (
        "art. 42(7) [parallel: Budapest 29(7)]: preservation lasts not less than 60 days"
    )


def test_a_value_the_schema_refuses_is_named_and_explained_in_the_readers_language(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    an = person(vn.node, "an", "officer")
    an.get("/desk")
    an.post("/desk/language", {"lang": "fr", "back": "/desk"})
    an.get("/desk/evidence/new")
    form = {"case_ref": "VN-1", "title": "Logs", "use.purpose": "x" * 1001}
    r = an.post("/desk/evidence/new", form)
    assert r.status_code == 422
    assert "use.purpose : nombre maximal de caractères : 1 000" in text_of(r.text)
    assert "String should have" not in r.text
