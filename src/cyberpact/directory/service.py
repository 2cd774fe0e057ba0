"""Parties, authorities and treaty status: validation and changes (the list pages are in queries.py).

Services take the caller's session and flush; the request, CLI command or startup owns the transaction.
Every change is audited. Shape is checked by the schemas; everything that needs a table or a rule
(ISO codes, BCP 47 tags, IANA zones, treaty dates, duplicates) is checked here, once, for the API and the
importer alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from cyberpact.audit import service as audit
from cyberpact.directory import codes
from cyberpact.directory import treaty as art65
from cyberpact.directory.models import Authority, AuthorityLanguage, Party, TreatyStatus
from cyberpact.directory.schemas import (
    AuthorityFields,
    AuthorityIn,
    AuthorityUpdate,
    PartyIn,
    PartyUpdate,
    TreatyStatusIn,
)
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Lock, advisory_lock
from cyberpact.kit.errors import Conflict, InvalidInput, NotFound, Problem
from cyberpact.kit.time import check_timezone, utcnow

REIO = "regional_economic_integration_organization"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _invalid(field: str, message: str, title: str = "Invalid directory entry") -> InvalidInput:
    return InvalidInput(title, [Problem(field, message)])


# --- parties ---------------------------------------------------------------------------------------


def party_values(data: PartyIn) -> dict[str, Any]:
    """Check a party against ISO 3166-1 and return its column values."""
    if data.kind == "state":
        iso = codes.check_country(data.code, "code")
        if data.code3 is not None and data.code3 != iso.code3:
            raise _invalid(
                "code3", f"the ISO 3166-1 alpha-3 code of {iso.code2} is {iso.code3}, not {data.code3}"
            )
        if data.members:
            raise _invalid("members", "only a regional economic integration organization has members")
        return {
            "code": iso.code2,
            "code3": iso.code3,
            "name": data.name or iso.name,
            "kind": "state",
            "members": [],
        }
    # An organization has no ISO 3166-1 assignment (the EU's "EU" is only "exceptionally reserved"),
    # so its codes must at least never shadow a country's.
    if codes.country(data.code) is not None:
        raise _invalid("code", f"{data.code} is a country's ISO 3166-1 code, not an organization's")
    if data.code3 is None:
        raise _invalid("code3", "an organization needs a three-letter code of its own")
    if codes.country(data.code3) is not None:
        raise _invalid("code3", f"{data.code3} is a country's ISO 3166-1 alpha-3 code")
    if data.name is None:
        raise _invalid("name", "an organization needs a name")
    if not data.members:
        raise _invalid("members", "list the organization's member States: entry into force counts them")
    for i, member in enumerate(data.members):
        codes.check_country(member, f"members.{i}")
    if len(set(data.members)) != len(data.members):
        raise _invalid("members", "a member State is listed twice")
    return {
        "code": data.code,
        "code3": data.code3,
        "name": data.name,
        "kind": REIO,
        "members": sorted(data.members),
    }


def party_record(party: Party) -> PartyIn:
    return PartyIn.model_validate(
        {
            "code": party.code,
            "code3": party.code3,
            "name": party.name,
            "kind": party.kind,
            "members": list(party.members),
        }
    )


def _check_code3_free(session: Session, code: str, code3: str) -> None:
    other = session.scalar(select(Party.code).where(Party.code3 == code3, Party.code != code))
    if other is not None:
        raise Conflict(
            "Duplicate party code", [Problem("code3", f"{code3} is already used by {other}", "duplicate")]
        )


def save_party(
    session: Session, actor: Actor, values: dict[str, Any], existing: Party | None
) -> tuple[Party, str]:
    """Insert or update one party; returns it and "created", "updated" or "unchanged"."""
    if values["kind"] == REIO:
        _check_code3_free(session, values["code"], values["code3"])
    now = utcnow()
    if existing is None:
        party = Party(**values, created_at=now, updated_at=now)
        session.add(party)
        session.flush()
        audit.record(
            session,
            actor,
            "directory.party.create",
            "party",
            party.code,
            detail={"kind": party.kind, "name": party.name},
        )
        return party, "created"
    if existing.kind != values["kind"]:
        raise _invalid("kind", f"{existing.code} is already a {existing.kind}; the kind cannot change")
    changed = _assign(existing, values)
    if not changed:
        return existing, "unchanged"
    existing.updated_at = now
    session.flush()
    audit.record(session, actor, "directory.party.update", "party", existing.code, detail={"fields": changed})
    return existing, "updated"


def _assign(obj: Any, values: dict[str, Any]) -> list[str]:
    changed = sorted(k for k, v in values.items() if getattr(obj, k) != v)
    for k in changed:
        setattr(obj, k, values[k])
    return changed


def get_party(session: Session, code: str) -> Party:
    code = code.upper()
    party = (
        session.get(Party, code)
        if len(code) == 2
        else session.scalar(select(Party).where(Party.code3 == code))
    )
    if party is None:
        raise NotFound(f"No party {code} in the directory")
    return party


def create_party(session: Session, actor: Actor, data: PartyIn) -> Party:
    values = party_values(data)
    if session.get(Party, values["code"]) is not None:
        raise Conflict(
            "Party exists", [Problem("code", f"{values['code']} is already in the directory", "duplicate")]
        )
    return save_party(session, actor, values, None)[0]


def update_party(session: Session, actor: Actor, code: str, patch: PartyUpdate) -> Party:
    party = get_party(session, code)
    merged = party_record(party).model_copy(update=patch.model_dump(exclude_unset=True))
    save_party(session, actor, party_values(merged), party)
    return party


# --- authorities ------------------------------------------------------------------------------------


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def authority_values(data: AuthorityFields, party_code: str) -> tuple[dict[str, Any], list[str]]:
    """Check an authority and return its column values and its canonical language tags."""
    languages = [codes.check_language_tag(t, f"languages.{i}") for i, t in enumerate(data.languages)]
    if len(set(languages)) != len(languages):
        raise _invalid("languages", "a language is listed twice")
    if len(set(data.channels)) != len(data.channels):
        raise _invalid("channels", "a channel is listed twice")
    if "interpol" in data.channels and not data.interpol_allowed:
        raise _invalid("interpol_allowed", "the INTERPOL channel is listed but interpol_allowed is false")
    check_timezone(data.timezone, "timezone")
    hours = [h.model_dump() for h in data.office_hours]
    for i, h in enumerate(hours):
        if len(set(h["days"])) != len(h["days"]):
            raise _invalid(f"office_hours.{i}.days", "a day is listed twice")
        if _minutes(h["opens"]) >= _minutes(h["closes"]):
            raise _invalid(f"office_hours.{i}.closes", "closes must be later than opens")
    always_open = data.always_open
    if data.kind == "contact_point_24_7":
        if always_open is False:
            raise _invalid("always_open", "a 24/7 point of contact is always open (art. 41)")
        always_open = True
    if always_open and hours:
        raise _invalid("office_hours", "an authority that is always open has no office hours")
    values = data.model_dump(exclude={"party", "languages", "office_hours", "always_open"})
    values.update(
        party_code=party_code,
        name_key=data.name.casefold(),
        office_hours=hours,
        always_open=bool(always_open),
        channels=list(data.channels),
    )
    return values, languages


def authority_record(authority: Authority) -> AuthorityIn:
    return AuthorityIn.model_validate(
        {
            "party": authority.party_code,
            **{k: getattr(authority, k) for k in AuthorityFields.model_fields if k != "languages"},
            "languages": authority.languages,
        }
    )


def _language_rows(tags: Sequence[str]) -> list[AuthorityLanguage]:
    return [
        AuthorityLanguage(position=i, tag=t, language=codes.primary_subtag(t)) for i, t in enumerate(tags)
    ]


def _flush_unique(session: Session, values: dict[str, Any]) -> None:
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer won the race the pre-check could not see
        raise _duplicate(values) from exc


def _duplicate(values: dict[str, Any]) -> Conflict:
    return Conflict(
        "Duplicate authority",
        [
            Problem(
                "name",
                f"{values['party_code']} already has a {values['kind']} named {values['name']!r}",
                "duplicate",
            )
        ],
    )


def save_authority(
    session: Session, actor: Actor, values: dict[str, Any], languages: list[str], existing: Authority | None
) -> tuple[Authority, str]:
    """Insert or update one authority (its language rows loaded); returns it and what happened."""
    now = utcnow()
    if existing is None:
        authority = Authority(
            **values, created_at=now, updated_at=now, language_rows=_language_rows(languages)
        )
        session.add(authority)
        _flush_unique(session, values)
        audit.record(
            session,
            actor,
            "directory.authority.create",
            "authority",
            authority.id,
            detail={"party": values["party_code"], "kind": values["kind"], "name": values["name"]},
        )
        return authority, "created"
    changed = _assign(existing, values)
    if existing.languages != languages:
        changed = sorted([*changed, "languages"])
        # Delete the old rows before inserting new ones with the same (authority, position) keys.
        existing.language_rows.clear()
        session.flush()
        existing.language_rows.extend(_language_rows(languages))
    if not changed:
        return existing, "unchanged"
    existing.updated_at = now
    _flush_unique(session, values)
    audit.record(
        session, actor, "directory.authority.update", "authority", existing.id, detail={"fields": changed}
    )
    return existing, "updated"


def _authority_by_key(session: Session, party_code: str, kind: str, name: str) -> Authority | None:
    return session.scalar(
        select(Authority)
        .options(selectinload(Authority.language_rows))
        .where(
            Authority.party_code == party_code, Authority.kind == kind, Authority.name_key == name.casefold()
        )
    )


def _require_party(session: Session, code: str, field: str = "party") -> Party:
    party = session.get(Party, code)
    if party is None:
        known = "an ISO 3166-1 code" if codes.country(code) else "not an ISO 3166-1 alpha-2 code"
        raise _invalid(field, f"{code} ({known}) is not a party in the directory: add the party first")
    return party


def get_authority(session: Session, authority_id: uuid.UUID) -> Authority:
    authority = session.scalar(
        select(Authority).options(selectinload(Authority.language_rows)).where(Authority.id == authority_id)
    )
    if authority is None:
        raise NotFound(f"No authority {authority_id}")
    return authority


def create_authority(session: Session, actor: Actor, data: AuthorityIn) -> Authority:
    _require_party(session, data.party)
    values, languages = authority_values(data, data.party)
    if _authority_by_key(session, data.party, data.kind, data.name) is not None:
        raise _duplicate(values)
    return save_authority(session, actor, values, languages, None)[0]


def update_authority(
    session: Session, actor: Actor, authority_id: uuid.UUID, patch: AuthorityUpdate
) -> Authority:
    authority = get_authority(session, authority_id)
    changes = patch.model_dump(exclude_unset=True)
    for required in ("kind", "name", "timezone", "source", "as_of", "interpol_allowed"):
        if required in changes and changes[required] is None:
            raise _invalid(required, "cannot be cleared")
    for listed in ("languages", "channels", "office_hours"):
        if listed in changes and changes[listed] is None:
            changes[listed] = []
    # A kind change keeps always_open derived unless the caller sets it.
    current = authority_record(authority).model_dump()
    if "kind" in changes and "always_open" not in changes:
        current["always_open"] = None
    merged = AuthorityIn.model_validate({**current, **changes})
    values, languages = authority_values(merged, authority.party_code)
    other = _authority_by_key(session, authority.party_code, merged.kind, merged.name)
    if other is not None and other.id != authority.id:
        raise _duplicate(values)
    return save_authority(session, actor, values, languages, authority)[0]


def delete_authority(session: Session, actor: Actor, authority_id: uuid.UUID) -> None:
    authority = get_authority(session, authority_id)
    detail = {"party": authority.party_code, "kind": authority.kind, "name": authority.name}
    session.delete(authority)
    session.flush()
    audit.record(session, actor, "directory.authority.delete", "authority", authority_id, detail=detail)


def is_open(authority: Authority, at: datetime) -> bool | None:
    """Whether the authority is open at ``at`` in its own time zone; None when its hours are unknown."""
    if authority.always_open:
        return True
    if not authority.office_hours:
        return None
    local = at.astimezone(ZoneInfo(authority.timezone))
    day, minute = _WEEKDAYS[local.weekday()], local.hour * 60 + local.minute
    return any(
        day in h["days"] and _minutes(h["opens"]) <= minute < _minutes(h["closes"])
        for h in authority.office_hours
    )


# --- treaty status ----------------------------------------------------------------------------------


# A date someone enters was "today" where they are: up to a day ahead of this node's UTC date (Kiribati is
# UTC+14), never more.
_ZONE_LEEWAY = timedelta(days=1)


def treaty_values(data: TreatyStatusIn) -> dict[str, Any]:
    """Check the dates of a party's signature and instrument against each other, art. 64 and the calendar:
    the one check of every way a treaty status comes in (the API, the desk, ``directory import``)."""
    sig, kind, deposited = data.signature_date, data.instrument_type, data.instrument_date
    now = today()
    latest = now + _ZONE_LEEWAY
    # An instrument counts towards entry into force (art. 65) once deposited, a signature makes a
    # signatory once signed: one dated after the source's own date, or still to come, is an announcement,
    # and counting it would bring the convention into force early.
    problems = []
    for name, when in (("signature_date", sig), ("instrument_date", deposited)):
        if when is not None and when > latest:
            problems.append(
                Problem(name, f"{when} is still to come (today is {now}); record it once it is done")
            )
        elif when is not None and when > data.as_of:
            problems.append(
                Problem(name, f"{when} is after the date the source was true (as_of {data.as_of})")
            )
    if data.as_of > latest:
        problems.append(Problem("as_of", f"{data.as_of} is still to come (today is {now})"))
    if problems:
        raise InvalidInput("Invalid directory entry", problems)
    if (kind is None) != (deposited is None):
        missing = "instrument_date" if deposited is None else "instrument_type"
        raise _invalid(missing, "give both the instrument type and the date of its deposit, or neither")
    if sig is not None and not art65.SIGNATURE_OPENS <= sig <= art65.SIGNATURE_CLOSES:
        raise _invalid(
            "signature_date",
            f"the convention is open for signature from "
            f"{art65.SIGNATURE_OPENS} to {art65.SIGNATURE_CLOSES} (art. 64)",
        )
    if kind is not None and kind != "accession" and sig is None:
        raise _invalid(
            "signature_date", f"{kind} follows a signature; a State that did not sign accedes (art. 64)"
        )
    if deposited is not None:
        if deposited < art65.SIGNATURE_OPENS:
            raise _invalid(
                "instrument_date",
                f"no instrument could be deposited before {art65.SIGNATURE_OPENS} (art. 64)",
            )
        if sig is not None and deposited < sig:
            raise _invalid(
                "instrument_date", f"the {kind} ({deposited}) is dated before the signature ({sig})"
            )
    return data.model_dump(exclude={"party"})


def treaty_record(row: TreatyStatus) -> TreatyStatusIn:
    return TreatyStatusIn.model_validate({k: getattr(row, k) for k in TreatyStatusIn.model_fields})


def save_treaty(
    session: Session, actor: Actor, party: Party, values: dict[str, Any], existing: TreatyStatus | None
) -> tuple[TreatyStatus, str]:
    now = utcnow()
    if existing is None:
        row = TreatyStatus(party_code=party.code, **values, updated_at=now)
        session.add(row)
        outcome = "created"
        changed = sorted(k for k, v in values.items() if v not in (None, []))
    else:
        row, changed = existing, _assign(existing, values)
        if not changed:
            return row, "unchanged"
        row.updated_at = now
        outcome = "updated"
    session.flush()
    audit.record(
        session,
        actor,
        "directory.treaty.set",
        "treaty_status",
        party.code,
        detail={
            "fields": changed,
            "signature_date": values["signature_date"],
            "instrument_type": values["instrument_type"],
            "instrument_date": values["instrument_date"],
        },
    )
    return row, outcome


def get_treaty(session: Session, code: str) -> TreatyStatus:
    party = get_party(session, code)
    row = session.get(TreatyStatus, party.code)
    if row is None:
        raise NotFound(f"No treaty status recorded for {party.code}")
    return row


def set_treaty(session: Session, actor: Actor, code: str, data: TreatyStatusIn) -> TreatyStatus:
    party = get_party(session, code)
    return save_treaty(session, actor, party, treaty_values(data), session.get(TreatyStatus, party.code))[0]


def entry_into_force(session: Session) -> art65.EntryIntoForce:
    rows = session.execute(
        select(Party.code, Party.kind, TreatyStatus.instrument_date)
        .join(TreatyStatus, TreatyStatus.party_code == Party.code)
        .where(TreatyStatus.instrument_date.is_not(None))
    )
    return art65.entry_into_force(
        art65.Instrument(code, deposited, counts=kind != REIO)
        for code, kind, deposited in rows
        if deposited is not None
    )


@dataclass(frozen=True)
class ConventionView:
    status: art65.EntryIntoForce
    signatories: int


def convention(session: Session) -> ConventionView:
    signed = session.scalar(
        select(func.count()).select_from(TreatyStatus).where(TreatyStatus.signature_date.is_not(None))
    )
    return ConventionView(entry_into_force(session), int(signed or 0))


def today() -> date:
    return utcnow().date()


# --- seed -------------------------------------------------------------------------------------------


def load_seed_if_empty(session: Session) -> bool:
    """Load the shipped signatories and sample authorities on a node's first start; True if it did.

    Several API processes may start together on one PostgreSQL database: they queue on an advisory
    lock so that only the first loads. SQLite writers already serialise on BEGIN IMMEDIATE.
    """
    advisory_lock(session, Lock.DIRECTORY_SEED)
    if session.scalar(select(Party.code).limit(1)) is not None:
        return False
    # Imported here because the importer is built on this module's functions.
    from cyberpact.directory import io
    from cyberpact.kit.actor import SYSTEM

    io.import_document(session, SYSTEM, io.seed_document())
    return True
