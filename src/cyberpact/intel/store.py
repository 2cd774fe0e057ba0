"""Storing STIX objects: the TAXII 2.1 collection semantics over SQL (``query`` reads them).

Writes to one collection are serialised (SQLite: the writer's ``BEGIN IMMEDIATE``; PostgreSQL: a row lock
on the collection), and ``date_added`` is strictly increasing within a collection: each object gets
``max(now, previous + 1 µs)``. Commit order therefore equals ``date_added`` order, so a client that syncs
with ``added_after`` set to the last ``X-TAXII-Date-Added-Last`` it saw never misses an object committed
late with an earlier time, nor one that shares its time. Pagination is keyset on ``(date_added, seq)``,
so it neither skips nor repeats rows even where times do tie (imported or migrated data).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.intel import bulk, correlate, reports, stix
from cyberpact.intel.markings import (
    KNOWN_PAP,
    KNOWN_TLP,
    Pap,
    Tlp,
    definition_levels,
    effective,
    unreadable,
)
from cyberpact.intel.models import (
    IntelCollection,
    IntelObject,
    IntelStatus,
    IntelTombstone,
)
from cyberpact.intel.query import Filters, matching
from cyberpact.kit.actor import Actor
from cyberpact.kit.canonical import canonical_json_floatless
from cyberpact.kit.errors import NotFound
from cyberpact.kit.time import utcnow

_TICK = timedelta(microseconds=1)
_OBJ = cast(Table, IntelObject.__table__)  # Core statements over the ORM table
# A status entry must name an id (TAXII 2.1 section 4.3.1); this one stands for an item that states none.
NO_ID = "(no id)"


def taxii_timestamp(value: datetime) -> str:
    """A TAXII timestamp (date added, request time): unlike a STIX one it always has microsecond
    precision, six digits even where they end in zeros (TAXII 2.1 section 2)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


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
    for start in range(0, len(seqs), bulk.IN_CHUNK):
        chunk = seqs[start : start + bulk.IN_CHUNK]
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
            failures.append([*_claimed(obj), str(exc)[:500]])
            continue
        accepted.append((checked, canonical_json_floatless(checked.obj).decode()))
        if checked.stix_type == "marking-definition":
            defs[checked.stix_id] = definition_levels(checked.obj)
    return Prepared(len(objects), accepted, failures, defs)


def _claimed(obj: Any) -> list[str | None]:
    """The id and version a refused object claims, as sent, for its status entry (TAXII 2.1 section 4.3.1
    names both in every entry); ``add_objects`` fills in a version it does not state with the request's
    time, the version TAXII would have given it."""
    if not isinstance(obj, dict):
        return [None, None]
    found = [obj.get(name) for name in ("id", "modified", "created")]
    oid = found[0][:300] if isinstance(found[0], str) else None
    version = next((v[:64] for v in found[1:] if isinstance(v, str)), None)
    return [oid, version]


def add_objects(
    session: Session,
    actor: Actor,
    collection: IntelCollection,
    objects: Sequence[Any] | Prepared,
    *,
    source_peer: str | None = None,
    now: datetime | None = None,
    blind: bool = False,
) -> AddResult:
    """Validate and store an envelope's objects; each invalid one is refused on its own with a reason.

    Re-sending an object already stored with the same id and version is a success that stores nothing;
    a *different* object under the same id and version is refused, since STIX versions are immutable.

    ``blind``: the caller may write to the collection but not read it. SCO ids are derived from their
    values, so the status must not tell such a caller that an address or hash was there already, nor
    since when: an equal copy of a versionless object is answered with the version it would have had,
    and counted as stored. (A conflict under a versioned id stays refused: those ids are random, and
    whoever names one knows of it already.)
    """
    request_ts = now or utcnow()
    prepared = objects if isinstance(objects, Prepared) else prepare(objects)
    _lock_collection(session, collection.id)
    request_version = taxii_timestamp(request_ts)  # the same text as the status's request_timestamp
    failures = [[f[0], f[1] or request_version, *f[2:]] for f in prepared.failures]
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
        # id -> (raw, version) of the copy an equal one would duplicate: the one stored, or an earlier
        # one of this envelope. The duplicate's status entry names that copy's version.
        seen: dict[str, tuple[str | None, datetime]] = {
            c.stix_id: (latest_raw.get(latest[c.stix_id][1]), latest[c.stix_id][0])
            for c, _ in pending_versionless
            if c.stix_id in latest
        }
        for c, raw in pending_versionless:
            current = seen.get(c.stix_id)
            if current is not None and current[0] == raw:
                duplicates += 1
                successes.append([c.stix_id, request_version if blind else stix.format_timestamp(current[1])])
                continue
            seen[c.stix_id] = (raw, tick)
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
    defined = sorted({r["stix_id"] for r in new_rows if r["stix_type"] == "marking-definition"})
    released = _release_held(session, collection.id, defined, envelope_defs) if defined else []
    pushed: dict[str, Any] = {"released": len(released)} if released else {}
    if (new_rows or released) and collection.federate:
        # Imported here: federation stores what peers send through this module.
        from cyberpact.intel import federation

        sent = federation.push_objects(
            session,
            actor,
            collection,
            [(r["tlp"], r["source_peer"], r["_checked"].obj, r["raw"]) for r in new_rows] + released,
        )
        if sent.per_peer:
            pushed["pushed"] = sent.per_peer
        if sent.unsendable:
            pushed["unsendable"] = sent.unsendable[:100]
    # A revocation takes back what the object reported, in every version: a revoked indicator is no
    # longer a State's report. (Looked up before the revoking version is stored, which would hide them.)
    revoked = sorted({r["stix_id"] for r in new_rows if r["_checked"].obj.get("revoked") is True})
    withdrawn = reports.standing(session, collection.id, revoked) if revoked else []
    counted = reports.close_sightings(session, collection.id, new_rows)
    counted += reports.of_rows(session, collection.id, new_rows, source_peer, skip=set(revoked))
    if new_rows:
        bulk.insert_objects(driver, new_rows)
        reports.open_sightings(session, new_rows)
        correlate.withdraw(session, collection.id, withdrawn)
        correlate.record(session, collection.id, counted)

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
    if blind:
        return AddResult(status=status, stored=len(new_rows) + duplicates, failures=failures)
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
    defs.update(
        _stored_definitions(
            session, collection_id, [ref for c, _ in prepared.accepted for ref in c.markings], defs
        )
    )
    return defs


def _stored_definitions(
    session: Session, collection_id: uuid.UUID, refs: Sequence[str], known: Mapping[str, Any]
) -> dict[str, tuple[Tlp | None, Pap | None]]:
    """The levels of the definitions among ``refs`` (but the well-known and ``known`` ones) stored in the
    collection."""
    defs: dict[str, tuple[Tlp | None, Pap | None]] = {}
    unknown = sorted({r for r in refs if r not in known and r not in KNOWN_TLP and r not in KNOWN_PAP})
    for sid, raw in bulk.latest_raw(bulk.Driver(session), collection_id, unknown):
        defs[sid] = definition_levels(json.loads(raw))
    return defs


def _release_held(
    session: Session,
    collection_id: uuid.UUID,
    defined: Sequence[str],
    known: Mapping[str, tuple[Tlp | None, Pap | None]],
) -> list[tuple[str | None, str | None, dict[str, Any], str]]:
    """Objects held as RED for a marking definition nobody had sent, now that ``defined`` arrived (their
    levels in ``known``, with the envelope's other definitions): each takes the level its markings give,
    and comes back ``(tlp, source_peer, object, raw)`` for federation. Still held if another of its
    definitions is missing or the level is RED indeed.

    A scan of the collection's RED objects (no index says which definitions an object names); it runs only
    when a marking definition is stored for the first time or in a new version.
    """
    c = _OBJ.c
    # A prefilter on the JSON text; membership is checked on the parsed list below.
    named = or_(*(c.markings.cast(Text).like(f'%"{d}"%') for d in defined))
    held = [
        row
        for row in session.execute(
            select(c.seq, c.markings, c.source_peer, c.raw).where(
                c.collection_id == collection_id, c.tlp == "red", c.markings.is_not(None), named
            )
        )
        if set(defined) & set(row.markings)
    ]
    if not held:
        return []
    defs = dict(known)
    defs.update(_stored_definitions(session, collection_id, [r for row in held for r in row.markings], defs))
    released: list[tuple[str | None, str | None, dict[str, Any], str]] = []
    changes: list[dict[str, Any]] = []
    for row in held:
        tlp, pap = effective(row.markings, defs)
        if unreadable(row.markings, defs) or tlp == "red":
            continue
        changes.append({"s": row.seq, "t": tlp, "p": pap})
        released.append((tlp, row.source_peer, json.loads(row.raw), row.raw))
    if changes:
        session.execute(
            update(_OBJ).where(c.seq == bindparam("s")).values(tlp=bindparam("t"), pap=bindparam("p")),
            changes,
        )
    return released


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
    if c.markings and unreadable(c.markings, defs):
        # A definition this node has never seen may be a RED one kept elsewhere: the object is held as
        # RED (stored, read here, never federated) rather than shared at the collection's default level.
        tlp = "red"
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
    for start in range(0, len(superseded), bulk.IN_CHUNK):
        chunk = superseded[start : start + bulk.IN_CHUNK]
        session.execute(update(IntelObject).where(IntelObject.seq.in_(chunk)).values(is_latest=False))


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
    query = matching(
        collection.id, filters, _OBJ.c.seq, _OBJ.c.version, _OBJ.c.is_latest, _OBJ.c.tlp, _OBJ.c.source_peer
    )
    if query is not None and only_from is not None:
        query = query.where(_OBJ.c.source_peer == only_from)
    rows = list(session.execute(query)) if query is not None else []
    if not rows:
        raise NotFound(f"No object {stix_id} matching the filters in this collection")
    _lock_collection(session, collection.id)
    seqs = [r.seq for r in rows]
    withdrawn = reports.standing(session, collection.id, [stix_id], only=set(seqs))
    for start in range(0, len(seqs), bulk.IN_CHUNK):
        session.execute(delete(IntelObject).where(IntelObject.seq.in_(seqs[start : start + bulk.IN_CHUNK])))
    correlate.withdraw(session, collection.id, withdrawn)
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
            d: dict[str, Any] = {"id": item[0] or NO_ID, "version": item[1]}
            if len(item) > 2:
                d["message"] = item[2]
            out.append({k: v for k, v in d.items() if v is not None})
        return out

    body: dict[str, Any] = {
        "id": str(row.id),
        "status": row.status,
        "request_timestamp": taxii_timestamp(row.request_timestamp),
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
