from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from cyberpact.accounts.service import PASSWORD_MAX, PASSWORD_MIN, USERNAME_PATTERN, username_problem
from cyberpact.config import MAX_TOKEN_DAYS
from cyberpact.kit.schemas import Strict

Role = Literal["officer", "supervisor", "central_authority", "contact_point", "auditor", "admin"]


def _username(value: str) -> str:
    # The service's rule, so the API and the command line refuse the same names in the same words.
    if (problem := username_problem(value)) is not None:
        raise PydanticCustomError("username", problem)
    return value


# Not stripped: "off2 " is refused, not quietly made into "off2", as on the command line.
Username = Annotated[
    str,
    StringConstraints(strip_whitespace=False),
    AfterValidator(_username),
    Field(json_schema_extra={"pattern": USERNAME_PATTERN}),
]
# Not stripped either: a password is kept exactly as typed, as the command line and the desk sign-in keep it;
# trimmed here only, " pass phrase " set through the API would be another password on every other way in.
Password = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
]
# A password given to sign in: checked against the stored hash, never against the rules for a new one.
GivenPassword = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=256)]


class UserCreate(Strict):
    username: Username
    display_name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    password: Password
    roles: list[Role] = Field(default_factory=list, max_length=6)
    timezone: str = Field("UTC", max_length=64)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    roles: list[Role]
    disabled: bool
    timezone: str
    created_at: datetime


class PasswordSet(Strict):
    password: Password


class RolesUpdate(Strict):
    roles: list[Role] = Field(max_length=6)


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=120)
    days: int | None = Field(None, ge=1, le=MAX_TOKEN_DAYS)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenIssued(TokenOut):
    token: str = Field(description="the secret; shown once, never stored")


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: GivenPassword
    token_name: str = Field("login", max_length=120)
    hours: int = Field(12, ge=1, le=24 * 30)
    code: str | None = Field(
        None, max_length=40, description="the second factor's current code or a recovery code, if enrolled"
    )
