"""The desk's list of cases and the wizard's case picker: every case the officer may see, reached a page at a
time or found by its reference or title, and never one hidden from them. An officer once could start a
request only in one of the 50 newest cases, and no page listed the cases at all."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cases.test_paging import forged
from conftest import LiveNode
from cyberpact.audit.models import AuditRecord
from cyberpact.cases.models import Case
from cyberpact.cases.models import Request as RequestRow
from cyberpact.kit.time import utcnow
from evidence.helpers import incoming_request
from web.test_i18n_a11y import _check_page

from .helpers import person, text_of

MANY = 60  # more than a page of the list (50), and more than the picker lists (50)
_ROW = re.compile(r'<th scope="row" class="ltr"><a href="/desk/cases/([0-9a-f-]{36})">([^<]*)</a></th>')
_OPTION = re.compile(r'<option value="([0-9a-f-]{36})"( selected)?>([^<]*)</option>')


def add_case(node: LiveNode, reference: str, title: str, at: datetime, requests: int = 0) -> str:
    with node.db.transaction() as s:
        case = Case(reference=reference, title=title, created_by="an", created_at=at)
        s.add(case)
        s.flush()
        for _ in range(requests):
            s.add(
                RequestRow(
                    case_id=case.id,
                    direction="outgoing",
                    type="preservation",
                    status="draft",
                    catalog_version="1",
                    header={},
                    fields={},
                    drafted_by="an",
                    created_at=at,
                    updated_at=at,
                )
            )
        return str(case.id)


def many_cases(node: LiveNode) -> tuple[list[str], str]:
    """:data:`MANY` cases a minute apart, newest first, the oldest with two requests (their references);
    and the reference of a confidential matter's case, newer than all of them, hidden from a plain officer."""
    now = utcnow()
    refs = [f"HN-2026-{n:04d}" for n in range(MANY)]
    for n, ref in enumerate(refs):
        add_case(node, ref, f"Matter {n}", now - timedelta(minutes=n + 1), requests=2 if n == MANY - 1 else 0)
    hidden = incoming_request(node, "au-24x7", "fact_and_substance")
    return refs, f"IN-au-24x7-{uuid.UUID(hidden).hex[:8]}"


def listed(page: str) -> list[str]:
    return [html.unescape(ref) for _, ref in _ROW.findall(page)]


def options(page: str) -> list[str]:
    return [html.unescape(label).split(" · ")[0] for _, _, label in _OPTION.findall(page)]


def selected(page: str) -> list[str]:
    return [html.unescape(label).split(" · ")[0] for _, chosen, label in _OPTION.findall(page) if chosen]


def next_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', page)
    return html.unescape(found.group(1)) if found else None


def list_reads(node: LiveNode, actor: str) -> list[AuditRecord]:
    with node.db.transaction(read_only=True) as s:
        query = select(AuditRecord).where(AuditRecord.action == "cases.case.list", AuditRecord.actor == actor)
        return list(s.scalars(query.order_by(AuditRecord.seq)))


# --- the list of cases -------------------------------------------------------------------------------------


def test_the_list_shows_every_case_the_officer_may_see_a_page_at_a_time(node: LiveNode) -> None:
    refs, hidden = many_cases(node)
    an = person(node, "an", "officer")
    r = an.get("/desk/cases")
    assert r.status_code == 200
    first = listed(r.text)
    assert first == refs[:50], "newest first, a page of 50"
    # In the menu, beside the lists of requests, marked as the page the officer is on.
    assert re.search(
        r'<a href="/desk/outbox">[^<]*</a></li>\s*<li><a href="/desk/cases" aria-current="page">', r.text
    )
    older = next_link(r.text)
    assert older is not None
    r = an.get(older)
    assert listed(r.text) == refs[50:] and next_link(r.text) is None
    assert "Newest cases" in text_of(r.text)
    # The oldest case: its two requests counted, its page linked.
    with node.db.transaction(read_only=True) as s:
        oldest = s.scalars(select(Case).where(Case.reference == refs[-1])).one()
    link = f'<a href="/desk/cases/{oldest.id}">{refs[-1]}</a>'
    row = re.search(rf'<tr>\s*<th scope="row" class="ltr">{link}</th>(.*?)</tr>', r.text, re.S)
    assert row is not None and text_of(row.group(1)).endswith(" 2")
    assert an.get(f"/desk/cases/{oldest.id}").status_code == 200
    # The confidential matter's case is on no page of theirs; the channel that may see it finds it first.
    assert hidden not in first + listed(r.text)
    cp = person(node, "cp", "contact_point")
    assert listed(cp.get("/desk/cases").text)[0] == hidden
    # Each page read is recorded, as the desk's lists of requests are.
    reads = list_reads(node, "an")
    assert [(a.detail["view"], a.detail["returned"]) for a in reads] == [
        ("desk.cases", 51),
        ("desk.cases", 10),
    ]


def test_the_created_day_is_the_officers_own(node: LiveNode) -> None:
    # 20:00 on 3 March in UTC is already 4 March in Hanoi.
    add_case(node, "HN-2026-0001", "Late case", datetime(2026, 3, 3, 20, 0, tzinfo=UTC))
    hanoi = person(node, "an", "officer", timezone="Asia/Ho_Chi_Minh")
    london = person(node, "bo", "officer", timezone="Europe/London")
    assert "Mar 4, 2026" in text_of(hanoi.get("/desk/cases").text)
    assert "Mar 3, 2026" in text_of(london.get("/desk/cases").text)


def test_only_case_roles_have_the_list(node: LiveNode) -> None:
    auditor = person(node, "aud", "auditor")
    assert 'href="/desk/cases"' not in auditor.get("/desk").text
    assert auditor.get("/desk/cases").status_code == 403
    an = person(node, "an", "officer")
    assert 'href="/desk/cases"' in an.get("/desk").text


def test_the_list_finds_cases_by_reference_or_title_taking_wildcards_as_text(node: LiveNode) -> None:
    _, hidden = many_cases(node)
    now = utcnow()
    add_case(node, "DF-1", "Discount fraud: 50% off", now - timedelta(days=400))
    add_case(node, "PK-1", "Phishing kit A_1", now - timedelta(days=401))
    add_case(node, "PK-2", "Phishing kit AB1", now - timedelta(days=402))
    an = person(node, "an", "officer")

    def search(q: str) -> list[str]:
        r = an.get("/desk/cases", params={"q": q})
        assert r.status_code == 200, r.text
        return listed(r.text)

    assert search("matter 5") == ["HN-2026-0005"] + [f"HN-2026-{n:04d}" for n in range(50, 60)]
    assert search("HN-2026-0059") == ["HN-2026-0059"]
    assert search("%") == ["DF-1"] and search("_") == ["PK-1"] and search("a_1") == ["PK-1"]
    assert search(hidden) == [] and search("IN-") == [] and search("Request from") == []
    r = an.get("/desk/cases", params={"q": "nowhere"})
    assert listed(r.text) == [] and "No case you may see matches this search." in text_of(r.text)
    assert 'value="nowhere"' in r.text, "the search stays in its box"
    # Older matches are a page away, the search kept.
    for n in range(55):
        add_case(node, f"LG-{n}", f"Lagos {n}", now - timedelta(days=10, minutes=n))
    r = an.get("/desk/cases", params={"q": "lagos"})
    older = next_link(r.text)
    assert len(listed(r.text)) == 50 and older is not None and "q=lagos" in older
    assert listed(an.get(older).text) == [f"LG-{n}" for n in range(50, 55)]
    assert list_reads(node, "an")[-1].detail["search"] == "lagos"


@pytest.mark.parametrize(
    ("params", "label"),
    [
        *[({"cursor": c}, "Page") for c in forged("cases", "requests")],
        ({"q": "x" * 301}, "Reference or title"),
        ({"q": "kit\x00"}, "Reference or title"),
    ],
)
def test_a_forged_cursor_or_a_hostile_search_is_refused_beside_the_form(
    node: LiveNode, params: dict[str, str], label: str
) -> None:
    many_cases(node)
    an = person(node, "an", "officer")
    r = an.get("/desk/cases", params=params)
    assert r.status_code == 422, r.text
    notice = re.search(r'<div class="notice error" role="alert" id="problems">(.*?)</div>', r.text, re.S)
    assert notice is not None and label in text_of(notice.group(1))
    assert 'name="q"' in r.text and listed(r.text) == []
    assert list_reads(node, "an") == [], "nothing was listed, so nothing was recorded as read"


def test_a_search_is_shown_as_text(node: LiveNode) -> None:
    an = person(node, "an", "officer")
    script = '"><script>alert(1)</script>'
    for path, name in (("/desk/cases", "q"), ("/desk/new", "case_q")):
        r = an.get(path, params={name: script})
        assert r.status_code == 200 and "<script>alert(1)" not in r.text
        assert "&lt;script&gt;" in r.text


# --- the wizard's picker ------------------------------------------------------------------------------------


def test_the_wizard_finds_a_case_older_than_the_newest_fifty_and_starts_a_request_in_it(
    node: LiveNode,
) -> None:
    refs, _ = many_cases(node)
    an = person(node, "an", "officer")
    r = an.get("/desk/new")
    assert options(r.text) == refs[:50] and refs[-1] not in r.text
    assert "The 50 newest cases are listed." in text_of(r.text)
    r = an.get("/desk/new", params={"case_q": refs[-1].lower()})
    assert r.status_code == 200
    assert options(r.text) == selected(r.text) == [refs[-1]], "the one match, chosen already"
    case_id = _OPTION.search(r.text).group(1)  # type: ignore[union-attr]
    r = an.post(
        "/desk/new",
        {"type": "preservation", "counterpart": "", "case_id": case_id, "case_q": refs[-1], "case_title": ""},
    )
    assert r.status_code == 303, r.text
    rid = r.headers["location"].split("/")[3]
    with node.db.transaction(read_only=True) as s:
        row = s.get_one(RequestRow, uuid.UUID(rid))
        assert str(row.case_id) == case_id and row.header["our_reference"] == refs[-1]
    # The picker's reading is recorded as the list's is.
    assert any(a.detail.get("view") == "desk.new" and a.detail.get("search") for a in list_reads(node, "an"))


def test_the_picker_says_when_nothing_matches_and_keeps_the_new_case(node: LiveNode) -> None:
    many_cases(node)
    an = person(node, "an", "officer")
    r = an.get("/desk/new", params={"case_q": "no such matter"})
    assert r.status_code == 200 and options(r.text) == []
    status = re.search(r'<p class="notice" role="status" id="case-none">(.*?)</p>', r.text, re.S)
    assert status is not None
    assert text_of(status.group(1)) == (
        "No case you may see has “no such matter” in its reference or title. "
        "Search again, or open a new case below."
    )
    assert 'name="case_title"' in r.text and "— a new case —" in r.text
    # A form sent back keeps the search it was chosen from, and the case chosen even when no longer listed.
    r = an.post("/desk/new", {"type": "nonsense", "case_q": "matter 59", "case_title": ""})
    assert r.status_code == 422 and options(r.text) == ["HN-2026-0059"]
    oldest = re.search(r'<option value="([0-9a-f-]{36})"', r.text).group(1)  # type: ignore[union-attr]
    r = an.post("/desk/new", {"type": "nonsense", "case_id": oldest, "case_title": ""})
    assert r.status_code == 422 and selected(r.text) == ["HN-2026-0059"] and len(options(r.text)) == 51


def test_the_picker_never_offers_a_hidden_case_and_takes_wildcards_as_text(node: LiveNode) -> None:
    _, hidden = many_cases(node)
    add_case(node, "DF-1", "Discount fraud: 50% off", utcnow() - timedelta(days=400))
    an = person(node, "an", "officer")
    for q in (hidden, "IN-", "Request from", "au-24x7"):
        assert options(an.get("/desk/new", params={"case_q": q}).text) == [], q
    assert options(an.get("/desk/new", params={"case_q": "%"}).text) == ["DF-1"]
    assert options(an.get("/desk/new", params={"case_q": "_"}).text) == []
    # Its id, sent all the same, opens nothing and starts nothing.
    with node.db.transaction(read_only=True) as s:
        hidden_id = s.scalars(select(Case.id).where(Case.reference == hidden)).one()
    an.get("/desk/new")
    r = an.post(
        "/desk/new", {"type": "preservation", "case_id": str(hidden_id), "case_q": hidden, "case_title": ""}
    )
    assert r.status_code == 404 and hidden not in r.text
    cp = person(node, "cp", "contact_point")
    assert options(cp.get("/desk/new", params={"case_q": hidden}).text) == [hidden]


def test_an_overlong_search_in_the_picker_is_refused_at_its_field(node: LiveNode) -> None:
    an = person(node, "an", "officer")
    r = an.get("/desk/new", params={"case_q": "x" * 301})
    assert r.status_code == 422
    problem = re.search(r'<span class="problem" id="case_q-p">(.*?)</span>', r.text, re.S)
    assert problem is not None and text_of(problem.group(1)) == "at most 300 characters"
    assert 'aria-invalid="true" aria-describedby="case_q-p"' in r.text


def test_the_new_pages_are_accessible(node: LiveNode) -> None:
    many_cases(node)
    an = person(node, "an", "officer")
    pages = [
        ("/desk/cases", {}, 200),
        ("/desk/cases", {"q": "matter"}, 200),
        ("/desk/cases", {"q": "nowhere"}, 200),
        ("/desk/cases", {"cursor": "forged"}, 422),
        ("/desk/new", {}, 200),
        ("/desk/new", {"case_q": "matter 1"}, 200),
        ("/desk/new", {"case_q": "nowhere"}, 200),
        ("/desk/new", {"case_q": "x" * 301}, 422),
    ]
    for path, params, status in pages:
        r = an.get(path, params=params)
        assert r.status_code == status, (path, params)
        # Each with its search, a landmark a screen reader jumps to, its box labelled.
        assert re.search(
            r'<form method="get" action="[^"]+" class="filters panel" role="search" aria-label=', r.text
        )
        _check_page(f"{path} {params}", r.text)
