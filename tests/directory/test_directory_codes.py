"""ISO 3166-1 and BCP 47 checks against the tables shipped in the package."""

from __future__ import annotations

import pytest

from cyberpact.directory import codes
from cyberpact.kit.errors import InvalidInput


def test_iso3166_table_is_complete_and_shipped() -> None:
    table = codes.countries()
    assert len(table) == 249
    assert table["VN"] == codes.Country("VN", "VNM", "Viet Nam")
    assert codes.country("pol") == table["PL"]
    assert codes.country("EU") is None  # only "exceptionally reserved", not assigned


@pytest.mark.parametrize("code", ["ZZ", "XK", "EU", "UK"])
def test_unassigned_country_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        codes.check_country(code, "code")
    assert err.value.problems[0].field == "code"


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [
        ("en", "en"),
        ("EN-gb", "en-GB"),
        ("vi", "vi"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("sr-Latn-RS", "sr-Latn-RS"),
        ("de-CH-1996", "de-CH-1996"),
        ("fil", "fil"),  # no ISO 639-1 code: the ISO 639-3 code is the subtag
        ("yue", "yue"),
        ("en-US-u-ca-gregory", "en-US-u-ca-gregory"),
        ("en-x-legal", "en-x-legal"),
        ("qaa", "qaa"),  # private-use range of ISO 639
    ],
)
def test_valid_language_tags_are_canonicalised(tag: str, canonical: str) -> None:
    assert codes.check_language_tag(tag, "languages[0]") == canonical


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("english", "ISO 639"),
        ("eng", "'en'"),  # BCP 47 uses the two-letter code where one exists
        ("fre", "ISO 639"),  # ISO 639-2/B codes are not BCP 47 subtags
        ("xx", "ISO 639"),
        ("en_GB", "well-formed"),
        ("en-", "well-formed"),
        ("e", "well-formed"),
        ("abcd", "well-formed"),
        ("x-private", "well-formed"),
        ("i-klingon", "well-formed"),
        ("de-1996-1996", "variant"),
        ("en-a-aaa-a-bbb", "singleton"),
        ("en-" + "a" * 70, "longer"),
    ],
)
def test_invalid_language_tags_name_the_field(tag: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        codes.check_language_tag(tag, "languages[1]")
    problem = err.value.problems[0]
    assert problem.field == "languages[1]"
    assert reason in problem.message
