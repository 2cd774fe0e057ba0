"""The intel REST API under ``/api/v1/intel`` (collections, grants, identities, correlations, MISP), and
the one router the app mounts, which also carries the TAXII 2.1 server."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from cyberpact.accounts import service as accounts
from cyberpact.accounts.api import AdminActor, CurrentActor
from cyberpact.intel import correlate, federation, misp, misp_export, query, service, store, taxii
from cyberpact.intel.models import IntelCollection
from cyberpact.intel.schemas import (
    CollectionCreate,
    CollectionOut,
    CorrelationOut,
    GrantOut,
    GrantUpdate,
    IdentityOut,
    IdentityUpdate,
    ImportOut,
    PolicyUpdate,
    PullOut,
    PullRequest,
    StateSeenOut,
)
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import InvalidInput, NotFound, PermissionDenied, Problem
from cyberpact.kit.http import ReadSession, WriteSession, read_limited
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.pagination import Page, decode_cursor, encode_cursor
from cyberpact.kit.time import parse_rfc3339

rest = APIRouter(prefix="/api/v1/intel", tags=["intel"])


def _out(row: IntelCollection, acc: service.Access) -> CollectionOut:
    return CollectionOut(
        id=row.id,
        title=row.title,
        description=row.description,
        alias=row.alias,
        can_read=acc.can_read,
        can_write=acc.can_write,
        federate=row.federate,
        sharing_group=list(row.sharing_group or []),
        strict_recipient=row.strict_recipient,
        default_tlp=row.default_tlp,
        created_at=row.created_at,
        source_peer=row.source_peer,
    )


def _visible(session: Any, actor: Actor, ref: str) -> tuple[IntelCollection, service.Access]:
    row = service.get_collection(session, ref)
    acc = service.access(session, actor, row.id)
    if not acc.any:
        raise NotFound(f"No collection {ref}").denying("intel.collection.access", "intel_collection", row.id)
    return row, acc


@rest.get("/collections", response_model=list[CollectionOut])
def list_collections(actor: CurrentActor, session: ReadSession) -> list[CollectionOut]:
    return [_out(c, a) for c, a in service.visible_collections(session, actor)]


@rest.post("/collections", status_code=status.HTTP_201_CREATED, response_model=CollectionOut)
def create_collection(body: CollectionCreate, actor: AdminActor, session: WriteSession) -> CollectionOut:
    row = service.create_collection(session, actor, **body.model_dump())
    return _out(row, service.FULL)


@rest.patch("/collections/{ref}/policy", response_model=CollectionOut)
def update_policy(ref: str, body: PolicyUpdate, actor: AdminActor, session: WriteSession) -> CollectionOut:
    row = service.update_policy(session, actor, service.get_collection(session, ref), **body.model_dump())
    return _out(row, service.FULL)


@rest.post("/collections/{ref}/pull", status_code=status.HTTP_202_ACCEPTED, response_model=PullOut)
def pull(ref: str, body: PullRequest, actor: AdminActor, session: WriteSession) -> PullOut:
    """Ask a peer for what it may share of its collection ``ref`` (an id; or the alias of a local one).

    A collection never received yet has no copy here: name it by the peer's id for it, and give the peer.
    """
    try:
        row: IntelCollection | None = service.get_collection(session, ref)
    except NotFound:
        row = None
    if row is not None:
        collection_id, peer = row.id, body.peer or row.source_peer
    elif (named := parse_uuid(ref)) is not None:
        collection_id, peer = named, body.peer
    else:
        raise NotFound(f"No collection {ref}")
    if peer is None:
        raise InvalidInput(
            "Which peer?", [Problem("peer", "required: this collection is not a mirror of a peer's")]
        )
    message = federation.request_pull(session, actor, peer, collection_id, body.since)
    return PullOut(message_id=message.message_id, peer=peer, collection_id=collection_id, since=body.since)


@rest.get("/collections/{ref}/grants", response_model=list[GrantOut])
def list_grants(ref: str, _: AdminActor, session: ReadSession) -> list[GrantOut]:
    row = service.get_collection(session, ref)
    return [
        GrantOut(username=name, can_read=g.can_read, can_write=g.can_write, granted_at=g.granted_at)
        for name, g in service.list_grants(session, row)
    ]


@rest.put("/collections/{ref}/grants/{username}", response_model=GrantOut | None)
def set_grant(
    ref: str, username: str, body: GrantUpdate, actor: AdminActor, session: WriteSession
) -> GrantOut | None:
    row = service.get_collection(session, ref)
    user = accounts.get_user(session, username)
    grant = service.grant(session, actor, row, user, read=body.read, write=body.write)
    if grant is None:
        return None
    return GrantOut(
        username=user.username,
        can_read=grant.can_read,
        can_write=grant.can_write,
        granted_at=grant.granted_at,
    )


@rest.get("/identities", response_model=list[IdentityOut])
def list_identities(_: AdminActor, session: ReadSession) -> list[IdentityOut]:
    return [
        IdentityOut(reporter=i.reporter, state=i.state, name=i.name, updated_at=i.updated_at)
        for i in service.list_identities(session)
    ]


@rest.put("/identities/{reporter}", response_model=IdentityOut)
def set_identity(
    reporter: str, body: IdentityUpdate, actor: AdminActor, session: WriteSession
) -> IdentityOut:
    row = service.set_identity(session, actor, reporter, body.state, body.name)
    return IdentityOut(reporter=row.reporter, state=row.state, name=row.name, updated_at=row.updated_at)


_CURSOR_SCOPE = "intel-correlations"


@rest.get("/correlations", response_model=Page[CorrelationOut])
def list_correlations(
    request: Request,
    actor: CurrentActor,
    session: WriteSession,
    min_states: Annotated[int, Query(ge=2, le=200)] = 2,
    kind: Annotated[str | None, Query(max_length=300, description="e.g. ipv4-addr:value")] = None,
    value: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> Page[CorrelationOut]:
    """Observables reported by two or more States (counting only collections the caller may read)."""
    limit = min(limit, request.app.state.settings.page_size_max)
    after = None
    if cursor:
        when, key = decode_cursor(cursor, _CURSOR_SCOPE, 2)
        try:
            after = (parse_rfc3339(str(when)), str(key))
        except ValueError:
            raise InvalidInput(
                "Invalid page cursor", [Problem("cursor", "not a cursor of this listing")]
            ) from None
    if value and not kind:
        raise InvalidInput(
            "A value needs its kind", [Problem("kind", "give kind with value, e.g. ipv4-addr:value")]
        )
    found, resume = correlate.correlations(
        session,
        readable=service.readable_collection_ids(session, actor),
        min_states=min_states,
        kind=kind,
        value=value,
        state=state.upper() if state else None,
        limit=limit,
        after=after,
    )
    items = [
        CorrelationOut(
            kind=c.kind,
            value=c.value,
            first_seen=c.first_seen,
            last_seen=c.last_seen,
            states=[StateSeenOut(**s.__dict__) for s in c.states],
        )
        for c in found
    ]
    service.record_read(
        session,
        actor,
        None,
        "correlations",
        len(items),
        kind=kind,
        value=value,
        state=state,
        page=bool(cursor),
    )
    token = encode_cursor(_CURSOR_SCOPE, [_iso(resume[0]), resume[1]]) if resume else None
    return Page[CorrelationOut](items=items, next=token)


def _iso(value: datetime) -> str:
    return value.isoformat()


async def _misp_body(request: Request) -> Any:
    # Bounded like a TAXII envelope: FastAPI's own body parsing would buffer whatever a client sends.
    raw = await read_limited(request, taxii.MAX_CONTENT_LENGTH)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"The body is not valid JSON: {str(exc)[:200]}") from None


@rest.post(
    "/collections/{ref}/misp",
    response_model=ImportOut,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
def import_misp(
    ref: str, body: Annotated[Any, Depends(_misp_body)], actor: CurrentActor, session: WriteSession
) -> ImportOut:
    """Import MISP events (core JSON format) into a collection as STIX 2.1; at most the TAXII
    ``max_content_length`` of JSON."""
    row, acc = _visible(session, actor, ref)
    if not acc.can_write:
        raise PermissionDenied("You may not add objects to this collection")
    converted = misp.misp_to_stix(body)
    misp.require_objects(converted, "the body")
    result = store.add_objects(session, actor, row, converted.objects, blind=not acc.can_read)
    return _import_out(result, converted.skipped)


def _import_out(result: store.AddResult, skipped: list[str]) -> ImportOut:
    return ImportOut(
        status_id=result.status.id,
        stored=result.stored,
        duplicates=result.duplicates,
        refused=len(result.failures),
        failures=[{"id": f[0], "version": f[1], "message": f[2]} for f in result.failures],
        skipped=skipped,
    )


@rest.get("/collections/{ref}/misp")
def export_misp(
    ref: str,
    actor: CurrentActor,
    session: WriteSession,
    ids: Annotated[list[str] | None, Query(alias="id", max_length=1000)] = None,
) -> dict[str, Any]:
    """The collection's latest objects (or only ``id``s) as one MISP event."""
    row, acc = _visible(session, actor, ref)
    if not acc.can_read:
        raise PermissionDenied("You may not read this collection")
    event, skipped = misp_export.stix_to_misp(
        query.iter_objects(session, row.id, ids=ids or ()),
        info=row.title,
        event_uuid=misp.export_uuid(row.id, ids or ()),
    )
    returned = len(event["Event"]["Attribute"]) + len(event["Event"]["Object"])
    service.record_read(session, actor, row.id, "misp export", returned, ids=len(ids or ()))
    return {**event, "skipped": skipped}


router = APIRouter()
router.include_router(taxii.router)
router.include_router(rest)
