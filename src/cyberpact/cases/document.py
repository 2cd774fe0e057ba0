"""The formal request document: what a requested State's authority reads, prints and files.

Labels are translated into the reader's language; what the requesting authority wrote is reproduced as
written, never translated, because the request is the authority's own text and a rendering must not put
words in its mouth. The document closes with the provenance a reader needs to tie the paper to the
signed federation message: the message id, the fingerprint of the key that signed it and the SHA-256
digest of the envelope.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.cases.models import Request as RequestRow
from cyberpact.cases.models import RequestEvent
from cyberpact.cases.service import CHANNELS, requested_reference
from cyberpact.catalog.schemas import FieldDef
from cyberpact.catalog.service import Catalog
from cyberpact.federation.identity import current_card, fingerprint
from cyberpact.federation.models import InboxMessage, OutboxMessage, Peer, PeerKey
from cyberpact.kit import crypto
from cyberpact.kit.errors import IntegrityFailure
from cyberpact.kit.i18n import N_, Translator, jinja_environment, translator
from cyberpact.kit.keystore import NodeKey
from cyberpact.kit.time import parse_rfc3339

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "request_document.html"

# The document's lang attribute: Pango picks glyph variants by it, and Chinese here is Simplified.
_HTML_LANG = {"zh": "zh-Hans"}

ValueKind = Literal["text", "longtext", "list", "empty", "code"]


@dataclass(frozen=True)
class Value:
    """A field's value ready to print: ``kind`` says how; ``text``/``items`` are escaped by the template."""

    kind: ValueKind
    text: str = ""
    items: tuple[str, ...] = ()
    iso: str | None = None  # the machine form beside a spelled-out date, always set left to right


@dataclass(frozen=True)
class Row:
    label: str
    value: Value
    name: str


@dataclass(frozen=True)
class Party:
    node: str | None
    name: str | None
    authority: str | None
    country: str | None


@dataclass(frozen=True)
class Provenance:
    """Where the document's content came from. ``state``: draft, queued (not yet sealed), sealed, received,
    registered (typed in from a request that arrived outside the network)."""

    state: Literal["draft", "queued", "sealed", "received", "registered"]
    message_id: str | None = None
    key_fingerprint: str | None = None
    key_id: str | None = None
    envelope_digest: str | None = None
    at: datetime | None = None
    channel: str | None = None  # registered: how it arrived (a key of cases.service.CHANNELS)
    registered_by: str | None = None


@dataclass(frozen=True)
class Refusal:
    grounds: tuple[str, ...]
    reasons: str


@dataclass
class DocumentView:
    lang: str
    html_lang: str
    direction: str
    title: str
    article: str
    request_id: str
    status: str
    emergency: bool
    confidential: bool
    requesting: Party
    requested: Party
    requesting_reference: str | None
    requested_reference: str | None
    header: list[Row]
    particulars: list[Row]
    other: list[Row]
    drafted_by: str | None
    approved_by: str | None
    approved_at: str | None
    approval_digest: str | None
    provenance: Provenance
    catalog_version: str
    sent_at: str | None
    preserved_until: str | None
    refusal: Refusal | None
    tz_name: str
    fonts: Markup
    page_footer: Markup


# --- values -----------------------------------------------------------------------------------------------


def option_label(catalog: Catalog, f: FieldDef, option: str) -> str | None:
    """The English label of an enum option (the catalog's ``option_labels``, or its kinds of assistance),
    or None when the catalog gives none."""
    if f.options_from == "mla_assistance":
        return next((c.label for c in catalog.head.mla_assistance if c.id == option), None)
    return f.option_labels.get(option)


def _as_written(value: Any) -> str:
    if isinstance(value, str):
        return value
    # Whatever else a peer sent is shown in full rather than dropped, in a form that cannot be mistaken
    # for prose.
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str | list | dict):
        return bool(value.strip() if isinstance(value, str) else value)
    return True


def format_value(t: Translator, catalog: Catalog, f: FieldDef, value: Any) -> Value:
    """A field value for print: coded values (options, grounds, dates, yes/no) in the reader's language,
    free text exactly as written."""
    if not _present(value):
        return Value("empty")
    kind = f.type
    if kind == "boolean" and isinstance(value, bool):
        return Value("text", t.gettext("Yes") if value else t.gettext("No"))
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return Value("text", t.format_number(value))
    if kind == "date" and isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return Value("text", value)
        # The ISO form beside the spelled-out one: a date in a legal instrument must not depend on
        # the reader knowing how this language orders day and month.
        return Value("text", t.format_date(day), iso=value)
    if kind == "language" and isinstance(value, str):
        name = t.language_name(value)
        return Value("text", value if name == value else f"{name} ({value})")
    if kind == "enum" and isinstance(value, str):
        label = option_label(catalog, f, value)
        return Value("text", t.gettext(label) if label else value)
    if kind == "grounds" and isinstance(value, list):
        return Value("list", items=tuple(ground_label(t, catalog, str(g)) for g in value))
    if kind == "list" and isinstance(value, list):
        return Value("list", items=tuple(_as_written(v) for v in value if _present(v)))
    if kind in ("email", "phone", "timezone") and isinstance(value, str):
        return Value("code", value)
    text = _as_written(value)
    return Value("longtext" if kind == "longtext" or "\n" in text else "text", text)


def ground_label(t: Translator, catalog: Catalog, ground_id: str) -> str:
    # The label alone: the catalog's citations still carry reviewers' marks ("[parallel: ...]",
    # "(confirm)") that do not belong in a document sent abroad.
    ground = next((g for g in catalog.head.grounds if g.id == ground_id), None)
    return t.gettext(ground.label) if ground is not None else ground_id


def _rows(t: Translator, catalog: Catalog, defs: Iterable[FieldDef], values: dict[str, Any]) -> list[Row]:
    return [
        Row(
            t.gettext(f.label) if f.label else f.name, format_value(t, catalog, f, values.get(f.name)), f.name
        )
        for f in defs
    ]


def _unknown_rows(t: Translator, known: set[str], values: dict[str, Any]) -> list[Row]:
    # A peer on a newer catalog may send fields this node does not know; the formal document still shows
    # all that was sent, under the field's own name.
    out = []
    for name, value in values.items():
        if name in known:
            continue
        text = _as_written(value)
        out.append(
            Row(
                name,
                Value("longtext" if "\n" in text else "text", text) if _present(value) else Value("empty"),
                name,
            )
        )
    return out


# --- parties and provenance -------------------------------------------------------------------------------


def _own_party(session: Session, t: Translator) -> Party:
    card = current_card(session)
    if card is None:
        return Party(None, None, None, None)
    try:
        payload, _ = crypto.signatures_of(json.loads(card.card))
    except (IntegrityFailure, ValueError):
        return Party(None, None, None, None)
    country = payload.get("country")
    return Party(
        _str(payload.get("node_id")),
        _str(payload.get("name")),
        _str(payload.get("authority")),
        t.country_name(country) if isinstance(country, str) and country else None,
    )


def _peer_party(session: Session, t: Translator, row: RequestRow) -> Party:
    peer = session.get(Peer, row.counterpart) if row.counterpart else None
    country = (peer.country if peer is not None else None) or row.counterpart_country
    return Party(
        row.counterpart,
        peer.name if peer else None,
        peer.authority if peer else None,
        t.country_name(country) if country else None,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _jws_kid(compact: str | None) -> str | None:
    if not compact:
        return None
    try:
        segment = compact.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        return None
    return _str(header.get("kid")) if isinstance(header, dict) else None


def _own_fingerprint(session: Session, kid: str | None) -> tuple[str | None, str | None]:
    """The fingerprint of our signing key ``kid``, or of the current one when the message is not sealed."""
    if kid is None:
        card = current_card(session)
        kid = card.sig_kid if card is not None else None
    key = session.get(NodeKey, kid) if kid else None
    if key is None:
        return None, kid
    return fingerprint(key.public_jwk), kid


def provenance(session: Session, row: RequestRow) -> Provenance:
    if row.direction == "incoming" and row.counterpart is None:
        approval = row.approval or {}
        return Provenance(
            "registered",
            at=row.sent_at,
            channel=_str(approval.get("channel")),
            registered_by=_str(approval.get("registered_by")),
        )
    if not row.request_message_id:
        return Provenance("draft")
    if row.direction == "incoming":
        inbox = session.get(InboxMessage, row.request_message_id)
        if inbox is None:
            return Provenance("received", message_id=row.request_message_id)
        key = session.get(PeerKey, (inbox.sender, inbox.signing_kid))
        return Provenance(
            "received",
            message_id=inbox.message_id,
            key_fingerprint=fingerprint(key.jwk) if key is not None else None,
            key_id=inbox.signing_kid,
            envelope_digest=inbox.digest,
            at=inbox.received_at,
        )
    out = session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == row.request_message_id))
    if out is None or not out.digest:
        # Envelopes are sealed at delivery; until then only the key that will sign can be named.
        fp, kid = _own_fingerprint(session, None)
        return Provenance(
            "queued",
            message_id=row.request_message_id,
            key_fingerprint=fp,
            key_id=kid,
            at=out.created_at if out is not None else None,
        )
    fp, kid = _own_fingerprint(session, _jws_kid(out.signed))
    return Provenance(
        "sealed",
        message_id=out.message_id,
        key_fingerprint=fp,
        key_id=kid,
        envelope_digest=out.digest,
        at=out.delivered_at or out.created_at,
    )


def _refusal(session: Session, t: Translator, catalog: Catalog, row: RequestRow) -> Refusal | None:
    if row.status != "refused":
        return None
    ev = session.scalar(
        select(RequestEvent)
        .where(RequestEvent.request_id == row.id, RequestEvent.action == "refuse")
        .order_by(RequestEvent.seq.desc())
        .limit(1)
    )
    if ev is None:
        return None
    grounds = ev.detail.get("grounds")
    return Refusal(
        tuple(ground_label(t, catalog, str(g)) for g in grounds) if isinstance(grounds, list) else (),
        _as_written(ev.detail.get("reasons") or ""),
    )


# --- rendering --------------------------------------------------------------------------------------------


# Each stack leads with the document's own script and goes on to the others', so that free text in another
# script (a Chinese company name in a French request) still finds a matching serif face.
_FONTS = {
    "zh": Markup('"Noto Serif CJK SC", "Source Han Serif SC", "Noto Serif", "Noto Naskh Arabic", serif'),
    "ar": Markup('"Noto Naskh Arabic", "Noto Serif", "Noto Serif CJK SC", "DejaVu Sans", serif'),
}
_LATIN_FONTS = Markup('"Noto Serif", "DejaVu Serif", "Noto Naskh Arabic", "Noto Serif CJK SC", serif')


def build_view(
    session: Session, catalog: Catalog, row: RequestRow, lang: str, tz_name: str = "UTC"
) -> DocumentView:
    t = translator(lang)
    rt = catalog.type(row.type)
    state_label = catalog.lifecycle.states.get(row.status)
    ours, theirs = _own_party(session, t), _peer_party(session, t, row)
    requesting, requested = (ours, theirs) if row.direction == "outgoing" else (theirs, ours)
    approval = row.approval or {}
    approved_at: datetime | None = row.approved_at
    if approved_at is None and isinstance(approval.get("approved_at"), str):
        try:
            approved_at = parse_rfc3339(approval["approved_at"])
        except ValueError:
            approved_at = None
    header_names = {f.name for f in catalog.head.header}
    field_names = {f.name for f in rt.fields}
    return DocumentView(
        lang=lang,
        html_lang=_HTML_LANG.get(lang, lang),
        direction=t.direction,
        title=t.gettext(rt.label),
        article=rt.article,
        request_id=str(row.id),
        status=t.gettext(state_label) if state_label else row.status,
        emergency=bool(row.emergency),
        confidential=row.confidentiality not in ("", "none"),
        requesting=requesting,
        requested=requested,
        requesting_reference=_str(row.header.get("our_reference")),
        requested_reference=requested_reference(session, row),
        header=_rows(t, catalog, catalog.head.header, row.header),
        particulars=_rows(t, catalog, rt.fields, row.fields),
        other=_unknown_rows(t, header_names, row.header) + _unknown_rows(t, field_names, row.fields),
        drafted_by=_str(approval.get("drafted_by")) or row.drafted_by,
        approved_by=_str(approval.get("approved_by")) or row.approved_by,
        approved_at=t.format_datetime(approved_at, tz_name, zone=False) if approved_at else None,
        approval_digest=_str(approval.get("digest")),
        provenance=provenance(session, row),
        catalog_version=row.catalog_version,
        sent_at=t.format_datetime(row.sent_at, tz_name, zone=False) if row.sent_at else None,
        preserved_until=t.format_date(row.preserved_until) if row.preserved_until else None,
        refusal=_refusal(session, t, catalog, row),
        tz_name=tz_name,
        fonts=_FONTS.get(lang, _LATIN_FONTS),
        page_footer=page_footer(t),
    )


def css_string(value: str) -> Markup:
    """``value`` as a CSS string literal, safe inside a <style> element whatever it contains.

    Autoescaping is HTML escaping and means nothing inside <style>, so every character but ASCII letters
    and digits is written as a CSS hex escape. Each escape ends with the one space CSS consumes as its
    terminator, so a real space after it survives.
    """
    out = [ch if ch.isascii() and ch.isalnum() else f"\\{ord(ch):06x} " for ch in value]
    return Markup('"' + "".join(out) + '"')  # noqa: S704 - every character is escaped above


PAGE_FOOTER = N_("Page %(page)s of %(pages)s")


def page_footer(t: Translator) -> Markup:
    """The CSS ``content`` of the page-number margin box, in the order the translation puts the numbers."""
    parts = []
    text = t.gettext(PAGE_FOOTER)
    for piece in re.split(r"(%\(page\)s|%\(pages\)s)", text):
        if piece == "%(page)s":
            parts.append(Markup("counter(page)"))
        elif piece == "%(pages)s":
            parts.append(Markup("counter(pages)"))
        elif piece:
            parts.append(css_string(piece))
    return Markup(" ").join(parts)


@cache
def environment() -> Environment:
    env = jinja_environment(FileSystemLoader(TEMPLATES))
    env.filters["css_string"] = css_string
    env.globals["CHANNELS"] = CHANNELS
    return env


def render_view(view: DocumentView) -> str:
    return environment().get_template(TEMPLATE).render(doc=view, i18n=translator(view.lang))


def render_html(
    session: Session, catalog: Catalog, request_row: RequestRow, lang: str, tz_name: str = "UTC"
) -> str:
    """The formal request document as one self-contained HTML page (inline CSS, no external resource).

    Times are given on the clock of ``tz_name`` (an IANA zone), named beside them.
    """
    return render_view(build_view(session, catalog, request_row, lang, tz_name))
