"""TAXII listings read index ranges, not collections: each filter of GET objects/manifest pages like a
brute-force filter of every row, and its plan reads about a page per index range, whatever the collection's
size (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN ANALYZE after ANALYZE, rows actually read)."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from cyberpact.intel import bulk, query, service, stix
from cyberpact.intel.models import IntelObject
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database

_OBJ = IntelObject.__table__.c
_STAMPS = [datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=7 * i) for i in range(30)]
S1, S2 = (stix.format_timestamp(_STAMPS[i]) for i in (3, 11))
# Most rows are indicators: a plan that walks the collection and filters on a rarer type reads many pages.
_TYPES = ["indicator"] * 16 + ["ipv4-addr"] * 5 + ["malware", "report", "attack-pattern", "identity"]


def _rows(collection_id: uuid.UUID, n: int, rnd: random.Random) -> list[dict[str, Any]]:
    """``n`` versions of objects of mixed types: some objects get later versions, a few an earlier one
    that arrives late (so the first version is not the first added), and a third of the rows share their
    date_added with the row before (imported data), so that ties straddle page boundaries."""
    objects: list[tuple[str, str, list[datetime]]] = []
    rows: list[dict[str, Any]] = []
    added = datetime(2024, 1, 1, tzinfo=UTC)
    while len(rows) < n:
        if objects and rnd.random() < 0.35:
            sid, typ, versions = rnd.choice(objects)
            late = rnd.random() < 0.15
            version = min(versions) - timedelta(days=7) if late else max(versions) + timedelta(days=7)
            if version in versions:
                continue
            versions.append(version)
        else:
            typ = rnd.choice(_TYPES)
            sid = f"{typ}--{uuid.UUID(int=rnd.getrandbits(128), version=4)}"
            version = rnd.choice(_STAMPS)
            objects.append((sid, typ, [version]))
        if rnd.random() > 0.33:
            added += timedelta(microseconds=rnd.randint(1, 3))
        raw = {"type": typ, "id": sid, "modified": stix.format_timestamp(version), "x_pad": "p" * 200}
        rows.append(
            {
                "collection_id": collection_id,
                "stix_id": sid,
                "stix_type": typ,
                "version": version,
                "date_added": added,
                "is_latest": False,
                "created_by_ref": None,
                "tlp": None,
                "pap": None,
                "markings": None,
                "source_peer": None,
                "raw": json.dumps(raw),
            }
        )
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["stix_id"] not in newest or row["version"] > newest[row["stix_id"]]["version"]:
            newest[row["stix_id"]] = row
    for row in newest.values():
        row["is_latest"] = True
    return rows


def _collection(db: Database, n: int) -> uuid.UUID:
    """A collection of ``n`` rows, next to another collection whose rows are interleaved with its own."""
    rnd = random.Random(20261130)
    with db.transaction() as s:
        ours = service.create_collection(s, SYSTEM, title="ours")
        theirs = service.create_collection(s, SYSTEM, title="theirs")
        mine, other = _rows(ours.id, n, rnd), _rows(theirs.id, n // 4, rnd)
        driver = bulk.Driver(s)
        for start in range(0, n, 500):
            bulk.insert_objects(driver, mine[start : start + 500])
            bulk.insert_objects(driver, other[start // 4 : (start + 500) // 4])
    return ours.id


def _analyze(db: Database) -> None:
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def _expected(session: Session, collection_id: uuid.UUID, f: query.Filters) -> list[int]:
    """The seqs ``f`` selects, by the TAXII 2.1 rules applied to every row of the collection in Python."""
    rows = list(
        session.execute(
            select(
                _OBJ.seq, _OBJ.stix_id, _OBJ.stix_type, _OBJ.version, _OBJ.date_added, _OBJ.is_latest
            ).where(_OBJ.collection_id == collection_id)
        )
    )
    first: dict[str, datetime] = {}
    for r in rows:
        first[r.stix_id] = min(first.get(r.stix_id, r.version), r.version)
    stamps = {stix.parse_timestamp(v) for v in f.versions if v not in ("last", "first", "all")}

    def keep(r: Any) -> bool:
        if f.types and r.stix_type not in f.types:
            return False
        if f.added_after is not None and r.date_added <= f.added_after:
            return False
        return (
            "all" in f.versions
            or ("last" in f.versions and r.is_latest)
            or ("first" in f.versions and r.version == first[r.stix_id])
            or r.version in stamps
        )

    return [r.seq for r in sorted((r for r in rows if keep(r)), key=lambda r: (r.date_added, r.seq))]


def _pages(session: Session, collection_id: uuid.UUID, f: query.Filters, limit: int) -> list[list[Any]]:
    pager = query.Pager("plans-" + "s" * 32)
    pages: list[list[Any]] = []
    token = None
    while True:
        page = query.page(
            session, pager, collection_id, "manifest", f, limit=limit, next_token=token, columns=[_OBJ.raw]
        )
        pages.append(page.rows)
        if not page.more:
            return pages
        assert page.next is not None and len(page.rows) == limit
        token = page.next


MANY_TYPES = (*(f"x-custom-{i}" for i in range(150)), "malware")  # 302 ranges: several UNIONs

CORRECTNESS = {
    "type, every version": query.Filters(types=("malware",), versions=("all",)),
    "types, latest": query.Filters(types=("malware", "report")),
    "types, every version": query.Filters(types=("malware", "report", "identity"), versions=("all",)),
    "a type named twice": query.Filters(types=("report", "report"), versions=("all",)),
    "a version": query.Filters(versions=(S1,)),
    "versions": query.Filters(versions=(S1, S2)),
    "a type and a version": query.Filters(types=("indicator",), versions=(S1,)),
    "types and versions": query.Filters(types=("indicator", "malware"), versions=(S1, S2)),
    "latest and versions": query.Filters(versions=("last", S1, S2)),
    "types, latest and a version": query.Filters(types=("malware", "ipv4-addr"), versions=("last", S2)),
    "first": query.Filters(versions=("first",)),
    "types, first": query.Filters(types=("malware", "report"), versions=("first",)),
    "first and a version": query.Filters(versions=("first", S1)),
    "latest": query.Filters(),
    "a type": query.Filters(types=("malware",)),
    "every version": query.Filters(versions=("all",)),
    "added after, types, every version": query.Filters(
        added_after=datetime(2024, 1, 1, 0, 0, 0, 500, tzinfo=UTC),
        types=("malware", "report"),
        versions=("all",),
    ),
    "added after, a version": query.Filters(
        added_after=datetime(2024, 1, 1, 0, 0, 0, 300, tzinfo=UTC), versions=(S1,)
    ),
}


def test_every_filter_pages_like_a_brute_force_filter(db: Database) -> None:
    cid = _collection(db, 1500)
    with db.transaction(read_only=True) as s:
        for name, f in CORRECTNESS.items():
            want = _expected(s, cid, f)
            assert len(want) >= 18, f"{name}: the data should give this filter several pages"
            pages = _pages(s, cid, f, len(want) // 6)
            got = [r.seq for page in pages for r in page]
            assert got == want, name
            assert all(json.loads(r.raw)["id"] for page in pages for r in page)


# ------------------------------------------------------------------------------------------------ plans


@dataclass(frozen=True)
class Case:
    filters: query.Filters
    walks: frozenset[str]  # the indexes the page's ranges are read from
    ranges: int  # how many, each read no further than the page (limit + 1 rows); 0: unbounded ("first")


PLANS = {
    # (a) one type, every version: the type index, once for the latest versions and once for the others.
    "type, every version": Case(
        query.Filters(types=("malware",), versions=("all",)), frozenset({"ix_intel_objects_type"}), 2
    ),
    # (b) several types: one range per type.
    "types, latest": Case(
        query.Filters(types=("malware", "report")), frozenset({"ix_intel_objects_type"}), 2
    ),
    "types, every version": Case(
        query.Filters(types=("malware", "report"), versions=("all",)), frozenset({"ix_intel_objects_type"}), 4
    ),
    # (c) versions by timestamp, without ids: the version index, one range per timestamp.
    "a version": Case(query.Filters(versions=(S1,)), frozenset({"ix_intel_objects_version"}), 1),
    "versions": Case(query.Filters(versions=(S1, S2)), frozenset({"ix_intel_objects_version"}), 2),
    "latest and a version": Case(
        query.Filters(versions=("last", S1)),
        frozenset({"ix_intel_objects_latest", "ix_intel_objects_version"}),
        2,
    ),
    "added after, types": Case(
        query.Filters(
            added_after=datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), types=("malware", "report")
        ),
        frozenset({"ix_intel_objects_type"}),
        2,
    ),
    # Unchanged shapes, checked too.
    "latest": Case(query.Filters(), frozenset({"ix_intel_objects_latest"}), 1),
    "a type": Case(query.Filters(types=("malware",)), frozenset({"ix_intel_objects_type"}), 1),
    "every version": Case(query.Filters(versions=("all",)), frozenset({"ix_intel_objects_added"}), 1),
    # Not bounded: a walk in key order that looks each row up in the unique index.
    "first": Case(query.Filters(versions=("first",)), frozenset({"ix_intel_objects_added"}), 0),
    "types, first": Case(
        query.Filters(types=("malware", "report"), versions=("first",)),
        frozenset({"ix_intel_objects_type"}),
        0,
    ),
}
_UNIQUE = {"uq_intel_objects_version", "sqlite_autoindex_intel_objects_1"}  # (collection, id, version)
_LIMIT = 20


@contextmanager
def _statements(db: Database) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "intel_objects" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def _second_page_statements(
    db: Database, s: Session, cid: uuid.UUID, f: query.Filters
) -> list[tuple[str, Any]]:
    """The statements of a page after the first, so that the keyset condition is in them."""
    pager = query.Pager("plans-" + "s" * 32)
    first = query.page(s, pager, cid, "objects", f, limit=_LIMIT, next_token=None, columns=[_OBJ.raw])
    assert first.more and first.next is not None
    with _statements(db) as seen:
        second = query.page(
            s, pager, cid, "objects", f, limit=_LIMIT, next_token=first.next, columns=[_OBJ.raw]
        )
    assert len(second.rows) == _LIMIT and seen
    return seen


_TABLE_ACCESS = re.compile(r"^(SCAN|SEARCH)( TABLE)? intel_objects(_\d+)?\b")
_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\w+)")


def _sqlite_plan(s: Session, statement: str, params: Any) -> list[str]:
    """The indexes the plan reads intel_objects by, after checking that each is a bounded search."""
    rows = list(s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
    walks: list[str] = []
    walk_levels: set[int] = set()
    for _id, parent, _unused, detail in rows:
        if not _TABLE_ACCESS.match(detail):
            continue
        # SCAN: the whole table, or a whole index; SEARCH: a range of one under a collection (or by rowid).
        assert detail.startswith("SEARCH"), detail
        if "INTEGER PRIMARY KEY" in detail:
            continue
        index = _INDEX.search(detail)
        assert index is not None and "collection_id=?" in detail, detail
        walks.append(index.group(1))
        if index.group(1) not in _UNIQUE:
            walk_levels.add(parent)
    # A temporary B-tree beside a range's search would sort the whole range instead of reading it in order.
    sorts = [parent for _id, parent, _unused, detail in rows if "USE TEMP B-TREE FOR ORDER BY" in detail]
    assert not walk_levels & set(sorts), rows
    return walks


def _pg_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _pg_nodes(child)


def _pg_plan(s: Session, statement: str, params: Any) -> tuple[list[str], int]:
    """The indexes the plan reads intel_objects by, and how many of its rows it read."""
    (plan,) = s.connection().exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params).one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    walks: list[str] = []
    read = 0
    for node in _pg_nodes(plan[0]["Plan"]):
        index = node.get("Index Name")
        if node.get("Relation Name") == "intel_objects":
            assert node["Node Type"] != "Seq Scan", node
            # Per-loop averages, rows kept and rows filtered out (by the bitmap recheck too) alike.
            rows = sum(
                node.get(k, 0)
                for k in ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Index Recheck")
            )
            if index != "pk_intel_objects":  # the page's own rows, fetched by primary key
                read += rows * node["Actual Loops"]
        if index is not None and index != "pk_intel_objects":
            walks.append(index)
    return walks, read


def test_each_page_reads_index_ranges_not_the_collection(db: Database) -> None:
    size = 4000
    cid = _collection(db, size)
    # SQLite as a node runs it, without statistics, and after ANALYZE; PostgreSQL as autovacuum leaves it.
    for analyzed in (False, True) if db.dialect == "sqlite" else (True,):
        if analyzed:
            _analyze(db)
        with db.transaction(read_only=True) as s:
            for name, case in PLANS.items():
                _check_plan(db, s, cid, f"{name} ({analyzed=})", case, size)


def _check_plan(db: Database, s: Session, cid: uuid.UUID, name: str, case: Case, size: int) -> None:
    read = 0
    walks: list[str] = []
    for statement, params in _second_page_statements(db, s, cid, case.filters):
        if db.dialect == "sqlite":
            walks += _sqlite_plan(s, statement, params)
        else:
            used, rows = _pg_plan(s, statement, params)
            walks += used
            read += rows
    assert set(walks) - _UNIQUE == case.walks, f"{name}: {walks}"
    if not case.ranges:
        assert set(walks) & _UNIQUE, f"{name}: each row passed is looked up in the unique index"
        return
    assert not set(walks) & _UNIQUE, f"{name}: {walks}"
    if db.dialect == "postgresql":
        bound = case.ranges * (_LIMIT + 1)
        assert read <= bound < size / 10, f"{name}: {read} rows read for a page of {_LIMIT}"


def test_hundreds_of_types_are_read_in_several_unions(db: Database) -> None:
    cid = _collection(db, 600)
    f = query.Filters(types=MANY_TYPES, versions=("all",))
    with db.transaction(read_only=True) as s:
        want = _expected(s, cid, f)
        with _statements(db) as seen:
            pages = _pages(s, cid, f, len(want) // 3)
        assert [r.seq for page in pages for r in page] == want
    assert len(pages) >= 3 and len(seen) == 4 * len(pages)  # 302 ranges, 100 to a statement


def test_ingest_lookups_probe_the_index_per_id_before_any_analyze(db: Database) -> None:
    """An envelope looks up its ids' stored versions (and a sighting its target) among what the collection
    holds. Before ANALYZE has run, as on a database without autovacuum, a join could plan as a scan of the
    whole collection per envelope, and ingest slowed as the collection grew; each id must be one probe of
    the unique index whatever the statistics say."""
    rnd = random.Random(7)
    with db.transaction() as s:
        cid = service.create_collection(s, SYSTEM, title="unanalysed").id
        rows = _rows(cid, 3000, rnd)
        driver = bulk.Driver(s)
        for start in range(0, len(rows), 500):
            bulk.insert_objects(driver, rows[start : start + 500])
    ids = sorted({r["stix_id"] for r in rows})[:200]
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "intel_objects" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.transaction() as s:
            driver = bulk.Driver(s)
            versions = bulk.stored_versions(driver, cid, ids)
            latest = bulk.latest_raw(driver, cid, ids)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert {v[1] for v in versions} == set(ids) and {sid for sid, _ in latest} == set(ids)
    assert seen
    with db.engine.connect() as conn:
        for statement, params in seen:
            if db.engine.dialect.name == "postgresql":
                plan = json.dumps(conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar())
                assert '"Index Name": "uq_intel_objects_version"' in plan, plan
                assert "Seq Scan" not in plan and "Bitmap Heap Scan" not in plan, plan
            else:
                plan = " ".join(
                    str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                )
                # The unique constraint's index is SQLite's autoindex.
                assert "SEARCH intel_objects USING" in plan, plan
                assert "(collection_id=? AND stix_id=?)" in plan, plan
                assert "SCAN intel_objects" not in plan, plan
