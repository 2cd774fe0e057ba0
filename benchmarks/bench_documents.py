"""Formal request documents: time to render one request in each of the seven languages, HTML and PDF
apart, beside the baseline of a one-line HTML page rendered to PDF in the same run (what WeasyPrint
costs for any document at all).

The request is a complete, approved and sealed preservation request in a scratch database (SQLite by
default), so the HTML figure includes the queries for the card, the outbox message and the peer. The
PDF figure is WeasyPrint alone on that HTML. The first renders of each language are warm-up (fonts are
loaded then) and are not counted.

    python -m benchmarks.bench_documents --runs 30
    python -m benchmarks.bench_documents --runs 30 --database postgresql
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.common import median, percentile, scratch_database
from cyberpact.cases import document
from cyberpact.cases.models import Case, Request
from cyberpact.catalog.service import get_catalog
from cyberpact.config import Settings
from cyberpact.federation import envelope
from cyberpact.federation.identity import ensure_card
from cyberpact.federation.models import OutboxMessage, Peer
from cyberpact.kit import crypto
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.documents import render_pdf
from cyberpact.kit.i18n import LANGUAGES
from cyberpact.kit.keystore import KeyStore

NOW = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)
WARMUP = 2
COLUMNS = ("HTML p50", "HTML p99", "PDF p50", "PDF p99")
BASELINE_HTML = "<!DOCTYPE html><html><body><p>Baseline.</p></body></html>"

HEADER: dict[str, Any] = {
    "our_reference": "A05/2026/0117",
    "request_kind": "new",
    "language": "en",
    "requesting_authority": "Cục An ninh mạng và phòng, chống tội phạm sử dụng công nghệ cao (A05)",
    "contact_name": "Nguyễn Thị Lan",
    "contact_email": "lan.nguyen@a05.example.vn",
    "contact_phone": "+84 24 3826 0000",
    "contact_timezone": "Asia/Ho_Chi_Minh",
    "contact_office_hours": "08:00-17:00 Monday to Friday",
    "investigating_authority": "A05 Investigation Division",
    "court_or_prosecution_reference": "Supreme People's Procuracy, case 117/2026/HS",
    "deadline": "2026-12-01",
    "deadline_reason": "The provider rotates its logs after 30 days.",
    "confidentiality": "fact_and_substance",
    "use_limitation": "For the investigation and prosecution of the offence stated only.",
}
FIELDS: dict[str, Any] = {
    "offence": "Illegal access (art. 7) and ransomware extortion",
    "facts_summary": (
        "On 2 November 2026 the servers of a Hanoi hospital were encrypted by ransomware. The ransom note "
        "names a cloud mailbox for payment instructions.\nPatient records were unavailable for 36 hours."
    ),
    "data_to_preserve": "Stored content, subscriber data and access logs of minh.tran.88@cloudmail.example",
    "relationship_to_offence": "The account received the ransom payment notifications.",
    "custodian_or_location": "CloudMail Pty Ltd, Sydney",
    "necessity": "The provider deletes inactive accounts after 30 days.",
    "mla_intended": True,
    "follow_up_mla_planned": "2026-12-15",
    "preservation_days": 90,
    "service_provider": "CloudMail Pty Ltd",
}


def prepare(db: Database, data_dir: Path, url: str) -> uuid.UUID:
    """A sealed outgoing preservation request, with this node's card and keys and the peer it went to."""
    settings = Settings(
        env="test",
        secret_key="bench-secret-" + "x" * 32,
        key_passphrase="bench-passphrase-long-enough",
        key_kdf_iterations=1000,
        data_dir=data_dir,
        database_url=url,
        node_id="vn-24x7",
        node_name="VN 24/7",
        node_country="VN",
        node_authority="Ministry of Public Security",
    )
    keys = KeyStore(settings.key_passphrase_value(), settings.key_kdf_iterations)
    with db.transaction() as session:
        ensure_card(session, keys, settings, SYSTEM)
        recipient = crypto.generate_key("X25519")
        session.add(
            Peer(
                node_id="au-24x7",
                name="AU 24/7",
                country="AU",
                authority="Australian Federal Police",
                roles=["24x7"],
                base_url="https://au.example",
                pinned_fingerprint="x",
                card_seq=1,
                card="{}",
                added_at=NOW,
                updated_at=NOW,
            )
        )
        sealed = envelope.seal(
            payload={"header": HEADER, "fields": FIELDS},
            sender_node="vn-24x7",
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
        case = Case(reference="VN-BENCH", title="Hanoi hospital ransomware", created_by="lan", created_at=NOW)
        session.add(case)
        session.flush()
        row = Request(
            case_id=case.id,
            direction="outgoing",
            type="preservation",
            status="delivered",
            catalog_version=get_catalog().version,
            counterpart="au-24x7",
            counterpart_country="AU",
            header=HEADER,
            fields=FIELDS,
            emergency=False,
            confidentiality="fact_and_substance",
            use_limitation=HEADER["use_limitation"],
            drafted_by="lan",
            approved_by="minh",
            approved_at=NOW,
            approval={
                "drafted_by": "lan",
                "approved_by": "minh",
                "approved_at": "2026-11-03T14:05:00.000000Z",
                "digest": "ab" * 32,
            },
            request_message_id=sealed.message_id,
            sent_at=NOW,
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(row)
        session.flush()
        return row.id


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    for _ in range(WARMUP):
        result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def page_count(html: str) -> int:
    import weasyprint

    return len(weasyprint.HTML(string=html).render().pages)


def run(kind: str, runs: int) -> None:
    catalog = get_catalog()
    with scratch_database(kind) as url, tempfile.TemporaryDirectory(prefix="cyberpact-bench-") as tmp:
        db = Database(url)
        try:
            request_id = prepare(db, Path(tmp), url)

            def html_of(lang: str) -> str:
                with db.transaction(read_only=True) as session:
                    return document.render_html(session, catalog, session.get_one(Request, request_id), lang)

            base, _ = timed(lambda: render_pdf(BASELINE_HTML), runs)
            print(f"\n{kind}: {runs} runs per figure (after {WARMUP} warm-up), milliseconds")
            print(f"{'':>8} " + " ".join(f"{c:>9}" for c in COLUMNS) + f" {'pages':>6} {'KiB':>5}")
            print(f"{'baseline':>8} {'':>9} {'':>9} {median(base):9.1f} {percentile(base, 99):9.1f}")
            for lang in LANGUAGES:
                html_times, html = timed(partial(html_of, lang), runs)
                pdf_times, pdf = timed(partial(render_pdf, html), runs)
                figures = [
                    median(html_times),
                    percentile(html_times, 99),
                    median(pdf_times),
                    percentile(pdf_times, 99),
                ]
                print(
                    f"{lang:>8} {figures[0]:9.2f} {figures[1]:9.2f} {figures[2]:9.1f} {figures[3]:9.1f} "
                    f"{page_count(html):6d} {len(pdf) / 1024:5.0f}"
                )
        finally:
            db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed renders per language and format")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="sqlite")
    args = parser.parse_args()
    for kind in ("sqlite", "postgresql") if args.database == "both" else (args.database,):
        run(kind, args.runs)


if __name__ == "__main__":
    main()
