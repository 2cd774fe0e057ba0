"""Directory endpoints: reads for any signed-in user, writes for administrators (audited by the service).

The list endpoints are read-only units of work and cost one query per page for parties, two for
authorities (the page and its languages), whatever the page size.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from cyberpact.accounts.api import AdminActor, CurrentActor
from cyberpact.config import Settings
from cyberpact.directory import queries, service
from cyberpact.directory.models import Authority, TreatyStatus
from cyberpact.directory.schemas import (
    AuthorityIn,
    AuthorityKind,
    AuthorityOut,
    AuthorityPage,
    AuthorityUpdate,
    ConventionStatus,
    NotCounted,
    PartyIn,
    PartyKind,
    PartyOut,
    PartyPage,
    PartyUpdate,
    TreatyStatusIn,
    TreatyStatusOut,
)
from cyberpact.directory.treaty import REIO_NOT_COUNTED
from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.http import ReadSession, WriteSession
from cyberpact.kit.pagination import decode_cursor, encode_cursor
from cyberpact.kit.time import utcnow

router = APIRouter(prefix="/api/v1/directory", tags=["directory"])

Country = Annotated[str | None, Query(pattern=r"^[A-Za-z]{2,3}$", description="alpha-2 or alpha-3 code")]
Language = Annotated[str | None, Query(max_length=64, description="BCP 47; `en` also matches `en-GB`")]
Cursor = Annotated[str | None, Query(max_length=300)]
PartyCode = Annotated[str, Path(pattern=r"^[A-Za-z]{2,3}$", description="alpha-2 or alpha-3 code")]
Limit = Annotated[int, Query(ge=1, description="at most the node's page_size_max")]


def _limit(request: Request, limit: int) -> int:
    settings: Settings = request.app.state.settings
    if limit > settings.page_size_max:
        raise InvalidInput("Page too large", [Problem("limit", f"at most {settings.page_size_max}")])
    return limit


def _party_out(row: queries.PartyRow) -> PartyOut:
    return PartyOut.model_validate(row._mapping)


def _authority_out(a: Authority) -> AuthorityOut:
    fields: dict[str, Any] = {
        k: getattr(a, k) for k in AuthorityOut.model_fields if k not in ("party", "languages", "open_now")
    }
    return AuthorityOut(
        **fields, party=a.party_code, languages=a.languages, open_now=service.is_open(a, utcnow())
    )


# --- parties ------------------------------------------------------------------------------------------


@router.get("/parties", response_model=PartyPage)
def list_parties(
    request: Request,
    _: CurrentActor,
    session: ReadSession,
    country: Country = None,
    kind: PartyKind | None = None,
    language: Language = None,
    signed: bool | None = None,
    ratified: bool | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> PartyPage:
    """Parties in code order, with their signature and instrument; `language` keeps parties having an
    authority that accepts it."""
    size = _limit(request, limit)
    after = str(decode_cursor(cursor, "directory.parties", 1)[0]) if cursor else None
    filters = queries.Filters(country=country, kind=kind, language=language, signed=signed, ratified=ratified)
    rows = queries.list_parties(session, filters, after, size + 1)
    items = [_party_out(row) for row in rows[:size]]
    nxt = encode_cursor("directory.parties", [items[-1].code]) if len(rows) > size else None
    return PartyPage(items=items, next=nxt)


@router.post("/parties", status_code=status.HTTP_201_CREATED, response_model=PartyOut)
def create_party(body: PartyIn, actor: AdminActor, session: WriteSession) -> PartyOut:
    party = service.create_party(session, actor, body)
    return _party_out(queries.party_row(session, party.code))


@router.get("/parties/{code}", response_model=PartyOut)
def get_party(code: PartyCode, _: CurrentActor, session: ReadSession) -> PartyOut:
    return _party_out(queries.party_row(session, code))


@router.patch("/parties/{code}", response_model=PartyOut)
def update_party(code: PartyCode, body: PartyUpdate, actor: AdminActor, session: WriteSession) -> PartyOut:
    party = service.update_party(session, actor, code, body)
    return _party_out(queries.party_row(session, party.code))


# --- treaty status ------------------------------------------------------------------------------------


def _treaty_out(session: Session, row: TreatyStatus) -> TreatyStatusOut:
    eif = service.entry_into_force(session)
    party = service.get_party(session, row.party_code)
    counted = row.instrument_date is not None and party.kind != service.REIO
    return TreatyStatusOut(
        **service.treaty_record(row).model_dump(),
        party=row.party_code,
        counted=counted,
        in_force_for_party=eif.for_party.get(row.party_code),
        convention_in_force=eif.convention,
        updated_at=row.updated_at,
    )


@router.get("/parties/{code}/treaty", response_model=TreatyStatusOut)
def get_treaty(code: PartyCode, _: CurrentActor, session: ReadSession) -> TreatyStatusOut:
    """The party's signature, instrument, declarations and reservations, and when the convention binds it."""
    return _treaty_out(session, service.get_treaty(session, code))


@router.put("/parties/{code}/treaty", response_model=TreatyStatusOut)
def put_treaty(
    code: PartyCode, body: TreatyStatusIn, actor: AdminActor, session: WriteSession
) -> TreatyStatusOut:
    return _treaty_out(session, service.set_treaty(session, actor, code, body))


@router.get("/convention", response_model=ConventionStatus)
def convention(_: CurrentActor, session: ReadSession) -> ConventionStatus:
    """Art. 65: instruments counted towards the 40, and the date of entry into force once known."""
    view = service.convention(session)
    eif = view.status
    return ConventionStatus(
        instruments_required=eif.required,
        instruments_counted=eif.counted,
        instruments_still_needed=eif.still_needed,
        fortieth_instrument_date=eif.fortieth_deposit,
        convention_in_force=eif.convention,
        in_force_today=eif.in_force_on(service.today()),
        signatories=view.signatories,
        not_counted=[NotCounted(party=p, reason=REIO_NOT_COUNTED) for p in eif.not_counted],
    )


# --- authorities --------------------------------------------------------------------------------------


@router.get("/authorities", response_model=AuthorityPage)
def list_authorities(
    request: Request,
    _: CurrentActor,
    session: ReadSession,
    country: Country = None,
    kind: AuthorityKind | None = None,
    language: Language = None,
    signed: Annotated[bool | None, Query(description="the authority's party has signed")] = None,
    ratified: Annotated[
        bool | None, Query(description="the authority's party has deposited an instrument")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> AuthorityPage:
    size = _limit(request, limit)
    after = [str(k) for k in decode_cursor(cursor, "directory.authorities", 3)] if cursor else None
    filters = queries.Filters(country=country, kind=kind, language=language, signed=signed, ratified=ratified)
    rows = queries.list_authorities(session, filters, after, size + 1)
    items = [_authority_out(a) for a in rows[:size]]
    nxt = (
        encode_cursor("directory.authorities", queries.authority_cursor_key(rows[size - 1]))
        if len(rows) > size
        else None
    )
    return AuthorityPage(items=items, next=nxt)


@router.post("/authorities", status_code=status.HTTP_201_CREATED, response_model=AuthorityOut)
def create_authority(body: AuthorityIn, actor: AdminActor, session: WriteSession) -> AuthorityOut:
    return _authority_out(service.create_authority(session, actor, body))


@router.get("/authorities/{authority_id}", response_model=AuthorityOut)
def get_authority(authority_id: uuid.UUID, _: CurrentActor, session: ReadSession) -> AuthorityOut:
    return _authority_out(service.get_authority(session, authority_id))


@router.patch("/authorities/{authority_id}", response_model=AuthorityOut)
def update_authority(
    authority_id: uuid.UUID, body: AuthorityUpdate, actor: AdminActor, session: WriteSession
) -> AuthorityOut:
    return _authority_out(service.update_authority(session, actor, authority_id, body))


@router.delete("/authorities/{authority_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_authority(authority_id: uuid.UUID, actor: AdminActor, session: WriteSession) -> Response:
    service.delete_authority(session, actor, authority_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
