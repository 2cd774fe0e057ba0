"""What each desk page shows, on two real nodes: Today's counts, the filtered and sorted lists, the case
page's single timeline in the viewer's zone, the wizard, the approval queue's diff, charts, directory,
peers and intel."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from cases.conftest import HEADER, PRESERVATION, Side, act, draft, sent_follow_up, sent_preservation
from conftest import LiveNode
from cyberpact.accounts.models import User
from cyberpact.cases.models import Request as RequestRow
from cyberpact.evidence.models import EvidencePackage
from cyberpact.federation.models import OutboxMessage
from cyberpact.kit.time import utcnow

from .helpers import person, text_of


def _rid(row: dict[str, object]) -> str:
    return str(row["id"])


def test_today_shows_what_needs_me_with_counts_and_links(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    emergency = draft(vn, header={**HEADER, "emergency": True, "emergency_justification": "Life at risk"})
    eid = emergency.json()["request"]["id"]
    assert act(vn.officer, eid, "submit").status_code == 200
    vn.deliver()
    kate = person(au.node, "kate", "central_authority", "officer", "supervisor")
    # A new request waits for its acknowledgement before anything is overdue.
    page = kate.get("/desk").text
    assert re.search(r"Received: to acknowledge 1\b", text_of(page)), text_of(page)
    assert f'href="/desk/requests/{rid}"' in page
    with au.node.db.transaction() as session:
        session.execute(update(RequestRow).values(due_at=utcnow() - timedelta(hours=1)))
    page = kate.get("/desk").text
    text = text_of(page)
    assert re.search(r"Overdue requests 1\b", text), text
    assert f'href="/desk/requests/{rid}"' in page

    sup = person(vn.node, "binh", "supervisor")
    page = sup.get("/desk").text
    assert re.search(r"Waiting for your approval 1\b", text_of(page))
    assert f'href="/desk/requests/{eid}"' in page
    assert re.search(r"Emergency requests 1\b", text_of(page))

    # Australia asks a question: on Viet Nam's desk the request waits for our answer.
    assert act(au.ca, rid, "acknowledge", reference="AU-1").status_code == 200
    assert act(au.ca, rid, "request_info", questions="Which account exactly?").status_code == 200
    au.deliver()
    an = person(vn.node, "an", "officer")
    page = an.get("/desk").text
    assert re.search(r"The other State waits for our answer 1\b", text_of(page)), text_of(page)
    assert f'href="/desk/requests/{rid}"' in page

    with vn.node.db.transaction() as session:
        session.execute(update(OutboxMessage).values(status="dead"))
    admin = person(vn.node, "root", "admin", "officer")
    text = text_of(admin.get("/desk").text)
    assert re.search(r"Requests with undelivered messages 1\b", text)
    assert "0 being retried, 1 given up." in text


def test_a_held_preservation_links_its_follow_up_and_is_not_listed_as_ending(
    two_sides: tuple[Side, Side],
) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    act(au.ca, rid, "acknowledge", reference="AU-PRES-31")
    act(au.ca, rid, "preserve", preserved_until=(date.today() + timedelta(days=60)).isoformat())
    with au.node.db.transaction() as session:  # ends within days: Today lists it as ending
        session.execute(update(RequestRow).values(preserved_until=date.today() + timedelta(days=3)))
    kate = person(au.node, "kate", "central_authority", "officer")
    ending = re.compile(r"Preservations ending within 14 days 1\b")
    assert ending.search(text_of(kate.get("/desk").text))
    release = f'action="/desk/requests/{rid}/actions/release"'
    assert release in kate.get(f"/desk/requests/{rid}").text

    mla, _ = sent_follow_up(vn, "AU-PRES-31")
    assert not ending.search(text_of(kate.get("/desk").text))
    page = kate.get(f"/desk/requests/{rid}").text
    assert "Held for the follow-up request" in text_of(page)
    assert f'href="/desk/requests/{mla}"' in page
    assert release not in page, "the data must stay preserved: no release is offered"
    page = kate.get(f"/desk/requests/{mla}").text
    assert "Preserved data held for this request" in text_of(page)
    assert f'href="/desk/requests/{rid}"' in page


def test_inbox_and_outbox_filter_sort_and_page(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    ids = [sent_preservation(vn, au) for _ in range(3)]
    kate = person(au.node, "kate", "central_authority", "officer")
    page = kate.get("/desk/inbox").text
    assert all(f"/desk/requests/{i}" in page for i in ids)
    assert "3 requests" in text_of(page)
    assert "0 requests" in text_of(kate.get("/desk/outbox").text)
    assert "0 requests" in text_of(kate.get("/desk/inbox?country=PL").text)
    assert "3 requests" in text_of(kate.get("/desk/inbox?country=VN&type=preservation&status=received").text)
    assert "0 requests" in text_of(kate.get("/desk/inbox?deadline=none").text)
    assert "3 requests" in text_of(kate.get("/desk/inbox?deadline=week").text)
    newest_first = re.findall(r'href="/desk/requests/([0-9a-f-]+)"', kate.get("/desk/inbox").text)
    oldest_first = re.findall(r'href="/desk/requests/([0-9a-f-]+)"', kate.get("/desk/inbox?order=asc").text)
    assert newest_first == oldest_first[::-1] == ids[::-1]

    from cyberpact.web import desk

    desk_size, desk.PAGE_SIZE = desk.PAGE_SIZE, 2
    try:
        first = kate.get("/desk/inbox?sort=created&order=asc").text
        assert "Page 1 of 2" in text_of(first) and 'rel="next"' in first
        second = kate.get("/desk/inbox?sort=created&order=asc&page=2").text
        assert re.findall(r'href="/desk/requests/([0-9a-f-]+)"', second) == [ids[2]]
    finally:
        desk.PAGE_SIZE = desk_size


def test_request_page_offers_exactly_the_allowed_actions_and_takes_them(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    kate = person(au.node, "kate", "central_authority", "officer", timezone="Australia/Sydney")
    plain = person(au.node, "ollie", "officer")
    page = kate.get(f"/desk/requests/{rid}").text
    offered = set(re.findall(r'id="action-([a-z_]+)"', page))
    assert offered == {"acknowledge", "refuse"}
    assert set(re.findall(r'id="action-([a-z_]+)"', plain.get(f"/desk/requests/{rid}").text)) == {
        "acknowledge"
    }

    r = kate.post(f"/desk/requests/{rid}/actions/acknowledge", {"data.reference": "AU-PRES-5521"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=acknowledge")
    page = kate.get(r.headers["location"]).text
    assert "Done: Acknowledge." in text_of(page)
    assert set(re.findall(r'id="action-([a-z_]+)"', page)) == {
        "request_info", "consult", "preserve", "refuse",
    }  # fmt: skip
    # The usual 90 days are filled in for the officer confirming preservation.
    usual = (date.today() + timedelta(days=90)).isoformat()
    assert re.search(rf'name="data\.preserved_until"[^>]*value="{usual}"', page), "not prefilled"
    until = (date.today() + timedelta(days=10)).isoformat()
    r = kate.post(f"/desk/requests/{rid}/actions/preserve", {"data.preserved_until": until})
    assert r.status_code == 422
    assert "Not valid under art. 42(7)." in text_of(r.text) and "not less than 60 days" in r.text
    # The times on the page are on the viewer's clock (Sydney), named in the footer.
    assert "Times are shown in your time zone, Australia/Sydney." in text_of(page)
    vn.deliver()
    au.deliver()
    officer = person(vn.node, "an", "officer")
    text = text_of(officer.get(f"/desk/requests/{rid}").text)
    assert "Acknowledge" in text and "AU-PRES-5521" in text and "Delivered (signed receipt)" in text
    assert "Receipt accepted and signed for" in text
    # The requested side sees the receipt for its own step message too, in words, not as a code.
    text = text_of(kate.get(f"/desk/requests/{rid}").text)
    assert "Message delivered (signed receipt)" in text and "Receipt accepted and signed for" in text
    assert "receipt from" not in text and "(accepted)" not in text


def test_case_page_merges_every_request_and_custody_event(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    officer = person(vn.node, "an", "officer", "contact_point")
    page = officer.get(f"/desk/requests/{rid}").text
    case_link = re.search(r'href="/desk/cases/([0-9a-f-]+)"', page)
    assert case_link
    r = officer.get("/desk/evidence/new?request=" + rid)
    assert r.status_code == 200
    created = officer.post(
        "/desk/evidence/new",
        {"case_ref": re.search(r'name="case_ref" value="([^"]+)"', r.text).group(1),  # type: ignore[union-attr]
         "request_ref": rid, "title": "Mailbox export", "description": ""},
    )  # fmt: skip
    assert created.status_code == 303
    text = text_of(officer.get(f"/desk/cases/{case_link.group(1)}").text)
    for entry in ("Drafted", "Submit for approval", "Approve and send", "Sent to the requested State",
                  "Delivered (signed receipt)", "Evidence package created"):  # fmt: skip
        assert entry in text, entry
    assert text.index("Drafted") < text.index("Approve and send") < text.index("Evidence package created")


def test_document_preview_is_sandboxed(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    officer = person(vn.node, "an", "officer")
    r = officer.get(f"/desk/requests/{rid}/document?lang=fr")
    assert r.status_code == 200 and "<style" in r.text
    assert (
        "sandbox" in r.headers["content-security-policy"]
        and "script" not in r.headers["content-security-policy"]
    )
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    assert officer.get(f"/desk/requests/{rid}/document?lang=xx").status_code == 422


def test_wizard_saves_each_step_and_names_the_article_for_what_is_missing(
    two_sides: tuple[Side, Side],
) -> None:
    vn, _ = two_sides
    an = person(vn.node, "an", "officer", "contact_point", email="an@a05.example.vn")
    an.get("/desk/new")
    r = an.post("/desk/new", {"type": "nonsense", "case_title": ""})
    assert r.status_code == 422 and "choose the type of request" in r.text
    r = an.post("/desk/new", {"type": "preservation", "counterpart": "au-24x7", "case_title": "Ransomware"})
    assert r.status_code == 303
    base = r.headers["location"].rsplit("/", 1)[0]
    rid = base.split("/")[3]
    page = an.get(r.headers["location"]).text
    assert 'value="an@a05.example.vn"' not in page  # e-mail is on the contact step
    assert re.search(r'name="header.our_reference" value="CASE-\d{4}-\d{4}"', page), "prefilled from the case"
    assert "English" in text_of(page), "the requested State's accepted languages are shown"
    first = {"counterpart": "au-24x7", "header.language": "en", "header.our_reference": "REF-1"}
    r = an.post(f"{base}/authority", {**first, "version": "1", "header.request_kind": "new"})
    assert r.status_code == 422
    text = text_of(r.text)
    assert "Missing: required by art. 40(15)(a)." in text and "Missing: required by art. 40(15)(b)." in text
    with vn.node.db.transaction(read_only=True) as session:
        row = session.get_one(RequestRow, uuid.UUID(rid))
        assert row.header["our_reference"] == "REF-1" and row.version == 2, "what was typed is kept"
    r = an.post(f"{base}/authority", {"version": "1", "header.language": "en"})
    assert r.status_code == 409, "an edit based on an old version is refused"
    r = an.post(
        f"{base}/authority", {"version": "2", "header.contact_email": "x", "header.language": "no such"}
    )
    assert r.status_code == 422 and "BCP 47" in r.text
    r = an.post(
        f"{base}/authority",
        {
            **first,
            "version": "2",
            "header.request_kind": "new",
            "header.requesting_authority": "A05",
            "header.investigating_authority": "A05",
        },
    )
    assert r.status_code == 303 and r.headers["location"].endswith("/edit/contact")
    review = an.get(f"{base}/review").text
    assert "The draft cannot be submitted yet. Still missing:" in text_of(review)
    # Each gap by the name the officer sees on the form, not the field's internal path.
    assert "Offence under investigation : Missing: required by art. 42(2)(b)." in text_of(review)
    assert "fields.offence" not in text_of(review) and "header.contact_phone" not in text_of(review)
    assert "Submit for approval" not in review


def test_approval_queue_shows_the_changes_since_the_last_return(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    rid = draft(vn).json()["request"]["id"]
    assert act(vn.officer, rid, "submit").status_code == 200
    binh = person(vn.node, "binh", "supervisor")
    page = binh.get("/desk/approvals").text
    assert "First submission: never returned." in text_of(page)
    r = binh.post(
        f"/desk/requests/{rid}/actions/return",
        {"data.comments": "Say which account.", "back": "/desk/approvals"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/desk/approvals"
    current = vn.officer.get(f"/api/v1/requests/{rid}").json()
    fields = {**PRESERVATION, "data_to_preserve": "Account minh.tran.88 only"}
    assert (
        vn.officer.put(
            f"/api/v1/requests/{rid}",
            json={
                "counterpart": "au-24x7",
                "header": current["header"],
                "fields": fields,
                "version": current["version"],
            },
        ).status_code
        == 200
    )
    assert act(vn.officer, rid, "submit").status_code == 200
    page = binh.get("/desk/approvals").text
    text = text_of(page)
    assert "binh asked: Say which account." in text
    assert "Stored electronic data to be preserved" in text and "Account minh.tran.88 only" in text
    assert "<del>All stored content and logs of the account" in page
    r = binh.post(f"/desk/requests/{rid}/actions/approve", {"back": "/desk/approvals"})
    assert r.status_code == 303
    assert "Nothing is waiting for approval." in binh.get("/desk/approvals").text


def test_charts_draw_server_side_svg_with_a_table(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    assert act(au.ca, rid, "acknowledge", reference="AU-1").status_code == 200
    until = (date.today() + timedelta(days=90)).isoformat()
    assert act(au.ca, rid, "preserve", preserved_until=until).status_code == 200
    au.deliver()
    an = person(vn.node, "an", "officer")
    page = an.get("/desk/charts").text
    assert page.count("<svg") >= 3 and "<script" not in page
    assert 'class="s0"' in page and "<title>" in page
    text = text_of(page)
    assert "Requests sent per month, by type" in text and "Median hours to acknowledge, by State" in text
    assert "Australia" in text
    from cyberpact.reports import service as reports

    with vn.node.db.transaction() as session:
        figures = reports.figures(session, an_actor(vn.node))
    assert sum(c.count for c in figures.per_month) == 1
    assert [m.country for m in figures.acknowledge] == ["AU"] and figures.acknowledge[0].median_hours < 1
    assert sum(p.running for p in figures.preservations) == 1


def an_actor(node: LiveNode):  # type: ignore[no-untyped-def]
    from cyberpact.kit.actor import Actor

    return Actor(user_id=None, username="stats", roles=frozenset({"officer"}))


def test_preservation_outcomes_are_counted_from_events() -> None:
    from cyberpact.reports.service import months_back

    assert months_back(3, date(2026, 1, 15)) == ["2025-11", "2025-12", "2026-01"]


def test_directory_and_peers(two_sides: tuple[Side, Side]) -> None:
    vn, _ = two_sides
    an = person(vn.node, "an", "officer")
    text = text_of(an.get("/desk/directory").text)
    assert "Entry into force art. 65" in text and "instruments needed have been deposited" in text
    assert "Viet Nam" in text or "Vietnam" in text
    assert an.get("/desk/directory?country=<x>").status_code == 422
    root = person(vn.node, "root", "admin")
    page = root.get("/desk/admin/peers").text
    fp = vn.node.client(vn.node.admin_token).get("/api/v1/federation/peers").json()[0]["pinned_fingerprint"]
    assert fp in page and 'id="own-fingerprint"' in page
    rid = draft(vn).json()["request"]["id"]
    assert act(vn.officer, rid, "submit").status_code == 200
    assert act(vn.supervisor, rid, "approve").status_code == 200  # queued, not delivered
    with vn.node.db.transaction() as session:
        session.execute(update(OutboxMessage).values(status="dead", attempts=9, last_error="<b>refused</b>"))
        message_id = session.scalars(select(OutboxMessage.message_id)).one()
    page = root.get("/desk/admin/peers").text
    assert message_id in page and "Given up" in page and "&lt;b&gt;refused&lt;/b&gt;" in page
    assert root.post(f"/desk/admin/outbox/{message_id}/retry").status_code == 303
    with vn.node.db.transaction(read_only=True) as session:
        assert session.scalars(select(OutboxMessage.status)).one() == "pending"
    assert an.get("/desk/admin/peers").status_code == 403


def test_a_package_made_on_the_desk_carries_its_conditions_on_use(node: LiveNode) -> None:
    an = person(node, "an", "officer", timezone="Asia/Ho_Chi_Minh")
    an.get("/desk/evidence/new")
    form = {
        "case_ref": "VN-2026-7",
        "title": "Seized laptop image",
        "use.purpose": "Trial of the fraud ring in Da Nang",
        "use.restrictions": "Not for tax proceedings\n\n  Destroy after the trial  \n",
        "use.confidential": "1",
        "use.until": "2027-06-30",
    }

    def stored() -> list[dict[str, object]]:
        with node.db.transaction(read_only=True) as session:
            return [p.use_conditions for p in session.scalars(select(EvidencePackage))]

    # Hostile or mistyped conditions: a clear 422 naming the field, and nothing stored.
    for field, value, control in (
        ("use.until", "30/06/2027", "ev-until"),
        ("use.restrictions", "x\n" * 51, "ev-restrictions"),
        ("use.purpose", "p" * 1001, "ev-purpose"),
    ):
        r = an.post("/desk/evidence/new", {**form, field: value})
        assert r.status_code == 422, field
        # The field at fault, and only it, is marked; what was typed stays in the form.
        assert r.text.count('aria-invalid="true"') == 1 and f'aria-describedby="{control}-p"' in r.text
        assert "Please correct the following" in r.text and "Seized laptop image" in r.text
    assert stored() == []

    r = an.post("/desk/evidence/new", form)
    assert r.status_code == 303, r.text
    assert stored() == [
        {
            "purpose": "Trial of the fraud ring in Da Nang",
            "restrictions": ["Not for tax proceedings", "Destroy after the trial"],
            "confidential": True,
            "onward_transfer": False,  # unticked: passing it on needs our consent
            "until": "2027-06-30T23:59:59+07:00",  # to the end of that day, on the officer's clock
        }
    ]
    page = text_of(an.get(r.headers["location"]).text)
    assert "Not to be passed on to a third State or organization without the consent of" in page
    assert "Destroy after the trial" in page and "Jun 30, 2027" in page


def test_intel_collections_show_tlp_badges(node: LiveNode) -> None:
    from cyberpact.intel import service as intel
    from cyberpact.intel import store
    from cyberpact.kit.actor import SYSTEM

    with node.db.transaction() as session:
        col = intel.create_collection(session, SYSTEM, title="Ransomware infrastructure", alias="ransom")
        indicator = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2026-11-01T00:00:00.000Z",
            "modified": "2026-11-01T00:00:00.000Z",
            "name": "C2 <b>server</b>",
            "pattern": "[ipv4-addr:value = '198.51.100.7']",
            "pattern_type": "stix",
            "valid_from": "2026-11-01T00:00:00Z",
            "object_marking_refs": ["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"],
        }
        note = {
            "type": "note",
            "spec_version": "2.1",
            "id": "note--0c7b5a1e-2d3f-4a6b-9c8d-7e6f5a4b3c2d",
            "created": "2026-11-02T00:00:00.000Z",
            "modified": "2026-11-02T00:00:00.000Z",
            "abstract": "How the operators got in",
            "content": "Through an unpatched VPN appliance.",
            "object_refs": [indicator["id"]],
        }
        sighting = {
            "type": "sighting",
            "spec_version": "2.1",
            "id": "sighting--1d8c6b2f-3e4a-4b7c-8d9e-8f7a6b5c4d3e",
            "created": "2026-11-03T00:00:00.000Z",
            "modified": "2026-11-03T00:00:00.000Z",
            "last_seen": "2026-11-03T00:00:00Z",
            "sighting_of_ref": indicator["id"],
        }
        store.add_objects(session, SYSTEM, col, store.prepare([indicator, note, sighting]))
    root = person(node, "root", "admin")
    assert "Ransomware infrastructure" in root.get("/desk/intel").text
    page = root.get("/desk/intel/ransom").text
    assert "TLP:RED" in page and "tlp-red" in page and "C2 &lt;b&gt;server&lt;/b&gt;" in page
    # What an analyst acts on, and where the collection's objects go, are on the page.
    text = text_of(page)
    assert "[ipv4-addr:value = '198.51.100.7']" in text
    # A note by its abstract and text, a sighting by what was sighted and when: not by their ids.
    assert "How the operators got in" in text and "Through an unpatched VPN appliance." in text
    assert f"{indicator['id']} 2026-11-03T00:00:00Z" in " ".join(text.split())
    assert "Not shared: everything in it stays on this node." in text
    assert "Objects without a TLP marking count as TLP:AMBER." in text
    with node.db.transaction() as session:
        intel.update_policy(
            session,
            SYSTEM,
            intel.get_collection(session, "ransom"),
            federate=True,
            sharing_group=["au-24x7", "fr-ca"],
            strict_recipient="au-24x7",
        )
    text = text_of(root.get("/desk/intel/ransom").text)
    assert "Shared with au-24x7, fr-ca as the TLP markings allow" in text
    assert "TLP:RED never leaves this node. TLP:AMBER+STRICT goes only to au-24x7." in text
    nobody = person(node, "eve", "officer")
    assert nobody.get("/desk/intel/ransom").status_code == 404
    assert "No collection is open to you." in nobody.get("/desk/intel").text
    assert root.get("/desk/intel/correlations").status_code == 200


def test_language_switch_and_arabic_right_to_left(node: LiveNode) -> None:
    lan = person(node, "lan", "officer")
    lan.get("/desk")
    r = lan.post("/desk/language", {"lang": "ar", "back": "/desk/inbox"})
    assert r.status_code == 303 and r.headers["location"] == "/desk/inbox"
    page = lan.get("/desk/inbox").text
    assert '<html lang="ar" dir="rtl">' in page
    lan.post("/desk/language", {"lang": "zh", "back": "https://evil.example"})
    page = lan.get("/desk").text
    assert '<html lang="zh-Hans" dir="ltr">' in page
    assert lan.post("/desk/language", {"lang": "xx"}).status_code == 422
    r = lan.post("/desk/preferences", {"lang": "fr", "timezone": "Mars/Olympus"})
    assert r.status_code == 422
    assert lan.post("/desk/preferences", {"lang": "vi", "timezone": "Asia/Ho_Chi_Minh"}).status_code == 303
    page = lan.get("/desk/preferences").text
    assert '<html lang="vi"' in page and "Asia/Ho_Chi_Minh" in page


def test_sign_in_page_speaks_the_browsers_language(node: LiveNode) -> None:
    import httpx

    r = httpx.get(f"{node.url}/desk/sign-in", headers={"Accept-Language": "ar-EG,ar;q=0.9"})
    assert '<html lang="ar" dir="rtl">' in r.text
    r = httpx.get(f"{node.url}/desk/sign-in?lang=ru")
    assert '<html lang="ru" dir="ltr">' in r.text


def test_the_desk_follows_the_browser_until_a_language_is_chosen(node: LiveNode) -> None:
    anh = person(node, "anh", "officer", sign_in=False)
    anh.client.headers["Accept-Language"] = "vi-VN,vi;q=0.9,en;q=0.5"
    anh.sign_in()
    assert '<html lang="vi"' in anh.get("/desk").text
    anh.client.headers["Accept-Language"] = "fr"  # the same person on another computer
    assert '<html lang="fr"' in anh.get("/desk").text
    anh.post("/desk/language", {"lang": "en", "back": "/desk"})
    anh.client.headers["Accept-Language"] = "vi"
    assert '<html lang="en"' in anh.get("/desk").text  # chosen, so kept whatever the browser says
    with node.db.transaction(read_only=True) as session:
        assert session.scalars(select(User.locale).where(User.username == "anh")).one() == "en"


def test_a_step_refused_because_it_crossed_a_withdrawal_is_no_alarm_on_today(
    two_sides: tuple[Side, Side],
) -> None:
    # Australia acknowledges while Viet Nam withdraws: Viet Nam refuses the step that crossed. Both sides
    # agree the request is withdrawn; Australia's Today must not list it as undelivered for ever.
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    assert act(au.ca, rid, "acknowledge", reference="AU-9").status_code == 200
    assert act(vn.officer, rid, "withdraw", reason="no longer needed").status_code == 200
    vn.deliver()
    au.deliver()
    with au.node.db.transaction(read_only=True) as session:
        statuses = session.scalars(
            select(OutboxMessage.status).where(OutboxMessage.message_type == "cp.step")
        )
        assert list(statuses) == ["rejected"]
    kate = person(au.node, "kate", "officer", "contact_point")
    assert re.search(r"Requests with undelivered messages 0\b", text_of(kate.get("/desk").text))
    # A message still being retried stays listed whatever the request's state: it is news not yet told.
    with au.node.db.transaction() as session:
        session.execute(update(OutboxMessage).values(status="pending", attempts=2))
    assert re.search(r"Requests with undelivered messages 1\b", text_of(kate.get("/desk").text))


def test_undelivered_selection_ignores_foreign_conversations(node: LiveNode) -> None:
    # A conversation id that is not a request id (intel, evidence) must not break Today.
    with node.db.transaction() as session:
        session.add(
            OutboxMessage(
                message_id=str(uuid.uuid4()),
                recipient="nobody",
                message_type="cp.step",
                conversation_id="not-a-request",
                payload={},
                created_at=utcnow(),
                status="pending",
                attempts=3,
                next_attempt_at=utcnow(),
            )
        )
    lan = person(node, "lan", "officer", "admin")
    assert lan.get("/desk").status_code == 200
    with node.db.transaction(read_only=True) as session:
        assert session.scalars(select(OutboxMessage)).first() is not None


@pytest.mark.parametrize(
    ("type_id", "label", "choice"),
    [
        (
            "extradition",
            "The conduct is an offence under the law of both States",
            "Enforcement of a sentence",
        ),
        ("joint_investigation", "Proposed duration in months", "Agreed case by case"),
    ],
)
def test_the_wizard_drafts_the_newer_request_types_with_their_fields_and_choices(
    two_sides: tuple[Side, Side], type_id: str, label: str, choice: str
) -> None:
    vn, _ = two_sides
    an = person(vn.node, "an", "officer", "contact_point", email="an@a05.example.vn")
    assert type_id in an.get("/desk/new").text
    r = an.post("/desk/new", {"type": type_id, "counterpart": "au-24x7", "case_title": "Hanoi hospitals"})
    assert r.status_code == 303
    base = r.headers["location"].rsplit("/", 1)[0]
    page = text_of(an.get(f"{base}/particulars").text)
    assert label in page and choice in page
    review = text_of(an.get(f"{base}/review").text)
    article = "art. 37(1)" if type_id == "extradition" else "art. 48"
    assert f"Missing: required by {article}" in review
