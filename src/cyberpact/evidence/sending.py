"""The sending side of a transfer: pushing chunks, completing, applying the signed receipt, and the
worker that does it in the background. The protocol itself is described in :mod:`.transfer`."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.evidence import chunks, custody, service
from cyberpact.evidence.errors import InconsistentTreeHead
from cyberpact.evidence.models import EvidencePackage, EvidenceTransfer
from cyberpact.evidence.schemas import (
    PeerFileStored,
    PeerReceiptAnswer,
    PeerTransferState,
    SignedTransferReceipt,
)
from cyberpact.evidence.transfer import (
    AUTH_HEADER,
    BASE,
    CONTEXTS,
    OFFER,
    RECEIPT,
    auth_value,
    get_transfer,
    own_consistency,
    transfer_codec,
    transfer_key,
)
from cyberpact.federation import handlers, peers
from cyberpact.federation.envelope import OpenedEnvelope
from cyberpact.federation.models import OutboxMessage, Peer
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Database
from cyberpact.kit.errors import Conflict, CyberpactError, IntegrityFailure, InvalidInput, problems_of
from cyberpact.kit.time import utcnow

log = logging.getLogger("cyberpact.evidence.transfer")
_Answer = TypeVar("_Answer", bound=BaseModel)


# --- sender: pushing and applying the receipt -------------------------------------------------------------


def _post_json(
    client: httpx.Client, url: str, path: str, key: bytes, doc: dict[str, Any], node_id: str
) -> httpx.Response:
    body = json.dumps(doc, separators=(",", ":")).encode()
    return client.post(
        url + path,
        content=body,
        headers={
            "Content-Type": "application/json",
            AUTH_HEADER: auth_value(key, "POST", path, body),
            "X-Cyberpact-Node": node_id,
        },
    )


def _get(client: httpx.Client, url: str, path: str, key: bytes, node_id: str) -> httpx.Response:
    return client.get(
        url + path, headers={AUTH_HEADER: auth_value(key, "GET", path, b""), "X-Cyberpact-Node": node_id}
    )


def _check(response: httpx.Response, what: str, shape: type[_Answer]) -> _Answer:
    """The peer's answer in the shape expected of it; anything else leaves the transfer to resume later."""
    if response.status_code != 200:
        try:
            body = response.json()
            detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
        except ValueError:
            detail = response.text
        raise TransferPending(
            f"{what}: HTTP {response.status_code}: {str(detail)[:300]}",
            extra={"http_status": response.status_code},
        )
    try:
        return shape.model_validate_json(response.content)
    except ValidationError as exc:
        raise TransferPending(f"{what}: the peer's answer is not understood: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    first = problems_of(exc, whole="the body")[0]
    return f"{first.field}: {first.message}"[:300]


class TransferPending(CyberpactError):
    """The peer is not ready or not reachable; the transfer resumes on the next attempt."""

    code = "transfer_pending"
    status = 503
    title = "Transfer pending"


def push(
    db: Database,
    ctx: service.Context,
    transfer_id: str | uuid.UUID,
    client: httpx.Client,
    progress: Any = None,
) -> EvidenceTransfer:
    """Send what the peer does not have yet, complete, and apply the receipt. Safe to run again at any
    point: it always starts by asking the peer where it stands."""
    with db.transaction(read_only=True) as session:
        t = get_transfer(session, transfer_id, "out")
        if t.status in ("accepted", "rejected"):
            return t
        peer = session.get_one(Peer, t.peer)
        base_url, tid = peer.base_url, t.id
        key = transfer_key(session, ctx, t)
        package = session.get_one(EvidencePackage, t.package_id)
        files = service.files_of(session, package)
        store_key = service.data_key(session, ctx, package)
        codecs = [
            (f, service.codec(session, ctx, package, f, store_key), service.key_of(package, f)) for f in files
        ]
    path = f"{BASE}/{tid}"
    state = _check(_get(client, base_url, path, key, ctx.node_id), "transfer status", PeerTransferState)
    if state.status == "receiving":
        stored = {f.index: f.chunks_stored for f in state.files}
        _send_chunks(client, base_url, path, key, tid, codecs, stored, ctx, progress)
        with db.transaction(read_only=True) as session:
            body = _completion(session, ctx, t.peer, package.id, state.peer_head_size)
        with db.transaction() as session:
            # A receipt may have come as a message meanwhile: marking an accepted transfer "sending" again
            # would let the answer below be applied a second time.
            now = get_transfer(session, tid, lock=True)
            if now.status in ("accepted", "rejected"):
                return now
            now.status = "sending"
        answer = _check(
            _post_json(client, base_url, path + "/complete", key, body, ctx.node_id),
            "completion",
            PeerReceiptAnswer,
        )
    elif state.receipt:
        answer = PeerReceiptAnswer(receipt=state.receipt)
    else:
        raise TransferPending(f"the peer reports the transfer as {state.status}: {state.error}")
    return apply_receipt(db, ctx, t.peer, answer)


def _send_chunks(
    client: httpx.Client,
    url: str,
    path: str,
    key: bytes,
    tid: uuid.UUID,
    codecs: list[Any],
    stored: dict[int, int],
    ctx: service.Context,
    progress: Any,
) -> None:
    # The next chunk is read, decrypted and re-sealed while the current one is on the wire.
    with ThreadPoolExecutor(1, thread_name_prefix="evidence-push") as pool:
        for f, store_codec, key_of in codecs:
            start = stored.get(f.index, 0)
            if progress is not None:
                progress(f.index, start * f.chunk_size)
            tcodec = transfer_codec(key, tid, {"index": f.index, "size": f.size, "chunk_size": f.chunk_size})
            # prepare() below already reads on a thread of its own, one chunk ahead of the wire.
            plain_chunks = chunks.read_chunks(store_codec, ctx.storage, key_of, start, read_ahead=False)

            def prepare(c: int, it: Any = plain_chunks, tc: chunks.ChunkCodec = tcodec) -> bytes:
                # bytes, not the sealer's bytearray: the HTTP layer would copy a bytearray as it sends.
                return bytes(tc.seal(c, next(it)))

            nxt = pool.submit(prepare, start) if start < tcodec.count else None
            for c in range(start, tcodec.count):
                assert nxt is not None
                body = nxt.result()
                nxt = pool.submit(prepare, c + 1) if c + 1 < tcodec.count else None
                content, length = peers.body_once(body)
                del body  # the generator holds the only reference, dropped once the chunk is sent
                r = client.put(
                    f"{url}{path}/files/{f.index}/chunks/{c}",
                    content=content,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "X-Cyberpact-Node": ctx.node_id,
                        **length,
                    },
                )
                _check(r, f"file {f.index} chunk {c}", PeerFileStored)
                if progress is not None:
                    progress(f.index, min(f.size, (c + 1) * f.chunk_size))


def _completion(
    session: Session, ctx: service.Context, peer: str, package_id: uuid.UUID, peer_has: int
) -> dict[str, Any]:
    head = custody.sign_head(session, ctx.keys, ctx.node_id)
    events = custody.events_of(session, str(package_id), head.size)
    proofs = custody.inclusion_proofs(session, [e.seq for e in events], head.size)
    seen = custody.peer_latest(session, peer)
    return {
        "sth": head.jws,
        "from_size": peer_has,
        "consistency": own_consistency(session, peer_has, head.size),
        "custody": [
            {"entry": e.entry, "seq": e.seq, "proof": [custody.b64(p) for p in proofs[e.seq]]} for e in events
        ],
        "your_head_size": seen.size if seen is not None else 0,
    }


def apply_receipt(
    db: Database, ctx: service.Context, peer: str, answer: PeerReceiptAnswer
) -> EvidenceTransfer:
    try:
        with db.transaction() as session:
            return _apply_receipt(session, ctx, peer, answer)
    except InconsistentTreeHead as exc:
        with db.transaction() as session:
            custody.store_alert(session, exc)
        raise


def _apply_receipt(
    session: Session, ctx: service.Context, peer: str, answer: PeerReceiptAnswer
) -> EvidenceTransfer:
    token = answer.receipt
    kid = str(custody.peek_header(token).get("kid", ""))
    key_row = peers.sender_key(session, peer, kid)
    if key_row is None or key_row.use != "sig":
        raise IntegrityFailure("the receipt is not signed by the peer")
    _, signed = crypto.verify_json(token, peers.public_key(key_row))
    try:
        receipt = SignedTransferReceipt.model_validate(signed)
    except ValidationError as exc:
        raise IntegrityFailure(f"the receipt is not well formed: {_first_error(exc)}") from exc
    # Locked: the same receipt comes twice, in the peer's answer to the completion and as a message, and
    # the two may be applied at once; the second must see the first's "accepted", not record it again.
    t = get_transfer(session, receipt.transfer_id, "out", lock=True)
    if t.peer != peer or receipt.receiver != peer or receipt.sender != ctx.node_id:
        raise IntegrityFailure("the receipt names other nodes than this transfer's")
    if receipt.manifest_digest != t.manifest_digest:
        raise IntegrityFailure("the receipt names another manifest digest")
    if t.status in ("accepted", "rejected"):
        return t
    proof = [custody.unb64(p, "consistency proof") for p in answer.consistency]
    actor = Actor(user_id=None, username=f"peer:{peer}", source="federation")
    custody.accept_peer_head(session, peer, receipt.receiver_head, answer.from_size, proof, actor)
    t.receipt, t.updated_at = token, utcnow()
    t.status = "accepted" if receipt.status == "accepted" else "rejected"
    t.error = receipt.reason
    if t.status == "accepted":
        custody.record(
            session,
            ctx.node_id,
            "transferred",
            t.package_id,
            actor,
            peer=peer,
            transfer=str(t.id),
            manifest_digest=t.manifest_digest,
            receipt_digest=hashlib.sha256(token.encode()).hexdigest(),
        )
    custody.sign_head(session, ctx.keys, ctx.node_id)
    audit.record(
        session,
        actor,
        f"evidence.transfer.{t.status}",
        "evidence_package",
        t.package_id,
        detail={"transfer": str(t.id)},
    )
    return t


@handlers.register(RECEIPT)
def _on_receipt(session: Session, message: OpenedEnvelope) -> str:
    ctx = CONTEXTS.get(message.recipient)
    if ctx is None:
        raise IntegrityFailure("this node has no evidence context")
    try:
        with session.begin_nested():
            t = _apply_receipt(session, ctx, message.sender, _receipt_message(message.payload))
    except (InconsistentTreeHead, Conflict) as exc:
        # Kept as a message all the same: the receipt is evidence, even of a peer's misbehaviour.
        if isinstance(exc, InconsistentTreeHead):
            custody.store_alert(session, exc)
        return f"evidence receipt not applied: {exc}"[:200]
    return f"evidence receipt: {t.status}"


def _receipt_message(payload: dict[str, Any]) -> PeerReceiptAnswer:
    try:
        return PeerReceiptAnswer.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput("Not an evidence receipt", problems_of(exc, "payload.", "payload")) from exc


def ready_transfers(session: Session) -> list[uuid.UUID]:
    """Outgoing transfers whose offer the peer has accepted and that are not finished."""
    pending = {
        f"evidence-transfer:{tid}": tid
        for tid in session.scalars(
            select(EvidenceTransfer.id).where(
                EvidenceTransfer.direction == "out", EvidenceTransfer.status.in_(("offered", "sending"))
            )
        )
    }
    if not pending:
        return []
    delivered = session.execute(
        select(OutboxMessage.conversation_id, OutboxMessage.receipt_status).where(
            OutboxMessage.conversation_id.in_(list(pending)),
            OutboxMessage.message_type == OFFER,
            OutboxMessage.status == "delivered",
        )
    )
    return [pending[conv] for conv, status in delivered if status in ("accepted", "duplicate")]


class TransferWorker:
    """Pushes ready transfers on a thread, retrying with backoff; what the outbox worker is to messages."""

    def __init__(
        self,
        db: Database,
        ctx: service.Context,
        client: httpx.Client | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self.db, self.ctx, self.poll = db, ctx, poll_seconds
        self.client = client or peers.http_client(ctx.settings, timeout=120)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        with self.db.transaction(read_only=True) as session:
            ready = ready_transfers(session)
        done = 0
        for tid in ready:
            try:
                push(self.db, self.ctx, tid, self.client)
                done += 1
            except CyberpactError as exc:
                log.warning("transfer %s not finished: %s", tid, exc)
            except httpx.HTTPError as exc:
                log.warning("transfer %s interrupted: %s", tid, exc)
            except Exception:  # one transfer's fault must not hold back those to other peers
                log.exception("transfer %s failed", tid)
        return done

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="evidence-transfers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a failed round must not end the worker; the next one retries
                log.exception("transfer round failed")
            self._stop.wait(self.poll)
