"""Signed rosters: a publisher already trusted vouches for many nodes at once; what a roster may not do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from conftest import DatabaseFactory, LiveNode, federation_node, pin
from cyberpact.audit.models import AuditRecord
from cyberpact.federation import identity, peers, roster
from cyberpact.federation.models import IssuedRoster, Peer, RosterPublisher
from cyberpact.kit import crypto
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.errors import Conflict, IntegrityFailure, InvalidInput, MalformedInput
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import utcnow
from web.helpers import person, text_of


@dataclass
class World:
    hub: LiveNode  # publishes rosters; pinned its members by telephone
    vn: LiveNode
    fr: LiveNode
    pl: LiveNode  # trusts the hub, and takes its rosters


@pytest.fixture
def world(db_factory: DatabaseFactory, tmp_path: Path) -> Iterator[World]:
    w = World(*(federation_node(db_factory, tmp_path, n) for n in ("un-hub", "vn-24x7", "fr-24x7", "pl-ca")))
    pin(w.hub, w.vn)
    pin(w.hub, w.fr)
    pin(w.pl, w.hub)
    yield w
    for node in (w.hub, w.vn, w.fr, w.pl):
        node.stop()


def keys(node: LiveNode) -> KeyStore:
    return KeyStore(node.settings.key_passphrase_value(), node.settings.key_kdf_iterations)


def fingerprint(node: LiveNode) -> str:
    with node.db.transaction(read_only=True) as s:
        return identity.read_card(identity.card_document(s)["card"]).fingerprint


def entry(node: LiveNode, fp: str | None = None, url: str | None = None) -> roster.RosterEntry:
    return roster.RosterEntry(
        node_id=node.settings.node_id, base_url=url or node.url, fingerprint=fp or fingerprint(node)
    )


def sign(node: LiveNode, nodes: list[roster.RosterEntry] | None = None, **kw: object) -> str:
    with node.db.transaction() as s:
        listed = nodes if nodes is not None else roster.entries_from_peers(s)
        return roster.sign(s, keys(node), node.settings, SYSTEM, listed, **kw).token  # type: ignore[arg-type]


def sign_raw(node: LiveNode, body: dict[str, object], typ: str = roster.ROSTER_TYP) -> str:
    """A JWS by the node's key over any body: what a publisher gone wrong, or a forger with its key, sends."""
    with node.db.transaction() as s:
        _, key = keys(node).signing_key(s)
    return crypto.sign_json(key, body, {"typ": typ})


def trust(node: LiveNode, publisher: str) -> None:
    with node.db.transaction() as s:
        roster.trust_publisher(s, SYSTEM, publisher)


def take(node: LiveNode, token: str) -> roster.Outcome:
    return roster.take(node.db, SYSTEM, node.settings, token)


def pinned(node: LiveNode) -> dict[str, str]:
    with node.db.transaction(read_only=True) as s:
        return {p.node_id: p.pinned_fingerprint for p in s.scalars(select(Peer)) if p.status != "removed"}


def body(hub: LiveNode, **changes: object) -> dict[str, object]:
    now = utcnow().replace(microsecond=0)
    out: dict[str, object] = {
        "version": 1,
        "publisher": hub.settings.node_id,
        "serial": 7,
        "issued_at": now.isoformat(),
        "valid_until": (now + timedelta(days=1)).isoformat(),
        "nodes": [],
    }
    out.update(changes)
    return out


def cli(node: LiveNode, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    from cyberpact.cli import app

    s = node.settings
    for k, v in {
        "ENV": "test",
        "SECRET_KEY": s.secret_key.get_secret_value(),
        "KEY_PASSPHRASE": s.key_passphrase_value(),
        "KEY_KDF_ITERATIONS": str(s.key_kdf_iterations),
        "DATA_DIR": str(s.data_dir),
        "DATABASE_URL": s.sqlalchemy_url,
        "NODE_ID": s.node_id,
        "NODE_NAME": s.node_name,
        "BASE_URL": s.base_url,
    }.items():
        monkeypatch.setenv(f"CYBERPACT_{k}", v)
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.output


def test_a_trusted_publishers_roster_pins_the_nodes_it_lists(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, vn, fr, pl = world.hub, world.vn, world.fr, world.pl
    signed = tmp_path / "roster.jws"
    # A source list that is not JSON, or not a list of nodes, signs nothing.
    for text, words in (("{nope", "is not JSON"), ('{"nodes": [{"node_id": "X"}]}', "Not a valid roster")):
        (tmp_path / "bad.json").write_text(text)
        code, out = cli(
            hub,
            monkeypatch,
            "peers",
            "roster",
            "sign",
            "--out",
            str(signed),
            "--from",
            str(tmp_path / "bad.json"),
        )
        assert code == 1 and words in out and not signed.exists(), out
    code, out = cli(hub, monkeypatch, "peers", "roster", "sign", "--out", str(signed))
    assert code == 0 and "signed a roster of 2 nodes" in out, out
    # Not yet a publisher for pl: its roster is refused, and nothing is pinned.
    code, out = cli(pl, monkeypatch, "peers", "roster", "import", str(signed))
    assert code == 1 and "no roster publisher this node trusts" in out, out
    assert pinned(pl) == {"un-hub": fingerprint(hub)}

    code, out = cli(pl, monkeypatch, "peers", "roster", "trust", "un-hub")
    assert code == 0, out
    code, out = cli(pl, monkeypatch, "peers", "roster", "import", str(signed))
    assert code == 0 and "trusted vn-24x7" in out and "trusted fr-24x7" in out, out
    assert pinned(pl) == {"un-hub": fingerprint(hub), "vn-24x7": fingerprint(vn), "fr-24x7": fingerprint(fr)}
    with pl.db.transaction(read_only=True) as s:
        imports = s.scalar(select(func.count()).where(AuditRecord.action == "federation.roster.import"))
        assert imports == 1
        # The peers were pinned through the same check as `peers add`: their keys are stored.
        assert peers.encryption_jwk(s, "vn-24x7")["crv"] == "X25519"
    # The same roster again is a replay: refused, and nothing changes.
    code, out = cli(pl, monkeypatch, "peers", "roster", "import", str(signed))
    assert code == 1 and "not newer than the last one taken" in out, out
    code, out = cli(pl, monkeypatch, "peers", "roster", "publishers")
    assert code == 0 and "un-hub" in out


def test_a_roster_never_overrides_what_this_node_decided(world: World) -> None:
    hub, vn, fr, pl = world.hub, world.vn, world.fr, world.pl
    trust(pl, "un-hub")
    lying = [
        entry(hub, fp=fingerprint(vn)),  # already pinned here with its real fingerprint
        entry(fr, fp=fingerprint(vn)),  # the card at fr's address does not have this fingerprint
        entry(vn, url=fr.url, fp=fingerprint(fr)),  # fr's card, listed as vn's
        roster.RosterEntry(node_id="xx-gone", base_url="http://127.0.0.1:9", fingerprint="AAAA-BBBB-CCCC"),
    ]
    out = take(pl, sign(hub, lying))
    assert out.added == [] and out.unchanged == []
    assert set(out.refused) == {"un-hub", "fr-24x7", "vn-24x7", "xx-gone"}
    assert "left as pinned" in out.refused["un-hub"]
    assert "fingerprint mismatch" in out.refused["fr-24x7"]
    assert "not vn-24x7's" in out.refused["vn-24x7"]
    assert "cannot fetch the node card" in out.refused["xx-gone"]
    assert pinned(pl) == {"un-hub": fingerprint(hub)}

    # A node removed here is not brought back by a roster; the honest entries of the same roster land.
    out = take(pl, sign(hub, [entry(vn)]))
    assert out.added == ["vn-24x7"]
    with pl.db.transaction() as s:
        peers.set_status(s, SYSTEM, "vn-24x7", "removed")
    out = take(pl, sign(hub, [entry(vn), entry(fr)]))
    assert out.added == ["fr-24x7"] and "removed here" in out.refused["vn-24x7"]
    assert set(pinned(pl)) == {"un-hub", "fr-24x7"}


def test_forged_stale_and_malformed_rosters_are_refused_and_change_nothing(world: World) -> None:
    hub, vn, pl = world.hub, world.vn, world.pl
    trust(pl, "un-hub")
    good = sign(hub, [entry(vn)])

    def refused(token: str, error: type[Exception], words: str, **kw: object) -> None:
        with pl.db.transaction(read_only=True) as s, pytest.raises(error, match=words):
            roster.check(s, token, **kw)  # type: ignore[arg-type]
        with pl.db.transaction() as s, pytest.raises(error, match=words):
            roster.apply(s, SYSTEM, pl.settings, token, {})
        assert set(pinned(pl)) == {"un-hub"}

    head, payload, signature = good.split(".")
    tampered = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    refused(f"{head}.{tampered}.{signature}", IntegrityFailure, "signature check failed")
    refused("not a roster at all", MalformedInput, "not a compact JWS")
    refused(sign_raw(hub, body(hub), typ="cyberpact-manifest+jws"), MalformedInput, "not a roster")
    refused(sign_raw(vn, body(vn)), IntegrityFailure, "no roster publisher this node trusts")
    refused(sign_raw(hub, body(hub, publisher="vn-24x7")), IntegrityFailure, "claims to be vn-24x7's")
    twice = [entry(vn).model_dump(), entry(vn).model_dump()]
    refused(sign_raw(hub, body(hub, nodes=twice)), InvalidInput, "Not a valid roster")
    refused(sign_raw(hub, body(hub, serial=0)), InvalidInput, "Not a valid roster")
    refused(sign_raw(hub, body(hub, extra="field")), InvalidInput, "Not a valid roster")
    refused("x" * (roster.MAX_ROSTER_BYTES + 1), InvalidInput, "Roster too large")
    with pl.db.transaction(read_only=True) as s:
        later, earlier = utcnow() + timedelta(days=31), utcnow() - timedelta(hours=1)
        with pytest.raises(IntegrityFailure, match="expired"):
            roster.check(s, good, now=later)
        with pytest.raises(IntegrityFailure, match="issued in the future"):
            roster.check(s, good, now=earlier)
        assert s.get_one(RosterPublisher, "un-hub").last_serial == 0

    # A publisher suspended here vouches for nothing until it is resumed.
    with pl.db.transaction() as s:
        peers.set_status(s, SYSTEM, "un-hub", "suspended")
    refused(good, Conflict, "is suspended")
    with pl.db.transaction() as s:
        peers.set_status(s, SYSTEM, "un-hub", "active")

    # A newer roster, then the older one: the older is a rollback.
    assert take(pl, sign(hub, [], serial=2**53 - 1)).added == []
    refused(good, Conflict, "not newer than the last one taken")


def test_a_roster_signed_with_a_key_its_publisher_rotated_out_is_refused(world: World) -> None:
    hub, vn, pl = world.hub, world.vn, world.pl
    trust(pl, "un-hub")
    before = sign(hub, [entry(vn)], serial=10)
    with hub.db.transaction() as s:
        _, old_key = keys(hub).signing_key(s)
        identity.rotate(s, keys(hub), hub.settings, SYSTEM)
    # pl follows the rotation (as it would on the next message): the old key is kept, with its end.
    with pl.db.transaction() as s, peers.http_client(pl.settings) as client:
        assert peers.refresh_card(s, pl.settings, client, peers.get_peer(s, "un-hub"))
    late = crypto.sign_json(
        old_key,
        # Dated after the rotation (the body's own date is cut to the second, and may fall just before it).
        body(
            hub,
            serial=11,
            nodes=[entry(vn).model_dump()],
            issued_at=(utcnow() + timedelta(seconds=2)).isoformat(),
        ),
        {"typ": roster.ROSTER_TYP},
    )
    with pl.db.transaction(read_only=True) as s, pytest.raises(IntegrityFailure, match="rotated out"):
        roster.check(s, late)
    # What the old key signed while it was current still stands.
    assert take(pl, before).added == ["vn-24x7"]


def test_administrators_take_rosters_over_the_api(world: World) -> None:
    hub, vn, pl = world.hub, world.vn, world.pl
    admin = pl.client(pl.admin_token)
    officer = pl.client(pl.user("lan", "officer"))
    base = "/api/v1/federation/roster"
    assert officer.post(f"{base}/publishers", json={"node_id": "un-hub"}).status_code == 403
    assert admin.post(f"{base}/publishers", json={"node_id": "nobody"}).status_code == 404
    r = admin.post(f"{base}/publishers", json={"node_id": "un-hub"})
    assert r.status_code == 201 and r.json()["last_serial"] == 0
    assert admin.post(f"{base}/publishers", json={"node_id": "un-hub"}).status_code == 409
    token = sign(hub, [entry(vn)])
    assert officer.post(base, json={"roster": token}).status_code == 403
    assert admin.post(base, json={"roster": "not a jws"}).status_code == 400
    assert admin.post(base, json={"roster": token, "extra": 1}).status_code == 422
    r = admin.post(base, json={"roster": token})
    assert r.status_code == 200 and r.json() == {"added": ["vn-24x7"], "unchanged": [], "refused": {}}
    assert admin.post(base, json={"roster": token}).json()["code"] == "conflict"
    [listed] = admin.get(f"{base}/publishers").json()
    assert listed["node_id"] == "un-hub" and listed["last_serial"] > 0
    # The administrators' desk says which peer vouches for others here.
    desk = person(pl, "ops", "admin")
    assert "Its signed rosters are taken here" in text_of(desk.get("/desk/admin/peers").text)
    assert admin.delete(f"{base}/publishers/un-hub").status_code == 204
    r = admin.post(base, json={"roster": sign(hub, [entry(vn)])})
    assert r.status_code == 422 and "no roster publisher this node trusts" in r.json()["detail"]
    assert set(pinned(pl)) == {"un-hub", "vn-24x7"}


def test_an_administrator_signs_a_roster_over_the_api(world: World) -> None:
    hub, vn, pl = world.hub, world.vn, world.pl
    admin = hub.client(hub.admin_token)
    base = "/api/v1/federation/roster/signed"
    assert hub.client(hub.user("lan", "officer")).post(base, json={}).status_code == 403
    twice = [entry(vn).model_dump()] * 2
    r = admin.post(base, json={"nodes": twice})
    assert r.status_code == 422 and "listed more than once" in r.text
    assert admin.post(base, json={"days": 0}).status_code == 422
    r = admin.post(base, json={"days": 7})
    assert r.status_code == 201 and r.json()["nodes"] == 2  # its active peers: vn and fr
    trust(pl, "un-hub")
    assert sorted(take(pl, r.json()["roster"]).added) == ["fr-24x7", "vn-24x7"]


def test_an_administrator_takes_a_roster_on_the_desk(world: World) -> None:
    hub, vn, fr, pl = world.hub, world.vn, world.fr, world.pl
    trust(pl, "un-hub")
    ops = person(pl, "ops", "admin")
    ops.get("/desk/admin/peers")
    # Nothing pasted, or a forgery: the reason beside the form, and nothing pinned.
    r = ops.post("/desk/admin/peers/roster", {"roster": "  "})
    assert r.status_code == 422 and "paste the signed roster" in text_of(r.text)
    forged = sign(vn, [entry(fr)])
    r = ops.post("/desk/admin/peers/roster", {"roster": forged})
    assert r.status_code == 422 and "The roster was not taken." in text_of(r.text)
    assert set(pinned(pl)) == {"un-hub"}
    r = ops.post("/desk/admin/peers/roster", {"roster": sign(hub, [entry(vn), entry(fr, fp="00" * 32)])})
    assert r.status_code == 200, r.text
    page = text_of(r.text)
    assert "The roster was taken." in page and "vn-24x7" in page
    assert set(pinned(pl)) == {"un-hub", "vn-24x7"}
    # The fingerprint it gives for fr is not fr's key: fr is named with why, and not pinned.
    assert "fr-24x7" in page and "fr-24x7" not in pinned(pl)
    # Only administrators take rosters.
    assert (
        person(pl, "lan", "officer").post("/desk/admin/peers/roster", {"roster": forged}).status_code == 403
    )


def test_a_publisher_whose_clock_was_set_back_still_signs_rosters_its_takers_accept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, vn, fr, pl = world.hub, world.vn, world.fr, world.pl
    trust(pl, "un-hub")
    # A roster signed while the hub's clock ran a day fast: its serial is a day ahead of the true clock.
    ahead = int((utcnow() + timedelta(days=1)).timestamp() * 1_000_000)
    assert take(pl, sign(hub, [entry(vn)], serial=ahead)).added == ["vn-24x7"]
    # The clock corrected, the next roster's serial still follows the last one, and pl takes it.
    assert take(pl, sign(hub, [entry(vn), entry(fr)])).added == ["fr-24x7"]
    with pl.db.transaction(read_only=True) as s:
        assert s.get_one(RosterPublisher, "un-hub").last_serial == ahead + 1
    # An explicit serial at or below the last signed is refused, and nothing is signed or recorded.
    with hub.db.transaction() as s, pytest.raises(Conflict, match="not above"):
        roster.sign(s, keys(hub), hub.settings, SYSTEM, [entry(vn)], serial=ahead)
    admin = hub.client(hub.admin_token)
    listed = admin.get("/api/v1/federation/roster/signed").json()
    assert [(r["serial"], r["nodes"]) for r in listed] == [(ahead + 1, 2), (ahead, 1)]
    r = admin.post("/api/v1/federation/roster/signed", json={"days": 1})
    assert r.status_code == 201 and r.json()["serial"] == ahead + 2
    assert hub.client(hub.user("lan", "officer")).get("/api/v1/federation/roster/signed").status_code == 403
    code, out = cli(hub, monkeypatch, "peers", "roster", "issued")
    assert code == 0 and str(ahead + 2) in out and str(ahead) in out, out


def test_administrators_signing_rosters_at_once_each_get_their_own_serial(world: World) -> None:
    hub = world.hub
    # A clock set back: every signer computes "one above the last" from the same last serial.
    ahead = int((utcnow() + timedelta(days=1)).timestamp() * 1_000_000)
    sign(hub, [entry(world.vn)], serial=ahead)
    signers = 6
    start = threading.Barrier(signers)

    def one(_: int) -> int:
        start.wait()
        with hub.db.transaction() as s:
            return roster.sign(s, keys(hub), hub.settings, SYSTEM, [entry(world.vn)]).serial

    with ThreadPoolExecutor(signers) as pool:
        serials = sorted(pool.map(one, range(signers)))
    assert serials == list(range(ahead + 1, ahead + 1 + signers))
    with hub.db.transaction(read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(IssuedRoster)) == signers + 1


def test_what_is_wrong_in_a_roster_is_said_in_the_administrators_language(world: World) -> None:
    hub, pl = world.hub, world.pl
    trust(pl, "un-hub")
    naive = utcnow().replace(microsecond=0, tzinfo=None).isoformat()
    token = sign_raw(hub, body(hub, extra="field", issued_at=naive))
    ops = person(pl, "ops", "admin")
    ops.get("/desk")
    ops.post("/desk/language", {"lang": "fr", "back": "/desk"})
    ops.get("/desk/admin/peers")
    r = ops.post("/desk/admin/peers/roster", {"roster": token})
    assert r.status_code == 422
    text = text_of(r.text)
    assert "issued_at : indiquer l'heure avec son décalage horaire" in text
    assert "extra : n'est pas un champ de ce formulaire" in text
    assert "Extra inputs are not permitted" not in r.text and "timezone info" not in r.text

    ops.post("/desk/language", {"lang": "ar", "back": "/desk"})
    ops.get("/desk/admin/peers")
    r = ops.post("/desk/admin/peers/roster", {"roster": token})
    assert r.status_code == 422
    assert "extra: ليس حقلًا في هذا النموذج" in text_of(r.text)

    # Clients and the command line read pydantic's own words, and nothing was pinned.
    with pytest.raises(InvalidInput) as refused:
        take(pl, token)
    assert {p.message for p in refused.value.problems} == {
        "Input should have timezone info",
        "Extra inputs are not permitted",
    }
    assert set(pinned(pl)) == {"un-hub"}
