"""Sending a package to a peer inside the federation channel's trust, resumably, with bounded memory.

1. **Offer** (a federation message, so signed by the sender and encrypted to the recipient): the signed
   manifest, the chunking, and a fresh per-transfer key. The receiver creates an empty package.
2. **Chunks** (``PUT /federation/v1/transfers/{id}/files/{f}/chunks/{c}``): each chunk is sealed under the
   transfer key with its transfer, file, position and finality bound (the format of :mod:`.chunks`), so a
   chunk that authenticates can only have come from the sender, for that place. The receiver opens it,
   re-seals it under its own data key, stores it and records its position: after a crash on either side
   the sender asks where to resume (``GET /federation/v1/transfers/{id}``) and goes on from there.
3. **Completion** (``POST .../complete``, authenticated by a MAC under the transfer key): the sender's
   signed tree head with a consistency proof from the last head the receiver holds, and its custody events
   for the package with inclusion proofs. The receiver re-reads every stored chunk, checks every digest
   against the signed manifest, records ``received`` and ``verified``, signs its own head, and answers a
   signed receipt naming the manifest digest and both heads, with a consistency proof for its own head.
   The same receipt is also sent as a federation message, so it arrives even if the answer is lost.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from typing import Any

from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.evidence import chunks, custody, service
from cyberpact.evidence.errors import InconsistentTreeHead, PackageSealed, TamperDetected
from cyberpact.evidence.models import EvidenceFile, EvidencePackage, EvidenceTransfer
from cyberpact.federation import handlers, outbox, peers
from cyberpact.federation.envelope import OpenedEnvelope
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database
from cyberpact.kit.errors import Conflict, IntegrityFailure, InvalidInput, NotFound, Problem
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.keystore import NodeKey, current_kek, kek_by_id
from cyberpact.kit.time import rfc3339, utcnow

log = logging.getLogger("cyberpact.evidence.transfer")
OFFER = "evidence.offer"
RECEIPT = "evidence.receipt"
RECEIPT_TYP = "cyberpact-evidence-receipt+jws"
KEY_TYP = "cyberpact-transfer-key+jwe"
BASE = "/federation/v1/transfers"
AUTH_HEADER = "X-Cyberpact-Transfer-Auth"
MAX_SKEW = 300


def _ctx_bytes(transfer_id: uuid.UUID) -> bytes:
    return b"cyberpact-evidence-transfer:" + transfer_id.bytes


def transfer_key(session: Session, ctx: service.Context, t: EvidenceTransfer) -> bytes:
    return kek_by_id(session, ctx.keys, t.kek_id).unwrap(t.wrapped_key, _ctx_bytes(t.id))


def transfer_codec(key: bytes, transfer_id: uuid.UUID, f: dict[str, Any]) -> chunks.ChunkCodec:
    cipher = crypto.chunk_cipher(crypto.derive_key(key, b"cyberpact transfer chunks"))
    return chunks.ChunkCodec(cipher, transfer_id, int(f["index"]), int(f["size"]), int(f["chunk_size"]))


def auth_value(key: bytes, method: str, path: str, body: bytes, at: int | None = None) -> str:
    at = int(time.time()) if at is None else at
    data = f"{method}\n{path}\n{at}\n{hashlib.sha256(body).hexdigest()}".encode()
    return f"t={at},mac={crypto.mac(crypto.derive_key(key, b'cyberpact transfer mac'), data)}"


def check_auth(key: bytes, method: str, path: str, body: bytes, header: str | None) -> None:
    try:
        parts = dict(p.split("=", 1) for p in (header or "").split(","))
        at = int(parts["t"])
        tag = parts["mac"]
    except (KeyError, ValueError) as exc:
        raise IntegrityFailure(f"missing or malformed {AUTH_HEADER}") from exc
    if abs(time.time() - at) > MAX_SKEW:
        raise IntegrityFailure("the transfer request is stale")
    data = f"{method}\n{path}\n{at}\n{hashlib.sha256(body).hexdigest()}".encode()
    crypto.check_mac(crypto.derive_key(key, b"cyberpact transfer mac"), data, tag)


def get_transfer(
    session: Session, transfer_id: uuid.UUID | str, direction: str | None = None, *, lock: bool = False
) -> EvidenceTransfer:
    """The transfer; with ``lock``, its row locked for this transaction and read afresh (PostgreSQL: a
    change of its status waits for any other one in flight, and then sees it)."""
    tid = parse_uuid(transfer_id)
    t = (
        session.get(EvidenceTransfer, tid, with_for_update=lock or None, populate_existing=lock)
        if tid
        else None
    )
    if t is None or (direction is not None and t.direction != direction):
        raise NotFound(f"No transfer {transfer_id}")
    return t


# --- sender: offering -------------------------------------------------------------------------------------


def offer(
    session: Session, ctx: service.Context, actor: Actor, package: EvidencePackage, peer_id: str
) -> EvidenceTransfer:
    """Queue the offer in the caller's transaction; chunks follow once the peer has it (see :func:`push`)."""
    if package.status != "sealed" or package.origin_package_id is not None:
        raise PackageSealed(f"only a package this node sealed can be sent (this one is {package.status})")
    service.signed_manifest(session, package)
    peers.get_peer(session, peer_id)
    answered = service.request_of(session, package)
    if answered is not None and answered.counterpart != peer_id:
        # Evidence gathered for one State's request goes to that State; sending it elsewhere is either a
        # slip of the list or a disclosure the requesting State never agreed to (art. 36).
        raise InvalidInput(
            "This package answers another State's request",
            [Problem("peer", f"the package is filed under a request of {answered.counterpart}")],
        )
    files = service.files_of(session, package)
    key = crypto.new_data_key()
    kek = current_kek(session, ctx.keys)
    tid = uuid.uuid4()
    now = utcnow()
    terms = {
        "package_id": str(package.id),
        "files": [{"index": f.index, "size": f.size, "chunk_size": f.chunk_size} for f in files],
    }
    t = EvidenceTransfer(
        id=tid,
        direction="out",
        peer=peer_id,
        package_id=package.id,
        status="offered",
        manifest_digest=package.manifest_digest or "",
        kek_id=kek.kek_id,
        wrapped_key=kek.wrap(key, _ctx_bytes(tid)),
        offer=terms,
        created_at=now,
        updated_at=now,
    )
    session.add(t)
    session.flush()
    outbox.enqueue(
        session,
        actor,
        recipient=peer_id,
        message_type=OFFER,
        conversation_id=f"evidence-transfer:{tid}",
        payload={
            "transfer_id": str(tid),
            "manifest": package.manifest_jws,
            "manifest_digest": package.manifest_digest,
            "files": terms["files"],
            # Wrapped to the recipient's own key, not only carried inside an envelope encrypted to it: the
            # payload is kept in clear in both nodes' databases (outbox, inbox) for proof, and the key
            # opens every chunk of the transfer.
            "key_jwe": crypto.wrap_for(peers.encryption_jwk(session, peer_id), key, KEY_TYP),
            "summary": f"evidence package {package.title}"[:200],
        },
    )
    audit.record(
        session,
        actor,
        "evidence.transfer.offer",
        "evidence_package",
        package.id,
        detail={"transfer": str(tid), "peer": peer_id},
    )
    return t


# --- receiver: the offer arrives --------------------------------------------------------------------------


CONTEXTS: dict[str, service.Context] = {}
"""The evidence context per node id, registered by the app or CLI that runs the inbox."""


def register_context(ctx: service.Context) -> None:
    CONTEXTS[ctx.node_id] = ctx


def _unwrap_transfer_key(session: Session, ctx: service.Context, wrapped: str) -> bytes:
    """The transfer key, opened with this node's encryption key that the sender named (current or
    retired: an offer may have been sealed just before a rotation)."""
    row = session.get(NodeKey, crypto.wrapped_kid(wrapped))
    if row is None or row.purpose != "enc":
        raise IntegrityFailure("the transfer key is not wrapped to any encryption key of this node")
    return crypto.unwrap_with(ctx.keys.private(row), wrapped, KEY_TYP)


@handlers.register(OFFER)
def _on_offer(session: Session, message: OpenedEnvelope) -> str:
    ctx = CONTEXTS.get(message.recipient)
    if ctx is None:
        raise IntegrityFailure("this node takes no evidence: its evidence storage is not configured")
    p = message.payload
    try:
        tid = uuid.UUID(str(p["transfer_id"]))
        wrapped = str(p["key_jwe"])
        token, digest, files = str(p["manifest"]), str(p["manifest_digest"]), list(p["files"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"malformed evidence offer: {exc}") from exc
    key = _unwrap_transfer_key(session, ctx, wrapped)
    if len(key) != crypto.DATA_KEY_BYTES:
        raise InvalidInput("the transfer key has the wrong length")
    kid = str(custody.peek_header(token).get("kid", ""))
    sender_key = peers.sender_key(session, message.sender, kid)
    if sender_key is None or sender_key.use != "sig":
        raise IntegrityFailure("the manifest is not signed by the sender")
    _, manifest = crypto.verify_json(token, peers.public_key(sender_key))
    if service.manifest_digest(manifest) != digest or manifest.get("node") != message.sender:
        raise IntegrityFailure("the manifest digest or origin does not match the offer")
    cited = service.request_of_ref(session, manifest.get("request_ref"))
    if cited is not None and cited.counterpart != message.sender:
        # Request ids are shared only by the two nodes of a request: a third node citing one would file its
        # package on a request it has no part in.
        raise InvalidInput("the package cites a request that is not between the sender and this node")
    entries = manifest.get("files") or []
    if len(entries) != len(files) or not entries:
        raise InvalidInput("the offer's files do not match the manifest")
    for entry, f in zip(entries, files, strict=True):
        if (f.get("index"), f.get("size")) != (entry.get("index"), entry.get("size")) or not (
            isinstance(f.get("chunk_size"), int) and 64 * 1024 <= f["chunk_size"] <= 16 * 1024 * 1024
        ):
            raise InvalidInput(f"offer file {f.get('index')} does not match the manifest")
        if entry["size"] > ctx.settings.evidence_max_file_bytes:
            raise InvalidInput(f"file {entry['index']} is larger than this node accepts")
    if session.get(EvidenceTransfer, tid) is not None:
        raise Conflict(f"transfer {tid} is already known")
    kek = current_kek(session, ctx.keys)
    now = utcnow()
    pid = uuid.uuid4()
    package = EvidencePackage(
        id=pid,
        case_ref=str(manifest["case_ref"])[:120],
        # In the spelling this node's lists and request pages compare: a sender may sign another one
        # (capitals), which would hide the package from its request's page, and not hide it from those
        # who may not see the request.
        request_ref=service.canonical_request_ref(manifest.get("request_ref")),
        title=str(manifest["title"])[:300],
        description=manifest.get("description"),
        use_conditions=manifest.get("use_conditions") or {},
        status="receiving",
        origin_node=message.sender,
        origin_package_id=str(manifest["package_id"]),
        created_by=f"peer:{message.sender}",
        created_at=now,
        kek_id=kek.kek_id,
        wrapped_key=kek.wrap(crypto.new_data_key(), service._context_bytes(pid)),
        manifest_jws=token,
        manifest_digest=digest,
    )
    session.add(package)
    session.flush()
    for entry, f in zip(entries, files, strict=True):
        session.add(
            EvidenceFile(
                package_id=pid,
                index=entry["index"],
                name=str(entry["name"])[:255],
                size=entry["size"],
                sha256=entry.get("sha256"),
                blake2b=entry.get("blake2b"),
                media_type=str(entry["media_type"])[:255],
                acquisition=entry.get("acquisition") or {},
                chunk_size=f["chunk_size"],
                chunks_stored=0,
                status="uploading",
                created_at=now,
            )
        )
    session.add(
        EvidenceTransfer(
            id=tid,
            direction="in",
            peer=message.sender,
            package_id=pid,
            status="receiving",
            manifest_digest=digest,
            kek_id=kek.kek_id,
            wrapped_key=kek.wrap(key, _ctx_bytes(tid)),
            offer={"package_id": manifest["package_id"], "files": files},
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    return f"evidence offered: {manifest['title']}"[:200]


# --- receiver: chunks, status, completion -----------------------------------------------------------------


def status_of(session: Session, t: EvidenceTransfer) -> dict[str, Any]:
    files = service.files_of(session, session.get_one(EvidencePackage, t.package_id)) if t.package_id else []
    seen = custody.peer_latest(session, t.peer)
    return {
        "transfer_id": str(t.id),
        "status": t.status,
        "files": [{"index": f.index, "chunks_stored": f.chunks_stored} for f in files],
        "peer_head_size": seen.size if seen is not None else 0,
        "receipt": t.receipt,
        "error": t.error,
    }


def receive_chunk(
    db: Database, ctx: service.Context, sender: str, transfer_id: str, index: int, chunk: int, body: bytes
) -> dict[str, Any]:
    with db.transaction(read_only=True) as session:
        t = get_transfer(session, transfer_id, "in")
        if t.peer != sender:
            raise NotFound(f"No transfer {transfer_id}")
        if t.status != "receiving":
            raise Conflict(f"transfer {t.id} is {t.status}")
        package = session.get_one(EvidencePackage, t.package_id)
        f = service.get_file(session, package, index)
        stored = f.chunks_stored
        if chunk < stored:
            return {"chunks_stored": stored}  # a retry of a chunk already kept
        if chunk != stored:
            raise Conflict(f"file {index} continues at chunk {stored}", extra={"expected_chunk": stored})
        terms = next(x for x in t.offer["files"] if x["index"] == index)
        tcodec = transfer_codec(transfer_key(session, ctx, t), t.id, terms)
        if not 0 <= chunk < tcodec.count:
            raise InvalidInput(f"file {index} has no chunk {chunk}")
        store_codec = service.codec(session, ctx, package, f)
        object_key = chunks.object_key(package.id, f.index, chunk)
        file_id = f.id
    plain = tcodec.open(chunk, body)  # raises TamperDetected, naming the fault; nothing is stored
    ctx.storage.put(object_key, store_codec.seal(chunk, plain))
    with db.transaction() as session:
        f = session.get_one(EvidenceFile, file_id)
        if f.chunks_stored == chunk:
            f.chunks_stored = chunk + 1
        return {"chunks_stored": f.chunks_stored}


def complete(
    db: Database, ctx: service.Context, sender: str, transfer_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Check the sender's head and custody proofs and every digest; accept or reject; answer the receipt."""
    try:
        with db.transaction() as session:
            return _complete(session, ctx, sender, transfer_id, body)
    except InconsistentTreeHead as exc:
        with db.transaction() as session:
            custody.store_alert(session, exc)
            t = get_transfer(session, transfer_id, "in")
            t.status, t.error, t.updated_at = "refused", str(exc)[:500], utcnow()
        raise


def _complete(
    session: Session, ctx: service.Context, sender: str, transfer_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    t = get_transfer(session, transfer_id, "in")
    if t.peer != sender:
        raise NotFound(f"No transfer {transfer_id}")
    your_size = int(body.get("your_head_size") or 0)
    if t.status in ("accepted", "rejected"):
        return _answer(session, t, your_size)
    if t.status != "receiving":
        raise Conflict(f"transfer {t.id} is {t.status}")
    actor = Actor(user_id=None, username=f"peer:{sender}", source="federation")
    try:
        sth, from_size = str(body["sth"]), int(body["from_size"])
        proof = [custody.unb64(p, "consistency proof") for p in body.get("consistency") or []]
        events = list(body.get("custody") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed completion: {exc}") from exc
    head = custody.accept_peer_head(session, sender, sth, from_size, proof, actor)
    package = session.get_one(EvidencePackage, t.package_id)
    origin_events = _check_origin_events(events, head.size, bytes(head.root), package.origin_package_id or "")
    manifest = service.signed_manifest(session, package)
    key = service.data_key(session, ctx, package)
    failure: str | None = None
    for f, entry in zip(service.files_of(session, package), manifest["files"], strict=True):
        try:
            c = service.codec(session, ctx, package, f, key)
            if f.chunks_stored != c.count:
                raise TamperDetected(f"file {f.index}", f"{f.chunks_stored} of {c.count} chunks arrived")
            sha, blake, size = chunks.hash_stream(
                chunks.read_chunks(c, ctx.storage, service.key_of(package, f))
            )
            chunks.check_digests(f"file {f.index} ({f.name})", entry, sha, blake, size)
        except IntegrityFailure as exc:
            failure = str(exc)
            break
        f.sha256, f.blake2b, f.status = sha, blake, "complete"
    now = utcnow()
    if failure is None:
        package.status, package.sealed_at = "received", now
        package.origin_custody = {"head": sth, "events": origin_events}
        t.status = "accepted"
        custody.record(
            session,
            ctx.node_id,
            "received",
            package.id,
            actor,
            peer=sender,
            transfer=str(t.id),
            manifest_digest=t.manifest_digest,
            origin_package=package.origin_package_id,
        )
        custody.record(
            session,
            ctx.node_id,
            "verified",
            package.id,
            actor,
            manifest_digest=t.manifest_digest,
            files=len(manifest["files"]),
        )
    else:
        ctx.storage.delete_prefix(chunks.package_prefix(package.id))
        package.status, t.status, t.error = "deleted", "rejected", failure[:500]
        package.wrapped_key = b"\x00"
    own = custody.sign_head(session, ctx.keys, ctx.node_id)
    _, signing_key = ctx.keys.signing_key(session)
    t.receipt = crypto.sign_json(
        signing_key,
        {
            "typ": "cyberpact-evidence-receipt",
            "transfer_id": str(t.id),
            "sender": sender,
            "receiver": ctx.node_id,
            "package_id": package.origin_package_id,
            "manifest_digest": t.manifest_digest,
            "status": t.status,
            "reason": failure,
            "sender_head": sth,
            "receiver_head": own.jws,
            "at": rfc3339(now),
        },
        {"typ": RECEIPT_TYP},
    )
    t.updated_at = now
    session.flush()
    audit.record(
        session,
        actor,
        f"evidence.transfer.{t.status}",
        "evidence_package",
        package.id,
        detail={"transfer": str(t.id)},
    )
    outbox.enqueue(
        session,
        actor,
        recipient=sender,
        message_type=RECEIPT,
        conversation_id=f"evidence-transfer:{t.id}",
        payload={
            "receipt": t.receipt,
            "from_size": your_size,
            "consistency": own_consistency(session, your_size, own.size),
        },
    )
    return _answer(session, t, your_size)


def own_consistency(session: Session, first: int, second: int) -> list[str]:
    if first == 0 or first >= second:
        return []
    return [custody.b64(p) for p in custody.consistency_proof(session, first, second)]


def _answer(session: Session, t: EvidenceTransfer, your_size: int) -> dict[str, Any]:
    assert t.receipt is not None
    return {
        "receipt": t.receipt,
        "from_size": your_size,
        "consistency": own_consistency(session, your_size, _head_size(t.receipt)),
    }


def _head_size(receipt: str) -> int:
    payload = json.loads(base64.urlsafe_b64decode(receipt.split(".")[1] + "==="))
    head = json.loads(base64.urlsafe_b64decode(payload["receiver_head"].split(".")[1] + "==="))
    return int(head["size"])


def _check_origin_events(events: list[Any], size: int, root: bytes, package_id: str) -> list[dict[str, Any]]:
    from cyberpact.evidence import merkle

    out = []
    for item in events[:100_000]:
        try:
            entry, seq = str(item["entry"]), int(item["seq"])
            proof = [custody.unb64(p, "inclusion proof") for p in item["proof"]]
            doc = json.loads(entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed custody event: {exc}") from exc
        if doc.get("seq") != seq or doc.get("package") != package_id:
            raise TamperDetected(f"origin custody event {seq}", "is not an event of this package")
        merkle.verify_inclusion(seq, size, merkle.leaf_hash(entry.encode("utf-8")), proof, root)
        out.append({"entry": entry, "seq": seq, "proof": item["proof"]})
    return out
