"""What a person in a browser gets when the desk cannot show what was asked: the desk's own page in their
language (headline and advice translated, the service's technical detail beneath in English), never the
API's problem details; and the citations of the forms in their language when they are words."""

from __future__ import annotations

import httpx
import pytest

from cases.conftest import Side, act, draft
from conftest import LiveNode

from .helpers import person, text_of

MISSING = "00000000-0000-0000-0000-000000000000"


def _is_desk_page(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]
    assert "Content-Security-Policy" in r.headers and r.headers.get("X-Content-Type-Options") == "nosniff"
    assert r.text.lstrip().startswith("<!doctype html>") or "<html" in r.text


@pytest.mark.parametrize("path", ["/desk/nonexistent", "/desk/requests/x/y/z", "/desk/static/nothing.css"])
def test_an_unknown_desk_address_is_the_desks_page_in_the_persons_language(node: LiveNode, path: str) -> None:
    lan = person(node, "lan", "officer")
    lan.get("/desk")
    assert lan.post("/desk/language", {"lang": "ar", "back": "/desk"}).status_code == 303
    r = lan.get(path)
    assert r.status_code == 404
    _is_desk_page(r)
    assert '<html lang="ar" dir="rtl">' in r.text
    text = text_of(r.text)
    assert "غير موجود" in text  # Not found
    assert "لا يوجد شيء هنا، أو أنه غير ظاهر لك." in text
    assert 'href="/desk/inbox"' in r.text  # signed in: the navigation is there to go on from
    assert "problem+json" not in r.headers["content-type"]


def test_signed_out_visitors_get_the_page_in_their_browsers_language(node: LiveNode) -> None:
    r = httpx.get(f"{node.url}/desk/nonexistent", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert r.status_code == 404
    _is_desk_page(r)
    assert '<html lang="fr"' in r.text and "Introuvable" in text_of(r.text)
    assert 'href="/desk/inbox"' not in r.text  # no navigation for someone not signed in


def test_a_method_a_desk_page_does_not_take_is_a_translated_page_with_allow(node: LiveNode) -> None:
    kim = person(node, "kim", "officer")
    kim.get("/desk")
    kim.post("/desk/language", {"lang": "es", "back": "/desk"})
    r = kim.client.delete("/desk/inbox")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    _is_desk_page(r)
    text = text_of(r.text)
    assert "Esta página no se puede usar de esta manera" in text
    assert "<title>Esta página no se puede usar de esta manera" in r.text


def test_a_missing_request_keeps_the_english_detail_beneath_a_translated_headline(node: LiveNode) -> None:
    lan = person(node, "lan", "officer")
    lan.get("/desk")
    lan.post("/desk/language", {"lang": "ar", "back": "/desk"})
    r = lan.get(f"/desk/requests/{MISSING}")
    assert r.status_code == 404
    assert "<title>غير موجود" in r.text and "غير موجود" in text_of(r.text)
    # The service's words are technical, in English, and marked so (screen readers, right-to-left layout).
    assert f'<p lang="en" dir="ltr">No request {MISSING}' in r.text


def test_other_parts_keep_their_own_error_formats(node: LiveNode) -> None:
    r = httpx.get(f"{node.url}/api/v1/nonexistent")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = httpx.get(f"{node.url}/taxii2/nonexistent/")
    assert r.headers["content-type"].startswith("application/taxii+json")
    r = httpx.get(f"{node.url}/desktop")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


def test_the_four_eyes_citation_is_translated_on_approvals(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    assert act(vn.officer, rid, "submit").status_code == 200
    binh = person(vn.node, "binh", "supervisor")
    assert "four-eyes review" in binh.get("/desk/approvals").text
    for lang, words in {
        "fr": "double contrôle",
        "es": "doble control",
        "ru": "проверка по принципу «четырёх глаз»",
        "ar": "مراجعة وفق مبدأ العينين الأربع",
        "zh": "双人复核",
        "vi": "kiểm soát hai người",
    }.items():
        binh.post("/desk/language", {"lang": lang, "back": "/desk"})
        page = binh.get("/desk/approvals").text
        assert f'<span class="cite">{words}</span>' in page, lang
        assert "four-eyes review" not in page, lang
    # An article stays as written in every language: a reader looks it up in the convention.
    binh.post("/desk/language", {"lang": "fr", "back": "/desk"})
    page = binh.get(f"/desk/requests/{rid}").text
    assert "art. 42(2)" in page or "art. 42" in page
