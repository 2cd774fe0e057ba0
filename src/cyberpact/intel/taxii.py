"""The TAXII 2.1 server under ``/taxii2/``: discovery, one API root, collections, objects, manifest,
versions, delete and status (OASIS TAXII Version 2.1, sections 4 and 5).

Errors are answered as TAXII error message resources (section 3.6.1) in the TAXII media type, which is what
TAXII clients parse; they carry the same stable ``code`` as the node's problem details. Object bodies are
returned as stored, byte for byte, joined into the envelope without being parsed again.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask

from cyberpact.accounts import service as accounts
from cyberpact.intel import query, service, stix, store
from cyberpact.intel.errors import NotAcceptable
from cyberpact.intel.models import IntelCollection, IntelObject
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import (
    AuthenticationRequired,
    CyberpactError,
    InvalidInput,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UnsupportedMediaType,
)
from cyberpact.kit.http import ReadSession, WriteSession, client_address, get_database
from cyberpact.kit.ids import parse_uuid

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"
ROOT = "intel"
MAX_CONTENT_LENGTH = 16 * 1024 * 1024
DEFAULT_PAGE = 1000
MAX_IDS = 1000
_SPEC_VERSION = re.compile(r"\d{1,3}\.\d{1,3}")  # STIX spec_version values: 2.0, 2.1
# Each type and each version timestamp is one index range a page reads (query._ranges); STIX 2.1 defines
# about 40 types, so a longer list is a mistake or an attempt to make every page expensive.
MAX_TYPES = MAX_VERSIONS = 64


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(data, status_code=status, media_type=TAXII, headers=headers)


def taxii_error(exc: CyberpactError) -> Response:
    body: dict[str, Any] = {
        "title": exc.title,
        "description": exc.public_message,
        "error_code": exc.code,
        "http_status": str(exc.status),
    }
    if exc.problems:
        body["details"] = {"errors": [p.as_dict() for p in exc.problems]}
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="cyberpact-taxii", Bearer realm="cyberpact-taxii"'
    return _json(body, exc.status, headers)


class TaxiiRoute(APIRoute):
    """Answers expected failures of TAXII endpoints (and their dependencies) as TAXII error resources."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except CyberpactError as exc:
                response = taxii_error(exc)
                hook = getattr(request.app.state, "on_denied", None)
                if (exc.status in (401, 403) or exc.denied is not None) and hook is not None:
                    # After the response: the request's own unit of work (a SQLite write lock, perhaps) is
                    # still open here, and the hook records the refusal in a unit of work of its own.
                    response.background = BackgroundTask(hook, request, exc)
                return response

        return handler


router = APIRouter(prefix="/taxii2", tags=["taxii"], route_class=TaxiiRoute)


# ------------------------------------------------------------------------------------ request checks


def _media_type(value: str) -> tuple[str, str | None]:
    """A media type or range and its version parameter, if any. A parameter's value may be sent as a
    quoted string, which means the same as the bare token (RFC 9110, 5.6.6)."""
    media, *params = (p.strip().lower() for p in value.split(";"))
    for param in params:
        name, _, given = param.partition("=")
        if name.strip() == "version":
            given = given.strip()
            if len(given) >= 2 and given[0] == given[-1] == '"':
                given = given[1:-1]
            return media, given
    return media, None


def _acceptable(header: str | None) -> bool:
    if not header:
        return True  # no Accept header means any representation will do (RFC 9110, 12.5.1)
    for item in header.split(","):
        media, version = _media_type(item)
        if media in ("*/*", "application/*"):
            return True
        if media == "application/taxii+json" and version in (None, "2.1"):
            return True
    return False


def check_accept(request: Request) -> None:
    if not _acceptable(request.headers.get("accept")):
        raise NotAcceptable(f"This endpoint produces {TAXII}; the Accept header does not allow it")


def _credentials(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationRequired("Send the API token as Authorization: Bearer, or as the Basic password")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme in ("bearer", "token"):
        return value
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationRequired("Malformed Basic credentials") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise AuthenticationRequired("Malformed Basic credentials")
        request.state.basic_user = user
        return password
    raise AuthenticationRequired(f"Unsupported authorization scheme {scheme!r}")


def taxii_actor(request: Request) -> Actor:
    """The node's API tokens, sent as Bearer (or ``Token``) or as the password of HTTP Basic: the OASIS
    ``taxii2-client`` speaks Basic. With Basic, a user name, if given, must be the token owner's."""
    check_accept(request)
    secret = _credentials(request)
    db = get_database(request)
    with db.transaction(read_only=True) as session:
        actor, stale = accounts.resolve_token(session, secret, client_address(request))
    basic_user = getattr(request.state, "basic_user", "")
    if basic_user and basic_user != actor.username:
        raise AuthenticationRequired("The Basic user name is not the owner of this token")
    if stale and actor.token_id is not None:
        with db.transaction() as session:
            accounts.touch_token(session, actor.token_id)
    request.state.actor = actor
    return actor


TaxiiActor = Annotated[Actor, Depends(taxii_actor)]


def _root(api_root: str) -> None:
    if api_root != ROOT:
        raise NotFound(f"No API root {api_root!r}")


def _collection(session: Any, actor: Actor, api_root: str, collection_id: str) -> tuple[IntelCollection, Any]:
    _root(api_root)
    try:
        row = service.get_collection(session, collection_id)
    except NotFound:
        raise NotFound(f"No collection {collection_id}") from None
    acc = service.access(session, actor, row.id)
    if not acc.any:
        # Existence of a collection is not disclosed to someone with no access to it; the attempt is recorded.
        raise NotFound(f"No collection {collection_id}").denying(
            "intel.collection.access", "intel_collection", row.id
        )
    return row, acc


def _readable(session: Any, actor: Actor, api_root: str, collection_id: str) -> IntelCollection:
    row, acc = _collection(session, actor, api_root, collection_id)
    if not acc.can_read:
        raise PermissionDenied("You may not read this collection")
    return row


def _positive(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise MalformedInput(f"{name} must be a positive integer") from None
    if n < 1:
        raise MalformedInput(f"{name} must be a positive integer")
    return n


def _list(request: Request, name: str) -> tuple[str, ...]:
    values = request.query_params.getlist(name)
    found = tuple(v.strip() for raw in values for v in raw.split(",") if v.strip())
    if values and not found:
        # Read as no filter at all, an empty selection would answer with the whole collection.
        raise MalformedInput(f"{name} is given but names nothing; leave it out to match every value")
    return found


def filters_from(request: Request, *, default_versions: tuple[str, ...] = ("last",)) -> query.Filters:
    q = request.query_params
    added_after = None
    if "added_after" in q:
        try:
            added_after = stix.parse_timestamp(q["added_after"])
        except ValueError as exc:
            raise MalformedInput(f"added_after: {exc}") from None
    ids = _list(request, "match[id]")
    if len(ids) > MAX_IDS:
        raise MalformedInput(f"match[id]: at most {MAX_IDS} ids per request")
    for i in ids:
        if not stix.is_identifier(i):
            raise MalformedInput(f"match[id]: {i!r} is not a STIX identifier")
    types = _list(request, "match[type]")
    if len(types) > MAX_TYPES:
        raise MalformedInput(f"match[type]: at most {MAX_TYPES} types per request")
    for t in types:
        if not stix.is_type_name(t):
            raise MalformedInput(f"match[type]: {t!r} is not a STIX type name")
    versions = default_versions
    if "match[version]" in q:
        asked = _list(request, "match[version]")
        if len(asked) > MAX_VERSIONS:
            raise MalformedInput(f"match[version]: at most {MAX_VERSIONS} versions per request")
        versions = query.parse_versions(asked)
    spec_versions = _list(request, "match[spec_version]")
    for v in spec_versions:
        if not _SPEC_VERSION.fullmatch(v):
            raise MalformedInput(f"match[spec_version]: {v[:40]!r} is not a STIX version such as 2.1")
    return query.Filters(
        added_after=added_after,
        ids=ids,
        types=types,
        versions=versions,
        spec_versions=spec_versions,
    )


def _pager(request: Request) -> query.Pager:
    return query.Pager(request.app.state.settings.secret_key.get_secret_value())


def _page_args(request: Request) -> tuple[int, str | None]:
    limit = _positive(request.query_params.get("limit"), "limit") or DEFAULT_PAGE
    return limit, request.query_params.get("next") or None


def _added_headers(page: query.Page) -> dict[str, str]:
    if not page.rows:
        return {}
    assert page.first_added is not None and page.last_added is not None
    return {
        "X-TAXII-Date-Added-First": store.taxii_timestamp(page.first_added),
        "X-TAXII-Date-Added-Last": store.taxii_timestamp(page.last_added),
    }


def _envelope(page: query.Page) -> Response:
    parts = [b'{"more":', b"true" if page.more else b"false"]
    if page.next:
        parts += [b',"next":', json.dumps(page.next).encode()]
    if page.rows:
        parts += [b',"objects":[', ",".join(r.raw for r in page.rows).encode(), b"]"]
    parts.append(b"}")
    return Response(b"".join(parts), media_type=TAXII, headers=_added_headers(page))


# -------------------------------------------------------------------------------------------- routes


@router.get("/")
def discovery(request: Request, actor: TaxiiActor) -> Response:
    base = str(request.base_url).rstrip("/")
    settings = request.app.state.settings
    return _json(
        {
            "title": f"cyberpact TAXII server ({settings.node_name})",
            "description": "STIX 2.1 threat intelligence of this cyberpact node",
            "default": f"{base}/taxii2/{ROOT}/",
            "api_roots": [f"{base}/taxii2/{ROOT}/"],
        }
    )


@router.get("/{api_root}/")
def api_root(api_root: str, actor: TaxiiActor) -> Response:
    _root(api_root)
    return _json(
        {
            "title": "Intel",
            "description": "Collections of STIX 2.1 objects, shared under TLP 2.0",
            "versions": [TAXII],
            "max_content_length": MAX_CONTENT_LENGTH,
        }
    )


def collection_resource(row: IntelCollection, acc: service.Access) -> dict[str, Any]:
    body: dict[str, Any] = {"id": str(row.id), "title": row.title}
    if row.description:
        body["description"] = row.description
    if row.alias:
        body["alias"] = row.alias
    body.update(can_read=acc.can_read, can_write=acc.can_write, media_types=[STIX])
    return body


@router.get("/{api_root}/collections/")
def collections(api_root: str, actor: TaxiiActor, session: ReadSession) -> Response:
    _root(api_root)
    found = [collection_resource(c, a) for c, a in service.visible_collections(session, actor)]
    return _json({"collections": found} if found else {})


@router.get("/{api_root}/collections/{collection_id}/")
def collection(api_root: str, collection_id: str, actor: TaxiiActor, session: ReadSession) -> Response:
    row, acc = _collection(session, actor, api_root, collection_id)
    return _json(collection_resource(row, acc))


@router.get("/{api_root}/collections/{collection_id}/objects/")
def get_objects(
    api_root: str, collection_id: str, request: Request, actor: TaxiiActor, session: WriteSession
) -> Response:
    row = _readable(session, actor, api_root, collection_id)
    filters = filters_from(request)
    limit, token = _page_args(request)
    page = query.page(
        session, _pager(request), row.id, "objects", filters, limit=limit, next_token=token, columns=[_raw()]
    )
    _record_read(session, actor, row.id, "objects", request, len(page.rows))
    return _envelope(page)


def _record_read(
    session: Any, actor: Actor, collection_id: uuid.UUID, view: str, request: Request, returned: int
) -> None:
    # The filters as asked (bounded): which objects a reader looked for is part of what they saw.
    asked = request.url.query
    service.record_read(session, actor, collection_id, view, returned, query=asked[:500] if asked else None)


def _raw() -> Any:
    return IntelObject.__table__.c.raw


def _writable_collection(
    api_root: str, collection_id: str, request: Request, actor: TaxiiActor
) -> tuple[uuid.UUID, bool]:
    """The collection's id and whether the writer may also read it.

    Checked before the body is read, so that a client without write access cannot make the server read
    and parse 16 MiB, and in a unit of work of its own, so that no write lock is held meanwhile."""
    with get_database(request).transaction(read_only=True) as session:
        row, acc = _collection(session, actor, api_root, collection_id)
        if not acc.can_write:
            raise PermissionDenied("You may not add objects to this collection")
        return row.id, acc.can_read


async def _body(request: Request) -> bytes:
    media = request.headers.get("content-type", "")
    kind, version = _media_type(media)
    if kind != "application/taxii+json" or version not in (None, "2.1"):
        raise UnsupportedMediaType(f"Send the envelope as {TAXII}, not {media or 'no Content-Type'}")
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(f"The envelope exceeds max_content_length ({MAX_CONTENT_LENGTH} bytes)")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CONTENT_LENGTH:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CONTENT_LENGTH:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_envelope(body: bytes) -> list[Any]:
    """The envelope's objects. A body that is not a TAXII envelope is refused whole with a 422: TAXII 2.1
    (section 5.5) gives that code to "a malformed body, or other unprocessable content", and keeps 400 for
    a request the server did not understand."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"The body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise InvalidInput("An envelope is a JSON object with an 'objects' list")
    objects = data.get("objects")
    if not isinstance(objects, list) or not objects:
        # TAXII has no empty lists (section 2), and an envelope without objects adds nothing.
        raise InvalidInput("An envelope needs a non-empty 'objects' list")
    return objects


async def _prepared(body: Annotated[bytes, Depends(_body)]) -> store.Prepared:
    return await run_in_threadpool(lambda: store.prepare(parse_envelope(body)))


@router.post("/{api_root}/collections/{collection_id}/objects/", status_code=202)
def add_objects(
    writable: Annotated[tuple[uuid.UUID, bool], Depends(_writable_collection)],
    prepared: Annotated[store.Prepared, Depends(_prepared)],
    actor: TaxiiActor,
    session: WriteSession,
) -> Response:
    collection_uuid, may_read = writable
    row = service.get_collection(session, collection_uuid)
    result = store.add_objects(session, actor, row, prepared, blind=not may_read)
    return _json(store.status_resource(result.status), 202)


def _object_id(object_id: str) -> str:
    if not stix.is_identifier(object_id):
        raise NotFound(f"No object {object_id!r}")
    return object_id


def _stored_object(
    session: Any, actor: Actor, api_root: str, collection_id: str, object_id: str
) -> tuple[IntelCollection, str]:
    """The readable collection and the id of an object stored in it; 404 otherwise."""
    row = _readable(session, actor, api_root, collection_id)
    oid = _object_id(object_id)
    if not query.object_exists(session, row.id, oid):
        raise NotFound(f"No object {oid} in this collection")
    return row, oid


@router.get("/{api_root}/collections/{collection_id}/objects/{object_id}/")
def get_object(
    api_root: str,
    collection_id: str,
    object_id: str,
    request: Request,
    actor: TaxiiActor,
    session: WriteSession,
) -> Response:
    row, oid = _stored_object(session, actor, api_root, collection_id, object_id)
    base = filters_from(request)
    filters = query.Filters(base.added_after, (oid,), (), base.versions, base.spec_versions)
    limit, token = _page_args(request)
    page = query.page(
        session,
        _pager(request),
        row.id,
        f"object:{oid}",
        filters,
        limit=limit,
        next_token=token,
        columns=[_raw()],
    )
    _record_read(session, actor, row.id, f"object {oid}", request, len(page.rows))
    return _envelope(page)


@router.delete("/{api_root}/collections/{collection_id}/objects/{object_id}/")
def delete_object(
    api_root: str,
    collection_id: str,
    object_id: str,
    request: Request,
    actor: TaxiiActor,
    session: WriteSession,
) -> Response:
    row, acc = _collection(session, actor, api_root, collection_id)
    # Both, not only write: TAXII 2.1 (section 5.7) answers 403 to a client that may write but not read.
    if not (acc.can_read and acc.can_write):
        raise PermissionDenied("Deleting needs both read and write access to this collection")
    oid = _object_id(object_id)
    base = filters_from(request, default_versions=("all",))
    filters = query.Filters(None, (oid,), (), base.versions, base.spec_versions)
    store.delete_object(session, actor, row, oid, filters)
    return Response(status_code=200, media_type=TAXII)


@router.get("/{api_root}/collections/{collection_id}/objects/{object_id}/versions/")
def object_versions(
    api_root: str,
    collection_id: str,
    object_id: str,
    request: Request,
    actor: TaxiiActor,
    session: WriteSession,
) -> Response:
    row, oid = _stored_object(session, actor, api_root, collection_id, object_id)
    base = filters_from(request)
    filters = query.Filters(base.added_after, (oid,), (), ("all",), base.spec_versions)
    limit, token = _page_args(request)
    version_col = IntelObject.__table__.c.version
    page = query.page(
        session,
        _pager(request),
        row.id,
        f"versions:{oid}",
        filters,
        limit=limit,
        next_token=token,
        columns=[version_col],
    )
    _record_read(session, actor, row.id, f"versions {oid}", request, len(page.rows))
    body: dict[str, Any] = {"more": page.more}
    if page.next:
        body["next"] = page.next
    if page.rows:
        body["versions"] = [stix.format_timestamp(r.version) for r in page.rows]
    return _json(body, headers=_added_headers(page))


@router.get("/{api_root}/collections/{collection_id}/manifest/")
def manifest(
    api_root: str, collection_id: str, request: Request, actor: TaxiiActor, session: WriteSession
) -> Response:
    row = _readable(session, actor, api_root, collection_id)
    filters = filters_from(request)
    limit, token = _page_args(request)
    cols = IntelObject.__table__.c
    page = query.page(
        session,
        _pager(request),
        row.id,
        "manifest",
        filters,
        limit=limit,
        next_token=token,
        columns=[cols.stix_id, cols.version],
    )
    _record_read(session, actor, row.id, "manifest", request, len(page.rows))
    body: dict[str, Any] = {"more": page.more}
    if page.next:
        body["next"] = page.next
    if page.rows:
        body["objects"] = [
            {
                "id": r.stix_id,
                "date_added": store.taxii_timestamp(r.date_added),
                "version": stix.format_timestamp(r.version),
                "media_type": STIX,
            }
            for r in page.rows
        ]
    return _json(body, headers=_added_headers(page))


@router.get("/{api_root}/status/{status_id}/")
def status(api_root: str, status_id: str, actor: TaxiiActor, session: ReadSession) -> Response:
    _root(api_root)
    sid = parse_uuid(status_id)
    if sid is None:
        raise NotFound(f"No status {status_id}")
    return _json(store.status_resource(store.get_status(session, actor, sid)))
