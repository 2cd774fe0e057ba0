"""Country codes (ISO 3166-1) and language tags (BCP 47, RFC 5646), checked against tables shipped in
``data/``.

The tables are copies, not downloads: a node must validate the same way offline and must not read
anything outside its own package at run time. ``iso3166.csv`` (code2, code3, English short name) and
``iso639.csv`` (ISO 639-3 code, ISO 639-1 code where one exists, reference name) were generated from the
Debian ``iso-codes`` 4.15.0 package; refresh them from a newer release when ISO changes a code.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cyberpact.kit.errors import InvalidInput, Problem


@dataclass(frozen=True)
class Country:
    code2: str
    code3: str
    name: str


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("cyberpact.directory").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def countries() -> dict[str, Country]:
    """ISO 3166-1 officially assigned codes, keyed by alpha-2."""
    return {r["code2"]: Country(r["code2"], r["code3"], r["name"]) for r in _rows("iso3166.csv")}


@cache
def _alpha3_index() -> dict[str, Country]:
    return {c.code3: c for c in countries().values()}


def country(code: str) -> Country | None:
    """The country with this alpha-2 or alpha-3 code, or None."""
    code = code.upper()
    return countries().get(code) if len(code) == 2 else _alpha3_index().get(code)


def check_country(code: str, field: str) -> Country:
    found = countries().get(code)
    if found is None:
        raise InvalidInput(
            "Unknown country code", [Problem(field, f"{code!r} is not an ISO 3166-1 alpha-2 country code")]
        )
    return found


@cache
def _languages() -> tuple[frozenset[str], dict[str, str]]:
    """(valid primary subtags, ISO 639-3 code -> the ISO 639-1 code that must be used instead)."""
    valid: set[str] = set()
    prefer: dict[str, str] = {}
    for r in _rows("iso639.csv"):
        if r["code2"]:
            # BCP 47 takes the two-letter code where ISO 639-1 has one; the three-letter form of the
            # same language is not a valid primary subtag (RFC 5646 section 2.2.1).
            valid.add(r["code2"])
            prefer[r["code3"]] = r["code2"]
        else:
            valid.add(r["code3"])
    return frozenset(valid), prefer


# RFC 5646 section 2.1 "langtag" production (grandfathered and private-use-only tags are left out on
# purpose: an authority's working language must be a real language).
_ALNUM = "[a-z0-9]"
_LANGTAG = re.compile(
    rf"""^(?P<language>[a-z]{{2,3}}(?:-[a-z]{{3}}){{0,3}}|[a-z]{{5,8}})
    (?:-(?P<script>[a-z]{{4}}))?
    (?:-(?P<region>[a-z]{{2}}|[0-9]{{3}}))?
    (?P<variants>(?:-(?:{_ALNUM}{{5,8}}|[0-9]{_ALNUM}{{3}}))*)
    (?P<extensions>(?:-[0-9a-wyz](?:-{_ALNUM}{{2,8}})+)*)
    (?:-x(?:-{_ALNUM}{{1,8}})+)?$""",
    re.VERBOSE,
)
MAX_TAG = 64


def _canonical_case(tag: str) -> str:
    """RFC 5646 section 2.1.1: language lower, script title, region upper, everything else lower."""
    out: list[str] = []
    after_singleton = False
    for i, sub in enumerate(tag.split("-")):
        if i > 0 and not after_singleton and len(sub) == 4 and sub.isalpha():
            out.append(sub.title())
        elif i > 0 and not after_singleton and len(sub) == 2:
            out.append(sub.upper())
        else:
            out.append(sub)
        after_singleton = after_singleton or len(sub) == 1
    return "-".join(out)


def check_language_tag(tag: str, field: str) -> str:
    """Validate a BCP 47 language tag and return it in canonical case."""

    def bad(message: str) -> InvalidInput:
        return InvalidInput("Invalid language tag", [Problem(field, f"{tag!r}: {message}")])

    if len(tag) > MAX_TAG:
        raise bad(f"longer than {MAX_TAG} characters")
    low = tag.lower()
    match = _LANGTAG.match(low)
    if match is None:
        raise bad("not a well-formed BCP 47 (RFC 5646) language tag")
    primary, *extlangs = match["language"].split("-")
    valid, prefer = _languages()
    for code in (primary, *extlangs):
        if code in prefer:
            raise bad(f"use the ISO 639-1 code {prefer[code]!r} instead of {code!r}")
        # qaa..qtz is reserved for private use by ISO 639 and so by BCP 47.
        if code not in valid and not ("qaa" <= code <= "qtz"):
            raise bad(f"{code!r} is not an ISO 639-1 or ISO 639-3 language code")
    variants = [v for v in match["variants"].split("-") if v]
    if len(variants) != len(set(variants)):
        raise bad("a variant subtag is repeated")
    singletons = [s for s in match["extensions"].split("-") if len(s) == 1]
    if len(singletons) != len(set(singletons)):
        raise bad("an extension singleton is repeated")
    return _canonical_case(low)


def primary_subtag(tag: str) -> str:
    return tag.split("-", 1)[0].lower()
