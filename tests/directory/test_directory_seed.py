from __future__ import annotations

import time

from sqlalchemy import func, select

from cyberpact.audit.models import AuditRecord
from cyberpact.directory import service
from cyberpact.directory.models import Authority, Party, TreatyStatus
from cyberpact.kit.db import Database

PRESS = "press report, not checked against the depositary"
SAMPLE = "illustrative seed, replace with notified authorities"


def test_seed_loads_once_with_sources(db: Database) -> None:
    started = time.monotonic()
    with db.transaction() as session:
        assert service.load_seed_if_empty(session) is True
    elapsed = time.monotonic() - started
    with db.transaction() as session:
        assert service.load_seed_if_empty(session) is False  # idempotent: the directory is not empty
    with db.transaction(read_only=True) as session:
        parties = {p.code: p for p in session.scalars(select(Party))}
        treaty = {t.party_code: t for t in session.scalars(select(TreatyStatus))}
        authorities = list(session.scalars(select(Authority)))
        audited = session.scalar(select(func.count()).select_from(AuditRecord))
    # 64 names from the Netherlands record (the EU among them) + 7 press-reported signatures.
    assert len(parties) == 71 and set(treaty) == set(parties)
    assert {"VN", "AU", "PL", "EU"} <= set(parties)
    eu = parties["EU"]
    assert eu.kind == "regional_economic_integration_organization" and eu.code3 == "EUE"
    assert len(eu.members) == 27 and "PL" in eu.members and "GR" in eu.members
    assert all(t.source and t.as_of for t in treaty.values())
    assert str(treaty["ML"].signature_date) == "2025-10-26"
    assert str(treaty["MU"].signature_date) == "2025-11-19"
    assert str(treaty["RW"].signature_date) == "2025-10-26"
    assert str(treaty["SA"].signature_date) == "2025-10-26"
    assert str(treaty["DZ"].signature_date) == "2025-10-25"
    assert {c for c, t in treaty.items() if t.source == PRESS} == {"GB", "SE", "VE", "VN", "ZA", "UG", "ZW"}
    assert all(t.instrument_date is None for t in treaty.values())
    assert {(a.party_code, a.kind) for a in authorities} == {
        ("VN", "contact_point_24_7"),
        ("AU", "contact_point_24_7"),
        ("AU", "central_authority"),
        ("PL", "central_authority"),
    }
    assert all(a.source == SAMPLE for a in authorities)
    assert audited == 71 * 2 + 4
    print(f"seed took {elapsed:.2f}s")
