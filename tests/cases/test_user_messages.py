"""What people read when something is missing or wrong: plain English, the citation whole, labels rather
than internal keys, and a detail that says what the field's own message says."""

from __future__ import annotations

import re

import pytest

from conftest import LiveNode
from cyberpact.catalog.schemas import FieldDef
from cyberpact.catalog.service import load

# "give the our reference", "the the person", "give the how it could…": an article before a word that
# already determines the noun, or before a clause.
_GARBLED = re.compile(
    r"\b(?:the|a|an) (?:the|a|an|our|your|their|its|this|how|why|what|which|whether|is|are)\b", re.I
)
_DOUBLED = re.compile(r"\b(\w+) \1\b", re.I)


def _all_fields() -> list[tuple[str, FieldDef]]:
    catalog = load()
    found = [("header", f) for f in catalog.head.header]
    found += [(rt.id, f) for rt in catalog.types.values() for f in rt.fields]
    found += [(name, f) for name, a in catalog.lifecycle.actions.items() for f in a.fields]
    return found


@pytest.mark.parametrize(("where", "field"), _all_fields(), ids=lambda v: getattr(v, "name", v))
def test_every_prompt_reads_as_english(where: str, field: FieldDef) -> None:
    prompt = field.prompt
    assert not _GARBLED.search(prompt), f"{where}.{field.name}: {prompt!r}"
    assert not _DOUBLED.search(prompt), f"{where}.{field.name}: {prompt!r}"


def test_a_label_with_its_own_determiner_or_acronym_is_kept() -> None:
    def prompt(label: str) -> str:
        return FieldDef(name="x", label=label, type="text", cite="art. 1").prompt

    assert prompt("Our reference") == "give our reference"
    assert prompt("Request status") == "give the request status"
    assert prompt("IP addresses") == "give the IP addresses"


def test_an_empty_header_is_asked_for_in_plain_words(node: LiveNode) -> None:
    officer = node.client(node.user("an", "officer"))
    r = officer.post("/api/v1/requests/check", json={"type": "preservation", "header": {}, "fields": {}})
    assert r.status_code == 200, r.text
    errors = r.json()["errors"]
    header = [e for e in errors if e["field"].startswith("header.")]
    assert len(header) >= 5
    for e in errors:
        assert "the our" not in e["message"] and not _GARBLED.search(e["message"]), e
        assert not _DOUBLED.search(e["message"]), e
    mine = next(e for e in header if e["field"] == "header.our_reference")
    assert mine["message"] == "T-CY template: reference or case number: give our reference"


def test_the_detail_of_an_invalid_body_agrees_with_its_field(node: LiveNode) -> None:
    client = node.client()
    r = client.post("/api/v1/auth/token", json={"username": "an"})
    assert r.status_code == 422
    body = r.json()
    [only] = body["errors"]
    assert only["field"] == "password" and only["message"] == "Field required"
    assert body["detail"] == "password: Field required"
    r = client.post("/api/v1/auth/token", json={"hours": "many"})
    body = r.json()
    first = body["errors"][0]
    assert body["detail"] == f"{first['field']}: {first['message']} (and {len(body['errors']) - 1} more)"
    assert "Invalid value for" not in r.text
