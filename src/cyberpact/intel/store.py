"""Storing and reading STIX objects: the TAXII 2.1 collection semantics over SQL.

Writes to one collection are serialised (SQLite: the writer's ``BEGIN IMMEDIATE``; PostgreSQL: a row lock
on the collection), and ``date_added`` is strictly increasing within a collection: each object gets
``max(now, previous + 1 µs)``. Commit order therefore equals ``date_added`` order, so a client that syncs
with ``added_after`` set to the last ``X-TAXII-Date-Added-Last`` it saw never misses an object committed
late with an earlier time, nor one that shares its time. Pagination is keyset on ``(date_added, seq)``,
so it neither skips nor repeats rows even where times do tie (imported or migrated data).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session, aliased

from cyberpact.audit import service as audit
from cyberpact.intel import bulk, correlate, stix
from cyberpact.intel.errors import BadNextToken
from cyberpact.intel.markings import KNOWN_PAP, KNOWN_TLP, Pap, Tlp, definition_levels, effective
from cyberpact.intel.models import IntelCollection, IntelObject, IntelStatus, IntelTombstone
from cyberpact.kit.actor import Actor
from cyberpact.kit.canonical import canonical_json_floatless
from cyberpact.kit.errors import InvalidInput, MalformedInput, NotFound
from cyberpact.kit.pagination import decode_cursor, encode_cursor
from cyberpact.kit.time import utcnow

MAX_PAGE = 1000
_TICK = timedelta(microseconds=1)
_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
_OBJ = IntelObject.__table__


# --------------------------------------------------------------------------------------------- writing


@dataclass
class AddResult:
    status: IntelStatus
    stored: int = 0
    duplicates: int = 0
    failures: list[list[Any]] = field(default_factory=list)


def _lock_collection(session: Session, collection_id: uuid.UUID) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(IntelCollection.id).where(IntelCollection.id == collection_id).with_for_update()
        )


def _raw_of(session: Session, seqs: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(seqs), _IN_CHUNK):
        chunk = seqs[start : start + _IN_CHUNK]
        out.update(
            (seq, raw)
            for seq, raw in session.execute(select(_OBJ.c.seq, _OBJ.c.raw).where(_OBJ.c.seq.in_(chunk)))
        )
    return out


@dataclass
class Prepared:
    """An envelope's objects after validation, before any database work (so the write lock is not held
    while validating)."""

    total: int
    accepted: list[tuple[stix.Checked, str]]  # each with its canonical JSON
    failures: list[list[Any]]
    definitions: dict[str, tuple[Tlp | None, Pap | None]]


def prepare(objects: Sequence[Any]) -> Prepared:
    failures: list[list[Any]] = []
    accepted: list[tuple[stix.Checked, str]] = []
    defs: dict[str, tuple[Tlp | None, Pap | None]] = {}
    for obj in objects:
        try:
            checked = stix.check(obj)
        except stix.InvalidObject as exc:
            oid = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
            failures.append([oid[:300] if oid else None, None, str(exc)[:500]])
            continue
        accepted.append((checked, canonical_json_floatless(checked.obj).decode()))
        if checked.stix_type == "marking-definition":
            defs[checked.stix_id] = definition_levels(checked.obj)
    return Prepared(len(objects), accepted, failures, defs)


def add_objects(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    objects: Sequence[Any] | Prepared,
    *,
    source_peer: str | None = None,
    now: datetime | None = None,
) -> AddResult:
    """Validate and store an envelope's objects; each invalid one is refused on its own with a reason.

    Re-sending an object already stored with the same id and version is a success that stores nothing;
    a *different* object under the same id and version is refused, since STIX versions are immutable.
    """
    request_ts = now or utcnow()
    prepared = objects if isinstance(objects, Prepared) else prepare(objects)
    _lock_collection(session, collection.id)
    failures = list(prepared.failures)
    envelope_defs = definitions_for(session, collection.id, prepared)
    accepted = prepared.accepted

    # What is stored already for these ids: versions (for de-duplication) and the current latest.
    ids = sorted({c.stix_id for c, _ in accepted})
    stored_versions: dict[tuple[str, datetime], int] = {}
    latest: dict[str, tuple[datetime, int]] = {}
    driver = bulk.Driver(session)
    for seq, sid, version, is_latest in bulk.stored_versions(driver, collection.id, ids):
        stored_versions[(sid, version)] = seq
        if is_latest:
            latest[sid] = (version, seq)

    last_added = session.scalar(
        select(func.max(_OBJ.c.date_added)).where(_OBJ.c.collection_id == collection.id)
    )
    tick = request_ts if last_added is None or request_ts > last_added else last_added + _TICK

    successes: list[list[Any]] = []
    new_rows: list[dict[str, Any]] = []
    conflicts: list[tuple[int, stix.Checked, str, int]] = []  # (stored twin's seq, candidate, index)
    pending_versionless: list[tuple[stix.Checked, str]] = []
    in_envelope: dict[tuple[str, datetime], str] = {}
    duplicates = 0
    for c, raw in accepted:
        if c.version is None:
            pending_versionless.append((c, raw))
            continue
        key = (c.stix_id, c.version)
        twin = stored_versions.get(key)
        if twin is not None:
            conflicts.append((twin, c, raw, len(successes)))
            successes.append([c.stix_id, stix.format_timestamp(c.version)])
            continue
        if key in in_envelope:
            if in_envelope[key] != raw:
                failures.append([c.stix_id, stix.format_timestamp(c.version), _CONFLICT])
            else:
                duplicates += 1
                successes.append([c.stix_id, stix.format_timestamp(c.version)])
            continue
        in_envelope[key] = raw
        new_rows.append(_row(collection.id, c, c.version, tick, raw, source_peer, envelope_defs))
        tick += _TICK
        successes.append([c.stix_id, stix.format_timestamp(c.version)])

    # Objects with neither modified nor created (most SCOs): a copy equal to the latest is a duplicate,
    # anything else is a new version dated by its arrival, as TAXII 2.1 prescribes.
    if pending_versionless:
        latest_raw = _raw_of(
            session, [latest[c.stix_id][1] for c, _ in pending_versionless if c.stix_id in latest]
        )
        seen_raw: dict[str, str] = {}
        for c, raw in pending_versionless:
            current = seen_raw.get(c.stix_id)
            if current is None and c.stix_id in latest:
                current = latest_raw.get(latest[c.stix_id][1])
            if current == raw:
                duplicates += 1
                successes.append([c.stix_id, None])
                continue
            seen_raw[c.stix_id] = raw
            new_rows.append(_row(collection.id, c, tick, tick, raw, source_peer, envelope_defs))
            successes.append([c.stix_id, stix.format_timestamp(tick)])
            tick += _TICK

    if conflicts:
        stored_raw = _raw_of(session, sorted({t[0] for t in conflicts}))
        refused: set[int] = set()
        for seq, c, raw, index in conflicts:
            if stored_raw.get(seq) == raw:
                duplicates += 1
            else:
                refused.add(index)
                failures.append([c.stix_id, successes[index][1], _CONFLICT])
        successes = [s for i, s in enumerate(successes) if i not in refused]

    _set_latest(session, new_rows, latest)
    pushed: dict[str, Any] = {}
    if new_rows and collection.federate:
        # Imported here: federation stores what peers send through this module.
        from cyberpact.intel import federation

        sent = federation.push_objects(
            session,
            actor,
            collection,
            [(r["tlp"], r["source_peer"], r["_checked"].obj, r["raw"]) for r in new_rows],
        )
        if sent.per_peer:
            pushed["pushed"] = sent.per_peer
        if sent.unsendable:
            pushed["unsendable"] = sent.unsendable[:100]
    reports = _reports(new_rows, source_peer)
    if new_rows:
        bulk.insert_objects(driver, new_rows)
        correlate.record(session, collection.id, reports)

    status = IntelStatus(
        id=uuid.uuid4(),
        collection_id=collection.id,
        user_id=actor.user_id,
        request_timestamp=request_ts,
        status="complete",
        total_count=prepared.total,
        success_count=len(successes),
        failure_count=len(failures),
        pending_count=0,
        successes=successes,
        failures=failures,
    )
    session.add(status)
    session.flush()
    audit.record(
        session,
        actor,
        "intel.objects.add",
        "intel_collection",
        collection.id,
        detail={
            "status": str(status.id),
            "stored": len(new_rows),
            "duplicates": duplicates,
            "refused": len(failures),
            "source_peer": source_peer,
            **pushed,
        },
    )
    return AddResult(status=status, stored=len(new_rows), duplicates=duplicates, failures=failures)


_CONFLICT = "a different object with this id and version is already stored; STIX versions are immutable"


def definitions_for(
    session: Session, collection_id: uuid.UUID, prepared: Prepared
) -> dict[str, tuple[Tlp | None, Pap | None]]:
    """The levels of the marking definitions an envelope's objects refer to: those in the envelope, and
    those stored in the collection by an earlier envelope.

    Without the stored ones, an object marked with a custom ``TLP:RED`` definition sent the day before
    would read as unmarked, take the collection's default level, and federate.
    """
    defs = dict(prepared.definitions)
    unknown = sorted(
        {
            ref
            for c, _ in prepared.accepted
            for ref in c.markings
            if ref not in defs and ref not in KNOWN_TLP and ref not in KNOWN_PAP
        }
    )
    for start in range(0, len(unknown), _IN_CHUNK):
        query = select(_OBJ.c.stix_id, _OBJ.c.raw).where(
            _OBJ.c.collection_id == collection_id,
            _OBJ.c.stix_id.in_(unknown[start : start + _IN_CHUNK]),
            _OBJ.c.is_latest == True,  # noqa: E712 - SQL, not Python, comparison
        )
        for sid, raw in session.execute(query):
            defs[sid] = definition_levels(json.loads(raw))
    return defs


def _row(
    collection_id: uuid.UUID,
    c: stix.Checked,
    version: datetime,
    date_added: datetime,
    raw: str,
    source_peer: str | None,
    defs: dict[str, tuple[Tlp | None, Pap | None]],
) -> dict[str, Any]:
    tlp, pap = effective(c.markings, defs) if c.markings else (None, None)
    if c.stix_type == "marking-definition":
        tlp, pap = None, None
    return {
        "collection_id": collection_id,
        "stix_id": c.stix_id,
        "stix_type": c.stix_type,
        "version": version,
        "date_added": date_added,
        "is_latest": False,
        "created_by_ref": c.created_by_ref,
        "tlp": tlp,
        "pap": pap,
        "markings": c.markings or None,
        "source_peer": source_peer,
        "raw": raw,
        "_checked": c,
    }


def _set_latest(
    session: Session, rows: list[dict[str, Any]], latest: dict[str, tuple[datetime, int]]
) -> None:
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        cur = best.get(row["stix_id"])
        if cur is None or row["version"] > cur["version"]:
            best[row["stix_id"]] = row
    superseded = []
    for sid, row in best.items():
        stored = latest.get(sid)
        if stored is None or row["version"] > stored[0]:
            row["is_latest"] = True
            if stored is not None:
                superseded.append(stored[1])
    for start in range(0, len(superseded), _IN_CHUNK):
        chunk = superseded[start : start + _IN_CHUNK]
        session.execute(update(IntelObject).where(IntelObject.seq.in_(chunk)).values(is_latest=False))


def _reports(rows: list[dict[str, Any]], source_peer: str | None) -> list[correlate.Report]:
    """What the new rows report, for correlation; also strips the rows down to their columns."""
    reports: list[correlate.Report] = []
    for row in rows:
        c: stix.Checked = row.pop("_checked")
        reporter = c.created_by_ref or (f"peer:{source_peer}" if source_peer else None)
        if reporter is None:
            continue
        for kind, value in correlate.observables(c):
            reports.append(correlate.Report(kind, value, reporter, row["version"]))
    return reports


# --------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Filters:
    added_after: datetime | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str, ...] = ("last",)
    spec_versions: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        body = json.dumps(
            [
                self.added_after.isoformat() if self.added_after else None,
                sorted(self.ids),
                sorted(self.types),
                sorted(self.versions),
                sorted(self.spec_versions),
            ]
        )
        return hashlib.sha256(body.encode()).hexdigest()[:24]


def parse_versions(values: Sequence[str]) -> tuple[str, ...]:
    out = []
    for v in values:
        if v in ("last", "first", "all"):
            out.append(v)
            continue
        try:
            out.append(stix.format_timestamp(stix.parse_timestamp(v)))
        except ValueError as exc:
            raise MalformedInput(f"match[version]: {exc}; use last, first, all or a STIX timestamp") from None
    return tuple(out) or ("last",)


def _version_clause(filters: Filters) -> ColumnElement[bool] | None:
    if "all" in filters.versions:
        return None
    clauses: list[ColumnElement[bool]] = []
    stamps = [stix.parse_timestamp(v) for v in filters.versions if v not in ("last", "first")]
    if "last" in filters.versions:
        clauses.append(_OBJ.c.is_latest == True)  # noqa: E712 - SQL, not Python, comparison
    if "first" in filters.versions:
        other = aliased(IntelObject)
        earliest = (
            select(func.min(other.version))
            .where(other.collection_id == _OBJ.c.collection_id, other.stix_id == _OBJ.c.stix_id)
            .scalar_subquery()
        )
        clauses.append(_OBJ.c.version == earliest)
    if stamps:
        clauses.append(_OBJ.c.version.in_(stamps))
    return or_(*clauses) if len(clauses) > 1 else clauses[0]


def _select(collection_id: uuid.UUID, filters: Filters, *columns: Any) -> Select[Any] | None:
    if filters.spec_versions and "2.1" not in filters.spec_versions:
        return None  # only STIX 2.1 is stored
    query = select(*columns).where(_OBJ.c.collection_id == collection_id)
    if filters.ids:
        query = query.where(_OBJ.c.stix_id.in_(filters.ids))
    if filters.types:
        query = query.where(_OBJ.c.stix_type.in_(filters.types))
    clause = _version_clause(filters)
    if clause is not None:
        query = query.where(clause)
    if filters.added_after is not None:
        query = query.where(_OBJ.c.date_added > filters.added_after)
    return query


@dataclass
class Page:
    rows: list[Any]
    more: bool
    next: str | None

    @property
    def first_added(self) -> datetime | None:
        return self.rows[0].date_added if self.rows else None

    @property
    def last_added(self) -> datetime | None:
        return self.rows[-1].date_added if self.rows else None


class Pager:
    """Issues and checks ``next`` tokens: opaque, bound by HMAC to one collection, one endpoint and one
    set of filters, so a forged token or one from another collection or query is refused with a 400."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"cyberpact/taxii-next/v1", hashlib.sha256).digest()

    def _scope(self, collection_id: uuid.UUID, endpoint: str, filters: Filters) -> str:
        return f"{collection_id}:{endpoint}:{filters.fingerprint()}"

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()

    def issue(self, collection_id: uuid.UUID, endpoint: str, filters: Filters, row: Any) -> str:
        scope = hashlib.sha256(self._scope(collection_id, endpoint, filters).encode()).hexdigest()[:16]
        body = encode_cursor(scope, [row.date_added.isoformat(), row.seq])
        return f"{body}.{self._mac(body)}"

    def check(
        self, token: str, collection_id: uuid.UUID, endpoint: str, filters: Filters
    ) -> tuple[datetime, int]:
        bad = BadNextToken("The next token was not issued by this server for this collection and query")
        body, _, mac = token.partition(".")
        if len(token) > 400 or not mac or not hmac.compare_digest(mac, self._mac(body)):
            raise bad
        scope = hashlib.sha256(self._scope(collection_id, endpoint, filters).encode()).hexdigest()[:16]
        try:
            when, seq = decode_cursor(body, scope, 2)
            return datetime.fromisoformat(when), int(seq)
        except (InvalidInput, ValueError, TypeError):
            raise bad from None


def page(
    session: Session,
    pager: Pager,
    collection_id: uuid.UUID,
    endpoint: str,
    filters: Filters,
    *,
    limit: int,
    next_token: str | None,
    columns: Sequence[Any],
) -> Page:
    """One page in (date_added, seq) order; ``more`` is known without counting, by reading one row extra."""
    after = pager.check(next_token, collection_id, endpoint, filters) if next_token else None
    query = _select(collection_id, filters, _OBJ.c.date_added, _OBJ.c.seq, *columns)
    if query is None:
        return Page([], False, None)
    if after is not None:
        # Typed binds: SQLite compares the stored text form, so the key must be rendered the same way.
        key = tuple_(bindparam(None, after[0], type_=_OBJ.c.date_added.type), bindparam(None, after[1]))
        query = query.where(tuple_(_OBJ.c.date_added, _OBJ.c.seq) > key)
    limit = max(1, min(limit, MAX_PAGE))
    if filters.ids:
        rows = _by_ids(session, collection_id, filters, after, columns)[: limit + 1]
    else:
        rows = list(session.execute(query.order_by(_OBJ.c.date_added, _OBJ.c.seq).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    token = pager.issue(collection_id, endpoint, filters, rows[-1]) if more else None
    return Page(rows, more, token)


def _by_ids(
    session: Session,
    collection_id: uuid.UUID,
    filters: Filters,
    after: tuple[datetime, int] | None,
    columns: Sequence[Any],
) -> list[Any]:
    """Every version of a few objects, fetched by the unique (collection, id, version) index alone and
    filtered and ordered here.

    Given the type, version and date conditions too, a planner without fresh statistics may prefer an index
    on those and walk the whole collection (seen at a million objects on both databases); with only the
    ids in the query, the unique index is the one that applies.
    """
    cols = [_OBJ.c.date_added, _OBJ.c.seq, _OBJ.c.stix_id, _OBJ.c.stix_type, _OBJ.c.version, _OBJ.c.is_latest]
    extra = [c for c in columns if c.key not in {x.key for x in cols}]
    query = select(*cols, *extra).where(
        _OBJ.c.collection_id == collection_id, _OBJ.c.stix_id.in_(filters.ids)
    )
    rows = list(session.execute(query))
    wanted = set(filters.versions)
    stamps = {stix.parse_timestamp(v) for v in wanted - {"last", "first", "all"}}
    first: dict[str, datetime] = {}
    for r in rows:
        first[r.stix_id] = min(first.get(r.stix_id, r.version), r.version)

    def keep(r: Any) -> bool:
        if filters.types and r.stix_type not in filters.types:
            return False
        if filters.added_after is not None and r.date_added <= filters.added_after:
            return False
        if after is not None and (r.date_added, r.seq) <= after:
            return False
        if "all" in wanted:
            return True
        return (
            ("last" in wanted and r.is_latest)
            or ("first" in wanted and r.version == first[r.stix_id])
            or r.version in stamps
        )

    return sorted((r for r in rows if keep(r)), key=lambda r: (r.date_added, r.seq))


def object_exists(session: Session, collection_id: uuid.UUID, stix_id: str) -> bool:
    query = (
        select(_OBJ.c.seq).where(_OBJ.c.collection_id == collection_id, _OBJ.c.stix_id == stix_id).limit(1)
    )
    return session.scalar(query) is not None


def delete_object(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    stix_id: str,
    filters: Filters,
    *,
    only_from: str | None = None,
) -> int:
    """Delete versions of one object (all of them unless ``match[version]`` says otherwise).

    ``only_from`` limits the deletion to versions received from that peer: a peer's deletion never
    removes what this node or another peer contributed.
    """
    filters = replace(filters, ids=(stix_id,))
    query = _select(
        collection.id, filters, _OBJ.c.seq, _OBJ.c.version, _OBJ.c.is_latest, _OBJ.c.tlp, _OBJ.c.source_peer
    )
    if query is not None and only_from is not None:
        query = query.where(_OBJ.c.source_peer == only_from)
    rows = list(session.execute(query)) if query is not None else []
    if not rows:
        raise NotFound(f"No object {stix_id} matching the filters in this collection")
    _lock_collection(session, collection.id)
    seqs = [r.seq for r in rows]
    for start in range(0, len(seqs), _IN_CHUNK):
        session.execute(delete(IntelObject).where(IntelObject.seq.in_(seqs[start : start + _IN_CHUNK])))
    now = utcnow()
    everything = "all" in filters.versions and not filters.spec_versions and only_from is None
    # One "every version" tombstone per distinct marking and origin: a later pull tells each peer only of
    # deletions of what it may have received.
    tombstones: list[dict[str, Any]] = (
        [
            {"version": None, "tlp": t, "source_peer": p}
            for t, p in sorted({(r.tlp, r.source_peer) for r in rows}, key=str)
        ]
        if everything
        else [{"version": r.version, "tlp": r.tlp, "source_peer": r.source_peer} for r in rows]
    )
    for t in tombstones:
        t.update(collection_id=collection.id, stix_id=stix_id, deleted_at=now, deleted_by=actor.username)
    session.execute(insert(IntelTombstone), tombstones)
    if any(r.is_latest for r in rows):
        _promote_latest(session, collection.id, stix_id)
    session.flush()
    versions = [stix.format_timestamp(r.version) for r in rows]
    pushed: set[str] = set()
    if collection.federate:
        from cyberpact.intel import federation  # see add_objects

        pushed = federation.push_deletion(
            session,
            actor,
            collection,
            stix_id,
            None if everything else versions,
            [(r.tlp, r.source_peer) for r in rows],
        )
    audit.record(
        session,
        actor,
        "intel.object.delete",
        "intel_object",
        stix_id,
        detail={
            "collection": str(collection.id),
            "versions": versions,
            **({"only_from": only_from} if only_from else {}),
            **({"pushed": sorted(pushed)} if pushed else {}),
        },
    )
    return len(rows)


def _promote_latest(session: Session, collection_id: uuid.UUID, stix_id: str) -> None:
    newest = session.execute(
        select(_OBJ.c.seq)
        .where(_OBJ.c.collection_id == collection_id, _OBJ.c.stix_id == stix_id)
        .order_by(_OBJ.c.version.desc())
        .limit(1)
    ).scalar()
    if newest is not None:
        session.execute(update(IntelObject).where(IntelObject.seq == newest).values(is_latest=True))


def get_status(session: Session, actor: Actor, status_id: uuid.UUID) -> IntelStatus:
    row = session.get(IntelStatus, status_id)
    # Another user's status is "not found", not "forbidden": status ids must not be probeable.
    if row is None or (row.user_id != actor.user_id and not actor.has_any("admin", "system")):
        raise NotFound(f"No status {status_id}")
    return row


def status_resource(row: IntelStatus) -> dict[str, Any]:
    def details(items: list[Any]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            d: dict[str, Any] = {"id": item[0], "version": item[1]}
            if len(item) > 2:
                d["message"] = item[2]
            out.append({k: v for k, v in d.items() if v is not None})
        return out

    body: dict[str, Any] = {
        "id": str(row.id),
        "status": row.status,
        "request_timestamp": stix.format_timestamp(row.request_timestamp),
        "total_count": row.total_count,
        "success_count": row.success_count,
        "failure_count": row.failure_count,
        "pending_count": row.pending_count,
    }
    if row.successes:
        body["successes"] = details(row.successes)
    if row.failures:
        body["failures"] = details(row.failures)
    return body


def iter_objects(
    session: Session, collection_id: uuid.UUID, *, ids: Sequence[str] = (), batch: int = 5000
) -> Any:
    """Every latest object of a collection (or those ``ids``), streamed in date_added order, as dicts."""
    query = select(_OBJ.c.raw).where(_OBJ.c.collection_id == collection_id, _OBJ.c.is_latest == True)  # noqa: E712
    if ids:
        query = query.where(_OBJ.c.stix_id.in_(list(ids)))
    for (raw,) in session.execute(
        query.order_by(_OBJ.c.date_added, _OBJ.c.seq).execution_options(yield_per=batch)
    ):
        yield json.loads(raw)
