"""The shape of the convention catalog (the TOML files under data/) and of what reads it."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FieldType = Literal[
    "text",
    "longtext",
    "email",
    "phone",
    "timezone",
    "language",
    "date",
    "integer",
    "boolean",
    "enum",
    "list",
    "grounds",
]
Side = Literal["requesting", "requested", "any"]
# Words that already say whose or which: a label starting with one takes no "the".
_DETERMINERS = frozenset({"a", "an", "the", "our", "your", "their", "its", "this", "these", "that", "those"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(Strict):
    field: str
    equals: str | bool | None = None  # absent: the condition holds when the field has any value


class FieldDef(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    label: str = ""
    type: FieldType
    required: bool = False
    required_if: Condition | None = None
    required_unless: Condition | None = None
    must_be: bool | None = None
    options: list[str] = Field(default_factory=list)
    options_from: str | None = None
    # What a person reads for each option (an option without one reads as written).
    option_labels: dict[str, str] = Field(default_factory=dict)
    min: int | None = None
    max: int | None = None
    # A date field only: how many days after today the date may be at most.
    max_days_ahead: int | None = Field(None, ge=1)
    cite: str
    message: str | None = None
    help: str | None = None

    @property
    def prompt(self) -> str:
        """What to do about the field when it is missing: its own message, else "give the <label>". A label
        that brings its own determiner ("Our reference") takes no article; one that is a sentence or a
        question has a message in the catalog."""
        if self.message:
            return self.message
        if not self.label:
            return "required"
        first, rest = self.label[:1], self.label[1:]
        # An acronym keeps its capitals: "IP addresses", not "iP addresses".
        label = self.label if rest[:1].isupper() else first.lower() + rest
        if label.split(maxsplit=1)[0] in _DETERMINERS:
            return f"give {label}"
        return f"give the {label}"


class Ground(Strict):
    id: str
    label: str
    cite: str


class Choice(Strict):
    id: str
    label: str


class Deadlines(Strict):
    acknowledge_hours: int | None = Field(None, ge=1)
    execute_days: int | None = Field(None, ge=1)
    min_preservation_days: int | None = Field(None, ge=1)
    default_preservation_days: int | None = Field(None, ge=1)
    reminder_days: list[int] = Field(default_factory=list)


class RequestType(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    label: str
    article: str
    channel: Literal["contact_point_24_7", "central_authority", "competent_authority"]
    summary: str
    grounds: list[str]
    actions: list[str]
    follow_up: list[str]
    # Steps the requested side takes only after consulting the requesting side (the Consult step, or a
    # consultation held outside the network and said in the step).
    consult_before: list[str] = Field(default_factory=list)
    # The article that asks for that consultation, cited when a step skips it.
    consult_cite: str = "art. 40 [parallel: UNTOC 18(26)]"
    emergency: bool = False
    deadlines: Deadlines = Field(default_factory=Deadlines)
    fields: list[FieldDef]


class Action(Strict):
    label: str
    from_: list[str] = Field(alias="from")
    to: str
    side: Side
    roles: list[str]
    message: bool
    four_eyes: bool = False
    fields: list[FieldDef] = Field(default_factory=list)


class Lifecycle(Strict):
    terminal: list[str]
    states: dict[str, str]
    actions: dict[str, Action]


class CatalogHead(Strict):
    version: str
    convention: str
    adopted: date  # by the UN General Assembly
    source: str
    header: list[FieldDef]
    grounds: list[Ground]
    mla_assistance: list[Choice]
