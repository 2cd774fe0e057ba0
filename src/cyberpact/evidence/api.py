"""Evidence endpoints: ``/api/v1/evidence`` for users, ``/federation/v1/transfers`` for peers.

Every read of a package or its content is an audit record and a custody event, written in the request's
unit of work; every request that appends custody events ends with a signed tree head.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect

from cyberpact.accounts.api import require_roles
from cyberpact.audit import service as audit
from cyberpact.evidence import custody, deletion, sending, service, transfer, uploads
from cyberpact.evidence.models import CustodyAlert, CustodyEvent, EvidencePackage
from cyberpact.evidence.schemas import (
    EventOut,
    FileDeclare,
    FileOut,
    HeadOut,
    PackageCreate,
    PackageOut,
    ProofOut,
    Release,
    TransferCreate,
    TransferOut,
    UploadState,
)
from cyberpact.federation import outbox
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import IntegrityFailure, MalformedInput, NotFound
from cyberpact.kit.http import WriteSession, get_database, read_limited
from cyberpact.kit.pagination import Page, decode_cursor, encode_cursor
from cyberpact.kit.storage import build_storage
from cyberpact.kit.time import parse_rfc3339, rfc3339

Officer = Annotated[Actor, Depends(require_roles(*service.EVIDENCE_ROLES))]
# A file's index in a path: beyond a 32-bit integer no file can exist, and the database would refuse to
# compare with it rather than find nothing.
FileIndex = Annotated[int, Path(ge=0, le=2**31 - 1)]
Admin = Annotated[Actor, Depends(require_roles("admin"))]
PREFIX = "/api/v1/evidence"
_HOP = 1024 * 1024  # request bytes gathered before handing them to a worker thread
_MAX_COMPLETE = 64 * 1024 * 1024


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build this node's evidence context; run the transfer worker wherever the outbox worker runs."""
    ctx = service.Context(app.state.settings, app.state.keys, build_storage(app.state.settings))
    app.state.evidence = ctx
    transfer.register_context(ctx)
    worker: sending.TransferWorker | None = None
    if getattr(app.state, "outbox_worker", None) is not None:
        worker = sending.TransferWorker(app.state.db, ctx)
        worker.start()
    try:
        yield
    finally:
        if worker is not None:
            await run_in_threadpool(worker.stop)
        transfer.CONTEXTS.pop(ctx.node_id, None)


router = APIRouter(tags=["evidence"], lifespan=lifespan)


def _ctx(request: Request) -> service.Context:
    ctx: service.Context = request.app.state.evidence
    return ctx


def _head(session: Session, ctx: service.Context) -> None:
    custody.sign_head(session, ctx.keys, ctx.node_id)


def _out(session: Session, package: EvidencePackage) -> PackageOut:
    out = PackageOut.model_validate(package)
    out.files = [FileOut.model_validate(f) for f in service.files_of(session, package)]
    return out


# --- packages --------------------------------------------------------------------------------------------


@router.post(f"{PREFIX}/packages", status_code=201, response_model=PackageOut)
def create(body: PackageCreate, actor: Officer, session: WriteSession, request: Request) -> PackageOut:
    ctx = _ctx(request)
    package = service.create_package(
        session,
        ctx,
        actor,
        case_ref=body.case_ref,
        request_ref=body.request_ref,
        title=body.title,
        description=body.description,
        use_conditions=body.use_conditions,
    )
    _head(session, ctx)
    return _out(session, package)


@router.get(f"{PREFIX}/packages", response_model=Page[PackageOut])
def list_packages(
    actor: Officer,
    session: WriteSession,
    case_ref: str | None = None,
    request_ref: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[PackageOut]:
    after = None
    if cursor:
        at, pid = decode_cursor(cursor, "evidence.packages", 2)
        try:
            after = (parse_rfc3339(str(at)), uuid.UUID(str(pid)))
        except ValueError:
            raise MalformedInput("Invalid page cursor") from None
    rows = service.list_packages(
        session, case_ref=case_ref, request_ref=request_ref, after=after, limit=limit, actor=actor
    )
    # Listing shows case metadata, so it is audited; each package's own custody starts when it is opened.
    audit.record(
        session,
        actor,
        "evidence.package.list",
        "evidence_package",
        None,
        detail={"case": case_ref, "request": request_ref, "count": len(rows)},
    )
    nxt = None
    if len(rows) == limit:
        nxt = encode_cursor("evidence.packages", [rfc3339(rows[-1].created_at), str(rows[-1].id)])
    return Page(items=[PackageOut.model_validate(p) for p in rows], next=nxt)


@router.get(f"{PREFIX}/packages/{{package_id}}", response_model=PackageOut)
def show(package_id: str, actor: Officer, session: WriteSession, request: Request) -> PackageOut:
    ctx = _ctx(request)
    package = service.get_package(session, package_id, actor)
    service.view(session, ctx, actor, package)
    _head(session, ctx)
    return _out(session, package)


@router.get(f"{PREFIX}/packages/{{package_id}}/manifest")
def manifest(package_id: str, actor: Officer, session: WriteSession, request: Request) -> dict[str, Any]:
    ctx = _ctx(request)
    package = service.get_package(session, package_id, actor)
    doc = service.signed_manifest(session, package)
    service.view(session, ctx, actor, package, "manifest")
    _head(session, ctx)
    return {"digest": package.manifest_digest, "jws": package.manifest_jws, "manifest": doc}


@router.post(f"{PREFIX}/packages/{{package_id}}/files", status_code=201, response_model=FileOut)
def declare_file(
    package_id: str, body: FileDeclare, actor: Officer, session: WriteSession, request: Request
) -> FileOut:
    package = service.get_package(session, package_id, actor, "write")
    f = service.add_file(
        session,
        _ctx(request),
        actor,
        package,
        name=body.name,
        size=body.size,
        media_type=body.media_type,
        acquisition=body.acquisition,
        sha256=body.sha256,
    )
    return FileOut.model_validate(f)


@router.get(f"{PREFIX}/packages/{{package_id}}/files/{{index}}/upload", response_model=UploadState)
def upload_state(package_id: str, index: FileIndex, actor: Officer, session: WriteSession) -> UploadState:
    package = service.get_package(session, package_id, actor)
    f = service.get_file(session, package, index)
    done = f.status == "complete"
    return UploadState(
        offset=f.size if done else f.chunks_stored * f.chunk_size, size=f.size, complete=done, sha256=f.sha256
    )


@router.put(f"{PREFIX}/packages/{{package_id}}/files/{{index}}/content", response_model=UploadState)
async def upload(
    package_id: str,
    index: FileIndex,
    request: Request,
    actor: Officer,
    upload_offset: Annotated[int, Header(alias="Upload-Offset", ge=0)] = 0,
) -> UploadState:
    """Stream bytes into a file from ``Upload-Offset``. A cut stream keeps every whole chunk received;
    ask ``.../upload`` for the offset and send the rest from there."""
    up = await run_in_threadpool(
        uploads.Upload, get_database(request), _ctx(request), actor, package_id, index, upload_offset
    )
    buf = bytearray()
    try:
        async for piece in request.stream():
            buf += piece
            if len(buf) >= _HOP:
                # Handed over whole (and a new one started) rather than copied out.
                data, buf = buf, bytearray()
                await run_in_threadpool(up.write, data)
        if buf:
            await run_in_threadpool(up.write, buf)
        offset, f = await run_in_threadpool(up.end)
    except ClientDisconnect:
        await run_in_threadpool(up.pause)
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            await run_in_threadpool(up.pause)
        raise
    return UploadState(offset=offset, size=up.size, complete=f is not None, sha256=f.sha256 if f else None)


@router.get(f"{PREFIX}/packages/{{package_id}}/files/{{index}}/content")
def download(
    package_id: str, index: FileIndex, actor: Officer, session: WriteSession, request: Request
) -> Response:
    ctx = _ctx(request)
    package = service.get_package(session, package_id, actor)
    f, body = service.open_file(session, ctx, actor, package, index, "downloaded")
    _head(session, ctx)
    headers = {
        "Content-Length": str(f.size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(f.name)}",
    }
    if f.sha256:  # RFC 9530: lets the client check what it received
        headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(f.sha256)).decode()}:"
    return StreamingResponse(body, media_type=f.media_type, headers=headers)


@router.delete(f"{PREFIX}/packages/{{package_id}}/files/{{index}}", status_code=204)
def withdraw_file(
    package_id: str,
    index: FileIndex,
    actor: Officer,
    session: WriteSession,
    request: Request,
    reason: Annotated[str, Query(min_length=1, max_length=service.REASON_MAX)],
) -> None:
    """Withdraw a file from a package not sealed yet, complete or not (409 once sealed, or while an upload
    to it runs): its stored bytes are destroyed, the custody log records who withdrew what and why, and
    its index is not given to another file."""
    ctx = _ctx(request)
    package = service.get_package(session, package_id, actor, "write")
    service.withdraw_file(session, ctx, actor, package, index, reason)
    _head(session, ctx)


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@router.post(f"{PREFIX}/packages/{{package_id}}/seal", response_model=PackageOut)
def seal(package_id: str, actor: Officer, session: WriteSession, request: Request) -> PackageOut:
    ctx = _ctx(request)
    package = service.seal(session, ctx, actor, service.get_package(session, package_id, actor, "write"))
    _head(session, ctx)
    return _out(session, package)


@router.post(f"{PREFIX}/packages/{{package_id}}/verify")
def verify(package_id: str, actor: Officer, request: Request) -> dict[str, Any]:
    """Re-check everything stored for a package; a failure is recorded, then answered naming what failed."""
    db, ctx = get_database(request), _ctx(request)
    try:
        with db.transaction() as session:
            package = service.get_package(session, package_id, actor)
            manifest = service.verify_package(session, ctx, actor, package)
            _head(session, ctx)
            return {"ok": True, "manifest_digest": package.manifest_digest, "files": len(manifest["files"])}
    except IntegrityFailure as exc:
        with db.transaction() as session:
            package = service.get_package(session, package_id, actor)
            custody.record(session, ctx.node_id, "verified", package.id, actor, ok=False, failure=str(exc))
            audit.record(
                session,
                actor,
                "evidence.package.verify",
                "evidence_package",
                package.id,
                outcome="denied",
                # What failed, by name, is in the custody event: it may name a file.
                detail={"failure": exc.code},
            )
            _head(session, ctx)
        raise


@router.post(f"{PREFIX}/packages/{{package_id}}/release", status_code=204)
def release(package_id: str, body: Release, actor: Officer, session: WriteSession, request: Request) -> None:
    ctx = _ctx(request)
    package = service.get_package(session, package_id, actor, "write")
    service.release(session, ctx, actor, package, body.to, body.reason)
    _head(session, ctx)


@router.delete(
    f"{PREFIX}/packages/{{package_id}}",
    status_code=204,
    responses={202: {"description": "deletion requested; a second administrator must confirm it"}},
)
def delete(
    package_id: str,
    actor: Admin,
    session: WriteSession,
    request: Request,
    reason: Annotated[str, Query(min_length=1, max_length=service.REASON_MAX)],
) -> Response:
    """Destroy a package's content. Irreversible, so four eyes: the first administrator's call is a
    request (202), another administrator's call within seven days destroys (204); the requester cannot
    confirm (409). A request withdrawn or older than seven days is asked afresh."""
    ctx = _ctx(request)
    removed = deletion.delete(session, ctx, actor, service.get_package(session, package_id), reason)
    _head(session, ctx)
    if removed is None:
        return JSONResponse(
            {"status": "deletion_requested", "detail": "another administrator must confirm the deletion"},
            status_code=202,
        )
    return Response(status_code=204)


@router.delete(f"{PREFIX}/packages/{{package_id}}/deletion-request", status_code=204)
def withdraw_deletion(
    package_id: str,
    actor: Admin,
    session: WriteSession,
    request: Request,
    reason: Annotated[str, Query(min_length=1, max_length=service.REASON_MAX)],
) -> None:
    """Withdraw a deletion that waits for its second administrator (409 when none waits); any
    administrator may, and the custody record keeps both the request and its withdrawal."""
    ctx = _ctx(request)
    deletion.withdraw_deletion(session, ctx, actor, service.get_package(session, package_id), reason)
    _head(session, ctx)


@router.get(f"{PREFIX}/packages/{{package_id}}/custody", response_model=list[EventOut])
def package_custody(
    package_id: str, actor: Officer, session: WriteSession, request: Request
) -> list[EventOut]:
    """The package's custody events, each with an inclusion proof against the head returned alongside."""
    ctx = _ctx(request)
    package = service.get_package(session, package_id, actor)
    service.view(session, ctx, actor, package, "custody")
    head = custody.sign_head(session, ctx.keys, ctx.node_id)
    events = custody.events_of(session, str(package.id), head.size)
    proofs = custody.inclusion_proofs(session, [e.seq for e in events], head.size)
    return [
        EventOut(
            seq=e.seq,
            entry=json.loads(e.entry),
            tree_size=head.size,
            proof=[custody.b64(p) for p in proofs[e.seq]],
        )
        for e in events
    ]


# --- the log ----------------------------------------------------------------------------------------------


@router.get(f"{PREFIX}/custody/head", response_model=HeadOut)
def head(_: Officer, session: WriteSession, request: Request) -> HeadOut:
    ctx = _ctx(request)
    h = custody.sign_head(session, ctx.keys, ctx.node_id)
    return HeadOut(size=h.size, root=custody.b64(h.root), at=h.at, jws=h.jws)


@router.get(f"{PREFIX}/custody/consistency", response_model=ProofOut)
def consistency(
    _: Officer, session: WriteSession, first: Annotated[int, Query(ge=1)], second: Annotated[int, Query(ge=1)]
) -> ProofOut:
    proof = custody.consistency_proof(session, first, second)
    return ProofOut(first=first, second=second, proof=[custody.b64(p) for p in proof])


@router.get(f"{PREFIX}/custody/events/{{seq}}", response_model=EventOut)
def event(
    seq: int, actor: Officer, session: WriteSession, tree_size: Annotated[int | None, Query(ge=1)] = None
) -> EventOut:
    size = tree_size or custody.size(session)
    proof = custody.inclusion_proof(session, seq, size)
    row = session.get_one(CustodyEvent, seq)
    if row.package_id is not None:
        # Sequence numbers are dense: unless each event is as hidden as its package, reading them in turn
        # lists every hidden package's case, request, files, readers and reasons.
        service.get_package_behind(session, row.package_id, actor, custody.no_event(seq, size))
    audit.record(session, actor, "evidence.custody.read", "custody_event", seq)
    return EventOut(
        seq=seq, entry=json.loads(row.entry), tree_size=size, proof=[custody.b64(p) for p in proof]
    )


@router.get(f"{PREFIX}/custody/alerts")
def alerts(_: Admin, session: WriteSession) -> list[dict[str, Any]]:
    rows = session.scalars(select(CustodyAlert).order_by(CustodyAlert.at.desc()).limit(100))
    return [
        {"id": str(a.id), "peer": a.peer, "at": rfc3339(a.at), "reason": a.reason, "evidence": a.evidence}
        for a in rows
    ]


# --- transfers: users -------------------------------------------------------------------------------------


@router.post(f"{PREFIX}/packages/{{package_id}}/transfers", status_code=202, response_model=TransferOut)
def start_transfer(
    package_id: str, body: TransferCreate, actor: Officer, session: WriteSession, request: Request
) -> TransferOut:
    package = service.get_package(session, package_id, actor, "send")
    t = transfer.offer(session, _ctx(request), actor, package, body.peer)
    outbox.wake_workers(request.app)
    return TransferOut.model_validate(t)


@router.get(f"{PREFIX}/transfers/{{transfer_id}}", response_model=TransferOut)
def show_transfer(transfer_id: str, actor: Officer, session: WriteSession) -> TransferOut:
    """A transfer of a package the caller may see (404 otherwise, as for no transfer at all)."""
    t = transfer.get_transfer(session, transfer_id)
    missing = NotFound(f"No transfer {transfer_id}")
    if t.package_id is None:
        # Its package is gone, and with it what would say who may read of it.
        raise missing
    package = service.get_package_behind(session, t.package_id, actor, missing)
    audit.record(
        session,
        actor,
        "evidence.transfer.read",
        "evidence_package",
        package.id,
        detail={"transfer": str(t.id)},
    )
    return TransferOut.model_validate(t)


# --- transfers: peers (authenticated by the per-transfer key, never by a user token) ----------------------


def _peer_key(request: Request, transfer_id: str, method: str, body: bytes) -> tuple[str, bytes]:
    sender = request.headers.get("x-cyberpact-node", "")
    with get_database(request).transaction(read_only=True) as session:
        t = transfer.get_transfer(session, transfer_id, "in")
        if t.peer != sender:
            raise NotFound(f"No transfer {transfer_id}")
        key = transfer.transfer_key(session, _ctx(request), t)
    transfer.check_auth(key, method, request.url.path, body, request.headers.get(transfer.AUTH_HEADER))
    return sender, key


@router.get(f"{transfer.BASE}/{{transfer_id}}")
async def peer_status(transfer_id: str, request: Request) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        _peer_key(request, transfer_id, "GET", b"")
        with get_database(request).transaction(read_only=True) as session:
            return transfer.status_of(session, transfer.get_transfer(session, transfer_id, "in"))

    return await run_in_threadpool(run)


@router.put(f"{transfer.BASE}/{{transfer_id}}/files/{{index}}/chunks/{{chunk}}")
async def peer_chunk(transfer_id: str, index: int, chunk: int, request: Request) -> dict[str, Any]:
    body = await read_limited(request, 16 * 1024 * 1024 + 64)
    sender = request.headers.get("x-cyberpact-node", "")
    return await run_in_threadpool(
        transfer.receive_chunk, get_database(request), _ctx(request), sender, transfer_id, index, chunk, body
    )


@router.post(f"{transfer.BASE}/{{transfer_id}}/complete")
async def peer_complete(transfer_id: str, request: Request) -> dict[str, Any]:
    body = await read_limited(request, _MAX_COMPLETE)

    def run() -> dict[str, Any]:
        sender, _ = _peer_key(request, transfer_id, "POST", body)
        try:
            doc = json.loads(body)
        except ValueError:
            raise MalformedInput("the completion is not JSON") from None
        if not isinstance(doc, dict):
            raise MalformedInput("the completion is not a JSON object")
        return transfer.complete(get_database(request), _ctx(request), sender, transfer_id, doc)

    return await run_in_threadpool(run)
