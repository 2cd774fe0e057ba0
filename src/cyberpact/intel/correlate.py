"""Correlation: the same observable reported by two or more States.

Observables are the values of SCOs (addresses, domains, URLs, file hashes) and the literals of an
indicator's equality comparisons (``[ipv4-addr:value = '203.0.113.9']``); a sighting reports those of the
indicator it sighted, as the collection held it when the sighting arrived (``reports._sighted``). Each
report is kept per (observable, collection, reporter), the reporter being the object's ``created_by_ref``
or, for objects without one, the peer it came from; ``intel_identities`` says which State a reporter
speaks for.

``intel_correlations`` holds, per observable two or more States reported, the number of those States,
recomputed on write from the observations (set-based, per envelope), so that listing correlations is an
index range scan rather than a grouping of every report.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from cyberpact.intel import bulk, patterns
from cyberpact.intel.models import IntelCorrelation, IntelIdentity, IntelObservation
from cyberpact.intel.stix import Checked
from cyberpact.kit.db import Lock, advisory_lock

_VALUE_SCOS = ("ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr", "mac-addr")
_HASH_NAMES = {
    "MD5": "MD5",
    "SHA1": "SHA-1",
    "SHA224": "SHA-224",
    "SHA256": "SHA-256",
    "SHA384": "SHA-384",
    "SHA512": "SHA-512",
    "SHA3256": "SHA3-256",
    "SHA3512": "SHA3-512",
    "SSDEEP": "SSDEEP",
    "TLSH": "TLSH",
}
_CASELESS = ("domain-name:value", "email-addr:value", "mac-addr:value", "ipv6-addr:value")


def normalise(kind: str, value: str) -> tuple[str, str]:
    """One spelling per observable, so ``Example.ORG`` and ``example.org`` correlate."""
    value = value.strip()
    obj_type, _, path = kind.partition(":")
    if path.startswith("hashes."):
        alg = path[7:].upper().replace("-", "").replace("_", "")
        return f"{obj_type}:hashes.{_HASH_NAMES.get(alg, path[7:])}", value.lower()
    if kind in _CASELESS:
        return kind, value.lower()
    return kind, value


def key_of(kind: str, value: str) -> str:
    kind, value = normalise(kind, value)
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()


def observables(checked: Checked) -> list[tuple[str, str]]:
    """Normalised (kind, value) pairs an object reports."""
    obj = checked.obj
    found: list[tuple[str, str]] = []
    if checked.stix_type == "indicator" and obj.get("pattern_type") == "stix":
        found = patterns.equality_observables(obj["pattern"])
    elif checked.stix_type in _VALUE_SCOS and isinstance(obj.get("value"), str):
        found = [(f"{checked.stix_type}:value", obj["value"])]
    elif checked.stix_type == "file" and isinstance(obj.get("hashes"), dict):
        found = [(f"file:hashes.{k}", v) for k, v in obj["hashes"].items() if isinstance(v, str)]
    return [normalise(k, v) for k, v in found if v.strip()]


@dataclass(frozen=True, slots=True)
class Report:
    kind: str
    value: str
    reporter: str
    seen: datetime

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.kind}\x00{self.value}".encode()).hexdigest()


def _lock(session: Session) -> None:
    # Correlation rows are recomputed from observations; two PostgreSQL transactions reporting the same
    # observable must not each count without seeing the other, so refreshes queue here. (SQLite writers
    # already hold the database write lock.)
    advisory_lock(session, Lock.CORRELATION)


def record(session: Session, collection_id: uuid.UUID, reports: Sequence[Report]) -> None:
    """Index the reports of newly stored objects and refresh the correlations they change."""
    if not reports:
        return
    merged: dict[tuple[str, str], list[Any]] = {}
    for r in reports:
        key = r.key
        row = merged.get((key, r.reporter))
        if row is None:
            merged[(key, r.reporter)] = [r.kind, r.value, r.seen, r.seen, 1]
        else:
            row[2], row[3], row[4] = min(row[2], r.seen), max(row[3], r.seen), row[4] + 1
    reporters = {r.reporter for r in reports}
    found = session.execute(
        select(IntelIdentity.reporter, IntelIdentity.state).where(IntelIdentity.reporter.in_(reporters))
    )
    states: dict[str, str] = {row.reporter: row.state for row in found}
    _lock(session)
    d = bulk.Driver(session)
    rows = []
    for (key, rep), (kind, value, first, last, n) in sorted(merged.items()):
        rows.append((key, rep, kind, value, states.get(rep), first, last, n))
    bulk.upsert_observations(d, collection_id, rows)
    # A report from a reporter whose State is not known changes no count (NULL is not a State); when the
    # mapping arrives, service.set_identity refreshes that reporter's observables.
    known = sorted({key for (key, rep) in merged if states.get(rep)})
    bulk.refresh_correlations(d, known)


def withdraw(session: Session, collection_id: uuid.UUID, reports: Sequence[Report]) -> None:
    """Take back the reports of deleted or revoked objects: each observation loses what they added, one
    that no report holds any more goes, and the correlations they fed are recomputed.

    First and last seen of an observation that other reports still hold stay as they were: they bound
    what is left, and recomputing them would mean re-reading every object that reported it.
    """
    if not reports:
        return
    counts = Counter((r.key, r.reporter) for r in reports)
    _lock(session)
    obs = cast(Table, IntelObservation.__table__)  # Core, for an executemany keyed by (key, reporter)
    where = (
        obs.c.key == bindparam("k"),
        obs.c.collection_id == collection_id,
        obs.c.reporter == bindparam("r"),
    )
    params = [{"k": k, "r": rep, "n": n} for (k, rep), n in sorted(counts.items())]
    session.execute(update(obs).where(*where).values(reports=obs.c.reports - bindparam("n")), params)
    session.execute(delete(obs).where(*where, obs.c.reports <= 0), [{"k": k, "r": r} for k, r in counts])
    bulk.refresh_correlations(bulk.Driver(session), sorted({k for k, _ in counts}))


def refresh_reporter(session: Session, reporter: str) -> None:
    _lock(session)
    keys = session.scalars(
        select(IntelObservation.key).where(IntelObservation.reporter == reporter).distinct()
    )
    bulk.refresh_correlations(bulk.Driver(session), sorted(keys))


@dataclass(frozen=True)
class StateSeen:
    state: str
    first_seen: datetime
    last_seen: datetime
    reports: int


@dataclass(frozen=True)
class Correlation:
    kind: str
    value: str
    first_seen: datetime
    last_seen: datetime
    states: list[StateSeen]


def correlations(
    session: Session,
    *,
    readable: set[uuid.UUID] | None,
    min_states: int = 2,
    kind: str | None = None,
    value: str | None = None,
    state: str | None = None,
    limit: int = 100,
    after: tuple[datetime, str] | None = None,
) -> tuple[list[Correlation], tuple[datetime, str] | None]:
    """A page of correlations, most recently seen first, and the key to resume after.

    Counts are recomputed over the collections the reader may read, so nobody learns of a report in a
    collection closed to them; a page can therefore hold fewer than ``limit`` items while more follow.
    """
    corr = IntelCorrelation
    query = select(corr).where(corr.states >= min_states)
    if kind and value:
        query = query.where(corr.key == key_of(kind, value))
    elif kind:
        query = query.where(corr.kind == kind)
    if after is not None:
        key = tuple_(
            bindparam(None, after[0], type_=IntelCorrelation.__table__.c.last_seen.type),
            bindparam(None, after[1]),
        )
        query = query.where(tuple_(corr.last_seen, corr.key) < key)
    candidates = list(
        session.scalars(query.order_by(corr.last_seen.desc(), corr.key.desc()).limit(limit + 1))
    )
    more = len(candidates) > limit
    candidates = candidates[:limit]
    if not candidates:
        return [], None
    obs = IntelObservation
    oq = (
        select(
            obs.key,
            obs.state,
            func.min(obs.first_seen),
            func.max(obs.last_seen),
            func.sum(obs.reports),
        )
        .where(obs.key.in_([c.key for c in candidates]), obs.state.is_not(None))
        .group_by(obs.key, obs.state)
    )
    if readable is not None:
        if not readable:
            return [], None
        oq = oq.where(obs.collection_id.in_(readable))
    per_key: dict[str, list[StateSeen]] = {}
    for okey, st, first, latest, reports in session.execute(oq):
        per_key.setdefault(okey, []).append(StateSeen(st or "", first, latest, int(reports or 0)))
    out = []
    for c in candidates:
        seen = sorted(per_key.get(c.key, []), key=lambda s: s.state)
        if len(seen) < min_states or (state and all(s.state != state for s in seen)):
            continue
        out.append(
            Correlation(
                kind=c.kind,
                value=c.value,
                first_seen=min(s.first_seen for s in seen),
                last_seen=max(s.last_seen for s in seen),
                states=seen,
            )
        )
    final = candidates[-1]
    return out, ((final.last_seen, final.key) if more else None)
