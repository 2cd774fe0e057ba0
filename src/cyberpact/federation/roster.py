"""Signed rosters: trusting many peers at once on the word of a publisher already trusted.

Pinning each of some seventy States' nodes by reading fingerprints over the telephone does not scale. A
node whose administrator was checked that way once (a secretariat's node, a regional hub) may publish a
roster: the node id, address and fingerprint of each node it vouches for, signed with its node key. A node
that marked it as a publisher imports the roster and pins every listed node whose card, fetched from the
listed address, has the listed fingerprint, exactly as ``peers add`` would.

A roster never changes what this node already decided: a node pinned here with another fingerprint, or
removed here, is refused by name and left as it is. Each publisher's rosters carry increasing serials, so an
old roster cannot be replayed after a newer one; a roster expires; one signed by a key its publisher rotated
out before the roster's date is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from joserfc import jws
from joserfc.errors import JoseError
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.config import NODE_ID_PATTERN, Settings
from cyberpact.federation import identity, peers
from cyberpact.federation.models import IssuedRoster, Peer, PeerKey, RosterPublisher
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database, Lock, advisory_lock
from cyberpact.kit.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    MalformedInput,
    NotFound,
    Problem,
    problems_of,
)
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import utcnow

ROSTER_TYP = "cyberpact-roster+jws"
MAX_ROSTER_BYTES = 1_000_000
MAX_NODES = 1000
# A publisher's clock may run a little ahead of ours; more than this and the roster is from the future.
CLOCK_SKEW = timedelta(minutes=5)
FETCHES_AT_ONCE = 8


class RosterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str = Field(pattern=NODE_ID_PATTERN)
    base_url: str = Field(min_length=8, max_length=500, pattern=r"^https?://")
    fingerprint: str = Field(min_length=10, max_length=80)


def _one_entry_per_node(nodes: list[RosterEntry]) -> list[RosterEntry]:
    seen = [n.node_id for n in nodes]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise ValueError(f"listed more than once: {', '.join(twice)}")
    return nodes


Nodes = Annotated[list[RosterEntry], Field(max_length=MAX_NODES), AfterValidator(_one_entry_per_node)]
_NODES: TypeAdapter[list[RosterEntry]] = TypeAdapter(Nodes)


class RosterBody(BaseModel):
    """What a publisher signs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    publisher: str = Field(pattern=NODE_ID_PATTERN)
    serial: int = Field(ge=1, le=2**53 - 1)  # the largest integer RFC 8785 (I-JSON) carries exactly
    issued_at: AwareDatetime
    valid_until: AwareDatetime
    nodes: Nodes


# --- publishing --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedRoster:
    token: str  # compact JWS
    serial: int


def sign(
    session: Session,
    keys: KeyStore,
    settings: Settings,
    actor: Actor,
    nodes: list[RosterEntry],
    *,
    days: int = 30,
    serial: int | None = None,
) -> SignedRoster:
    """This node's roster of ``nodes``, signed with its node key (compact JWS), with its serial.

    The serial is the clock in microseconds, or one above the last roster this node signed when the clock
    reads earlier (set back, or corrected after running fast): a taker refuses any serial not above the last
    it took. An explicit ``serial`` must also be above the last.
    """
    # Two administrators signing at once would both read the same last serial and collide on it.
    advisory_lock(session, Lock.ROSTER_SIGN)
    now = utcnow()
    last = session.scalar(select(func.max(IssuedRoster.serial))) or 0
    if serial is None:
        serial = max(int(now.timestamp() * 1_000_000), last + 1)
    elif serial <= last:
        raise Conflict(
            f"serial {serial} is not above {last}, that of the last roster this node signed: "
            "those who took that one would refuse this one as a replay"
        )
    try:
        body = RosterBody(
            version=1,
            publisher=settings.node_id,
            serial=serial,
            issued_at=now.replace(microsecond=0),
            valid_until=(now + timedelta(days=days)).replace(microsecond=0),
            nodes=nodes,
        )
    except ValidationError as exc:
        raise _invalid(exc) from None
    _, key = keys.signing_key(session)
    token = crypto.sign_json(key, body.model_dump(mode="json"), {"typ": ROSTER_TYP})
    session.add(
        IssuedRoster(
            serial=body.serial,
            issued_at=body.issued_at,
            valid_until=body.valid_until,
            issued_by=actor.username,
            nodes=len(nodes),
        )
    )
    session.flush()
    audit.record(
        session,
        actor,
        "federation.roster.sign",
        "roster",
        str(body.serial),
        detail={"nodes": len(nodes), "valid_until": body.valid_until.isoformat()},
    )
    return SignedRoster(token, body.serial)


def entries_from_peers(session: Session) -> list[RosterEntry]:
    """The active peers this node pinned, as roster entries."""
    return [
        RosterEntry(node_id=p.node_id, base_url=p.base_url, fingerprint=p.pinned_fingerprint)
        for p in peers.list_peers(session)
        if p.status == "active"
    ]


def read_entries(doc: Any) -> list[RosterEntry]:
    """Entries from a JSON document ``{"nodes": [{node_id, base_url, fingerprint}, ...]}``."""
    if not isinstance(doc, dict) or set(doc) != {"nodes"} or not isinstance(doc["nodes"], list):
        raise MalformedInput('a roster source is {"nodes": [{"node_id", "base_url", "fingerprint"}, ...]}')
    try:
        return _NODES.validate_python(doc["nodes"])
    except ValidationError as exc:
        raise _invalid(exc) from None


# --- trusting publishers -----------------------------------------------------------------------------------


def trust_publisher(session: Session, actor: Actor, node_id: str) -> RosterPublisher:
    peer = peers.get_peer(session, node_id)
    if peer.status != "active":
        raise Conflict(f"{node_id} is {peer.status}; only an active peer can be trusted to publish rosters")
    row = session.get(RosterPublisher, node_id)
    if row is not None:
        raise Conflict(f"{node_id} already publishes rosters for this node")
    row = RosterPublisher(node_id=node_id, trusted_at=utcnow(), trusted_by=actor.username, last_serial=0)
    session.add(row)
    session.flush()
    audit.record(session, actor, "federation.roster.publisher_add", "peer", node_id)
    return row


def distrust_publisher(session: Session, actor: Actor, node_id: str) -> None:
    row = session.get(RosterPublisher, node_id)
    if row is None:
        raise NotFound(f"{node_id} is not a roster publisher here")
    session.delete(row)
    session.flush()
    audit.record(session, actor, "federation.roster.publisher_remove", "peer", node_id)


def list_issued(session: Session, limit: int = 100) -> list[IssuedRoster]:
    """The rosters this node signed, newest first."""
    return list(session.scalars(select(IssuedRoster).order_by(IssuedRoster.serial.desc()).limit(limit)))


def list_publishers(session: Session) -> list[RosterPublisher]:
    return list(session.scalars(select(RosterPublisher).order_by(RosterPublisher.node_id)))


# --- importing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roster:
    """A roster whose signature, publisher, dates and serial were checked."""

    body: RosterBody
    kid: str


@dataclass
class Outcome:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # node id -> why

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "unchanged": self.unchanged, "refused": self.refused}


def _invalid(exc: ValidationError) -> InvalidInput:
    return InvalidInput("Not a valid roster", problems_of(exc, whole="roster"))


def check(session: Session, token: str, now: datetime | None = None, *, lock: bool = False) -> Roster:
    """Verify a roster: a compact JWS by a current key of a trusted publisher, in force, newer than the last
    roster taken from that publisher. Raises naming what fails; nothing is stored. ``lock``: hold the
    publisher's row (PostgreSQL) until the transaction ends, so that two imports take turns."""
    now = now or utcnow()
    if len(token) > MAX_ROSTER_BYTES:
        raise InvalidInput(
            "Roster too large", [Problem("roster", f"over {MAX_ROSTER_BYTES} bytes", "invalid")]
        )
    try:
        header = dict(jws.extract_compact(token.strip().encode()).protected)
    except (JoseError, ValueError, TypeError) as exc:
        raise MalformedInput(f"not a compact JWS: {exc}") from None
    kid = header.get("kid")
    if header.get("typ") != ROSTER_TYP or not isinstance(kid, str):
        raise MalformedInput(f"not a roster: its header must name typ {ROSTER_TYP} and a kid")
    key = session.scalar(
        select(PeerKey)
        .join(RosterPublisher, RosterPublisher.node_id == PeerKey.peer_id)
        .where(PeerKey.kid == kid, PeerKey.use == "sig")
    )
    if key is None:
        raise IntegrityFailure(f"signed by key {kid}, which belongs to no roster publisher this node trusts")
    status = session.get_one(Peer, key.peer_id).status
    if status != "active":
        raise Conflict(f"{key.peer_id} publishes rosters for this node but is {status}; resume it first")
    _, payload = crypto.verify_json(token.strip(), peers.public_key(key))
    try:
        body = RosterBody.model_validate(payload)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if body.publisher != key.peer_id:
        raise IntegrityFailure(f"signed by {key.peer_id}'s key but claims to be {body.publisher}'s roster")
    if key.valid_until is not None and body.issued_at > key.valid_until:
        raise IntegrityFailure(
            f"signed with key {kid}, which {key.peer_id} rotated out before the roster's date"
        )
    if body.issued_at > now + CLOCK_SKEW:
        raise IntegrityFailure(f"issued in the future ({body.issued_at.isoformat()})")
    if body.valid_until <= now:
        raise IntegrityFailure(f"expired at {body.valid_until.isoformat()}")
    publisher = session.get_one(RosterPublisher, key.peer_id, with_for_update=lock, populate_existing=lock)
    if body.serial <= publisher.last_serial:
        raise Conflict(
            f"roster {body.serial} of {body.publisher} is not newer than the last one taken "
            f"({publisher.last_serial}): an old roster is never replayed"
        )
    return Roster(body, kid)


def take(db: Database, actor: Actor, settings: Settings, token: str) -> Outcome:
    """Import a roster: check it, fetch the cards of the nodes new here with no transaction open (a roster may
    name many nodes, and no database lock should wait on their answers), then check it again and pin them
    in one unit of work. Like an upload, it owns its units of work."""
    with db.transaction(read_only=True) as session:
        wanted = _to_fetch(session, settings, check(session, token))
    cards = _fetch_cards(settings, wanted)
    with db.transaction() as session:
        return apply(session, actor, settings, token, cards)


def _to_fetch(session: Session, settings: Settings, roster: Roster) -> list[RosterEntry]:
    """The entries whose cards must be fetched: nodes this node does not know at all."""
    known = {p.node_id for p in peers.list_peers(session, include_removed=True)}
    return [e for e in roster.body.nodes if e.node_id not in known and e.node_id != settings.node_id]


def apply(
    session: Session,
    actor: Actor,
    settings: Settings,
    token: str,
    cards: Mapping[str, dict[str, Any] | str],
) -> Outcome:
    """Check the roster again (in this transaction) and pin its new nodes. ``cards``: for each entry
    :func:`_to_fetch` named, its card document, or why it could not be fetched."""
    roster = check(session, token, lock=True)
    out = Outcome()
    for entry in roster.body.nodes:
        if entry.node_id == settings.node_id:
            continue
        existing = session.get(Peer, entry.node_id)
        if existing is not None:
            if existing.status == "removed":
                out.refused[entry.node_id] = "removed here: only an administrator adds it again"
            elif existing.pinned_fingerprint != identity.normalize_fingerprint(entry.fingerprint):
                out.refused[entry.node_id] = (
                    f"pinned here as {existing.pinned_fingerprint}, the roster says {entry.fingerprint}; "
                    "left as pinned"
                )
            else:
                out.unchanged.append(entry.node_id)
            continue
        doc = cards.get(entry.node_id)
        if not isinstance(doc, dict):
            out.refused[entry.node_id] = doc or "its card was not fetched"
            continue
        try:
            if identity.read_card(doc.get("card")).node_id != entry.node_id:
                raise IntegrityFailure(f"the card at {entry.base_url} is not {entry.node_id}'s")
            with session.begin_nested():
                peers.add_peer(session, actor, settings, doc, entry.base_url, entry.fingerprint)
        except (IntegrityFailure, InvalidInput, Conflict) as exc:
            out.refused[entry.node_id] = str(exc)
            continue
        out.added.append(entry.node_id)
    session.get_one(RosterPublisher, roster.body.publisher).last_serial = roster.body.serial
    session.flush()
    audit.record(
        session,
        actor,
        "federation.roster.import",
        "roster",
        f"{roster.body.publisher}/{roster.body.serial}",
        detail={"added": out.added, "unchanged": len(out.unchanged), "refused": out.refused},
    )
    return out


def _fetch_cards(settings: Settings, entries: list[RosterEntry]) -> dict[str, dict[str, Any] | str]:
    """Each entry's card document, or why it could not be had."""
    with peers.http_client(settings, timeout=10) as client:

        def one(entry: RosterEntry) -> dict[str, Any] | str:
            try:
                return peers.fetch_card_document(client, peers.check_peer_url(settings, entry.base_url))
            except (IntegrityFailure, InvalidInput) as exc:
                return str(exc)

        # A few at a time: a roster of many nodes, some of them down, would otherwise wait out each
        # timeout in turn.
        with ThreadPoolExecutor(max_workers=FETCHES_AT_ONCE) as pool:
            return dict(zip((e.node_id for e in entries), pool.map(one, entries), strict=True))
