"""What is missing and why, in the reader's language: a problem's instruction comes from the catalog (a
field's message, or "give the <label>") and is read in the desk's language beside the citation that requires
it; only the service's own technical wording stays in English, marked so."""

from __future__ import annotations

from cases.conftest import PRESERVATION, Side, draft, sent_preservation

from .helpers import person, text_of


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


def test_an_action_form_says_what_to_give_and_which_template_section_asks_in_the_readers_language(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    kate = person(au.node, "kate", "central_authority", "officer")
    kate.get("/desk")
    kate.post("/desk/language", {"lang": "fr", "back": "/desk"})
    kate.get(f"/desk/requests/{rid}")
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": ""})
    assert r.status_code == 422
    text = text_of(r.text)
    assert "Manquant : exigé par Modèle T-CY : numéro de dossier." in text
    assert "Indiquer votre référence (numéro de dossier) pour la présente demande" in text
    assert "T-CY template" not in text and "give your reference" not in text
    assert "art. 42" in text  # an article alone is a citation, written as in the convention

    # The service's own wording is not a text of the catalog: it stays in English, marked so.
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "X" * 501})
    assert r.status_code == 422
    assert "Non valide au regard de Modèle T-CY : numéro de dossier." in text_of(r.text)
    assert '<span lang="en" dir="auto">Reference is longer than 500 characters</span>' in r.text
