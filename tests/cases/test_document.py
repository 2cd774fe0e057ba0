"""The formal request document: translated labels, values as written, provenance, in seven languages."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy.orm import Session

from cyberpact.cases import document
from cyberpact.cases.models import Case, Request, RequestEvent
from cyberpact.catalog.service import Catalog, get_catalog
from cyberpact.config import Settings
from cyberpact.federation import envelope
from cyberpact.federation.identity import ensure_card, fingerprint
from cyberpact.federation.models import InboxMessage, OutboxMessage, Peer, PeerKey
from cyberpact.kit import crypto
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.documents import render_pdf
from cyberpact.kit.i18n import LANGUAGES, translator
from cyberpact.kit.keystore import KeyStore

from .conftest import Side, sent_preservation

NOW = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)
SCRIPT = "Ransomware <script>alert('x')</script> & extortion"
FACTS = "On 2 Nov 2026 the servers of Bạch Mai hospital were encrypted.\nThe ransom note names a mailbox."
HEADER: dict[str, Any] = {
    "our_reference": "A05/2026/0117",
    "request_kind": "new",
    "language": "en",
    "requesting_authority": "Cục An ninh mạng và phòng, chống tội phạm sử dụng công nghệ cao (A05)",
    "contact_name": "Nguyễn Thị Lan",
    "contact_email": "lan.nguyen@a05.example.vn",
    "contact_phone": "+84 24 3826 0000",
    "contact_timezone": "Asia/Ho_Chi_Minh",
    "investigating_authority": "A05 Investigation Division",
    "deadline": "2026-12-01",
    "deadline_reason": "The provider rotates its logs after 30 days.",
    "confidentiality": "fact_and_substance",
}
FIELDS: dict[str, Any] = {
    "offence": SCRIPT,
    "facts_summary": FACTS,
    "data_to_preserve": "Content and logs of minh.tran.88@cloudmail.example, 25 Oct to 2 Nov 2026",
    "relationship_to_offence": "The account received the ransom payment notifications.",
    "custodian_or_location": "CloudMail Pty Ltd, Sydney",
    "necessity": "Inactive accounts are deleted after 30 days.",
    "mla_intended": True,
    "follow_up_mla_planned": "2026-12-15",
    "preservation_days": 90,
    "service_provider": "CloudMail Pty Ltd",
}


@pytest.fixture
def catalog() -> Catalog:
    return get_catalog()


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.transaction() as s:
        yield s


def new_request(session: Session, **overrides: Any) -> Request:
    case = Case(
        reference=f"VN-{uuid.uuid4().hex[:8]}",
        title="Hanoi hospital ransomware",
        created_by="lan",
        created_at=NOW,
    )
    session.add(case)
    session.flush()
    values: dict[str, Any] = {
        "case_id": case.id,
        "direction": "outgoing",
        "type": "preservation",
        "status": "draft",
        "catalog_version": "2026.11-1",
        "counterpart": "au-24x7",
        "counterpart_country": "AU",
        "header": dict(HEADER),
        "fields": dict(FIELDS),
        "emergency": False,
        "confidentiality": "fact_and_substance",
        "drafted_by": "lan",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    row = Request(**values)
    session.add(row)
    session.flush()
    return row


def html_text(value: str) -> str:
    """``value`` as autoescape writes it."""
    return str(escape(value))


def pdf_text(pdf: bytes) -> str:
    """The PDF's text layer, without the bidi controls extractors add around right-to-left runs."""
    if shutil.which("pdftotext"):
        out = subprocess.run(
            ["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True, timeout=60
        ).stdout.decode()
    else:
        pypdf = pytest.importorskip(
            "pypdf", reason="neither pdftotext (poppler-utils) nor pypdf is installed"
        )
        import io

        out = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    return re.sub("[\u200e\u200f\u202a-\u202e\u2066-\u2069]", "", out)


def own_identity(session: Session, settings: Settings) -> tuple[KeyStore, dict[str, Any]]:
    keys = KeyStore(settings.key_passphrase_value(), settings.key_kdf_iterations)
    ensure_card(session, keys, settings, SYSTEM)
    sig = keys.ensure(session, "sig")
    return keys, sig.public_jwk


# --- every language -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_draft_in_every_language_as_html_and_pdf(session: Session, catalog: Catalog, lang: str) -> None:
    row = new_request(session)
    t = translator(lang)
    html = document.render_html(session, catalog, row, lang)

    assert re.search(
        rf'<html lang="{"zh-Hans" if lang == "zh" else lang}" dir="{"rtl" if lang == "ar" else "ltr"}">', html
    )
    assert html_text(t.gettext("Expedited preservation of stored electronic data")) in html
    assert html_text(t.gettext("DRAFT — not sent")) in html
    assert "art. 42" in html
    rt = catalog.type("preservation")
    for f in [*catalog.head.header, *rt.fields]:
        assert html_text(t.gettext(f.label)) in html, f"{lang}: label of {f.name} missing"
    if lang != "en":
        assert t.gettext("Offence under investigation") != "Offence under investigation"

    pdf = render_pdf(html)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    # The status row reads "Draft" in the document's language: its glyphs must reach the text layer,
    # which they do only when a font for the script was found and embedded.
    assert t.gettext("Draft") in text, f"{lang}: {t.gettext('Draft')!r} not in the PDF text"
    assert "Nguyễn Thị Lan" in text


def test_the_french_document_uses_the_french_labels(session: Session, catalog: Catalog) -> None:
    html = document.render_html(session, catalog, new_request(session), "fr")
    assert "Infraction faisant l&#39;objet de l&#39;enquête" in html
    assert "Conservation rapide de données électroniques stockées" in html
    assert "Offence under investigation" not in html
    assert "L&#39;existence et la teneur de la demande doivent rester confidentielles" in html  # enum option
    assert "15 décembre 2026" in html and "(2026-12-15)" in html  # a date: spelled out, and ISO beside it
    assert "Oui" in html  # mla_intended


@pytest.mark.parametrize("lang", ["en", "ar", "zh"])
def test_free_text_is_reproduced_as_written_and_escaped(
    session: Session, catalog: Catalog, lang: str
) -> None:
    row = new_request(session, fields={**FIELDS, "custodian_or_location": '"><img src=x onerror=alert(1)>'})
    html = document.render_html(session, catalog, row, lang)
    assert "<script" not in html and "<img" not in html
    assert html_text(SCRIPT) in html
    assert html_text(FACTS) in html  # line break kept: the cell is white-space: pre-wrap
    assert html_text(HEADER["requesting_authority"]) in html
    assert html_text('"><img src=x onerror=alert(1)>') in html


def test_fields_the_catalog_does_not_know_are_still_shown(session: Session, catalog: Catalog) -> None:
    row = new_request(session, fields={**FIELDS, "warrant_number": "TP-2026/88"})
    html = document.render_html(session, catalog, row, "es")
    assert "warrant_number" in html and "TP-2026/88" in html
    assert html_text(translator("es").gettext("Other particulars")) in html


def test_every_enum_option_of_the_catalog_has_a_label(catalog: Catalog) -> None:
    fields = [
        *catalog.head.header,
        *(f for t in catalog.types.values() for f in t.fields),
        *(f for a in catalog.lifecycle.actions.values() for f in a.fields),
    ]
    missing = [
        (f.name, option)
        for f in fields
        if f.type == "enum"
        for option in catalog.options(f)
        if document.option_label(catalog, f, option) is None
    ]
    assert not missing, f"give these options an English label (option_labels) in the catalog: {missing}"


def test_the_page_footer_follows_the_translation_word_order() -> None:
    assert str(document.page_footer(translator("zh"))).count("counter(page") == 2
    zh = str(document.page_footer(translator("zh")))
    assert zh.index("counter(page)") < zh.index("counter(pages)")
    assert str(document.css_string('a"b</style>')) == '"a\\000022 b\\00003c \\00002f style\\00003e "'


# --- provenance -------------------------------------------------------------------------------------------


def test_an_approved_and_sealed_request_names_our_key_and_the_envelope_digest(
    session: Session, settings: Settings, catalog: Catalog
) -> None:
    keys, sig_jwk = own_identity(session, settings)
    recipient = crypto.generate_key("X25519")
    sealed = envelope.seal(
        payload={"request_id": "x"},
        sender_node=settings.node_id,
        recipient_node="au-24x7",
        message_type="cp.request",
        conversation_id="c",
        in_reply_to=None,
        signing_key=keys.private(keys.ensure(session, "sig")),
        recipient_enc_jwk=crypto.public_jwk(recipient),
    )
    session.add(
        OutboxMessage(
            message_id=sealed.message_id,
            recipient="au-24x7",
            message_type="cp.request",
            conversation_id="c",
            payload={},
            created_at=NOW,
            status="delivered",
            attempts=1,
            next_attempt_at=NOW,
            envelope=sealed.token,
            signed=sealed.signed,
            digest=sealed.digest,
            delivered_at=NOW,
        )
    )
    row = new_request(
        session,
        status="delivered",
        request_message_id=sealed.message_id,
        sent_at=NOW,
        approved_by="minh",
        approved_at=NOW,
        approval={
            "drafted_by": "lan",
            "approved_by": "minh",
            "approved_at": "2026-11-03T14:05:00Z",
            "digest": "ab" * 32,
        },
    )

    html = document.render_html(session, catalog, row, "en")
    assert "DRAFT" not in html
    assert sealed.message_id in html
    assert sealed.digest in html
    assert fingerprint(sig_jwk) in html
    assert "ab" * 32 in html
    assert "minh" in html and "lan" in html

    fr = document.render_html(session, catalog, row, "fr", tz_name="Asia/Ho_Chi_Minh")
    assert "3 novembre 2026" in fr and "21:05" in fr  # approval time in French, on Hanoi's clock
    assert "Asia/Ho_Chi_Minh" in fr
    vi = document.render_html(session, catalog, row, "vi")
    assert "tháng 11" in vi


def test_a_request_waiting_in_the_outbox_is_not_yet_sealed(
    session: Session, settings: Settings, catalog: Catalog
) -> None:
    _, sig_jwk = own_identity(session, settings)
    message_id = str(uuid.uuid4())
    session.add(
        OutboxMessage(
            message_id=message_id,
            recipient="au-24x7",
            message_type="cp.request",
            conversation_id="c",
            payload={},
            created_at=NOW,
            next_attempt_at=NOW,
        )
    )
    row = new_request(
        session,
        status="sent",
        request_message_id=message_id,
        sent_at=NOW,
        approved_by="minh",
        approved_at=NOW,
    )
    html = document.render_html(session, catalog, row, "ru")
    t = translator("ru")
    assert message_id in html
    assert (
        html_text(t.gettext("Not yet sealed: the envelope is sealed and signed when it is delivered."))
        in html
    )
    assert fingerprint(sig_jwk) in html
    assert html_text(t.gettext("DRAFT — not sent")) not in html


def test_an_incoming_request_names_the_key_that_signed_it(session: Session, catalog: Catalog) -> None:
    peer_key = crypto.generate_key("Ed25519")
    jwk = crypto.public_jwk(peer_key)
    session.add(
        Peer(
            node_id="vn-24x7",
            name="VN 24/7",
            country="VN",
            authority="Bộ Công an",
            roles=["24x7"],
            base_url="https://vn.example",
            pinned_fingerprint=fingerprint(jwk),
            card_seq=1,
            card="{}",
            added_at=NOW,
            updated_at=NOW,
        )
    )
    session.flush()
    session.add(PeerKey(peer_id="vn-24x7", kid=jwk["kid"], use="sig", jwk=jwk, card_seq=1, valid_from=NOW))
    message_id = str(uuid.uuid4())
    session.add(
        InboxMessage(
            message_id=message_id,
            sender="vn-24x7",
            message_type="cp.request",
            conversation_id="c",
            created_at=NOW,
            received_at=NOW,
            envelope="e.n.v.e.l",
            digest="cd" * 32,
            signed="s.i.g",
            signing_kid=jwk["kid"],
            payload={},
            receipt="r",
        )
    )
    row = new_request(
        session,
        direction="incoming",
        status="acknowledged",
        counterpart="vn-24x7",
        counterpart_country="VN",
        request_message_id=message_id,
        remote_reference="A05/2026/0117",
        approved_by="minh",
        approval={"drafted_by": "lan", "approved_by": "minh"},
    )
    session.add(
        RequestEvent(
            request_id=row.id,
            at=NOW,
            actor="ca",
            side="local",
            action="acknowledge",
            from_status="received",
            to_status="acknowledged",
            detail={"reference": "AU-TKT-991"},
        )
    )
    session.flush()

    html = document.render_html(session, catalog, row, "fr")
    assert fingerprint(jwk) in html
    assert "cd" * 32 in html
    assert message_id in html
    assert "Viêt Nam" in html and "Bộ Công an" in html  # the requesting party is the sender
    assert "AU-TKT-991" in html  # our acknowledgement's ticket number
    assert html_text(translator("fr").gettext("Fingerprint of the sender's signing key")) in html


def test_a_refusal_cites_its_grounds_by_translated_label(session: Session, catalog: Catalog) -> None:
    row = new_request(session, status="refused", request_message_id=str(uuid.uuid4()))
    session.add(
        RequestEvent(
            request_id=row.id,
            at=NOW,
            actor="peer:au",
            side="remote",
            action="refuse",
            from_status="acknowledged",
            to_status="refused",
            detail={"grounds": ["political_offence"], "reasons": "Considered <political>."},
        )
    )
    session.flush()
    html = document.render_html(session, catalog, row, "es")
    t = translator("es")
    assert (
        html_text(t.gettext("The request concerns an offence the requested State considers political"))
        in html
    )
    assert "parallel" not in html  # reviewers' marks on citations stay out of the document
    assert "Considered &lt;political&gt;." in html
    assert html_text(t.ngettext("Ground for refusal", "Grounds for refusal", 1)) in html


# --- through the API, both sides -------------------------------------------------------------------------


def test_both_sides_print_the_same_provenance(two_sides: tuple[Side, Side]) -> None:
    vn, au = two_sides
    rid = sent_preservation(vn, au)
    mine = vn.officer.get(f"/api/v1/requests/{rid}/document", params={"lang": "fr"})
    theirs = au.ca.get(f"/api/v1/requests/{rid}/document", params={"lang": "fr"})
    assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
    assert "default-src 'none'" in mine.headers["content-security-policy"]
    vn_fp = vn.node.client(vn.node.admin_token).get("/api/v1/federation/node").json()["fingerprint"]

    def provenance(html: str) -> tuple[str, str]:
        fp = re.search(r'class="code fingerprint" dir="ltr">([^<]+)<', html)
        digest = re.search(r'class="code digest" dir="ltr">([0-9a-f]{64})<', html)
        assert fp and digest, html
        return fp.group(1), digest.group(1)

    assert provenance(mine.text) == provenance(theirs.text)
    assert provenance(mine.text)[0] == vn_fp
    pdf = au.ca.get(f"/api/v1/requests/{rid}/document", params={"lang": "ar", "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"


def test_dates_outside_the_calendar_are_shown_as_written(session: Session, catalog: Catalog) -> None:
    row = new_request(session, header={**HEADER, "deadline": "2026-02-30"})
    assert "2026-02-30" in document.render_html(session, catalog, row, "en")
    assert document.format_value(translator("fr"), catalog, catalog.head.header[0], None).kind == "empty"
    assert date(2026, 12, 15).isoformat() in document.render_html(session, catalog, row, "zh")
