"""Storage semantics: versions and de-duplication, the latest flag, keyset pages over tied times, sync by
added_after, and rows written by the driver fast path read back through the ORM unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from conftest import LiveNode
from cyberpact.intel import bulk, query, service, store
from cyberpact.intel.markings import TLP2_IDS
from cyberpact.intel.models import IntelObject, IntelTombstone
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.canonical import canonical_json_floatless
from cyberpact.kit.db import Database
from intel.helpers import TAXII, indicator

H = {"Accept": TAXII, "Content-Type": TAXII}


def test_versions_dedup_and_latest(db: Database) -> None:
    with db.transaction() as s:
        coll = service.create_collection(s, SYSTEM, title="t")
        v1 = indicator("192.0.2.1", modified="2024-05-01T10:00:00.000Z")
        v3 = dict(v1, modified="2024-07-01T00:00:00.000Z")
        v2 = dict(v1, modified="2024-06-01T00:00:00.000Z")
        first = store.add_objects(s, SYSTEM, coll, [v1, v3])
        assert (first.stored, first.duplicates) == (2, 0)
        late = store.add_objects(s, SYSTEM, coll, [v2, v1, v1])  # an older version arrives late, twice v1
        assert (late.stored, late.duplicates) == (1, 2)
        rows = s.scalars(
            select(IntelObject).where(IntelObject.stix_id == v1["id"]).order_by(IntelObject.version)
        )
        got = [(r.version.month, r.is_latest) for r in rows]
        assert got == [(5, False), (6, False), (7, True)]
        sco = {
            "type": "ipv4-addr",
            "spec_version": "2.1",
            "id": f"ipv4-addr--{uuid.uuid4()}",
            "value": "192.0.2.9",
        }
        stored = store.add_objects(s, SYSTEM, coll, [sco])
        assert stored.stored == 1
        again = store.add_objects(s, SYSTEM, coll, [sco, sco])  # no timestamps: same content = same
        assert again.duplicates == 2
        # A duplicate's status entry names the version it duplicates: the stored copy's date added.
        first_version = stored.status.successes[0][1]
        assert first_version and [v for _, v in again.status.successes] == [first_version] * 2
        changed = store.add_objects(
            s, SYSTEM, coll, [dict(sco, x_note="changed"), dict(sco, x_note="changed")]
        )
        assert (changed.stored, changed.duplicates) == (1, 1)
        assert changed.status.successes[0][1] == changed.status.successes[1][1] > first_version


def test_driver_rows_read_back_through_the_orm(db: Database) -> None:
    with db.transaction() as s:
        coll = service.create_collection(s, SYSTEM, title="t")
        obj = indicator("192.0.2.5", modified="2024-05-01T10:00:00.123456Z", tlp="amber")
        before = datetime.now(UTC)
        store.add_objects(s, SYSTEM, coll, [obj], source_peer="peer-fr")
    with db.transaction(read_only=True) as s:
        row = s.scalars(select(IntelObject)).one()
        assert row.collection_id == coll.id and row.stix_id == obj["id"] and row.stix_type == "indicator"
        assert row.version == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
        assert before <= row.date_added <= datetime.now(UTC)
        assert row.is_latest is True and row.tlp == "amber" and row.pap is None
        assert row.markings == obj["object_marking_refs"] and row.source_peer == "peer-fr"
        assert row.created_by_ref == obj["created_by_ref"]  # never re-attributed to the relaying peer


def test_dates_added_strictly_increase_even_when_the_clock_does_not(db: Database) -> None:
    frozen = datetime(2030, 1, 1, tzinfo=UTC)
    with db.transaction() as s:
        coll = service.create_collection(s, SYSTEM, title="t")
        store.add_objects(s, SYSTEM, coll, [indicator(f"192.0.2.{i}") for i in range(3)], now=frozen)
        store.add_objects(
            s, SYSTEM, coll, [indicator(f"192.0.3.{i}") for i in range(3)], now=frozen - timedelta(1)
        )
        added = list(s.scalars(select(IntelObject.date_added).order_by(IntelObject.seq)))
    assert added == [frozen + timedelta(microseconds=i) for i in range(6)]


def test_pages_over_tied_times_neither_skip_nor_repeat(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    cid = uuid.UUID(admin.post("/api/v1/intel/collections", json={"title": "t"}).json()["id"])
    tie = datetime(2024, 1, 1, tzinfo=UTC)
    # Rows sharing one date_added, as migrated or imported data may: written straight to the table.
    objs = [indicator(f"198.51.100.{i}") for i in range(7)]
    with node.db.transaction() as s:
        rows = [
            {
                "collection_id": cid,
                "stix_id": o["id"],
                "stix_type": "indicator",
                "version": tie,
                "date_added": tie,
                "is_latest": True,
                "created_by_ref": None,
                "tlp": None,
                "pap": None,
                "markings": None,
                "source_peer": None,
                "raw": canonical_json_floatless(o).decode(),
            }
            for o in objs
        ]
        bulk.insert_objects(bulk.Driver(s), rows)
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    while True:
        r = admin.get(f"/taxii2/intel/collections/{cid}/objects/", params=params, headers=H)
        body = r.json()
        seen += [o["id"] for o in body.get("objects", [])]
        if not body["more"]:
            break
        params = {"limit": "2", "next": body["next"]}
    assert seen == [o["id"] for o in objs]
    manifest = admin.get(
        f"/taxii2/intel/collections/{cid}/manifest/", params={"limit": "3"}, headers=H
    ).json()
    assert [m["id"] for m in manifest["objects"]] == [o["id"] for o in objs[:3]] and manifest["more"]


def test_sync_by_added_after_loses_nothing(node: LiveNode) -> None:
    admin = node.client(node.user("root", "admin"))
    cid = admin.post("/api/v1/intel/collections", json={"title": "t"}).json()["id"]
    url = f"/taxii2/intel/collections/{cid}/objects/"
    sent: list[str] = []
    got: list[str] = []
    cursor = None
    for batch in range(4):
        objs = [indicator(f"10.0.{batch}.{i}") for i in range(5)]
        admin.post(url, json={"objects": objs}, headers=H)
        sent += [o["id"] for o in objs]
        # A poller that remembers only X-TAXII-Date-Added-Last and asks for pages of 3.
        while True:
            r = admin.get(
                url, params={"limit": "3", **({"added_after": cursor} if cursor else {})}, headers=H
            )
            if not r.json().get("objects"):
                break
            got += [o["id"] for o in r.json()["objects"]]
            cursor = r.headers["X-TAXII-Date-Added-Last"]
    assert got == sent


def test_delete_leaves_a_tombstone_and_promotes_the_previous_version(db: Database) -> None:
    with db.transaction() as s:
        coll = service.create_collection(s, SYSTEM, title="t")
        v1 = indicator("192.0.2.1")
        v2 = dict(v1, modified="2024-06-01T00:00:00.000Z")
        store.add_objects(s, SYSTEM, coll, [v1, v2])
        last = query.Filters(ids=(v1["id"],), versions=("2024-06-01T00:00:00.000Z",))
        assert store.delete_object(s, SYSTEM, coll, v1["id"], last) == 1
        row = s.scalars(select(IntelObject)).one()
        assert row.is_latest and row.version.month == 5
        assert store.delete_object(s, SYSTEM, coll, v1["id"], query.Filters(versions=("all",))) == 1
        stones = list(s.scalars(select(IntelTombstone).order_by(IntelTombstone.seq)))
        assert [t.version.month if t.version else None for t in stones] == [6, None]


def test_an_object_marked_with_an_unreadable_definition_is_held_as_red(db: Database) -> None:
    """Stored and readable here, but its level is RED until proven otherwise: a definition never seen
    may be a RED one, and the collection's default would federate it."""
    from cyberpact.intel.federation import allowed
    from cyberpact.intel.policy import SharingPolicy

    custom = f"marking-definition--{uuid.uuid4()}"
    statement = f"marking-definition--{uuid.uuid4()}"
    definition = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": statement,
        "created": "2024-01-01T00:00:00.000Z",
        "definition_type": "statement",
        "definition": {"statement": "Copyright CERT Example"},
    }
    unknown = indicator("192.0.2.60", tlp=None, object_marking_refs=[custom])
    with_statement = indicator("192.0.2.61", tlp=None, object_marking_refs=[statement])
    green_too = indicator("192.0.2.62", object_marking_refs=[TLP2_IDS["green"], custom])
    with db.transaction() as s:
        coll = service.create_collection(s, SYSTEM, title="t")
        result = store.add_objects(s, SYSTEM, coll, [unknown, definition, with_statement, green_too])
        assert result.stored == 4 and not result.failures
        rows = s.execute(select(IntelObject.stix_id, IntelObject.tlp)).all()
    levels = {row.stix_id: row.tlp for row in rows}
    assert levels[unknown["id"]] == levels[green_too["id"]] == "red"
    assert levels[with_statement["id"]] is None  # read, says nothing of TLP: the collection's default
    policy = SharingPolicy(federate=True, sharing_group=frozenset({"fr"}), default_tlp="green")
    assert allowed(policy, ["fr"], levels[unknown["id"]], None) == set()
    assert allowed(policy, ["fr"], levels[with_statement["id"]], None) == {"fr"}
