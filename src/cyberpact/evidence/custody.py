"""The custody log: an append-only Merkle tree (RFC 9162 hashing) of custody events, its signed tree
heads, proofs for any event and between any two heads, and the heads of peers we hold them to.

Every perfect subtree's hash is stored (``custody_nodes``), about two rows per event, so any proof at any
past tree size costs one indexed query for O(log n) rows. Appends are serialised like the audit chain:
SQLite writers hold the database lock already, PostgreSQL writers queue on an advisory lock.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.evidence import merkle
from cyberpact.evidence.errors import InconsistentTreeHead, ProofError, TamperDetected
from cyberpact.evidence.models import CustodyAlert, CustodyEvent, CustodyHead, CustodyNode, PeerTreeHead
from cyberpact.federation import peers
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.canonical import canonical_json_floatless
from cyberpact.kit.db import Lock, advisory_lock
from cyberpact.kit.errors import Conflict, IntegrityFailure, NotFound
from cyberpact.kit.keystore import KeyStore, NodeKey
from cyberpact.kit.time import parse_rfc3339, rfc3339, utcnow

Kind = Literal[
    "created", "viewed", "downloaded", "copied", "transferred", "received", "verified",
    "exported", "sealed", "released", "delete_asked", "deleted",  # delete_asked: the first of two admins
    "delete_kept",  # the deletion request withdrawn (kinds are at most 12 characters: the column's width)
    "withdrawn",  # one file taken out of a package before it was sealed
]  # fmt: skip
KINDS: Final = frozenset(get_args(Kind))
STH_TYP: Final = "cyberpact-sth+jws"


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ProofError(f"{what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ProofError(f"{what} is not base64") from exc


def _scrub(value: Any) -> Any:
    """Keep event details inside float-free JSON, whose RFC 8785 form the fast encoder produces."""
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | str) or (isinstance(value, int) and abs(value) < 2**53):
        return value
    return str(value)


@dataclass(frozen=True)
class NewEvent:
    kind: Kind
    package_id: str | None
    actor: Actor
    detail: dict[str, Any]


def _lock(session: Session) -> None:
    advisory_lock(session, Lock.CUSTODY_LOG)


def size(session: Session) -> int:
    last = session.scalar(select(func.max(CustodyEvent.seq)))
    return 0 if last is None else int(last) + 1


# At a million events a proof's query must cost well under a millisecond. On PostgreSQL one fixed
# statement whatever the number of nodes (an unnest join the planner serves from the primary key, prepared
# by psycopg after a few uses), which for a single proof also brings the log's size in the same round trip;
# SQLite cannot use an index for row values, so there a per-level OR of index lookups, sent as plain SQL
# because compiling a differently shaped statement every time would cost more than running it.
_PG_NODES = (
    "SELECT n.level, n.idx, n.hash FROM unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) "
    "JOIN custody_nodes n ON n.level = k.level AND n.idx = k.idx"
)
_PG_AND_SIZE = " UNION ALL SELECT -1, max(seq), NULL FROM custody_events"


def fetch_nodes(session: Session, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    return _fetch(session, wanted, with_size=False)[0]


def _nodes_and_size(
    session: Session, wanted: Iterable[tuple[int, int]]
) -> tuple[dict[tuple[int, int], bytes], int]:
    nodes, stored = _fetch(session, wanted, with_size=True)
    assert stored is not None
    return nodes, stored


def _fetch(
    session: Session, wanted: Iterable[tuple[int, int]], *, with_size: bool
) -> tuple[dict[tuple[int, int], bytes], int | None]:
    """The stored hashes of ``wanted`` nodes and, if asked, the log's size."""
    keys = sorted(set(wanted))
    nodes: dict[tuple[int, int], bytes] = {}
    if not keys and not with_size:
        return nodes, None
    if session.get_bind().dialect.name == "postgresql":
        last = None
        sql = _PG_NODES + (_PG_AND_SIZE if with_size else "")
        for lv, ix, h in session.connection().exec_driver_sql(
            sql, ([lv for lv, _ in keys], [ix for _, ix in keys])
        ):
            if lv == -1:
                last = ix
            else:
                nodes[(lv, ix)] = bytes(h)
        return nodes, (0 if last is None else int(last) + 1) if with_size else None
    if keys:
        by_level: dict[int, list[int]] = {}
        for level, idx in keys:
            by_level.setdefault(level, []).append(idx)
        terms, params = [], []
        for level, idxs in by_level.items():
            terms.append(f"(level = ? AND idx IN ({','.join('?' * len(idxs))}))")
            params += [level, *idxs]
        sql = "SELECT level, idx, hash FROM custody_nodes WHERE " + " OR ".join(terms)
        nodes = {(lv, ix): bytes(h) for lv, ix, h in session.connection().exec_driver_sql(sql, tuple(params))}
    return nodes, size(session) if with_size else None


def _getter(nodes: dict[tuple[int, int], bytes]) -> merkle.NodeGetter:
    def get(level: int, idx: int) -> bytes:
        try:
            return nodes[(level, idx)]
        except KeyError:
            raise TamperDetected(f"custody tree node ({level}, {idx})", "is missing from the log") from None

    return get


def append(session: Session, node_id: str, events: list[NewEvent]) -> range:
    """Append ``events`` as consecutive leaves, in the caller's transaction; returns their positions."""
    if not events:
        return range(0)
    _lock(session)
    start = size(session)
    frontier = [(k, (start >> k) - 1) for k in range(start.bit_length()) if start >> k & 1]
    nodes = fetch_nodes(session, frontier)
    get = _getter(nodes)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    new_nodes: list[dict[str, Any]] = []
    for offset, ev in enumerate(events):
        if ev.kind not in KINDS:
            raise ValueError(f"unknown custody event kind {ev.kind!r}")
        seq = start + offset
        entry = {
            "v": 1,
            "seq": seq,
            "node": node_id,
            "at": rfc3339(now),
            "kind": ev.kind,
            "package": ev.package_id,
            "actor": ev.actor.username,
            "actor_id": str(ev.actor.user_id) if ev.actor.user_id else None,
            "source": ev.actor.source,
            "detail": _scrub(ev.detail),
        }
        text_entry = canonical_json_floatless(entry).decode("utf-8")
        rows.append(
            {
                "seq": seq,
                "package_id": ev.package_id,
                "kind": ev.kind,
                "at": now,
                "actor": ev.actor.username[:120],
                "entry": text_entry,
            }
        )
        for level, idx, h in merkle.append_nodes(seq, merkle.leaf_hash(text_entry.encode("utf-8")), get):
            nodes[(level, idx)] = h
            new_nodes.append({"level": level, "idx": idx, "hash": h})
    session.execute(insert(CustodyEvent), rows)
    session.execute(insert(CustodyNode), new_nodes)
    return range(start, start + len(events))


def record(
    session: Session, node_id: str, kind: Kind, package_id: object | None, actor: Actor, **detail: Any
) -> int:
    return append(
        session, node_id, [NewEvent(kind, None if package_id is None else str(package_id), actor, detail)]
    )[0]


def root_at(session: Session, tree_size: int) -> bytes:
    needed = merkle.needed_nodes(lambda g: merkle.root(tree_size, g))
    return merkle.root(tree_size, _getter(fetch_nodes(session, needed)))


# --- signed tree heads ------------------------------------------------------------------------------------


def head_payload(node_id: str, tree_size: int, root: bytes, at: str) -> dict[str, Any]:
    return {
        "typ": "cyberpact-custody-sth",
        "v": 1,
        "node": node_id,
        "size": tree_size,
        "root": b64(root),
        "at": at,
    }


def sign_head(session: Session, keys: KeyStore, node_id: str) -> CustodyHead:
    """A signed head for the log as it stands (the existing one when nothing was appended since)."""
    _lock(session)
    n = size(session)
    existing = session.get(CustodyHead, n)
    if existing is not None:
        return existing
    root = root_at(session, n)
    key_row, key = keys.signing_key(session)
    now = utcnow()
    jws = crypto.sign_json(key, head_payload(node_id, n, root, rfc3339(now)), {"typ": STH_TYP})
    row = CustodyHead(size=n, root=root, at=now, kid=key_row.kid, jws=jws)
    session.add(row)
    session.flush()
    return row


def latest_head(session: Session) -> CustodyHead | None:
    return session.scalars(select(CustodyHead).order_by(CustodyHead.size.desc()).limit(1)).first()


def read_head(token: str, key_of: Any, node_id: str | None = None) -> dict[str, Any]:
    """Verify a signed tree head with ``key_of(kid) -> OKPKey | None``; returns its checked payload."""
    header = peek_header(token)
    key = key_of(header.get("kid", ""))
    if key is None:
        raise IntegrityFailure(f"tree head signed by an unknown key {header.get('kid')!r}")
    if header.get("typ") != STH_TYP:
        raise IntegrityFailure("not a signed tree head (wrong typ)")
    _, payload = crypto.verify_json(token, key)
    try:
        ok = (
            payload["typ"] == "cyberpact-custody-sth"
            and isinstance(payload["size"], int)
            and payload["size"] >= 0
            and len(unb64(payload["root"], "root")) == merkle.HASH_BYTES
            and bool(parse_rfc3339(payload["at"]))
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityFailure(f"tree head payload is malformed: {exc}") from exc
    if not ok:
        raise IntegrityFailure("tree head payload is malformed")
    if node_id is not None and payload.get("node") != node_id:
        raise IntegrityFailure(f"tree head is from {payload.get('node')!r}, not {node_id!r}")
    return dict(payload)


def peek_header(token: str) -> dict[str, Any]:
    import json

    try:
        seg = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    except (ValueError, IndexError) as exc:
        raise IntegrityFailure("not a compact JWS") from exc
    if not isinstance(header, dict):
        raise IntegrityFailure("not a compact JWS")
    return header


# --- proofs -------------------------------------------------------------------------------------------------


def no_event(seq: int, tree_size: int) -> NotFound:
    return NotFound(f"no custody event {seq} in a tree of {tree_size}")


def inclusion_proof(session: Session, seq: int, tree_size: int) -> list[bytes]:
    if not 0 <= seq < tree_size:
        raise no_event(seq, tree_size)
    needed = merkle.needed_nodes(lambda g: merkle.inclusion_proof(seq, tree_size, g))
    nodes, stored = _nodes_and_size(session, needed)
    if tree_size > stored:
        raise no_event(seq, tree_size)
    return merkle.inclusion_proof(seq, tree_size, _getter(nodes))


def inclusion_proofs(session: Session, seqs: list[int], tree_size: int) -> dict[int, list[bytes]]:
    """Proofs for many events with one query per few hundred events."""
    out: dict[int, list[bytes]] = {}
    for i in range(0, len(seqs), 256):
        group = seqs[i : i + 256]
        needed: set[tuple[int, int]] = set()
        for s in group:
            needed |= merkle.needed_nodes(lambda g, s=s: merkle.inclusion_proof(s, tree_size, g))  # type: ignore[misc]
        get = _getter(fetch_nodes(session, needed))
        for s in group:
            out[s] = merkle.inclusion_proof(s, tree_size, get)
    return out


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    if not 0 < first <= second:
        raise NotFound(f"no consistency proof from {first} to {second}")
    needed = merkle.needed_nodes(lambda g: merkle.consistency_proof(first, second, g))
    nodes, stored = _nodes_and_size(session, needed)
    if second > stored:
        raise NotFound(f"no consistency proof from {first} to {second} in a log of {stored}")
    return merkle.consistency_proof(first, second, _getter(nodes))


def events_of(session: Session, package_id: str, upto: int | None = None) -> list[CustodyEvent]:
    query = select(CustodyEvent).where(CustodyEvent.package_id == package_id)
    if upto is not None:
        query = query.where(CustodyEvent.seq < upto)
    return list(session.scalars(query.order_by(CustodyEvent.seq)))


# --- peers' heads -------------------------------------------------------------------------------------------


def peer_latest(session: Session, peer: str) -> PeerTreeHead | None:
    return session.scalars(
        select(PeerTreeHead).where(PeerTreeHead.peer == peer).order_by(PeerTreeHead.size.desc()).limit(1)
    ).first()


def accept_peer_head(
    session: Session, peer: str, token: str, from_size: int, proof: list[bytes], actor: Actor
) -> PeerTreeHead:
    """Hold ``peer`` to every head it gave us before: ``proof`` must show the new head extends the last.

    An inconsistent head is refused and flagged: the alert keeps both signed heads, which together prove
    that the peer signed two irreconcilable histories.
    """

    def key_of(kid: str) -> Any:
        row = peers.sender_key(session, peer, kid)
        return peers.public_key(row) if row is not None and row.use == "sig" else None

    payload = read_head(token, key_of, peer)
    new_size, new_root = int(payload["size"]), unb64(payload["root"], "root")
    last = peer_latest(session, peer)
    if last is not None:
        same = session.get(PeerTreeHead, (peer, new_size))
        if same is not None:
            if bytes(same.root) != new_root:
                _flag(
                    session,
                    peer,
                    actor,
                    f"two signed heads of size {new_size} with different roots",
                    same.jws,
                    token,
                    [],
                )
            return same
        if new_size < last.size:
            raise Conflict(
                f"{peer} presented a head of {new_size}, older than {last.size} already seen",
                extra={"expected_from": last.size},
            )
        if from_size != last.size:
            raise Conflict(
                f"the consistency proof must start at {last.size}, the last head of {peer} seen",
                extra={"expected_from": last.size},
            )
        try:
            merkle.verify_consistency(last.size, new_size, bytes(last.root), new_root, proof)
        except ProofError as exc:
            _flag(
                session,
                peer,
                actor,
                f"head {new_size} is not consistent with head {last.size}: {exc}",
                last.jws,
                token,
                proof,
            )
    row = PeerTreeHead(peer=peer, size=new_size, root=new_root, jws=token, received_at=utcnow())
    session.add(row)
    session.flush()
    return row


def _flag(
    session: Session, peer: str, actor: Actor, reason: str, before: str, after: str, proof: list[bytes]
) -> None:
    # Written in a savepoint-free way on purpose: the caller's transaction rolls back on the raise below,
    # so the alert is written in its own unit of work by flag_after_rollback.
    raise InconsistentTreeHead(
        f"{peer}: {reason}",
        extra={
            "peer": peer,
            "alert": {
                "reason": reason,
                "before": before,
                "after": after,
                "proof": [b64(p) for p in proof],
                "by": actor.username,
            },
        },
    )


def store_alert(session: Session, exc: InconsistentTreeHead) -> CustodyAlert:
    """Persist the alert an :class:`InconsistentTreeHead` carries (after the refusing unit of work ended)."""
    alert = exc.extra["alert"]
    row = CustodyAlert(peer=exc.extra["peer"], at=utcnow(), reason=alert["reason"][:500], evidence=alert)
    session.add(row)
    session.flush()
    audit.record(
        session,
        Actor(user_id=None, username="system", source="custody"),
        "evidence.peer_head.inconsistent",
        "peer",
        exc.extra["peer"],
        outcome="denied",
        detail={"reason": alert["reason"]},
    )
    return row


# --- verifying the whole log -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogReport:
    events: int
    heads: int


def _stream_events(session: Session) -> Iterator[Any]:
    q = select(CustodyEvent.seq, CustodyEvent.package_id, CustodyEvent.kind, CustodyEvent.entry)
    yield from session.execute(q.order_by(CustodyEvent.seq).execution_options(yield_per=10_000))


def verify_log(session: Session, keys: KeyStore) -> LogReport:
    """Recompute every leaf, every stored node and every signed head; raise naming the first that fails."""
    import json

    levels: list[bytearray] = [bytearray()]
    count = 0
    for seq, package_id, kind, entry in _stream_events(session):
        what = f"custody event {seq}"
        if seq != count:
            raise TamperDetected(what, f"follows event {count - 1}: events {count}..{seq - 1} are missing")
        try:
            doc = json.loads(entry)
        except ValueError:
            raise TamperDetected(what, "its entry is not JSON") from None
        if canonical_json_floatless(doc).decode("utf-8") != entry:
            raise TamperDetected(what, "its entry is not in canonical form")
        if doc.get("seq") != seq or doc.get("package") != package_id or doc.get("kind") != kind:
            raise TamperDetected(what, "its row differs from its entry (seq, package or kind)")
        levels[0] += merkle.leaf_hash(entry.encode("utf-8"))
        count += 1
    level = 0
    while len(levels[level]) > 32:
        prev = levels[level]
        nxt = bytearray()
        for i in range(0, len(prev) // 64 * 64, 64):
            nxt += merkle.node_hash(bytes(prev[i : i + 32]), bytes(prev[i + 32 : i + 64]))
        levels.append(nxt)
        level += 1
    stored = session.execute(
        select(CustodyNode.level, CustodyNode.idx, CustodyNode.hash)
        .order_by(CustodyNode.level, CustodyNode.idx)
        .execution_options(yield_per=20_000)
    )
    seen = 0
    for lv, idx, h in stored:
        expected = bytes(levels[lv][idx * 32 : idx * 32 + 32]) if lv < len(levels) else b""
        if bytes(h) != expected:
            if lv == 0:
                raise TamperDetected(
                    f"custody event {idx}", "its content does not hash to its leaf in the tree"
                )
            raise TamperDetected(f"custody tree node ({lv}, {idx})", "differs from the hash of its children")
        seen += 1
    if seen != sum(len(b) // 32 for b in levels):
        raise TamperDetected("custody tree", "nodes are missing")

    def get(lv: int, idx: int) -> bytes:
        return bytes(levels[lv][idx * 32 : idx * 32 + 32])

    public = {
        k.kid: crypto.import_public(k.public_jwk)
        for k in session.scalars(select(NodeKey).where(NodeKey.purpose == "sig"))
    }
    heads = 0
    for head in session.scalars(select(CustodyHead).order_by(CustodyHead.size)):
        what = f"signed tree head {head.size}"
        try:
            payload = read_head(head.jws, public.get)
        except IntegrityFailure as exc:
            raise TamperDetected(what, str(exc)) from None
        if payload["size"] != head.size or unb64(payload["root"], "root") != bytes(head.root):
            raise TamperDetected(what, "its row differs from what was signed")
        if head.size > count:
            raise TamperDetected(
                what, f"covers {head.size} events but the log holds {count} (events deleted)"
            )
        if merkle.root(head.size, get) != bytes(head.root):
            raise TamperDetected(what, "the log no longer has the root that was signed (history rewritten)")
        heads += 1
    _ = keys
    return LogReport(count, heads)
