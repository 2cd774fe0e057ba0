"""Reading a collection: TAXII 2.1 filters, keyset pages over ``(date_added, seq)`` with a signed ``next``
token, and the whole collection streamed for exports. ``store`` writes what this reads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, or_, select, tuple_, union
from sqlalchemy.orm import Session, aliased

from cyberpact.intel import stix
from cyberpact.intel.errors import BadNextToken
from cyberpact.intel.models import IntelObject
from cyberpact.kit.errors import InvalidInput, MalformedInput
from cyberpact.kit.pagination import decode_cursor, encode_cursor

MAX_PAGE = 1000
_OBJ = cast(Table, IntelObject.__table__)  # Core statements over the ORM table


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


# A STIX timestamp may have any number of fraction digits; stored versions have at most six.
_FINER_THAN_STORED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})(\d+)Z")


def parse_versions(values: Sequence[str]) -> tuple[str, ...]:
    """``match[version]`` as keywords and normalised timestamps; ``()`` when every version asked for is one
    no object here can have (see ``_none_stored``)."""
    if not values:
        return ("last",)
    out = []
    for v in values:
        if v in ("last", "first", "all"):
            out.append(v)
            continue
        finer = _FINER_THAN_STORED.fullmatch(v)
        if finer is not None:
            if finer.group(2).strip("0"):
                # Beyond a microsecond: a version no stored object has (one that states it is refused), so it
                # matches nothing, which is an empty answer and not a malformed request.
                continue
            v = finer.group(1) + "Z"
        try:
            out.append(stix.format_timestamp(stix.parse_timestamp(v)))
        except ValueError as exc:
            raise MalformedInput(f"match[version]: {exc}; use last, first, all or a STIX timestamp") from None
    return tuple(out)


def _version_clause(filters: Filters) -> ColumnElement[bool] | None:
    if "all" in filters.versions:
        return None
    clauses: list[ColumnElement[bool]] = []
    stamps = [stix.parse_timestamp(v) for v in filters.versions if v not in ("last", "first")]
    if "last" in filters.versions:
        clauses.append(_OBJ.c.is_latest == True)  # noqa: E712 - SQL, not Python, comparison
    if "first" in filters.versions:
        # No earlier version. PostgreSQL plans this as an anti-join that probes the unique index for each row
        # in the walk's order; a correlated min() made it read a whole range and sort it.
        other = aliased(IntelObject)
        earlier = select(other.seq).where(
            other.collection_id == _OBJ.c.collection_id,
            other.stix_id == _OBJ.c.stix_id,
            other.version < _OBJ.c.version,
        )
        clauses.append(~earlier.exists())
    if stamps:
        clauses.append(_OBJ.c.version.in_(stamps))
    return or_(*clauses) if len(clauses) > 1 else clauses[0]


def _none_stored(filters: Filters) -> bool:
    if not filters.versions:
        return True  # only versions finer than any stored one were asked for (parse_versions)
    return bool(filters.spec_versions) and "2.1" not in filters.spec_versions  # only STIX 2.1 is stored


def matching(collection_id: uuid.UUID, filters: Filters, *columns: Any) -> Select[Any] | None:
    """``columns`` of the rows the filters match, or None when no stored row can match."""
    if _none_stored(filters):
        return None
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
    if _none_stored(filters):
        return Page([], False, None)
    limit = max(1, min(limit, MAX_PAGE))
    if filters.ids:
        rows = _by_ids(session, collection_id, filters, after, columns)[: limit + 1]
    else:
        rows = _walk(session, collection_id, filters, after, limit + 1, columns)
    more = len(rows) > limit
    rows = rows[:limit]
    token = pager.issue(collection_id, endpoint, filters, rows[-1]) if more else None
    return Page(rows, more, token)


_RANGES_PER_QUERY = 100  # arms of one UNION: well under SQLite's 500 terms of a compound SELECT


def _ranges(filters: Filters) -> list[list[ColumnElement[bool]]]:
    """The rows ``filters`` match as a few index ranges, each readable in (date_added, seq) order.

    A condition on several types or versions at once leaves no index in the page's order: the planner walks
    the collection in that order and filters, or reads every match and sorts. One range per value, each read
    no further than the page, bounds a page by its length times the ranges, whatever the collection's size.
    Ranges may overlap (a latest version also named by its timestamp); their union is distinct.
    """
    c = _OBJ.c
    types = sorted(set(filters.types))
    versions = set(filters.versions)
    if "all" in versions or "first" in versions:
        # Every row may match. A first version is known only by the absence of an earlier one, so "first"
        # walks these ranges and looks each row it passes up in the unique index; not bounded by the page.
        clause = _version_clause(filters)
        rest = [] if clause is None else [clause]
        if not types:
            return [rest]
        return [[c.stix_type == t, c.is_latest == latest, *rest] for t in types for latest in (True, False)]
    ranges: list[list[ColumnElement[bool]]] = []
    if "last" in versions:
        latest = c.is_latest == True  # noqa: E712 - SQL, not Python, comparison
        ranges += [[c.stix_type == t, latest] for t in types] or [[latest]]
    of_types = [c.stix_type.in_(types)] if types else []
    # With types, a range of one version is read by the version index and filtered on the type: bounded by
    # the objects sharing that exact timestamp, not by the page.
    stamps = sorted({stix.parse_timestamp(v) for v in versions - {"last"}})
    ranges += [[c.version == stamp, *of_types] for stamp in stamps]
    return ranges


def _walk(
    session: Session,
    collection_id: uuid.UUID,
    filters: Filters,
    after: tuple[datetime, int] | None,
    n: int,
    columns: Sequence[Any],
) -> list[Any]:
    """The first ``n`` rows ``filters`` match after the key ``after``, in (date_added, seq) order.

    One range is one ordered index scan. Several are a UNION of each one's first ``n`` keys, cut to ``n``,
    joined back to the table by primary key: only the page's rows are read beyond the indexes.
    """
    c = _OBJ.c
    where = [c.collection_id == collection_id]
    if filters.added_after is not None:
        where.append(c.date_added > filters.added_after)
    if after is not None:
        # Typed binds: SQLite compares the stored text form, so the key must be rendered the same way.
        key = tuple_(bindparam(None, after[0], type_=c.date_added.type), bindparam(None, after[1]))
        where.append(tuple_(c.date_added, c.seq) > key)
    ranges = _ranges(filters)
    if len(ranges) == 1:
        query = select(c.date_added, c.seq, *columns).where(*where, *ranges[0])
        return list(session.execute(query.order_by(c.date_added, c.seq).limit(n)))
    key_of = (c.date_added, c.seq)
    found: dict[int, Any] = {}
    for start in range(0, len(ranges), _RANGES_PER_QUERY):
        arms = [
            select(select(*key_of).where(*where, *r).order_by(*key_of).limit(n).subquery())
            for r in ranges[start : start + _RANGES_PER_QUERY]
        ]
        keys = union(*arms).subquery()
        top = select(keys).order_by(keys.c.date_added, keys.c.seq).limit(n).subquery()
        query = select(c.date_added, c.seq, *columns).join_from(_OBJ, top, c.seq == top.c.seq)
        found.update((row.seq, row) for row in session.execute(query))
    return sorted(found.values(), key=lambda row: (row.date_added, row.seq))[:n]


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
