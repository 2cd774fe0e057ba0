"""The service's own words, in the reader's language on the desk: the one-line summary of a refusal, the
draft check's warnings, the evidence form's problems and why a character cannot be kept. Each is a Phrase,
English where it is stored or answered over the API, said in French or Arabic only where it is shown."""

from __future__ import annotations

import uuid

from cases.conftest import PRESERVATION, Side, act, draft, sent_preservation
from cases.test_channels import serves

from .helpers import Person, person, text_of
from .test_problem_language import reading_in_french


def reading(side: Side, username: str, lang: str, *roles: str) -> Person:
    someone = person(side.node, username, *roles)
    someone.get("/desk")
    someone.post("/desk/language", {"lang": lang, "back": "/desk"})
    return someone


def test_a_refusals_summary_is_said_in_the_readers_language_and_answered_in_english_over_the_api(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    nobody = str(uuid.uuid4())
    form = {"case_ref": "VN-1", "request_ref": nobody, "title": "Logs"}
    an = reading(vn, "an", "fr", "officer")
    an.get("/desk/evidence/new")
    r = an.post("/desk/evidence/new", form)
    assert r.status_code == 422
    text = text_of(r.text)
    assert "Certaines valeurs ne sont pas valides" in text and "Demande inconnue" in text
    assert "Unknown request" not in text

    an.post("/desk/language", {"lang": "ar", "back": "/desk"})
    an.get("/desk/evidence/new")
    r = an.post("/desk/evidence/new", form)
    assert r.status_code == 422
    assert "طلب غير معروف" in text_of(r.text) and "Unknown request" not in r.text

    # An empty package cannot be sealed: the summary on the error page, in Arabic.
    r = vn.officer.post("/api/v1/evidence/packages", json={"case_ref": "VN-1", "title": "Logs"})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    an.get(f"/desk/evidence/{pid}")
    r = an.post(f"/desk/evidence/{pid}/seal", {})
    assert r.status_code == 422
    assert "لا يوجد ما يُختم" in text_of(r.text) and "Nothing to seal" not in r.text

    # Clients read the English, as before.
    r = vn.officer.post("/api/v1/evidence/packages", json={**form, "request_ref": nobody})
    assert r.status_code == 422
    assert r.json()["detail"] == "Unknown request"
    assert r.json()["errors"][0]["message"] == f"no request {nobody} on this node that you may see"


def test_the_draft_checks_warnings_are_said_in_the_readers_language_with_their_values(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    serves(vn, "au-24x7", "central_authority")
    r = draft(vn, fields={k: v for k, v in PRESERVATION.items() if k != "follow_up_mla_planned"})
    assert r.status_code == 201, r.text
    rid = r.json()["request"]["id"]
    english = {w["code"]: w["message"] for w in r.json()["check"]["warnings"]}
    assert english["wrong_channel"].startswith("art. 41: a request for expedited preservation of stored")
    assert english["no_follow_up"] == (
        "art. 42(7): no follow-up MLA request is planned yet; preservation lasts only until the period ends"
    )

    olaf = reading(vn, "olaf", "fr", "officer", "contact_point")
    page = olaf.get(f"/desk/requests/{rid}/edit/review").text
    text = text_of(page)
    assert (
        "une demande de type « Conservation rapide de données électroniques stockées » relève d'un point de "
        "contact 24/7 ; AU-24X7 (au-24x7) n'intervient qu'en tant qu'une autorité centrale" in text
    )
    assert "aucune demande d'entraide judiciaire faisant suite n'est encore prévue" in text
    assert "serves only as" not in page and "no follow-up MLA" not in page

    olaf.post("/desk/language", {"lang": "ar", "back": "/desk"})
    text = text_of(olaf.get(f"/desk/requests/{rid}/edit/review").text)
    assert "ولا تعمل AU-24X7 (au-24x7) إلا بصفة سلطة مركزية" in text
    assert "جهة اتصال متاحة على مدار الساعة" in text
    assert "serves only as" not in text

    # The stand-alone check a client calls says the same in English.
    body = {"type": "preservation", "counterpart": "au-24x7", "header": {}, "fields": {}}
    checked = vn.officer.post("/api/v1/requests/check", json=body).json()
    assert english["wrong_channel"] in [w["message"] for w in checked["warnings"]]


def test_the_evidence_forms_problems_are_said_in_the_readers_language(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    an = reading(vn, "an", "fr", "officer")
    an.get("/desk/evidence/new")
    form = {"case_ref": "", "title": "T" * 301, "use.until": "31/12/2027"}
    r = an.post("/desk/evidence/new", form)
    assert r.status_code == 422
    text = text_of(r.text)
    assert "case_ref : une valeur est requise" in text
    assert "title : nombre maximal de caractères : 300" in text
    assert "use.until : date non valide (AAAA-MM-JJ)" in text
    assert '<span lang="en"' not in r.text

    an.post("/desk/language", {"lang": "ar", "back": "/desk"})
    an.get("/desk/evidence/new")
    r = an.post("/desk/evidence/new", form)
    assert r.status_code == 422
    assert "case_ref: القيمة مطلوبة" in text_of(r.text) and '<span lang="en"' not in r.text


def test_why_a_character_cannot_be_kept_is_said_in_the_readers_language_and_kept_english_for_clients(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    kate = reading_in_french(au, rid)
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "AU\u200b-1"})
    assert r.status_code == 422
    assert (
        "Référence : contient un caractère invisible (U+200B) qui modifie la lecture du texte ou le fait "
        "ressembler à un autre ; supprimez-le" in text_of(r.text)
    )
    assert "holds an invisible character" not in r.text

    kate.post("/desk/language", {"lang": "ar", "back": "/desk"})
    kate.get(f"/desk/requests/{rid}")
    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "AU\u200b-1"})
    assert r.status_code == 422
    assert "المرجع: يحتوي على حرف غير مرئي (U+200B)" in text_of(r.text)
    assert "holds an invisible character" not in r.text

    r = act(au.ca, rid, "acknowledge", reference="AU\u200b-1")
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"].endswith(
        "Reference holds an invisible character (U+200B) that changes how it reads or makes it look like "
        "another; remove it"
    )
