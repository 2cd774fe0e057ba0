"""Bad input to the directory API: a clear 4xx naming the field, and nothing stored or changed."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from directory_support import API, SAMPLE_AUTHORITY, fields, snapshot
from sqlalchemy import select

from conftest import LiveNode
from cyberpact.accounts import service as accounts
from cyberpact.accounts.models import User
from cyberpact.kit.actor import SYSTEM

PL_TREATY = {"signature_date": "2025-10-25", "source": "test", "as_of": "2026-01-01"}


def check_refused(
    node: LiveNode, client: httpx.Client, cases: list[tuple[str, str, str, Any, int, str]]
) -> None:
    """Each case: (label, method, path, JSON body or raw bytes, expected status, expected first field)."""
    before = snapshot(node)
    for label, method, path, body, status, field in cases:
        kwargs = (
            {"content": body, "headers": {"Content-Type": "application/json"}}
            if isinstance(body, bytes)
            else {"json": body}
        )
        r = client.request(method, path, **kwargs)
        assert r.status_code == status, f"{label}: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith("application/problem+json"), label
        if field:
            assert fields(r) and fields(r)[0] == field, f"{label}: {r.text}"
        assert snapshot(node) == before, f"{label}: something was stored"


def test_bad_party_input(node: LiveNode, admin: httpx.Client) -> None:
    p = f"{API}/parties"
    check_refused(
        node,
        admin,
        [
            ("malformed JSON", "POST", p, b'{"code": "DE"', 400, ""),
            ("unknown field", "POST", p, {"code": "DE", "capital": "Berlin"}, 422, "capital"),
            ("wrong type", "POST", p, {"code": 49}, 422, "code"),
            ("wrong type (list)", "POST", p, {"code": "XO", "members": "FR"}, 422, "members"),
            ("over-long name", "POST", p, {"code": "DE", "name": "x" * 201}, 422, "name"),
            ("lowercase code", "POST", p, {"code": "de"}, 422, "code"),
            ("unassigned code", "POST", p, {"code": "ZZ"}, 422, "code"),
            ("wrong alpha-3", "POST", p, {"code": "DE", "code3": "GER"}, 422, "code3"),
            (
                "organization shadowing a country",
                "POST",
                p,
                {
                    "code": "AU",
                    "code3": "AUN",
                    "name": "African Union",
                    "kind": "regional_economic_integration_organization",
                    "members": ["ZA"],
                },
                422,
                "code",
            ),
            (
                "organization without members",
                "POST",
                p,
                {
                    "code": "XO",
                    "code3": "XOR",
                    "name": "X",
                    "kind": "regional_economic_integration_organization",
                },
                422,
                "members",
            ),
            (
                "member not a country",
                "POST",
                p,
                {
                    "code": "XO",
                    "code3": "XOR",
                    "name": "X",
                    "kind": "regional_economic_integration_organization",
                    "members": ["FR", "ZZ"],
                },
                422,
                "members.1",
            ),
            ("existing party", "POST", p, {"code": "PL"}, 409, "code"),
            ("state with members", "PATCH", f"{p}/PL", {"members": ["DE"]}, 422, "members"),
            ("kind is not updatable", "PATCH", f"{p}/PL", {"kind": "state"}, 422, "kind"),
            ("update of an unknown party", "PATCH", f"{p}/DE", {"name": "Germany"}, 404, ""),
        ],
    )


def test_bad_authority_input(node: LiveNode, admin: httpx.Client) -> None:
    p = f"{API}/authorities"
    a = SAMPLE_AUTHORITY
    vn = admin.get(p, params={"country": "VN"}).json()["items"][0]
    check_refused(
        node,
        admin,
        [
            ("malformed JSON", "POST", p, b"{not json", 400, ""),
            ("unknown field", "POST", p, {**a, "fax": "+48 1"}, 422, "fax"),
            ("wrong type", "POST", p, {**a, "interpol_allowed": "perhaps"}, 422, "interpol_allowed"),
            ("wrong type (languages)", "POST", p, {**a, "languages": "pl"}, 422, "languages"),
            ("over-long name", "POST", p, {**a, "name": "n" * 301}, 422, "name"),
            (
                "over-long requirements",
                "POST",
                p,
                {**a, "legal_requirements": "r" * 4001},
                422,
                "legal_requirements",
            ),
            ("missing source", "POST", p, {k: v for k, v in a.items() if k != "source"}, 422, "source"),
            ("invalid country code", "POST", p, {**a, "party": "ZZ"}, 422, "party"),
            ("country not in the directory", "POST", p, {**a, "party": "DE"}, 422, "party"),
            ("invalid language tag", "POST", p, {**a, "languages": ["pl", "polish"]}, 422, "languages.1"),
            (
                "three-letter code where ISO 639-1 has two",
                "POST",
                p,
                {**a, "languages": ["pol"]},
                422,
                "languages.0",
            ),
            ("unknown time zone", "POST", p, {**a, "timezone": "Europe/Warsw"}, 422, "timezone"),
            ("unknown channel", "POST", p, {**a, "channels": ["pigeon"]}, 422, "channels.0"),
            (
                "bad office hours",
                "POST",
                p,
                {**a, "office_hours": [{"days": ["mon"], "opens": "17:00", "closes": "09:00"}]},
                422,
                "office_hours.0.closes",
            ),
            (
                "bad clock",
                "POST",
                p,
                {**a, "office_hours": [{"days": ["mon"], "opens": "9", "closes": "17:00"}]},
                422,
                "office_hours.0.opens",
            ),
            (
                "24/7 point not always open",
                "POST",
                p,
                {**a, "kind": "contact_point_24_7", "always_open": False, "office_hours": []},
                422,
                "always_open",
            ),
            (
                "INTERPOL channel without INTERPOL",
                "POST",
                p,
                {**a, "channels": ["interpol"]},
                422,
                "interpol_allowed",
            ),
            (
                "duplicate authority",
                "POST",
                p,
                {
                    **a,
                    "party": "VN",
                    "kind": "contact_point_24_7",
                    "name": vn["name"].upper(),
                    "office_hours": [],
                },
                409,
                "name",
            ),
            (
                "update: invalid language",
                "PATCH",
                f"{p}/{vn['id']}",
                {"languages": ["vi", "x"]},
                422,
                "languages.1",
            ),
            (
                "update: unknown time zone",
                "PATCH",
                f"{p}/{vn['id']}",
                {"timezone": "Asia/Saigon City"},
                422,
                "timezone",
            ),
            ("update: clear a required field", "PATCH", f"{p}/{vn['id']}", {"source": None}, 422, "source"),
            ("update: unknown field", "PATCH", f"{p}/{vn['id']}", {"party": "PL"}, 422, "party"),
            ("update: not a UUID", "PATCH", f"{p}/nope", {"name": "x"}, 422, "authority_id"),
        ],
    )


def test_bad_treaty_input(node: LiveNode, admin: httpx.Client) -> None:
    p = f"{API}/parties/PL/treaty"
    t = PL_TREATY
    check_refused(
        node,
        admin,
        [
            ("malformed JSON", "PUT", p, b'{"source": ', 400, ""),
            ("unknown field", "PUT", p, {**t, "ratified": True}, 422, "ratified"),
            ("wrong type", "PUT", p, {**t, "signature_date": 20251025}, 422, "signature_date"),
            ("not a date", "PUT", p, {**t, "signature_date": "25 October 2025"}, 422, "signature_date"),
            ("over-long source", "PUT", p, {**t, "source": "s" * 501}, 422, "source"),
            (
                "ratification before signature",
                "PUT",
                p,
                {**t, "instrument_type": "ratification", "instrument_date": "2025-10-24"},
                422,
                "instrument_date",
            ),
            (
                "ratification without signature",
                "PUT",
                p,
                {
                    **t,
                    "signature_date": None,
                    "instrument_type": "ratification",
                    "instrument_date": "2026-01-01",
                },
                422,
                "signature_date",
            ),
            (
                "instrument without a date",
                "PUT",
                p,
                {**t, "instrument_type": "approval"},
                422,
                "instrument_date",
            ),
            (
                "signature before the convention opened",
                "PUT",
                p,
                {**t, "signature_date": "2024-12-24"},
                422,
                "signature_date",
            ),
            (
                "unknown instrument",
                "PUT",
                p,
                {**t, "instrument_type": "treaty", "instrument_date": "2026-01-01"},
                422,
                "instrument_type",
            ),
            (
                "bad article",
                "PUT",
                p,
                {**t, "reservations": [{"article": "forty", "text": "x"}]},
                422,
                "reservations.0.article",
            ),
            ("unknown party", "PUT", f"{API}/parties/DE/treaty", t, 404, ""),
        ],
    )


def test_a_treaty_act_still_to_come_is_refused_and_never_counted(node: LiveNode, admin: httpx.Client) -> None:
    """Art. 65 counts instruments deposited: one dated after the source's own date, or after today (a day
    of leeway for the zones), is refused at its field, and the count of the convention does not move."""
    today = date.today()
    tomorrow, later = today + timedelta(days=1), today + timedelta(days=3)
    p = f"{API}/parties/AU/treaty"
    sig = "2025-10-25"
    ratified = {"signature_date": sig, "instrument_type": "ratification", "source": "test"}
    check_refused(
        node,
        admin,
        [
            (
                "as reported by the tester",
                "PUT",
                p,
                {**ratified, "instrument_date": "2027-01-01", "as_of": "2026-11-30"},
                422,
                "instrument_date",
            ),
            (
                "deposit after the source's date",
                "PUT",
                p,
                {**ratified, "instrument_date": "2026-06-02", "as_of": "2026-06-01"},
                422,
                "instrument_date",
            ),
            (
                "deposit and source both still to come",
                "PUT",
                p,
                {**ratified, "instrument_date": str(later), "as_of": str(later)},
                422,
                "instrument_date",
            ),
            (
                "far future",
                "PUT",
                p,
                {**ratified, "instrument_date": "9999-12-31", "as_of": "9999-12-31"},
                422,
                "instrument_date",
            ),
            (
                "signature after the source's date",
                "PUT",
                p,
                {"signature_date": "2026-01-02", "source": "test", "as_of": "2026-01-01"},
                422,
                "signature_date",
            ),
            (
                "accession still to come",
                "PUT",
                p,
                {
                    "instrument_type": "accession",
                    "instrument_date": str(later),
                    "source": "test",
                    "as_of": str(today),
                },
                422,
                "instrument_date",
            ),
            (
                "source still to come",
                "PUT",
                p,
                {"signature_date": sig, "source": "t", "as_of": str(later)},
                422,
                "as_of",
            ),
        ],
    )
    reader = node.client(node.user("reader", "officer"))
    assert reader.get(f"{API}/convention").json()["instruments_counted"] == 0
    r = admin.put(p, json={**ratified, "instrument_date": "2027-01-01", "as_of": "2026-11-30"})
    assert (
        "after the date the source was true" in r.json()["errors"][0]["message"] or "still to come" in r.text
    )
    # Deposited today where the administrator is, a day ahead of the node's clock: taken, and counted.
    r = admin.put(p, json={**ratified, "instrument_date": str(tomorrow), "as_of": str(tomorrow)})
    assert r.status_code == 200, r.text
    assert r.json()["counted"] is True
    assert reader.get(f"{API}/convention").json()["instruments_counted"] == 1


def test_authentication_and_roles(node: LiveNode, admin: httpx.Client) -> None:
    officer = node.user("officer", "officer", "central_authority")
    with node.db.transaction() as s:
        user = s.scalar(select(User).where(User.username == "officer"))
        assert user is not None
        _, expired = accounts.issue_token(s, SYSTEM, user, "old", timedelta(seconds=-1))
        revoked_row, revoked = accounts.issue_token(s, SYSTEM, user, "gone", timedelta(days=1))
        accounts.revoke_token(s, SYSTEM, revoked_row.id)
    writes = [
        ("POST", f"{API}/parties", {"code": "DE"}),
        ("PATCH", f"{API}/parties/PL", {"name": "Poland!"}),
        ("PUT", f"{API}/parties/PL/treaty", PL_TREATY),
        ("POST", f"{API}/authorities", SAMPLE_AUTHORITY),
    ]
    vn = admin.get(f"{API}/authorities", params={"country": "VN"}).json()["items"][0]["id"]
    writes += [
        ("PATCH", f"{API}/authorities/{vn}", {"name": "x"}),
        ("DELETE", f"{API}/authorities/{vn}", None),
    ]
    reads = [
        f"{API}/parties",
        f"{API}/parties/PL",
        f"{API}/parties/PL/treaty",
        f"{API}/authorities",
        f"{API}/authorities/{vn}",
        f"{API}/convention",
    ]
    before = snapshot(node)
    for token, status in (
        (None, 401),
        ("cpt_not-a-real-token", 401),
        (expired, 401),
        (revoked, 401),
        (officer, 403),
    ):
        client = node.client(token)
        for method, path, body in writes:
            r = client.request(method, path, json=body)
            assert r.status_code == status, f"{method} {path} with {token!r}: {r.text}"
        if status == 401:
            for path in reads:
                assert client.get(path).status_code == 401, path
    assert snapshot(node) == before
    reader = node.client(officer)
    assert all(reader.get(path).status_code == 200 for path in reads)
