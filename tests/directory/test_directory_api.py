"""The directory REST API on a live node (seeded with the shipped signatories at start-up)."""

from __future__ import annotations

from typing import Any

import httpx
from directory_support import API, SAMPLE_AUTHORITY, all_pages, fields
from sqlalchemy import event, select

from conftest import LiveNode
from cyberpact.audit.models import AuditRecord


def test_parties_list_filters_and_pages(node: LiveNode, admin: httpx.Client) -> None:
    reader = node.client(node.user("reader", "officer"))
    pages = all_pages(reader, f"{API}/parties", limit=7)
    codes = [p["code"] for p in pages]
    assert len(codes) == 71 and codes == sorted(set(codes))
    vn = next(p for p in pages if p["code"] == "VN")
    assert vn == {
        "code": "VN",
        "code3": "VNM",
        "name": "Viet Nam",
        "kind": "state",
        "members": [],
        "signature_date": "2025-10-25",
        "instrument_type": None,
        "instrument_date": None,
    }

    def listed(**params: Any) -> list[str]:
        return [p["code"] for p in all_pages(reader, f"{API}/parties", **params)]

    assert listed(kind="regional_economic_integration_organization") == ["EU"]
    assert listed(country="VN") == listed(country="vnm") == ["VN"]
    assert listed(country="EUE") == ["EU"]
    assert listed(language="vi") == ["VN"]
    assert listed(language="en") == ["AU", "PL", "VN"]
    assert listed(language="en-GB") == []
    assert len(listed(signed=True)) == 71 and listed(signed=False) == []
    assert listed(ratified=True) == []
    r = admin.put(
        f"{API}/parties/PL/treaty",
        json={
            "signature_date": "2025-10-25",
            "instrument_type": "ratification",
            "instrument_date": "2026-03-02",
            "source": "test",
            "as_of": "2026-03-03",
        },
    )
    assert r.status_code == 200, r.text
    assert listed(ratified=True) == ["PL"]
    assert listed(ratified=True, language="pl") == ["PL"]
    assert len(listed(ratified=False)) == 70
    assert reader.get(f"{API}/parties/PL").json()["instrument_date"] == "2026-03-02"


def test_authorities_list_filters_and_pages(node: LiveNode) -> None:
    reader = node.client(node.user("reader", "officer"))
    items = all_pages(reader, f"{API}/authorities", limit=1)
    assert [(a["party"], a["kind"]) for a in items] == [
        ("AU", "central_authority"),
        ("AU", "contact_point_24_7"),
        ("PL", "central_authority"),
        ("VN", "contact_point_24_7"),
    ]
    vn = items[3]
    assert vn["timezone"] == "Asia/Ho_Chi_Minh" and vn["languages"] == ["vi", "en"]
    assert vn["always_open"] is True and vn["open_now"] is True and vn["office_hours"] == []
    assert vn["source"] == "illustrative seed, replace with notified authorities"
    assert items[2]["open_now"] in (True, False)  # Warsaw office hours: depends on the clock

    def listed(**params: Any) -> list[tuple[str, str]]:
        return [(a["party"], a["kind"]) for a in all_pages(reader, f"{API}/authorities", **params)]

    assert listed(kind="contact_point_24_7") == [("AU", "contact_point_24_7"), ("VN", "contact_point_24_7")]
    assert listed(country="AUS") == [("AU", "central_authority"), ("AU", "contact_point_24_7")]
    assert listed(language="pl") == [("PL", "central_authority")]
    assert listed(language="vi", kind="central_authority") == []
    assert len(listed(signed=True)) == 4 and listed(ratified=True) == []


def test_list_parameters_are_checked(node: LiveNode) -> None:
    reader = node.client(node.user("reader", "officer"))
    for path in ("parties", "authorities"):
        r = reader.get(f"{API}/{path}", params={"limit": 501})
        assert r.status_code == 422 and fields(r) == ["limit"], r.text
        r = reader.get(f"{API}/{path}", params={"cursor": "bm90LWEtY3Vyc29y"})
        assert r.status_code == 422 and fields(r) == ["cursor"], r.text
        r = reader.get(f"{API}/{path}", params={"language": "english"})
        assert r.status_code == 422 and fields(r) == ["language"], r.text
        r = reader.get(f"{API}/{path}", params={"country": "V1"})
        assert r.status_code == 422 and fields(r) == ["country"], r.text
        r = reader.get(f"{API}/{path}", params={"kind": "embassy"})
        assert r.status_code == 422 and fields(r) == ["kind"], r.text
    # A cursor from one listing is refused by the other.
    nxt = reader.get(f"{API}/parties", params={"limit": 1}).json()["next"]
    r = reader.get(f"{API}/authorities", params={"cursor": nxt})
    assert r.status_code == 422 and fields(r) == ["cursor"]


def test_list_pages_cost_the_same_queries_whatever_their_size(node: LiveNode) -> None:
    reader = node.client(node.user("reader", "officer"))
    engine = node.server.config.app.state.db.engine
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        costs = {}
        for path in ("parties", "authorities"):
            for limit in (1, 100):
                reader.get(f"{API}/{path}", params={"limit": 1})  # warm: token touch, caches
                statements.clear()
                assert reader.get(f"{API}/{path}", params={"limit": limit}).status_code == 200
                costs[path, limit] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert costs["parties", 1] == costs["parties", 100]
    assert costs["authorities", 1] == costs["authorities", 100]
    # Authentication costs what it costs; the listing itself is one query (parties) or two.
    assert costs["authorities", 100] - costs["parties", 100] == 1


def test_party_create_and_update(node: LiveNode, admin: httpx.Client) -> None:
    r = admin.post(f"{API}/parties", json={"code": "DE"})
    assert r.status_code == 201, r.text
    assert r.json() == {
        "code": "DE",
        "code3": "DEU",
        "name": "Germany",
        "kind": "state",
        "members": [],
        "signature_date": None,
        "instrument_type": None,
        "instrument_date": None,
    }
    assert admin.get(f"{API}/parties/deu").json()["code"] == "DE"
    r = admin.patch(f"{API}/parties/DE", json={"name": "Federal Republic of Germany"})
    assert r.status_code == 200 and r.json()["name"] == "Federal Republic of Germany"
    r = admin.post(
        f"{API}/parties",
        json={
            "code": "XO",
            "code3": "XOR",
            "name": "Example Organization",
            "kind": "regional_economic_integration_organization",
            "members": ["FR", "DE", "AT"],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["members"] == ["AT", "DE", "FR"]
    r = admin.patch(f"{API}/parties/XO", json={"members": ["FR", "DE"]})
    assert r.status_code == 200 and r.json()["members"] == ["DE", "FR"]
    assert admin.get(f"{API}/parties/XX").status_code == 404
    with node.db.transaction(read_only=True) as s:
        actions = list(
            s.scalars(
                select(AuditRecord.action).where(
                    AuditRecord.object_type == "party", AuditRecord.object_id.in_(["DE", "XO"])
                )
            )
        )
    assert actions == ["directory.party.create", "directory.party.update"] * 2


def test_authority_lifecycle(node: LiveNode, admin: httpx.Client) -> None:
    r = admin.post(f"{API}/authorities", json=SAMPLE_AUTHORITY)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["languages"] == ["pl", "en-GB"] and created["always_open"] is False
    assert created["dual_criminality"] == "coercive_measures_only" and created["interpol_allowed"] is False
    url = f"{API}/authorities/{created['id']}"
    reader = node.client(node.user("reader", "officer"))
    assert reader.get(url).json() == created
    assert [a["name"] for a in all_pages(reader, f"{API}/authorities", language="en-GB")] == [
        "Central Cybercrime Bureau"
    ]

    r = admin.patch(
        url,
        json={
            "languages": ["en"],
            "email": None,
            "channels": ["direct", "interpol"],
            "interpol_allowed": True,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["languages"] == ["en"] and r.json()["email"] is None
    assert all_pages(reader, f"{API}/authorities", language="en-GB") == []

    # Same party, kind and name in another case is the same authority.
    dup = {**SAMPLE_AUTHORITY, "name": "CENTRAL cybercrime BUREAU"}
    r = admin.post(f"{API}/authorities", json=dup)
    assert r.status_code == 409 and fields(r) == ["name"], r.text
    other = admin.post(f"{API}/authorities", json={**SAMPLE_AUTHORITY, "name": "Other Bureau"}).json()
    r = admin.patch(f"{API}/authorities/{other['id']}", json={"name": "central cybercrime bureau"})
    assert r.status_code == 409, r.text

    # A kind change to 24/7 makes it always open; office hours must then go.
    r = admin.patch(url, json={"kind": "contact_point_24_7"})
    assert r.status_code == 422 and fields(r) == ["office_hours"], r.text
    r = admin.patch(url, json={"kind": "contact_point_24_7", "office_hours": []})
    assert r.status_code == 200 and r.json()["always_open"] is True and r.json()["open_now"] is True

    assert admin.delete(url).status_code == 204
    assert reader.get(url).status_code == 404
    with node.db.transaction(read_only=True) as s:
        actions = list(
            s.scalars(
                select(AuditRecord.action)
                .where(AuditRecord.object_id == created["id"])
                .order_by(AuditRecord.seq)
            )
        )
    assert actions == [
        "directory.authority.create",
        "directory.authority.update",
        "directory.authority.update",
        "directory.authority.delete",
    ]


def test_treaty_status_and_convention(node: LiveNode, admin: httpx.Client) -> None:
    reader = node.client(node.user("reader", "officer"))
    status = reader.get(f"{API}/convention").json()
    assert status == {
        "article": "65",
        "instruments_required": 40,
        "instruments_counted": 0,
        "instruments_still_needed": 40,
        "fortieth_instrument_date": None,
        "convention_in_force": None,
        "in_force_today": False,
        "signatories": 71,
        "not_counted": [],
    }
    treaty = reader.get(f"{API}/parties/VN/treaty").json()
    assert treaty["source"] == "press report, not checked against the depositary"
    assert treaty["in_force_for_party"] is None and treaty["counted"] is False

    # The EU and 39 signatory States ratify: not enough, the EU is not counted.
    signed = sorted(
        c for c in (p["code"] for p in all_pages(reader, f"{API}/parties", limit=100)) if c != "EU"
    )
    for i, code in enumerate(["EU", *signed[:39]]):
        r = admin.put(
            f"{API}/parties/{code}/treaty",
            json={
                "signature_date": reader.get(f"{API}/parties/{code}").json()["signature_date"],
                "instrument_type": "approval" if code == "EU" else "ratification",
                "instrument_date": f"2026-02-{1 + i % 28:02d}",
                "source": "test",
                "as_of": "2026-03-01",
                "declarations": [{"article": "40(14)", "text": "English and French are accepted."}],
            },
        )
        assert r.status_code == 200, r.text
    status = reader.get(f"{API}/convention").json()
    assert status["instruments_counted"] == 39 and status["instruments_still_needed"] == 1
    assert status["convention_in_force"] is None
    assert status["not_counted"][0]["party"] == "EU"

    # Viet Nam accedes... no: it signed, so it ratifies, as the 40th.
    r = admin.put(
        f"{API}/parties/VN/treaty",
        json={
            "signature_date": "2025-10-25",
            "instrument_type": "ratification",
            "instrument_date": "2026-06-01",
            "source": "test",
            "as_of": "2026-06-02",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["counted"] is True
    assert r.json()["convention_in_force"] == r.json()["in_force_for_party"] == "2026-08-30"
    status = reader.get(f"{API}/convention").json()
    assert status["instruments_counted"] == 40 and status["fortieth_instrument_date"] == "2026-06-01"
    assert status["convention_in_force"] == "2026-08-30"
    eu = reader.get(f"{API}/parties/EU/treaty").json()
    assert eu["counted"] is False and eu["in_force_for_party"] == "2026-08-30"
    assert eu["declarations"] == [{"article": "40(14)", "text": "English and French are accepted."}]

    # A State not among the signatories accedes after the 40th: 30 days after its deposit.
    assert admin.post(f"{API}/parties", json={"code": "JP"}).status_code == 201
    r = admin.put(
        f"{API}/parties/JP/treaty",
        json={
            "instrument_type": "accession",
            "instrument_date": "2026-10-01",
            "source": "test",
            "as_of": "2026-10-02",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["in_force_for_party"] == "2026-10-31"
    assert reader.get(f"{API}/parties/JP/treaty").json()["signature_date"] is None
    assert reader.get(f"{API}/parties/DE/treaty").status_code == 404
