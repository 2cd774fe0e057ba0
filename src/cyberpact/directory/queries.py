"""The directory's read side: list pages and party summaries, each a fixed number of indexed queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Row, Select, exists, select, text, tuple_
from sqlalchemy.orm import Session, selectinload

from cyberpact.directory import codes
from cyberpact.directory.models import Authority, AuthorityLanguage, Party, TreatyStatus
from cyberpact.directory.service import get_party

Ts = TypeVarTuple("Ts")

# A party's columns with its signature date, instrument type and instrument date (None without a treaty
# row), named as in PartyOut. Plain columns, not ORM objects: half the cost on a list page.
PartyRow = Row[str, str, str, str, list[Any], date | None, str | None, date | None]


def _party_rows() -> Select[str, str, str, str, list[Any], date | None, str | None, date | None]:
    return select(
        Party.code,
        Party.code3,
        Party.name,
        Party.kind,
        Party.members,
        TreatyStatus.signature_date,
        TreatyStatus.instrument_type,
        TreatyStatus.instrument_date,
    ).outerjoin(TreatyStatus, TreatyStatus.party_code == Party.code)


def party_row(session: Session, code: str) -> PartyRow:
    party = get_party(session, code)
    return session.execute(_party_rows().where(Party.code == party.code)).one()


# --- lists ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    country: str | None = None
    kind: str | None = None
    language: str | None = None
    signed: bool | None = None
    ratified: bool | None = None


def _language_match(tag: str) -> ColumnElement[bool]:
    """A bare language matches every tag for it (en: en, en-GB); a longer tag matches only itself."""
    tag = codes.check_language_tag(tag, "language")
    if "-" in tag:
        return AuthorityLanguage.tag == tag
    return AuthorityLanguage.language == tag


def _treaty_filters(query: Select[*Ts], f: Filters) -> Select[*Ts]:
    # Outer-joined: a party without a treaty row reads as NULL dates, i.e. neither signed nor ratified.
    if f.signed is not None:
        signed = TreatyStatus.signature_date
        query = query.where(signed.is_not(None) if f.signed else signed.is_(None))
    if f.ratified is not None:
        ratified = TreatyStatus.instrument_date
        query = query.where(ratified.is_not(None) if f.ratified else ratified.is_(None))
    return query


def _party_code(session: Session, code: str) -> str:
    """The party code for a filter given as alpha-2 or alpha-3 (ISO, or an organization's own)."""
    code = code.upper()
    if len(code) == 2:
        return code
    found = codes.country(code)
    if found is not None:
        return found.code2
    return session.scalar(select(Party.code).where(Party.code3 == code)) or code


def list_parties(session: Session, f: Filters, after: str | None, limit: int) -> list[PartyRow]:
    """One page of parties with their treaty summary, in code order: one indexed query."""
    query = _party_rows()
    if f.country:
        query = query.where(Party.code == _party_code(session, f.country))
    if f.kind:
        query = query.where(Party.kind == f.kind)
    if f.language:
        query = query.where(
            exists(
                select(text("1"))
                .select_from(Authority)
                .join(AuthorityLanguage)
                .where(Authority.party_code == Party.code, _language_match(f.language))
            )
        )
    query = _treaty_filters(query, f)
    if after is not None:
        query = query.where(Party.code > after)
    return list(session.execute(query.order_by(Party.code).limit(limit)).all())


def list_authorities(session: Session, f: Filters, after: list[str] | None, limit: int) -> list[Authority]:
    """One page of authorities in (party, kind, name) order: the page query plus one for languages."""
    query = select(Authority).options(selectinload(Authority.language_rows))
    if f.signed is not None or f.ratified is not None:
        query = _treaty_filters(
            query.outerjoin(TreatyStatus, TreatyStatus.party_code == Authority.party_code), f
        )
    if f.country:
        query = query.where(Authority.party_code == _party_code(session, f.country))
    if f.kind:
        query = query.where(Authority.kind == f.kind)
    if f.language:
        query = query.where(
            exists(
                select(AuthorityLanguage.authority_id).where(
                    AuthorityLanguage.authority_id == Authority.id, _language_match(f.language)
                )
            )
        )
    if after is not None:
        query = query.where(tuple_(Authority.party_code, Authority.kind, Authority.name_key) > tuple_(*after))
    order = (Authority.party_code, Authority.kind, Authority.name_key)
    return list(session.scalars(query.order_by(*order).limit(limit)))


def authority_cursor_key(authority: Authority) -> list[str]:
    return [authority.party_code, authority.kind, authority.name_key]
