"""Evidence packages: creating them, declaring their files, sealing the manifest, reading and verifying.

The bytes of a file stream in through :class:`cyberpact.evidence.uploads.Upload`; destroying a package's
content is :mod:`cyberpact.evidence.deletion`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.cases import service as cases
from cyberpact.cases.models import Case, Request
from cyberpact.config import Settings
from cyberpact.evidence import chunks, custody
from cyberpact.evidence.errors import PackageSealed, TamperDetected
from cyberpact.evidence.models import EvidenceFile, EvidencePackage
from cyberpact.evidence.schemas import Acquisition, UseConditions
from cyberpact.federation import peers
from cyberpact.kit import crypto
from cyberpact.kit.actor import Actor
from cyberpact.kit.canonical import canonical_json, sha256_hex
from cyberpact.kit.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Problem,
)
from cyberpact.kit.i18n import Phrase
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.keystore import KeyStore, NodeKey, current_kek, kek_by_id
from cyberpact.kit.storage import ObjectStorage
from cyberpact.kit.time import rfc3339, utcnow

MANIFEST_TYP = "cyberpact-manifest+jws"

# Who works with evidence. Not the administrator: running the node is not a reason to read case material.
EVIDENCE_ROLES = ("officer", "central_authority", "contact_point")
WITHDRAWN = "withdrawn"  # the status of a file taken out of its package before sealing


@dataclass(frozen=True)
class Context:
    """What every evidence operation needs besides the session: this node's settings, keys and storage."""

    settings: Settings
    keys: KeyStore
    storage: ObjectStorage

    @property
    def node_id(self) -> str:
        return self.settings.node_id


def _context_bytes(package_id: uuid.UUID) -> bytes:
    return b"cyberpact-evidence-package:" + package_id.bytes


def data_key(session: Session, ctx: Context, package: EvidencePackage) -> bytes:
    try:
        kek = kek_by_id(session, ctx.keys, package.kek_id)
        return kek.unwrap(package.wrapped_key, _context_bytes(package.id))
    except IntegrityFailure as exc:
        raise TamperDetected(f"package {package.id} data key", str(exc)) from None


def codec(
    session: Session, ctx: Context, package: EvidencePackage, f: EvidenceFile, key: bytes | None = None
) -> chunks.ChunkCodec:
    return chunks.ChunkCodec(
        crypto.chunk_cipher(key or data_key(session, ctx, package)), package.id, f.index, f.size, f.chunk_size
    )


def key_of(package: EvidencePackage, f: EvidenceFile) -> Any:
    return lambda c: chunks.object_key(package.id, f.index, c)


# --- packages ---------------------------------------------------------------------------------------------


def create_package(
    session: Session,
    ctx: Context,
    actor: Actor,
    *,
    case_ref: str,
    request_ref: str | None,
    title: str,
    description: str | None = None,
    use_conditions: UseConditions | None = None,
) -> EvidencePackage:
    _check_case_ref(session, actor, case_ref)
    request_ref = _checked_request_ref(session, actor, request_ref)
    kek = current_kek(session, ctx.keys)
    pid = uuid.uuid4()
    package = EvidencePackage(
        id=pid,
        case_ref=case_ref,
        request_ref=request_ref,
        title=title,
        description=description,
        use_conditions=(use_conditions or UseConditions()).model_dump(mode="json"),
        status="open",
        origin_node=ctx.node_id,
        created_by=actor.username,
        created_at=utcnow(),
        kek_id=kek.kek_id,
        wrapped_key=kek.wrap(crypto.new_data_key(), _context_bytes(pid)),
    )
    session.add(package)
    session.flush()
    custody.record(session, ctx.node_id, "created", pid, actor, case=case_ref, request=request_ref)
    audit.record(
        session,
        actor,
        "evidence.package.create",
        "evidence_package",
        pid,
        detail={"case": case_ref, "request": request_ref},
    )
    return package


def get_package(
    session: Session, package_id: uuid.UUID | str, actor: Actor | None = None, purpose: str = "read"
) -> EvidencePackage:
    """The package, if ``actor`` (when given) may see it. Evidence filed under a request is as confidential
    as that request: whoever may not see the request gets the same 404 as for a package that does not
    exist, and the refused look is recorded."""
    pid = parse_uuid(package_id)
    package = session.get(EvidencePackage, pid) if pid else None
    if package is None:
        raise NotFound(f"No evidence package {package_id}")
    if actor is not None and not may_see(session, actor, package):
        raise NotFound(f"No evidence package {package_id}").denying(
            f"evidence.package.{purpose}", "evidence_package", package.id
        )
    return package


def get_package_behind(
    session: Session, package_id: uuid.UUID | str, actor: Actor, missing: NotFound
) -> EvidencePackage:
    """The package that a thing asked for by its own id (a custody event, a transfer) belongs to, if
    ``actor`` may see it. If not, ``missing``, the 404 of that thing, with the refused look recorded as
    :func:`get_package` records it: a 404 naming the package would tell whose thing it is."""
    try:
        return get_package(session, package_id, actor)
    except NotFound as exc:
        raise (missing.denying(*exc.denied) if exc.denied else missing) from None


def may_see(session: Session, actor: Actor, package: EvidencePackage) -> bool:
    if _operator(actor):
        return True
    if not actor.has_any(*EVIDENCE_ROLES):
        return False
    request = request_of(session, package)
    if request is not None and not cases.can_see(actor, request):
        return False
    return session.scalar(_hidden_cases(actor).where(Case.reference == package.case_ref).limit(1)) is None


def request_of(session: Session, package: EvidencePackage) -> Request | None:
    """The request of this node the package is filed under, if any."""
    return request_of_ref(session, package.request_ref)


def request_of_ref(session: Session, request_ref: Any) -> Request | None:
    rid = parse_uuid(request_ref)
    # A free-text reference (a paper file number) names no request of this node.
    return session.get(Request, rid) if rid else None


def canonical_request_ref(request_ref: Any) -> Any:
    """A request's id in its one written spelling, the one lists and request pages look packages up by;
    any other reference as it is."""
    rid = parse_uuid(request_ref)
    return str(rid) if rid else request_ref


def _checked_request_ref(session: Session, actor: Actor, request_ref: str | None) -> str | None:
    """A package filed under a request's id shows on that request, on both sides: the id must name a
    request of this node the person may see, and is kept in its one canonical spelling. Any other text is
    a reference kept as it is."""
    rid = parse_uuid(request_ref)
    if rid is None:
        return request_ref
    request = session.get(Request, rid)
    if request is None or not (_operator(actor) or cases.can_see(actor, request)):
        raise InvalidInput(
            Phrase("Unknown request"),
            [Problem("request_ref", f"no request {rid} on this node that you may see")],
        )
    return str(rid)


def _check_case_ref(session: Session, actor: Actor, case_ref: str) -> None:
    """A package filed under a case's reference is that case's evidence, as hidden as the case: filed by
    someone who may not see the case, it would be a package its own filer could not open, and its 201 would
    say the case exists. Refused before anything is stored, in the words of the refusal of a request's id
    the filer may not see, and recorded as the refused look it is."""
    if _operator(actor):
        return
    hidden = session.scalar(
        select(Case.id).where(Case.reference == case_ref, not_(cases.case_visible(actor))).limit(1)
    )
    if hidden is not None:
        raise InvalidInput(
            Phrase("Unknown case"), [Problem("case_ref", f"no case {case_ref} on this node that you may see")]
        ).denying("evidence.package.create", "case", hidden)


def _operator(actor: Actor) -> bool:
    # The node itself, or its operator at its command line, who holds the database and the key passphrase
    # already: no person behind a browser or a token.
    return actor.operator


def _hidden_requests(session: Session, actor: Actor) -> list[str]:
    """Ids of the requests ``actor`` may not see, as packages cite them. Few: only incoming requests whose
    sender asked for confidentiality, and only for people outside the confidential roles."""
    if actor.has_any(*cases.CONFIDENTIAL_ROLES):
        return []
    return [str(rid) for rid in session.scalars(select(Request.id).where(not_(cases.visible_filter(actor))))]


def _hidden_cases(actor: Actor) -> Select[str]:
    """References of the cases of this node ``actor`` may not see, by the cases feature's own rule. A
    package naming one is as hidden as the case, whatever request it cites or none: filed by case
    reference alone (the command line's and the desk's ordinary way) it is that case's evidence, and
    listing it would show the case's reference, whose existence is itself confidential."""
    return select(Case.reference).where(not_(cases.case_visible(actor)))


def files_of(session: Session, package: EvidencePackage) -> list[EvidenceFile]:
    """The package's files, withdrawn ones left out (the custody log keeps what they were)."""
    return list(
        session.scalars(
            select(EvidenceFile)
            .where(EvidenceFile.package_id == package.id, EvidenceFile.status != WITHDRAWN)
            .order_by(EvidenceFile.index)
        )
    )


def get_file(session: Session, package: EvidencePackage, index: int) -> EvidenceFile:
    f = session.scalar(
        select(EvidenceFile).where(
            EvidenceFile.package_id == package.id,
            EvidenceFile.index == index,
            EvidenceFile.status != WITHDRAWN,
        )
    )
    if f is None:
        raise NotFound(f"Package {package.id} has no file {index}")
    return f


def list_packages(
    session: Session,
    *,
    case_ref: str | None = None,
    request_ref: str | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 100,
    actor: Actor | None = None,
) -> list[EvidencePackage]:
    """Newest first, keyset-paged on (created_at, id); only what ``actor`` (when given) may see."""
    query = select(EvidencePackage)
    if actor is not None and not _operator(actor):
        if not actor.has_any(*EVIDENCE_ROLES):
            raise PermissionDenied(f"Evidence is read by the roles {', '.join(EVIDENCE_ROLES)}")
        hidden = _hidden_requests(session, actor)
        if hidden:
            query = query.where(
                or_(EvidencePackage.request_ref.is_(None), EvidencePackage.request_ref.not_in(hidden))
            )
        query = query.where(~_hidden_cases(actor).where(Case.reference == EvidencePackage.case_ref).exists())
    if case_ref:
        query = query.where(EvidencePackage.case_ref == case_ref)
    if request_ref:
        query = query.where(EvidencePackage.request_ref == request_ref)
    if after is not None:
        at, pid = after
        query = query.where(
            or_(
                EvidencePackage.created_at < at,
                and_(EvidencePackage.created_at == at, EvidencePackage.id < pid),
            )
        )
    order = (EvidencePackage.created_at.desc(), EvidencePackage.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))


def view(
    session: Session, ctx: Context, actor: Actor, package: EvidencePackage, what: str = "package"
) -> None:
    """A read of case data: an audit record and a custody event, in the reader's transaction."""
    custody.record(session, ctx.node_id, "viewed", package.id, actor, what=what)
    audit.record(
        session, actor, "evidence.package.view", "evidence_package", package.id, detail={"what": what}
    )


def add_file(
    session: Session,
    ctx: Context,
    actor: Actor,
    package: EvidencePackage,
    *,
    name: str,
    size: int,
    media_type: str,
    acquisition: Acquisition,
    sha256: str | None = None,
) -> EvidenceFile:
    if package.status != "open":
        raise PackageSealed(f"package {package.id} is {package.status}; files can no longer be added")
    if size > ctx.settings.evidence_max_file_bytes:
        raise PayloadTooLarge(
            f"this node takes files of at most {ctx.settings.evidence_max_file_bytes} bytes"
        )
    if any(f.name == name for f in files_of(session, package)):
        raise Conflict(f"package {package.id} already has a file named {name!r}")
    # After the last index ever given, withdrawn files included: the custody log names a file by its index,
    # and a withdrawn file's index naming another file later would make that record ambiguous.
    last = session.scalar(select(func.max(EvidenceFile.index)).where(EvidenceFile.package_id == package.id))
    f = EvidenceFile(
        package_id=package.id,
        index=0 if last is None else last + 1,
        name=name,
        size=size,
        media_type=media_type,
        declared_sha256=sha256,
        acquisition=acquisition.model_dump(mode="json"),
        chunk_size=ctx.settings.evidence_chunk_bytes,
        chunks_stored=0,
        status="uploading",
        created_at=utcnow(),
    )
    session.add(f)
    session.flush()
    audit.record(
        session,
        actor,
        "evidence.file.declare",
        "evidence_package",
        package.id,
        detail={"index": f.index, "size": size},
    )
    return f


REASON_MAX = 2000


def custody_reason(reason: str) -> str:
    """The reason a withdrawal or a deletion step gives, trimmed: the custody log keeps it for a court to
    read, so a blank one is refused wherever it comes from (API, desk, command line)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput(Phrase("Say why"), [Problem("reason", "say why", "missing")])
    if len(reason) > REASON_MAX:
        raise InvalidInput(
            Phrase("Reason too long"), [Problem("reason", f"at most {REASON_MAX} characters", "invalid")]
        )
    return reason


def withdraw_file(
    session: Session, ctx: Context, actor: Actor, package: EvidencePackage, index: int, reason: str
) -> EvidenceFile:
    """Take file ``index`` out of a package that is still open; its stored bytes are destroyed.

    Until the package is sealed nothing about its files has been attested: the signed manifest is what a
    court, a peer and every later check hold the package to. A declaration that cannot complete (a wrong
    digest or size) would otherwise block the seal for ever, and a complete file can be just as wrong (the
    wrong disk, a duplicate, material the order does not cover): a custodian takes it out rather than seal
    it into the record. What custody requires is that nothing vanishes unrecorded: the withdrawal is a
    custody event naming who, when, why and what (name, size, declared and computed digests), and the row
    stays, marked withdrawn, so that its index never names another file. Once sealed, a file leaves only
    with its whole package, destroyed by two administrators (:mod:`cyberpact.evidence.deletion`).
    """
    reason = custody_reason(reason)
    # Under the package's row lock, as seal takes it: a seal cannot sign a file being withdrawn.
    session.refresh(package, with_for_update=True)
    if package.status != "open":
        raise PackageSealed(f"package {package.id} is {package.status}; its files can no longer be withdrawn")
    f = get_file(session, package, index)
    if f.upload_token is not None and f.upload_until is not None and f.upload_until > utcnow():
        raise Conflict(f"an upload to file {index} is in progress; stop it first or retry shortly")
    what = {
        "file": f.index,
        "name": f.name,
        "size": f.size,
        "media_type": f.media_type,
        "declared_sha256": f.declared_sha256,
        "sha256": f.sha256,
        "blake2b": f.blake2b,
        "status": f.status,
    }
    removed = ctx.storage.delete_prefix(chunks.file_prefix(package.id, f.index))
    f.status, f.chunks_stored, f.upload_token, f.upload_until = WITHDRAWN, 0, None, None
    session.flush()
    custody.record(
        session, ctx.node_id, "withdrawn", package.id, actor, **what, objects=removed, reason=reason
    )
    audit.record(
        session,
        actor,
        "evidence.file.withdraw",
        "evidence_package",
        package.id,
        # Administrators read the audit record and read no evidence: the file's name, its digests (which
        # tell whether a known file is held) and the reason stay in the custody log, for those who may
        # see the package.
        detail={"file": f.index, "size": f.size, "status": what["status"], "objects": removed},
    )
    return f


# --- sealing and the manifest ------------------------------------------------------------------------------


def manifest_of(package: EvidencePackage, files: list[EvidenceFile], sealed_at: datetime) -> dict[str, Any]:
    return {
        "typ": "cyberpact-evidence-manifest",
        "v": 1,
        "package_id": str(package.id),
        "node": package.origin_node,
        "case_ref": package.case_ref,
        "request_ref": package.request_ref,
        "title": package.title,
        "description": package.description,
        "use_conditions": package.use_conditions,
        "created_at": rfc3339(package.created_at),
        "sealed_at": rfc3339(sealed_at),
        "files": [
            {
                "index": f.index,
                "name": f.name,
                "size": f.size,
                "media_type": f.media_type,
                "sha256": f.sha256,
                "blake2b": f.blake2b,
                "acquisition": f.acquisition,
            }
            for f in files
        ],
    }


def manifest_digest(manifest: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(manifest))


def seal(session: Session, ctx: Context, actor: Actor, package: EvidencePackage) -> EvidencePackage:
    # The files are read under the package's row lock, which a withdrawal takes too (PostgreSQL; a SQLite
    # writer holds the database already): a file withdrawn meanwhile is never signed into the manifest.
    session.refresh(package, with_for_update=True)
    if package.status != "open":
        raise PackageSealed(f"package {package.id} is already {package.status}")
    files = files_of(session, package)
    if not files:
        raise InvalidInput(Phrase("Nothing to seal"), [Problem("files", "a package needs at least one file")])
    pending = [f.index for f in files if f.status != "complete"]
    if pending:
        raise Conflict(f"files {pending} are still uploading")
    now = utcnow()
    manifest = manifest_of(package, files, now)
    _, key = ctx.keys.signing_key(session)
    package.manifest_jws = crypto.sign_json(key, manifest, {"typ": MANIFEST_TYP})
    package.manifest_digest = manifest_digest(manifest)
    package.status, package.sealed_at = "sealed", now
    session.flush()
    custody.record(session, ctx.node_id, "sealed", package.id, actor, manifest_digest=package.manifest_digest)
    audit.record(
        session,
        actor,
        "evidence.package.seal",
        "evidence_package",
        package.id,
        detail={"manifest_digest": package.manifest_digest},
    )
    return package


def origin_key_lookup(session: Session, package: EvidencePackage) -> Any:
    """kid -> public key of the node that signed this package's manifest (this node, or the peer)."""

    def lookup(kid: str) -> Any:
        if package.origin_package_id is None:
            row = session.get(NodeKey, kid)
            return crypto.import_public(row.public_jwk) if row is not None and row.purpose == "sig" else None
        peer_key = peers.sender_key(session, package.origin_node, kid)
        return peers.public_key(peer_key) if peer_key is not None and peer_key.use == "sig" else None

    return lookup


def signed_manifest(session: Session, package: EvidencePackage) -> dict[str, Any]:
    """The manifest as signed, after checking the signature and that the database rows still match it."""
    if package.manifest_jws is None:
        raise Conflict(f"package {package.id} is not sealed yet")
    what = f"package {package.id} manifest"
    try:
        header = custody.peek_header(package.manifest_jws)
        key = origin_key_lookup(session, package)(str(header.get("kid", "")))
        if key is None:
            raise IntegrityFailure("signed by a key this node does not know")
        _, manifest = crypto.verify_json(package.manifest_jws, key)
    except IntegrityFailure as exc:
        raise TamperDetected(what, str(exc)) from None
    if manifest_digest(manifest) != package.manifest_digest:
        raise TamperDetected(what, "its stored digest differs from the signed manifest")
    expected_id = package.origin_package_id or str(package.id)
    for field, row_value in (
        ("package_id", expected_id),
        ("case_ref", package.case_ref),
        ("request_ref", package.request_ref),
        ("title", package.title),
    ):
        signed = manifest.get(field)
        if field == "request_ref":
            # One request in any spelling: a received package keeps the canonical one, whatever was signed.
            signed, row_value = canonical_request_ref(signed), canonical_request_ref(row_value)
        if signed != row_value:
            raise TamperDetected(f"package {package.id} row", f"{field} differs from the signed manifest")
    entries = manifest.get("files") or []
    files = files_of(session, package)
    if len(entries) != len(files):
        raise TamperDetected(
            f"package {package.id} row", "the number of files differs from the signed manifest"
        )
    for f, entry in zip(files, entries, strict=True):
        for field in ("name", "size", "media_type", "sha256", "blake2b"):
            if entry.get(field) != getattr(f, field):
                raise TamperDetected(f"file {f.index} row", f"{field} differs from the signed manifest")
    return dict(manifest)


# --- reading, verifying, releasing ---------------------------------------------------------------


def readable(package: EvidencePackage) -> None:
    if package.status == "deleted":
        raise Conflict(f"package {package.id} was deleted; only its custody record remains")


def open_file(
    session: Session,
    ctx: Context,
    actor: Actor,
    package: EvidencePackage,
    index: int,
    kind: custody.Kind = "downloaded",
) -> tuple[EvidenceFile, Iterator[bytes]]:
    """Record the read (audit + custody) and return a generator of authenticated plaintext chunks."""
    readable(package)
    f = get_file(session, package, index)
    if f.status != "complete":
        raise Conflict(f"file {index} is still uploading")
    c = codec(session, ctx, package, f)
    custody.record(session, ctx.node_id, kind, package.id, actor, file=index, name=f.name)
    audit.record(
        session,
        actor,
        f"evidence.file.{kind}",
        "evidence_package",
        package.id,
        detail={"index": index},
    )
    return f, chunks.read_chunks(c, ctx.storage, key_of(package, f))


def verify_package(session: Session, ctx: Context, actor: Actor, package: EvidencePackage) -> dict[str, Any]:
    """Check the manifest signature, the rows against it, and every stored chunk against its digests.

    Raises naming the first thing that fails; on success records a ``verified`` custody event.
    """
    readable(package)
    manifest = signed_manifest(session, package)
    key = data_key(session, ctx, package)
    for f, entry in zip(files_of(session, package), manifest["files"], strict=True):
        c = codec(session, ctx, package, f, key)
        chunks.check_no_extra_chunks(c, ctx.storage, chunks.file_prefix(package.id, f.index))
        sha, blake, size = chunks.hash_stream(chunks.read_chunks(c, ctx.storage, key_of(package, f)))
        chunks.check_digests(f"file {f.index} ({f.name})", entry, sha, blake, size)
    custody.record(
        session,
        ctx.node_id,
        "verified",
        package.id,
        actor,
        manifest_digest=package.manifest_digest,
        files=len(manifest["files"]),
    )
    audit.record(session, actor, "evidence.package.verify", "evidence_package", package.id)
    return manifest


def release(
    session: Session, ctx: Context, actor: Actor, package: EvidencePackage, to: str, reason: str
) -> None:
    readable(package)
    if package.status == "open":
        raise Conflict("seal the package before releasing it")
    custody.record(session, ctx.node_id, "released", package.id, actor, to=to, reason=reason)
    audit.record(session, actor, "evidence.package.release", "evidence_package", package.id)
