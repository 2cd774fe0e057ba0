"""Evidence on the desk: packages with their digests, custody timeline and verification status; a resumable
upload (static/upload.js) and the court bundle.

The upload, its state and verification are the evidence API's own handlers, called with the desk's
signed-in actor after the desk's CSRF check: one implementation of the chunked, resumable stream.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from cyberpact.audit import service as audit
from cyberpact.cases import service as cases
from cyberpact.cases.models import Case
from cyberpact.evidence import api as evidence_api
from cyberpact.evidence import bundle, custody, deletion, service, transfer
from cyberpact.evidence.errors import PackageSealed
from cyberpact.evidence.models import EvidencePackage, EvidenceTransfer
from cyberpact.evidence.schemas import Acquisition, FileDeclare, UseConditions
from cyberpact.evidence.service import EVIDENCE_ROLES
from cyberpact.federation import outbox, peers
from cyberpact.kit.errors import Conflict, IntegrityFailure, InvalidInput, NotFound, Problem, problems_of
from cyberpact.kit.http import get_database
from cyberpact.kit.i18n import N_, Phrase
from cyberpact.kit.time import end_of_day
from cyberpact.web.render import page
from cyberpact.web.requests import parse_id
from cyberpact.web.security import CheckedForm, CurrentViewer, DeskRoute, HeaderChecked, Viewer, require

router = APIRouter(route_class=DeskRoute, include_in_schema=False)
ACQUISITION_FIELDS = ("by", "at", "where", "method", "tool", "tool_version", "authority", "notes")


def _ctx(request: Request) -> service.Context:
    ctx: service.Context = request.app.state.evidence
    return ctx


# --- list and create -------------------------------------------------------------------------------------


def _listed(session: Session, viewer: Viewer, view: str, count: int) -> None:
    """Record that the viewer read a list of packages (reads are audited as well as writes)."""
    detail = {"view": view, "count": count}
    audit.record(session, viewer.actor, "evidence.package.list", "evidence_package", None, detail=detail)


@router.get("/desk/evidence")
def packages(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *EVIDENCE_ROLES)
    with get_database(request).transaction() as session:
        rows = service.list_packages(session, limit=200, actor=viewer.actor)
        _listed(session, viewer, "desk.evidence", len(rows))
    return page(request, viewer, "evidence_list.html", {"packages": rows})


def _new_context(request: Request, viewer: Viewer) -> dict[str, Any]:
    chosen: dict[str, str] = {}
    ref = request.query_params.get("request")
    if ref:
        with get_database(request).transaction() as session:
            row = cases.get_request(session, viewer.actor, parse_id(ref))
            case = session.get_one(Case, row.case_id)
            chosen = {"case_ref": case.reference, "request_ref": str(row.id)}
    return {"chosen": chosen, "problems": []}


@router.get("/desk/evidence/new")
def new_package(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *EVIDENCE_ROLES)
    return page(request, viewer, "evidence_new.html", _new_context(request, viewer))


# Said as kit.errors says what pydantic finds wrong in the same form's other fields: the same words, the
# field named the same way.
_REQUIRED = N_("{field}: a value is required")
_TOO_LONG = N_("{field}: at most {max_length} characters")
_DESCRIPTION_MAX = 10_000
_USE_FIELDS = ("use.purpose", "use.restrictions", "use.confidential", "use.onward_transfer", "use.until")


def _use_conditions(values: dict[str, str], tz: str) -> UseConditions | list[Problem]:
    """The form's conditions on use; a date is usable to the end of that day on the viewer's clock."""
    until: datetime | None = None
    if values["use.until"]:
        try:
            until = end_of_day(date.fromisoformat(values["use.until"]), tz)
        except ValueError:
            return [
                Problem("use.until", Phrase(N_("{field}: not a valid date (YYYY-MM-DD)"), field="use.until"))
            ]
    try:
        return UseConditions.model_validate(
            {
                "purpose": values["use.purpose"] or None,
                "restrictions": [
                    line.strip() for line in values["use.restrictions"].splitlines() if line.strip()
                ],
                "confidential": bool(values["use.confidential"]),
                "onward_transfer": bool(values["use.onward_transfer"]),
                "until": until,
            }
        )
    except ValidationError as exc:
        return problems_of(exc, "use.")


@router.post("/desk/evidence/new")
def create_package(request: Request, viewer: CurrentViewer, form: CheckedForm) -> Response:
    require(viewer, *EVIDENCE_ROLES)
    values = {
        k: form.get(k).strip() for k in ("case_ref", "request_ref", "title", "description", *_USE_FIELDS)
    }
    use = _use_conditions(values, viewer.timezone)
    problems = [] if isinstance(use, UseConditions) else use
    for name, limit, needed in (("case_ref", 120, True), ("request_ref", 120, False), ("title", 300, True)):
        if needed and not values[name]:
            problems.append(Problem(name, Phrase(_REQUIRED, field=name), "missing"))
        if len(values[name]) > limit:
            problems.append(Problem(name, Phrase(_TOO_LONG, field=name, max_length=limit), "invalid"))
    if len(values["description"]) > _DESCRIPTION_MAX:
        too_long = Phrase(_TOO_LONG, field="description", max_length=_DESCRIPTION_MAX)
        problems.append(Problem("description", too_long, "invalid"))
    if problems or not isinstance(use, UseConditions):
        return page(
            request, viewer, "evidence_new.html", {"chosen": values, "problems": problems}, status=422
        )
    ctx = _ctx(request)
    with get_database(request).transaction() as session:
        package = service.create_package(
            session,
            ctx,
            viewer.actor,
            case_ref=values["case_ref"],
            request_ref=values["request_ref"] or None,
            title=values["title"],
            description=values["description"] or None,
            use_conditions=use,
        )
        custody.sign_head(session, ctx.keys, ctx.node_id)
        pid = package.id
    return RedirectResponse(f"/desk/evidence/{pid}", status_code=303)


# --- one package -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustodyLine:
    seq: int
    at: datetime
    kind: str
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Verification:
    state: str  # never, ok, failed
    at: datetime | None = None
    by: str | None = None
    failure: str | None = None


def _verification(lines: list[CustodyLine]) -> Verification:
    last = next((line for line in reversed(lines) if line.kind == "verified"), None)
    if last is None:
        return Verification("never")
    ok = last.detail.get("ok", True) is not False
    return Verification(
        "ok" if ok else "failed", last.at, last.actor, None if ok else str(last.detail.get("failure"))
    )


def package_context(request: Request, viewer: Viewer, package_id: str) -> dict[str, Any]:
    ctx = _ctx(request)
    with get_database(request).transaction() as session:
        package = service.get_package(session, package_id, viewer.actor)
        service.view(session, ctx, viewer.actor, package)
        head = custody.sign_head(session, ctx.keys, ctx.node_id)
        files = service.files_of(session, package)
        lines = [
            CustodyLine(e.seq, e.at, e.kind, e.actor, json.loads(e.entry).get("detail") or {})
            for e in custody.events_of(session, str(package.id))
        ]
        asked = deletion.pending_deletion(session, package)
        # The custodians see a deletion coming while it can still be withdrawn.
        standing = _deletion(asked, viewer) if asked is not None else None
        answered = service.request_of(session, package)
        # A link only to a request the reader may open; otherwise the reference as text.
        request_link = (
            (str(answered.id), str(answered.header.get("our_reference") or answered.id))
            if answered is not None and cases.can_see(viewer.actor, answered)
            else None
        )
        sent: list[EvidenceTransfer] = []
        trusted: list[Any] = []
        if package.status == "sealed" and package.origin_package_id is None:  # what "Send to a State" shows
            sent = list(
                session.scalars(
                    select(EvidenceTransfer)
                    .where(EvidenceTransfer.package_id == package.id, EvidenceTransfer.direction == "out")
                    .order_by(EvidenceTransfer.created_at)
                )
            )
            trusted = [p for p in peers.list_peers(session) if p.status == "active"]
    return {
        "deletion": standing,
        "transfers": sent,
        "peers": trusted,
        "package": package,
        "request_link": request_link,
        "files": files,
        "custody": lines,
        "verification": _verification(lines),
        "head_size": head.size,
        "acquisition_fields": ACQUISITION_FIELDS,
        "problems": [],
    }


def _deletion(asked: dict[str, Any], viewer: Viewer) -> dict[str, Any]:
    """What the desk shows of a standing deletion request (its custody entry)."""
    return {
        "by": asked.get("actor"),
        "until": deletion.deletion_deadline(asked),
        "reason": (asked.get("detail") or {}).get("reason"),
        "mine": asked.get("actor") == viewer.actor.username,
    }


@router.get("/desk/evidence/{package_id}")
def show_package(request: Request, package_id: str, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *EVIDENCE_ROLES)
    return page(
        request,
        viewer,
        "evidence_package.html",
        package_context(request, viewer, package_id),
        scripts=("upload.js",),
    )


def _acquisition(form: Any, tz: str) -> dict[str, Any]:
    values: dict[str, Any] = {k: form.get(f"acq.{k}").strip() for k in ACQUISITION_FIELDS}
    if not values["notes"]:
        values["notes"] = None
    at = values["at"]
    if at:
        # A datetime-local control has no zone: it is the viewer's own clock.
        try:
            parsed = datetime.fromisoformat(at)
            values["at"] = parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(tz))
        except ValueError:
            # Left as typed: the Acquisition schema refuses it and the form says which field is wrong.
            values["at"] = at
    return values


@router.post("/desk/evidence/{package_id}/files")
def declare_file(request: Request, package_id: str, viewer: CurrentViewer, form: CheckedForm) -> Response:
    require(viewer, *EVIDENCE_ROLES)
    wants_json = "application/json" in request.headers.get("accept", "")
    size_text = form.get("size")
    try:
        acquisition = Acquisition.model_validate(_acquisition(form, viewer.timezone))
        body = FileDeclare(
            name=form.get("name"),
            size=int(size_text) if size_text.isdigit() else -1,
            media_type=form.get("media_type") or "application/octet-stream",
            acquisition=acquisition,
        )
    except ValidationError as exc:
        problems = problems_of(exc)
        if wants_json:
            return JSONResponse({"errors": [p.as_dict() for p in problems]}, status_code=422)
        context = package_context(request, viewer, package_id)
        context["problems"] = problems
        return page(request, viewer, "evidence_package.html", context, status=422, scripts=("upload.js",))
    with get_database(request).transaction() as session:
        package = service.get_package(session, package_id, viewer.actor, "write")
        f = service.add_file(
            session,
            _ctx(request),
            viewer.actor,
            package,
            name=body.name,
            size=body.size,
            media_type=body.media_type,
            acquisition=body.acquisition,
        )
        index, pid, chunk = f.index, package.id, f.chunk_size
    if wants_json:
        return JSONResponse(
            {
                "index": index,
                "size": body.size,
                "chunk_size": chunk,
                "content": f"/desk/evidence/{pid}/files/{index}/content",
                "state": f"/desk/evidence/{pid}/files/{index}/upload",
            },
            status_code=201,
        )
    return RedirectResponse(f"/desk/evidence/{pid}", status_code=303)


@router.get("/desk/evidence/{package_id}/files/{index}/upload")
def upload_state(request: Request, package_id: str, index: int, viewer: CurrentViewer) -> JSONResponse:
    require(viewer, *EVIDENCE_ROLES)
    with get_database(request).transaction() as session:
        state = evidence_api.upload_state(package_id, index, viewer.actor, session)
    return JSONResponse(state.model_dump())


@router.put("/desk/evidence/{package_id}/files/{index}/content")
async def upload(
    request: Request,
    package_id: str,
    index: int,
    viewer: HeaderChecked,
    upload_offset: Annotated[int, Header(alias="Upload-Offset", ge=0)] = 0,
) -> JSONResponse:
    require(viewer, *EVIDENCE_ROLES)
    state = await evidence_api.upload(package_id, index, request, viewer.actor, upload_offset)
    return JSONResponse(state.model_dump())


@router.post("/desk/evidence/{package_id}/seal")
def seal(request: Request, package_id: str, viewer: CurrentViewer, _: CheckedForm) -> Response:
    require(viewer, *EVIDENCE_ROLES)
    ctx = _ctx(request)
    with get_database(request).transaction() as session:
        package = service.get_package(session, package_id, viewer.actor, "write")
        package = service.seal(session, ctx, viewer.actor, package)
        custody.sign_head(session, ctx.keys, ctx.node_id)
        pid = package.id
    return RedirectResponse(f"/desk/evidence/{pid}", status_code=303)


def _custody_step(
    request: Request, form: Any, step: Callable[[Session, service.Context, str], object]
) -> tuple[list[Problem], int]:
    """Run a step that must say why (withdraw a file; ask for, confirm or withdraw a deletion) in one
    transaction with the custody log's new signed head: the problems to show the form and their status,
    none when it went through. The reason is read by the service's rule before the transaction, so the
    form comes back with the problem at its field."""
    try:
        reason = service.custody_reason(str(form.get("reason") or ""))
    except InvalidInput as exc:
        return exc.problems, 422
    ctx = _ctx(request)
    try:
        with get_database(request).transaction() as session:
            step(session, ctx, reason)
            custody.sign_head(session, ctx.keys, ctx.node_id)
    except Conflict as exc:
        return [Problem("reason", exc.detail, "conflict")], exc.status
    return [], 200


@router.post("/desk/evidence/{package_id}/files/{index}/withdraw")
def withdraw_file(
    request: Request, package_id: str, index: evidence_api.FileIndex, viewer: CurrentViewer, form: CheckedForm
) -> Response:
    """Take a file out of a package not sealed yet (the API's service call); the reason is required."""
    require(viewer, *EVIDENCE_ROLES)
    pid = parse_id(package_id, "package")

    def withdraw(session: Session, ctx: service.Context, reason: str) -> None:
        package = service.get_package(session, pid, viewer.actor, "write")
        service.withdraw_file(session, ctx, viewer.actor, package, index, reason)

    problems, status = _custody_step(request, form, withdraw)
    if not problems:
        return RedirectResponse(f"/desk/evidence/{pid}", status_code=303)
    context = package_context(request, viewer, str(pid))
    context["problems"] = problems
    return page(request, viewer, "evidence_package.html", context, status=status, scripts=("upload.js",))


@router.post("/desk/evidence/{package_id}/send")
def send(request: Request, package_id: str, viewer: CurrentViewer, form: CheckedForm) -> Response:
    """Offer a sealed package to a trusted peer; the transfer worker moves it and the page shows its state."""
    require(viewer, *EVIDENCE_ROLES)
    peer = form.get("peer").strip()[:120]
    try:
        with get_database(request).transaction() as session:
            package = service.get_package(session, package_id, viewer.actor, "send")
            transfer.offer(session, _ctx(request), viewer.actor, package, peer)
            pid = package.id
    except (NotFound, PackageSealed) as exc:
        context = package_context(request, viewer, package_id)
        context["problems"] = [Problem("peer", exc.detail, "invalid")]
        return page(
            request, viewer, "evidence_package.html", context, status=exc.status, scripts=("upload.js",)
        )
    outbox.wake_workers(request.app)
    return RedirectResponse(f"/desk/evidence/{pid}", status_code=303)


@router.post("/desk/evidence/{package_id}/verify")
def verify(request: Request, package_id: str, viewer: CurrentViewer, _: CheckedForm) -> Response:
    require(viewer, *EVIDENCE_ROLES)
    # A failure is recorded by the handler as a failed verification, which the package page then shows.
    with contextlib.suppress(IntegrityFailure):
        evidence_api.verify(package_id, viewer.actor, request)
    return RedirectResponse(f"/desk/evidence/{parse_id(package_id, 'package')}", status_code=303)


# Downloads and bundles are POSTs with the CSRF token: each is a custody event, which another site must not
# be able to cause by sending someone's browser to a link.
@router.post("/desk/evidence/{package_id}/files/{index}")
def download(
    request: Request, package_id: str, index: int, viewer: CurrentViewer, _: CheckedForm
) -> Response:
    require(viewer, *EVIDENCE_ROLES)
    with get_database(request).transaction() as session:
        return evidence_api.download(package_id, index, viewer.actor, session, request)


@router.post("/desk/evidence/{package_id}/bundle")
async def court_bundle(request: Request, package_id: str, viewer: CurrentViewer, _: CheckedForm) -> Response:
    require(viewer, *EVIDENCE_ROLES)
    ctx = _ctx(request)
    folder = Path(tempfile.mkdtemp(prefix="cyberpact-bundle-"))

    def build() -> tuple[Path, str]:
        with get_database(request).transaction() as session:
            package: EvidencePackage = service.get_package(session, package_id, viewer.actor)
            out = folder / f"bundle-{package.id}.zip"
            bundle.export(session, ctx, viewer.actor, package, out)
            return out, out.name

    try:
        path, name = await run_in_threadpool(build)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if not isinstance(path, Path) or not path.exists():  # pragma: no cover - export raises instead
        raise InvalidInput(Phrase("The bundle could not be written"))
    return FileResponse(
        path,
        media_type="application/zip",
        filename=name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


# --- destruction: four eyes among administrators ---------------------------------------------------------


@dataclass(frozen=True)
class WaitingDeletion:
    package_id: str
    deletion: dict[str, Any]
    # Title and case only for an administrator who may see the package (an evidence role, and the request
    # it is filed under): running the node, or deciding a deletion, is no reason to read case material.
    visible: bool
    title: str | None
    case_ref: str | None


def _deletions_context(request: Request, viewer: Viewer) -> dict[str, Any]:
    with get_database(request).transaction() as session:
        waiting = []
        for package, asked in deletion.pending_deletions(session):
            visible = service.may_see(session, viewer.actor, package)
            waiting.append(
                WaitingDeletion(
                    str(package.id),
                    _deletion(asked, viewer),
                    visible,
                    package.title if visible else None,
                    package.case_ref if visible else None,
                )
            )
        _listed(session, viewer, "desk.admin.deletions", len(waiting))
    return {"waiting": waiting, "problems": []}


@router.get("/desk/admin/deletions")
def deletions(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, "admin")
    return page(request, viewer, "evidence_deletions.html", _deletions_context(request, viewer))


def _deletion_step(
    request: Request,
    viewer: Viewer,
    package_id: str,
    form: Any,
    step: Callable[[Session, service.Context, Any, EvidencePackage, str], object],
) -> Response:
    """Run one step of a deletion (the same service calls as the API) and go back where the form was."""
    require(viewer, "admin")
    pid = parse_id(package_id, "package")
    from_admin = form.get("back") == "admin"
    problems, status = _custody_step(
        request,
        form,
        lambda session, ctx, reason: step(
            session, ctx, viewer.actor, service.get_package(session, pid), reason
        ),
    )
    if not problems:
        return RedirectResponse("/desk/admin/deletions" if from_admin else f"/desk/evidence/{pid}", 303)
    if from_admin:
        context = _deletions_context(request, viewer)
        context["problems"] = problems
        return page(request, viewer, "evidence_deletions.html", context, status=status)
    context = package_context(request, viewer, str(pid))
    context["problems"] = problems
    return page(request, viewer, "evidence_package.html", context, status=status, scripts=("upload.js",))


@router.post("/desk/evidence/{package_id}/destroy")
def destroy(request: Request, package_id: str, viewer: CurrentViewer, form: CheckedForm) -> Response:
    """Ask for the destruction of a package's content or, as another administrator, confirm it."""
    return _deletion_step(request, viewer, package_id, form, deletion.delete)


@router.post("/desk/evidence/{package_id}/destroy/withdraw")
def keep(request: Request, package_id: str, viewer: CurrentViewer, form: CheckedForm) -> Response:
    return _deletion_step(request, viewer, package_id, form, deletion.withdraw_deletion)
