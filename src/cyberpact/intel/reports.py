"""What each stored object reports to the correlation index (:mod:`cyberpact.intel.correlate`).

An object reports its own observables, under its ``created_by_ref`` or the peer it came from. A sighting
reports those of the object it sighted, as the collection held it when the sighting arrived, kept in the
sighting's ``reported`` column so that revoking the sighting takes back exactly those. A sighting that
arrives before what it sighted waits for it in ``intel_open_sightings`` and is counted when it comes.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from cyberpact.intel import bulk, correlate, stix
from cyberpact.intel.models import IntelObject, IntelOpenSighting

_OBJ = cast(Table, IntelObject.__table__)
_OPEN = cast(Table, IntelOpenSighting.__table__)


def of_rows(
    session: Session,
    collection_id: uuid.UUID,
    rows: list[dict[str, Any]],
    source_peer: str | None,
    skip: set[str],
) -> list[correlate.Report]:
    """What the new rows report, for correlation, but for the objects in ``skip``; also strips the rows
    down to their columns, and fills in what each sighting reports (``_sighted``)."""
    sightings = [row for row in rows if row["stix_type"] == "sighting"]
    if sightings:
        _sighted(session, collection_id, rows, sightings)
    reports: list[correlate.Report] = []
    for row in rows:
        c: stix.Checked = row.pop("_checked")
        if c.stix_id in skip:
            continue
        if c.stix_type == "sighting":
            reports.extend(_sighting_reports(c.obj, source_peer, row["version"], row["reported"]))
        else:
            reports.extend(_reports_of(c, source_peer, row["version"]))
    return reports


def _sighted(
    session: Session, collection_id: uuid.UUID, rows: list[dict[str, Any]], sightings: list[dict[str, Any]]
) -> None:
    """Set each sighting row's ``reported``: the observables of the object it sighted, as that object
    stands now, in this envelope (its newest version) or else stored in this collection. A sighting of an
    object this collection does not hold yet reports nothing until that object arrives (``_waits_for``)."""
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        best = newest.get(row["stix_id"])
        if row["stix_type"] != "sighting" and (best is None or row["version"] > best["version"]):
            newest[row["stix_id"]] = row
    here: dict[str, stix.Checked] = {sid: row["_checked"] for sid, row in newest.items()}
    wanted = sorted({str(r["_checked"].obj.get("sighting_of_ref")) for r in sightings} - here.keys())
    stored: set[str] = set()
    for sid, raw in bulk.latest_raw(bulk.Driver(session), collection_id, wanted):
        stored.add(sid)
        with contextlib.suppress(stix.InvalidObject):  # stored under older rules: nothing to name
            checked = stix.check(json.loads(raw))
            here[checked.stix_id] = checked
    for row in sightings:
        of = str(row["_checked"].obj.get("sighting_of_ref"))
        target = here.get(of)
        row["reported"] = [list(pair) for pair in correlate.observables(target)] if target else []
        if target is None and of not in stored:
            row["_waits_for"] = of


def open_sightings(session: Session, rows: list[dict[str, Any]]) -> None:
    """Keep the new sightings whose sighted object has not arrived (see ``close_sightings``)."""
    waiting = [
        {
            "collection_id": r["collection_id"],
            "sighting_id": r["stix_id"],
            "version": r["version"],
            "target_id": of,
        }
        for r in rows
        if (of := r.pop("_waits_for", None)) is not None
    ]
    if waiting:
        session.execute(insert(IntelOpenSighting), waiting)


def close_sightings(
    session: Session, collection_id: uuid.UUID, rows: list[dict[str, Any]]
) -> list[correlate.Report]:
    """The reports of stored sightings that were waiting for one of the new objects: each is given the
    observables of the newest version that arrived, as if it had come after it, and stops waiting."""
    arrived: dict[str, dict[str, Any]] = {}
    for row in rows:
        best = arrived.get(row["stix_id"])
        if row["stix_type"] != "sighting" and (best is None or row["version"] > best["version"]):
            arrived[row["stix_id"]] = row
    anything = select(_OPEN.c.target_id).where(_OPEN.c.collection_id == collection_id).limit(1)
    if not arrived or session.execute(anything).first() is None:  # nothing waits: the usual case
        return []
    ids = sorted(arrived)
    # Statements per chunk of arrivals, not per waiting sighting: a writer may have sent many sightings of
    # one object ahead of it.
    waiting: list[Any] = []
    joined = _OBJ.join(
        _OPEN,
        (_OBJ.c.collection_id == _OPEN.c.collection_id)
        & (_OBJ.c.stix_id == _OPEN.c.sighting_id)
        & (_OBJ.c.version == _OPEN.c.version),
    )
    for start in range(0, len(ids), bulk.IN_CHUNK):
        chunk = ids[start : start + bulk.IN_CHUNK]
        found = list(
            session.execute(
                select(_OBJ.c.seq, _OBJ.c.stix_id, _OPEN.c.target_id)
                .select_from(joined)
                .where(_OPEN.c.collection_id == collection_id, _OPEN.c.target_id.in_(chunk))
            )
        )
        if not found:
            continue
        given = [
            {"s": seq, "r": [list(pair) for pair in correlate.observables(arrived[target]["_checked"])]}
            for seq, _sid, target in found
        ]
        session.execute(
            update(_OBJ).where(_OBJ.c.seq == bindparam("s")).values(reported=bindparam("r")), given
        )
        session.execute(
            delete(_OPEN).where(_OPEN.c.collection_id == collection_id, _OPEN.c.target_id.in_(chunk))
        )
        waiting.extend(found)
    if not waiting:
        return []
    seqs = {seq for seq, _sid, _target in waiting}
    return standing(session, collection_id, sorted({sid for _seq, sid, _target in waiting}), only=seqs)


def _sighting_reports(
    obj: Mapping[str, Any],
    source_peer: str | None,
    version: datetime,
    reported: Sequence[Sequence[str]] | None,
) -> list[correlate.Report]:
    """A sighting is its author's report of what it sighted, seen when the sighting says it was last."""
    reporter = obj.get("created_by_ref") or (f"peer:{source_peer}" if source_peer else None)
    if not reporter or not reported:
        return []
    try:
        seen = stix.parse_timestamp(obj.get("last_seen") or obj.get("first_seen"))
    except ValueError:
        seen = version
    return [correlate.Report(kind, value, str(reporter), seen) for kind, value in reported]


def _reports_of(c: stix.Checked, source_peer: str | None, version: datetime) -> list[correlate.Report]:
    reporter = c.created_by_ref or (f"peer:{source_peer}" if source_peer else None)
    if reporter is None:
        return []
    return [correlate.Report(kind, value, reporter, version) for kind, value in correlate.observables(c)]


def standing(
    session: Session, collection_id: uuid.UUID, stix_ids: Sequence[str], only: set[int] | None = None
) -> list[correlate.Report]:
    """The reports the stored versions of these objects count for (``only``: of those versions, by seq).

    None for an object one of whose versions is revoked: its reports were taken back with the revocation.
    """
    found: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for start in range(0, len(stix_ids), bulk.IN_CHUNK):
        query = select(
            _OBJ.c.seq, _OBJ.c.stix_id, _OBJ.c.version, _OBJ.c.source_peer, _OBJ.c.raw, _OBJ.c.reported
        ).where(
            _OBJ.c.collection_id == collection_id, _OBJ.c.stix_id.in_(stix_ids[start : start + bulk.IN_CHUNK])
        )
        for row in session.execute(query):
            found.setdefault(row.stix_id, []).append((row, json.loads(row.raw)))
    reports: list[correlate.Report] = []
    for versions in found.values():
        if any(obj.get("revoked") is True for _, obj in versions):
            continue
        for row, obj in versions:
            if only is not None and row.seq not in only:
                continue
            if obj.get("type") == "sighting":
                reports.extend(_sighting_reports(obj, row.source_peer, row.version, row.reported))
                continue
            try:
                checked = stix.check(obj)
            except stix.InvalidObject:  # stored under older rules; it reported nothing we can name now
                continue
            reports.extend(_reports_of(checked, row.source_peer, row.version))
    return reports
