"""The ingest hot path, written against the database driver.

Through SQLAlchemy Core an envelope of 1,000 objects spent most of its time in per-row bind processing and
statement compilation, not in the database. These statements go to the driver's ``executemany`` as plain
tuples instead, with values converted here exactly as the column types in ``models`` store them (a test
reads rows written this way back through the ORM and compares them). SQLite stores UUIDs as 32 hex digits
and times as naive UTC text with six fractional digits; PostgreSQL takes the Python values as they are.

Also here: the lookups by a batch of ids (stored versions, latest raw objects). On PostgreSQL each id of
an ``unnest``-ed array probes the unique index in a ``LATERAL`` subquery that ``OFFSET 0`` keeps from
being flattened: a nested loop of index probes whatever the table's statistics say. A plain join or an
``IN`` list over a freshly grown table, before ``ANALYZE`` has run (a database without autovacuum never
runs it), can plan as a scan of the whole collection per envelope: ingest then slows as the collection
grows (seen here: 10,100 falling to 5,000 objects/s over 200,000).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

IN_CHUNK = 500  # values per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


class Driver:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.p = "%s" if self.pg else "?"

    def uuid(self, value: uuid.UUID) -> Any:
        return value if self.pg else value.hex

    def ts(self, value: datetime) -> Any:
        return value if self.pg else _sqlite_ts(value)

    def read_ts(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    def bool(self, value: bool) -> Any:
        return value if self.pg else int(value)

    def json(self, value: list[Any] | None) -> Any:
        """A JSON column's value, or None."""
        if value is None:
            return None
        text = json.dumps(value, ensure_ascii=False)
        if self.pg:
            from psycopg.types.json import Jsonb

            return Jsonb(text, dumps=_as_is)
        return text

    def markings(self, value: tuple[str, ...] | None) -> Any:
        """A row's marking ids as the JSON column holds them; an envelope's objects mostly share them."""
        if not value:
            return None
        text = _markings_json(value)
        if self.pg:
            from psycopg.types.json import Jsonb

            # Dumped by identity: the text is JSON already, so psycopg need not encode the list again.
            return Jsonb(text, dumps=_as_is)
        return text

    def many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            self.session.connection().exec_driver_sql(sql.replace("?", self.p), list(rows))

    def rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        result = self.session.connection().exec_driver_sql(sql.replace("?", self.p), params)
        return list(result) if result.returns_rows else []


@lru_cache(maxsize=8192)
def _sqlite_ts(value: datetime) -> str:
    # isoformat less its "+00:00" is strftime's text at half the cost; cached because a batch's objects
    # and observations mostly share their versions.
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]


@lru_cache(maxsize=1024)
def _markings_json(value: tuple[str, ...]) -> str:
    return json.dumps(list(value))


def _as_is(text: str) -> str:
    return text


_OBJECT_COLUMNS = (
    "collection_id, stix_id, stix_type, version, date_added, is_latest, created_by_ref, tlp, pap, markings, "
    "source_peer, raw, reported"
)


def _copy(d: Driver, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    raw = d.session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _stage(d: Driver, name: str, columns: str) -> None:
    # Per connection, emptied at each commit: COPY into it, then one INSERT ... ON CONFLICT from it.
    d.session.connection().exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS"
    )
    # Empty already unless an earlier batch of this same transaction used it (a CLI import does).
    d.session.connection().exec_driver_sql(f"DELETE FROM {name}")


def insert_objects(d: Driver, rows: Sequence[dict[str, Any]]) -> None:
    if d.pg:
        # COPY: the bulk path PostgreSQL has for this; no per-row round of the protocol.
        values = [
            (
                r["collection_id"],
                r["stix_id"],
                r["stix_type"],
                r["version"],
                r["date_added"],
                r["is_latest"],
                r["created_by_ref"],
                r["tlp"],
                r["pap"],
                d.markings(r["markings"]),
                r["source_peer"],
                r["raw"],
                d.json(r.get("reported")),
            )
            for r in rows
        ]
        _copy(d, f"COPY intel_objects ({_OBJECT_COLUMNS}) FROM STDIN", values)
        return
    sql = f"INSERT INTO intel_objects ({_OBJECT_COLUMNS}) VALUES ({', '.join(['?'] * 13)})"
    d.many(
        sql,
        [
            (
                d.uuid(r["collection_id"]),
                r["stix_id"],
                r["stix_type"],
                d.ts(r["version"]),
                d.ts(r["date_added"]),
                d.bool(r["is_latest"]),
                r["created_by_ref"],
                r["tlp"],
                r["pap"],
                d.markings(r["markings"]),
                r["source_peer"],
                r["raw"],
                d.json(r.get("reported")),
            )
            for r in rows
        ],
    )


def _by_ids(d: Driver, collection_id: uuid.UUID, ids: Sequence[str], columns: str) -> list[Any]:
    """``columns`` of every stored version of ``ids`` in the collection: one probe of the unique index per
    id on either database (see the module's docstring)."""
    if d.pg:
        return d.rows(
            "SELECT o.* FROM unnest(?::text[]) AS k(id) CROSS JOIN LATERAL ("
            f"SELECT {columns} FROM intel_objects WHERE collection_id = ? AND stix_id = k.id OFFSET 0) AS o",
            (list(ids), collection_id),
        )
    found: list[Any] = []
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        found += d.rows(
            f"SELECT {columns} FROM intel_objects WHERE collection_id = ? "
            f"AND stix_id IN ({','.join('?' * len(chunk))})",
            (d.uuid(collection_id), *chunk),
        )
    return found


def stored_versions(
    d: Driver, collection_id: uuid.UUID, ids: Sequence[str]
) -> list[tuple[int, str, datetime, bool]]:
    """(seq, stix_id, version, is_latest) of every stored version of ``ids`` in the collection."""
    if not ids:
        return []
    return [
        (int(seq), str(sid), d.read_ts(version), bool(latest))
        for seq, sid, version, latest in _by_ids(d, collection_id, ids, "seq, stix_id, version, is_latest")
    ]


def latest_raw(d: Driver, collection_id: uuid.UUID, ids: Sequence[str]) -> list[tuple[str, str]]:
    """(stix_id, raw) of the latest stored version of each of ``ids`` in the collection."""
    if not ids:
        return []
    # is_latest is tested here, not in SQL: in the WHERE, it makes SQLite walk the collection's latest rows
    # (ix_intel_objects_latest) instead of probing each id.
    rows = _by_ids(d, collection_id, ids, "stix_id, raw, is_latest")
    return [(str(sid), str(raw)) for sid, raw, latest in rows if latest]


def upsert_observations(
    d: Driver,
    collection_id: uuid.UUID,
    rows: Sequence[tuple[str, str, str, str, str | None, datetime, datetime, int]],
) -> None:
    """(key, reporter, kind, value, state, first_seen, last_seen, reports)."""
    low, high = ("LEAST", "GREATEST") if d.pg else ("MIN", "MAX")
    conflict = (
        "ON CONFLICT (key, collection_id, reporter) DO UPDATE SET "
        f"first_seen = {low}(intel_observations.first_seen, excluded.first_seen), "
        f"last_seen = {high}(intel_observations.last_seen, excluded.last_seen), "
        "reports = intel_observations.reports + excluded.reports"
    )
    columns = (
        "INSERT INTO intel_observations "
        "(key, collection_id, reporter, kind, value, state, first_seen, last_seen, reports)"
    )
    cid = d.uuid(collection_id)
    values = [(k, cid, rep, kind, v, st, d.ts(f), d.ts(la), n) for k, rep, kind, v, st, f, la, n in rows]
    if d.pg:
        _stage(
            d,
            "intel_stage_obs",
            "k text, c uuid, r text, kd text, v text, s text, f timestamptz, l timestamptz, n integer",
        )
        _copy(d, "COPY intel_stage_obs FROM STDIN", values)
        d.rows(f"{columns} SELECT * FROM intel_stage_obs ORDER BY k, r {conflict}", ())
        return
    d.many(f"{columns} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) {conflict}", values)


def refresh_correlations(d: Driver, keys: Sequence[str]) -> None:
    """Recompute the correlation rows of ``keys`` from their observations, set-based.

    Only an observable two or more States reported has a row (nothing lists fewer): most observables are
    reported once, and a row each would be two more index entries written at random for every one of them.
    A row whose observable no longer qualifies goes.
    """
    if not keys:
        return
    select_ = (
        "SELECT key, min(kind), min(value), count(DISTINCT state), min(first_seen), max(last_seen) "
        "FROM intel_observations WHERE {where} GROUP BY key HAVING count(DISTINCT state) >= 2"
    )
    upsert = (
        "INSERT INTO intel_correlations (key, kind, value, states, first_seen, last_seen) {select} "
        "ON CONFLICT (key) DO UPDATE SET states = excluded.states, first_seen = excluded.first_seen, "
        "last_seen = excluded.last_seen"
    )
    # Probes only the rows that exist among ``keys``: none, for observables new to this node.
    drop = (
        "DELETE FROM intel_correlations WHERE {where} AND (SELECT count(DISTINCT o.state) "
        "FROM intel_observations o WHERE o.key = intel_correlations.key) < 2"
    )
    if d.pg:
        where = "key = ANY(?::text[])"
        d.rows(upsert.format(select=select_.format(where=where)), (list(keys),))
        d.rows(drop.format(where=where), (list(keys),))
        return
    for start in range(0, len(keys), IN_CHUNK):
        chunk = list(keys[start : start + IN_CHUNK])
        where = f"key IN ({','.join('?' * len(chunk))})"
        d.rows(upsert.format(select=select_.format(where=where)), tuple(chunk))
        d.rows(drop.format(where=where), tuple(chunk))
