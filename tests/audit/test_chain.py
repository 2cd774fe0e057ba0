"""The audit chain names the first altered, deleted, inserted or reordered record."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import delete, make_url, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cyberpact.audit import service as audit
from cyberpact.audit.models import AuditAnchor, AuditRecord
from cyberpact.cli import app
from cyberpact.config import Settings
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.keystore import KeyStore


def _keys(settings: Settings) -> KeyStore:
    return KeyStore(settings.key_passphrase_value(), settings.key_kdf_iterations)


def _fill(db: Database, n: int = 6) -> None:
    with db.transaction() as s:
        for i in range(n):
            audit.record(s, SYSTEM, "test.write", "thing", i, detail={"i": i, "note": "Hà Nội ✓"})


def _verify(db: Database) -> audit.VerifyResult:
    with db.transaction(read_only=True) as s:
        return audit.verify(s, batch=2)


def _row(s: Session, seq: int) -> AuditRecord:
    return s.scalars(select(AuditRecord).where(AuditRecord.seq == seq)).one()


def test_intact_chain_verifies(db: Database, settings: Settings) -> None:
    _fill(db)
    result = _verify(db)
    assert result.ok and result.records == 6
    with db.transaction(read_only=True) as s:
        rows = s.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))


def test_altered_content_is_named(db: Database, settings: Settings) -> None:
    _fill(db)
    with db.transaction() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(actor="mallory"))
    f = _verify(db).finding
    assert f is not None and (f.seq, f.kind) == (3, "altered")


def test_altered_record_with_recomputed_hash_breaks_next_link(db: Database, settings: Settings) -> None:
    _fill(db)
    with db.transaction() as s:
        row = _row(s, 3)
        row.detail = {"i": 99}
        row.hash = audit._hash_of(row)
    f = _verify(db).finding
    assert f is not None and (f.seq, f.kind) == (4, "altered")


def test_deleted_record_is_named(db: Database, settings: Settings) -> None:
    _fill(db)
    with db.transaction() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq == 3))
    f = _verify(db).finding
    assert f is not None and (f.seq, f.kind) == (3, "deleted")


def test_deleted_and_relinked_chain_is_caught_by_numbering(db: Database, settings: Settings) -> None:
    _fill(db)
    with db.transaction() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq == 3))
        prev = _row(s, 2).hash
        for seq in (4, 5, 6):
            row = _row(s, seq)
            row.prev_hash = prev
            row.hash = audit._hash_of(row)
            prev = row.hash
    f = _verify(db).finding
    assert f is not None and (f.seq, f.kind) == (3, "deleted")


def test_inserted_record_is_named(db: Database, settings: Settings) -> None:
    _fill(db)
    with db.transaction() as s:
        for seq in (6, 5, 4, 3):
            s.execute(update(AuditRecord).where(AuditRecord.seq == seq).values(seq=seq + 1))
        forged = AuditRecord(
            seq=3,
            at=_row(s, 2).at,
            actor="mallory",
            actor_id=None,
            action="test.write",
            object_type="thing",
            object_id="x",
            source="evil",
            outcome="allowed",
            detail={},
            prev_hash=_row(s, 2).hash,
        )
        forged.hash = audit._hash_of(forged)
        s.add(forged)
    f = _verify(db).finding
    assert f is not None and (f.seq, f.kind) == (3, "inserted")


def test_reordered_records_are_named(db: Database, settings: Settings) -> None:
    _fill(db)
    cols = [
        "at",
        "actor",
        "actor_id",
        "action",
        "object_type",
        "object_id",
        "source",
        "outcome",
        "detail",
        "prev_hash",
        "hash",
    ]
    with db.transaction() as s:
        a, b = _row(s, 3), _row(s, 4)
        va, vb = {c: getattr(a, c) for c in cols}, {c: getattr(b, c) for c in cols}
        s.execute(delete(AuditRecord).where(AuditRecord.seq.in_([3, 4])))
        s.flush()
        s.add_all([AuditRecord(seq=3, **vb), AuditRecord(seq=4, **va)])
    f = _verify(db).finding
    assert f is not None and (f.seq, f.kind) == (3, "reordered")


def test_signed_anchor_catches_deleted_tail(db: Database, settings: Settings) -> None:
    _fill(db)
    with db.transaction() as s:
        anchor = audit.anchor(s, _keys(settings), "test")
        assert anchor is not None and anchor.seq == 6
        assert audit.anchor(s, _keys(settings), "test") is None  # head already anchored
    with db.transaction() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq.in_([5, 6])))
    f = _verify(db).finding
    assert f is not None and (f.seq, f.kind) == (5, "deleted")


def test_forged_anchor_is_refused(db: Database, settings: Settings) -> None:
    _fill(db)
    with db.transaction() as s:
        audit.anchor(s, _keys(settings), "test")
    with db.transaction() as s:
        s.execute(update(AuditAnchor).values(head_hash="0" * 64))
    f = _verify(db).finding
    assert f is not None and f.kind == "anchor"


def test_cli_verify_reports_ok_and_failure(db: Database, settings: Settings, cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    _fill(db)
    r = runner.invoke(app, ["audit", "anchor"])
    assert r.exit_code == 0 and "anchored record 6" in r.output
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 0, r.output
    assert "ok: 6 records, 1 signed anchors" in r.output
    with db.transaction() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(outcome="denied"))
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 2
    assert "record 2: altered" in r.output

    # Both walks are kept among the chain's checks, as the desk lists them, and the broken one is the
    # check an alarm about the chain rests on.
    with db.transaction(read_only=True) as s:
        checks = audit.latest_checks(s)
        # The second walk began with seven records (the six, and the one that kept the first walk) and
        # stopped at the first that does not hold.
        assert [(c.reason, c.status, c.records_total, c.records_checked) for c in checks] == [
            (audit.COMMAND, "broken", 7, 2),
            (audit.COMMAND, "intact", 6, 6),
        ]
        assert checks[0].finding_seq == 2 and checks[0].requested_by.startswith("cli:")
        assert audit.last_finished_check(s) == checks[0]
    # A walk on the command line never stands in for one an inspector asks for.
    with db.transaction() as s:
        assert audit.request_check(s, SYSTEM)[1]


def test_cli_verify_gives_its_verdict_where_the_database_refuses_writes(
    db: Database, settings: Settings, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(db)
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        read_only = f"sqlite:///file:{url.database}?mode=ro&uri=true"
    else:
        read_only = url.update_query_dict(
            {"options": "-c default_transaction_read_only=on"}
        ).render_as_string(hide_password=False)
    monkeypatch.setenv("CYBERPACT_DATABASE_URL", read_only)
    r = CliRunner().invoke(app, ["audit", "verify"])
    assert r.exit_code == 0 and "ok: 6 records" in r.output, r.output
    assert "not kept among the checks" in r.output
    with db.transaction(read_only=True) as s:
        assert audit.latest_checks(s) == []
