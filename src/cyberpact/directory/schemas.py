"""API and file shapes of the directory, kept apart from the tables.

The ``*In`` models are both what the API accepts and the records of the import/export file, so that an
exported directory is exactly what an administrator could have typed. They check shape only (types,
lengths, vocabularies); ISO codes, language tags, time zones and cross-field rules are checked by the
service, which both the API and the importer go through.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from cyberpact.kit.schemas import Strict

Code2 = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Code3 = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
PartyKind = Literal["state", "regional_economic_integration_organization"]
AuthorityKind = Literal["central_authority", "contact_point_24_7", "competent_authority"]
Channel = Literal["direct", "diplomatic", "interpol", "email", "phone", "post", "cyberpact"]
InstrumentType = Literal["ratification", "acceptance", "approval", "accession"]
DualCriminality = Literal["required", "not_required", "coercive_measures_only"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Clock = Annotated[str, StringConstraints(pattern=r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
LanguageTag = Annotated[str, StringConstraints(min_length=2, max_length=64)]


class PartyIn(Strict):
    code: Code2 = Field(description="ISO 3166-1 alpha-2; for an organization, its own two-letter code")
    code3: Code3 | None = Field(None, description="ISO 3166-1 alpha-3; taken from ISO for a State")
    name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="default for a State: its ISO 3166-1 English short name",
    )
    kind: PartyKind = "state"
    members: list[Code2] = Field(
        default_factory=list,
        max_length=100,
        description="member States of a regional economic integration organization",
    )


class PartyUpdate(Strict):
    code3: Code3 | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    members: list[Code2] | None = Field(None, max_length=100)


class PartyOut(BaseModel):
    code: str
    code3: str
    name: str
    kind: PartyKind
    members: list[str]
    signature_date: date | None = None
    instrument_type: InstrumentType | None = None
    instrument_date: date | None = None


class PartyPage(BaseModel):
    items: list[PartyOut]
    next: str | None = None


class OfficeHours(Strict):
    days: list[Weekday] = Field(min_length=1, max_length=7)
    opens: Clock
    closes: Clock


class AuthorityFields(Strict):
    """Everything about an authority except its party; shared by creation, update and the file."""

    kind: AuthorityKind
    name: str = Field(min_length=1, max_length=300)
    address: str | None = Field(None, min_length=1, max_length=1000)
    phone: str | None = Field(None, max_length=50, pattern=r"^\+?[0-9][0-9 ()./-]{2,48}$")
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    web: str | None = Field(None, max_length=500, pattern=r"^https?://[^\s]+$")
    languages: list[LanguageTag] = Field(
        default_factory=list, max_length=20, description="BCP 47 tags, most preferred first"
    )
    channels: list[Channel] = Field(default_factory=list, max_length=7)
    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone of the office hours")
    always_open: bool | None = Field(None, description="default: true for a 24/7 point of contact only")
    office_hours: list[OfficeHours] = Field(default_factory=list, max_length=14)
    interpol_allowed: bool = Field(False, description="requests may be transmitted through INTERPOL")
    legal_requirements: Text | None = None
    procedural_requirements: Text | None = None
    encryption_required: bool | None = None
    e_signature_required: bool | None = None
    dual_criminality: DualCriminality | None = None
    use_limitations: Text | None = None
    source: str = Field(min_length=1, max_length=500, description="where this entry comes from")
    as_of: date = Field(description="the date the source was true")


class AuthorityIn(AuthorityFields):
    party: Code2


class AuthorityUpdate(Strict):
    """Only the fields given change; ``null`` clears an optional field."""

    kind: AuthorityKind | None = None
    name: str | None = Field(None, min_length=1, max_length=300)
    address: str | None = Field(None, min_length=1, max_length=1000)
    phone: str | None = Field(None, max_length=50, pattern=r"^\+?[0-9][0-9 ()./-]{2,48}$")
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    web: str | None = Field(None, max_length=500, pattern=r"^https?://[^\s]+$")
    languages: list[LanguageTag] | None = Field(None, max_length=20)
    channels: list[Channel] | None = Field(None, max_length=7)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    always_open: bool | None = None
    office_hours: list[OfficeHours] | None = Field(None, max_length=14)
    interpol_allowed: bool | None = None
    legal_requirements: Text | None = None
    procedural_requirements: Text | None = None
    encryption_required: bool | None = None
    e_signature_required: bool | None = None
    dual_criminality: DualCriminality | None = None
    use_limitations: Text | None = None
    source: str | None = Field(None, min_length=1, max_length=500)
    as_of: date | None = None


class AuthorityOut(BaseModel):
    id: uuid.UUID
    party: str
    kind: AuthorityKind
    name: str
    address: str | None
    phone: str | None
    email: str | None
    web: str | None
    languages: list[str]
    channels: list[Channel]
    timezone: str
    always_open: bool
    office_hours: list[OfficeHours]
    open_now: bool | None = Field(description="null when the office hours are not known")
    interpol_allowed: bool
    legal_requirements: str | None
    procedural_requirements: str | None
    encryption_required: bool | None
    e_signature_required: bool | None
    dual_criminality: DualCriminality | None
    use_limitations: str | None
    source: str
    as_of: date
    created_at: datetime
    updated_at: datetime


class AuthorityPage(BaseModel):
    items: list[AuthorityOut]
    next: str | None = None


class Statement(Strict):
    """A declaration or reservation, with the article it is made under."""

    article: str = Field(
        max_length=20,
        pattern=r"^[0-9]{1,2}(?:\([0-9a-z]{1,4}\))*$",
        description="e.g. 40 or 40(14) or 42(3)(b)",
    )
    text: Text


class TreatyStatusIn(Strict):
    signature_date: date | None = None
    instrument_type: InstrumentType | None = None
    instrument_date: date | None = Field(None, description="date the instrument was deposited")
    declarations: list[Statement] = Field(default_factory=list, max_length=50)
    reservations: list[Statement] = Field(default_factory=list, max_length=50)
    source: str = Field(min_length=1, max_length=500)
    as_of: date


class TreatyRecord(TreatyStatusIn):
    party: Code2


class TreatyStatusOut(TreatyStatusIn):
    party: str
    counted: bool = Field(description="whether the instrument counts towards the 40 of art. 65(1)")
    in_force_for_party: date | None
    convention_in_force: date | None
    updated_at: datetime


class NotCounted(BaseModel):
    party: str
    reason: str


class ConventionStatus(BaseModel):
    article: str = "65"
    instruments_required: int
    instruments_counted: int
    instruments_still_needed: int
    fortieth_instrument_date: date | None
    convention_in_force: date | None
    in_force_today: bool
    signatories: int
    not_counted: list[NotCounted]


class DirectoryDocument(Strict):
    """The import/export file in its JSON form."""

    format: Literal["cyberpact-directory"] = "cyberpact-directory"
    version: Literal[1] = 1
    parties: list[PartyIn] = Field(default_factory=list)
    authorities: list[AuthorityIn] = Field(default_factory=list)
    treaty_status: list[TreatyRecord] = Field(default_factory=list)
