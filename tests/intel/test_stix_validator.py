"""The focused validator against the OASIS ``stix2`` library's verdicts, and the fast pattern recogniser
against the OASIS pattern validator."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
import stix2
from hypothesis import given, settings
from hypothesis import strategies as st
from stix2patterns.validator import run_validator

from cyberpact.intel import patterns, stix
from intel.helpers import identity, indicator

U = "a4b7c9d2-1e3f-4a5b-8c6d-7e8f9a0b1c2d"


def _with(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


IND = indicator("192.0.2.1", oid=f"indicator--{U}")
MALWARE = {
    "type": "malware",
    "spec_version": "2.1",
    "id": f"malware--{U}",
    "created": "2024-01-01T00:00:00Z",
    "modified": "2024-01-01T00:00:00Z",
    "name": "Emotet",
    "is_family": True,
}
REL = {
    "type": "relationship",
    "spec_version": "2.1",
    "id": f"relationship--{U}",
    "created": "2024-01-01T00:00:00Z",
    "modified": "2024-01-01T00:00:00Z",
    "relationship_type": "indicates",
    "source_ref": IND["id"],
    "target_ref": MALWARE["id"],
}
REPORT = {
    "type": "report",
    "spec_version": "2.1",
    "id": f"report--{U}",
    "created": "2024-01-01T00:00:00Z",
    "modified": "2024-01-01T00:00:00Z",
    "name": "r",
    "published": "2024-01-01T00:00:00Z",
    "object_refs": [IND["id"]],
}
IPV4 = {"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{U}", "value": "192.0.2.1"}
FILE = {"type": "file", "spec_version": "2.1", "id": f"file--{U}", "hashes": {"SHA-256": "a" * 64}}
OBSERVED = {
    "type": "observed-data",
    "spec_version": "2.1",
    "id": f"observed-data--{U}",
    "created": "2024-01-01T00:00:00Z",
    "modified": "2024-01-01T00:00:00Z",
    "first_observed": "2024-01-01T00:00:00Z",
    "last_observed": "2024-01-02T00:00:00Z",
    "number_observed": 3,
    "object_refs": [IPV4["id"]],
}
SIGHTING = {
    "type": "sighting",
    "spec_version": "2.1",
    "id": f"sighting--{U}",
    "created": "2024-01-01T00:00:00Z",
    "modified": "2024-01-01T00:00:00Z",
    "sighting_of_ref": IND["id"],
    "count": 2,
}
LOCATION = {
    "type": "location",
    "spec_version": "2.1",
    "id": f"location--{U}",
    "created": "2024-01-01T00:00:00Z",
    "modified": "2024-01-01T00:00:00Z",
    "country": "VN",
}
MARKING = {
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": f"marking-definition--{U}",
    "created": "2024-01-01T00:00:00Z",
    "definition_type": "statement",
    "definition": {"statement": "Copyright 2024"},
}

# (label, object): verdicts must equal stix2.parse(allow_custom=True).
CORPUS: list[tuple[str, Any]] = [
    ("indicator", IND),
    ("identity", identity()),
    ("malware", MALWARE),
    ("relationship", REL),
    ("report", REPORT),
    ("ipv4 sco", IPV4),
    ("file sco", FILE),
    ("observed-data", OBSERVED),
    ("sighting", SIGHTING),
    ("location", LOCATION),
    ("marking statement", MARKING),
    ("custom property", _with(IND, x_acme_score=7)),
    ("no fraction", _with(IND, created="2024-05-01T10:00:00Z", modified="2024-05-01T10:00:00Z")),
    ("microseconds", _with(IND, modified="2024-05-01T10:00:00.123456Z")),
    ("uuid1 id", _with(IND, id=f"indicator--{uuid.uuid1()}")),
    ("upper-case uuid", _with(IND, id=f"indicator--{U.upper()}")),
    ("sigma pattern", _with(IND, pattern_type="sigma", pattern="title: x")),
    ("hash pattern", _with(IND, pattern=f"[file:hashes.'SHA-256' = '{'b' * 64}']")),
    (
        "compound pattern",
        _with(IND, pattern="[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'a.example']"),
    ),
    ("qualified pattern", _with(IND, pattern="[ipv4-addr:value = '1.2.3.4'] WITHIN 300 SECONDS")),
    (
        "granular marking",
        _with(IND, granular_markings=[{"selectors": ["name"], "marking_ref": MARKING["id"]}]),
    ),
    # refused
    ("not an object", ["indicator"]),
    ("no type", _with(IND, type=None)),
    ("id of another type", _with(IND, id=f"malware--{U}")),
    ("id not a uuid", _with(IND, id="indicator--1234")),
    ("id wrong variant", _with(IND, id="indicator--a4b7c9d2-1e3f-4a5b-0c6d-7e8f9a0b1c2d")),
    ("nil uuid", _with(IND, id="indicator--00000000-0000-0000-0000-000000000000")),
    ("offset timestamp", _with(IND, modified="2024-05-01T10:00:00+00:00")),
    ("nanoseconds", _with(IND, modified="2024-05-01T10:00:00.123456789Z")),
    ("month 13", _with(IND, modified="2024-13-01T10:00:00Z")),
    ("february 30", _with(IND, valid_from="2024-02-30T10:00:00Z")),
    ("no pattern", _with(IND, pattern=None)),
    ("bad pattern", _with(IND, pattern="[ipv4-addr:value = ]")),
    ("bad escape", _with(IND, pattern="[ipv4-addr:value = 'a\\nb']")),
    ("bad hash", _with(IND, pattern="[file:hashes.'SHA-256' = 'abc']")),
    ("valid_until before valid_from", _with(IND, valid_until="2024-01-01T00:00:00Z")),
    ("created_by_ref not identity", _with(IND, created_by_ref=f"indicator--{U}")),
    ("marking ref not marking", _with(IND, object_marking_refs=[f"identity--{U}"])),
    ("revoked not bool", _with(IND, revoked="yes")),
    ("external ref without source", _with(IND, external_references=[{"url": "https://example.org"}])),
    ("kill chain incomplete", _with(IND, kill_chain_phases=[{"kill_chain_name": "lockheed"}])),
    (
        "granular bad selector",
        _with(IND, granular_markings=[{"selectors": ["nope"], "marking_ref": MARKING["id"]}]),
    ),
    ("malware without is_family", _with(MALWARE, is_family=None)),
    ("report without refs", _with(REPORT, object_refs=None)),
    ("relationship without target", _with(REL, target_ref=None)),
    ("sco without value", _with(IPV4, value=None)),
    ("observed-data without count", _with(OBSERVED, number_observed=None)),
    ("sighting of nothing", _with(SIGHTING, sighting_of_ref=None)),
    ("stix 2.0 object", _with(IND, spec_version="2.0")),
    ("marking without definition", _with(MARKING, definition=None)),
]

# Where this validator follows a MUST of STIX 2.1 that stix2 does not enforce.
STRICTER = {
    # stix2 is also a producer library: it fills in a missing created or modified with the current time.
    "no created": _with(IND, created=None),
    "no modified": _with(IND, modified=None),
    "confidence over 100": _with(IND, confidence=101),
    "modified before created": _with(IND, modified="2024-01-01T00:00:00.000Z"),
    "property name with a hyphen": _with(IND, **{"x-acme": 1}),
    "stix 2.0 object without spec_version": _with(IND, spec_version=None),
}


def _stix2_ok(obj: Any) -> bool:
    try:
        stix2.parse(obj, allow_custom=True, version="2.1")
    except Exception:  # any refusal of the reference library counts as "invalid"
        return False
    return True


def _ours_ok(obj: Any) -> bool:
    try:
        stix.check(obj)
    except stix.InvalidObject:
        return False
    return True


@pytest.mark.parametrize(("label", "obj"), CORPUS, ids=[c[0] for c in CORPUS])
def test_verdict_equals_stix2(label: str, obj: Any) -> None:
    assert _ours_ok(obj) == _stix2_ok(obj), label


@pytest.mark.parametrize("label", sorted(STRICTER))
def test_stricter_than_stix2_where_the_spec_says_must(label: str) -> None:
    assert not _ours_ok(STRICTER[label])


def test_reasons_name_the_property() -> None:
    with pytest.raises(stix.InvalidObject) as exc:
        stix.check(_with(IND, valid_until="2024-01-01T00:00:00Z"))
    assert exc.value.field == "valid_until" and "later than valid_from" in exc.value.reason


PATTERNS = [
    "[ipv4-addr:value = '198.51.100.7']",
    "[domain-name:value = 'example.org' OR domain-name:value = 'example.net']",
    "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e' AND file:name = 'a.exe']",
    "[url:value LIKE 'http://%.example/']",
    "[network-traffic:dst_port = 443]",
    "[x-custom:prop[0].inner = 'x\\'y']",
    "[file:hashes.'SHA-1' = 'zz']",
    "[a:b = 01]",
    "[a:b = 'x'",
    "[a:and = 'x']",
    "[a:b = 'x']  AND  [c:d != 'y']",
    "[a:b\u00a0= 'x']",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_fast_path_never_accepts_what_oasis_refuses(pattern: str) -> None:
    oasis_ok = not run_validator(pattern, stix_version="2.1")
    if patterns.fast_parse(pattern) is not None:
        assert oasis_ok, pattern
    assert (patterns.validate(pattern) is None) == oasis_ok


_ident = st.sampled_from(["value", "name", "hashes", "src_ref", "and", "x_y", "1a", "B", "_p", "dst_port"])
_type = st.sampled_from(["ipv4-addr", "file", "a", "x-custom", "a--b", "-x", "Foo", "in"])
_step = st.one_of(
    st.builds(lambda i: f".{i}", _ident),
    st.sampled_from(["[0]", "[*]", "[01]", "[-1]", ".'SHA-256'", ".'a b'", ".MD5", ".'SHA-1'"]),
)
_literal = st.one_of(
    st.sampled_from(
        [
            "'x'",
            "'it\\'s'",
            "'a\\\\b'",
            "'bad\\n'",
            "1",
            "-0",
            "01",
            "+7",
            "1.5",
            "true",
            "'d41d8cd98f00b204e9800998ecf8427e'",
            "''",
            "'zz'",
        ]
    ),
    st.builds(lambda s: "'" + s.replace("\\", "").replace("'", "") + "'", st.text(max_size=5)),
)
_op = st.sampled_from(["=", "!=", "<", ">=", "LIKE", "MATCHES", "IN", "==", "NOT ="])
_ws = st.sampled_from(["", " ", "  ", "\t", "\n", "\u00a0", "\u2003"])
_cmp = st.builds(
    lambda t, i, steps, w1, op, w2, lit: f"{t}:{i}{''.join(steps)}{w1}{op}{w2}{lit}",
    _type,
    _ident,
    st.lists(_step, max_size=3),
    _ws,
    _op,
    _ws,
    _literal,
)
_obs = st.builds(
    lambda cs, j, w: "[" + w + f" {j} ".join(cs) + w + "]",
    st.lists(_cmp, min_size=1, max_size=3),
    st.sampled_from(["AND", "OR", "and", "FOLLOWEDBY"]),
    _ws,
)
_pattern = st.builds(
    lambda os, j: f" {j} ".join(os),
    st.lists(_obs, min_size=1, max_size=2),
    st.sampled_from(["AND", "OR", "FOLLOWEDBY"]),
)


@settings(max_examples=300, deadline=None)
@given(_pattern)
def test_fast_path_is_a_subset_of_the_grammar(pattern: str) -> None:
    if patterns.fast_parse(pattern) is not None:
        assert not run_validator(pattern, stix_version="2.1"), pattern


def test_equality_observables() -> None:
    found = patterns.equality_observables(
        "[ipv4-addr:value = '203.0.113.9' OR file:hashes.'SHA-256' = '"
        + "c" * 64
        + "'] AND [url:value LIKE 'x%']"
    )
    assert found == [("ipv4-addr:value", "203.0.113.9"), ("file:hashes.SHA-256", "c" * 64)]
