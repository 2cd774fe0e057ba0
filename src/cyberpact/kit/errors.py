"""The one error hierarchy of cyberpact.

Every expected failure is a ``CyberpactError`` subclass with a stable ``code`` (clients and tests key on
it, so it never changes once released) and an HTTP status. The API turns it into RFC 9457 problem details,
the CLI into one line on stderr and a non-zero exit. Anything else that escapes is a bug and answers 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from cyberpact.kit.i18n import N_, Phrase


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, pointing at the field that holds it."""

    field: str
    message: str  # English; a Phrase where the desk can say it in the reader's language
    code: str = "invalid"
    cite: str | None = None  # the convention article that requires the field, where one does

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "code": self.code, "message": self.message}
        if self.cite:
            out["cite"] = self.cite
        return out


_DATE = N_("{field}: not a valid date (YYYY-MM-DD)")
_DATETIME = N_("{field}: not a valid date and time")
_CHOICE = N_("{field}: must be one of {expected}")
_WHOLE_NUMBER = N_("{field}: must be a whole number")
_NUMBER = N_("{field}: must be a number")
_TRUE_OR_FALSE = N_("{field}: must be true or false")
_UUID = N_("{field}: not a valid identifier (UUID)")
_URL = N_("{field}: not a valid web address (URL)")
# The complaints of pydantic that people at the desk meet, by type: the desk says them in the reader's
# language, naming the field. Clients read pydantic's own words, and so does the desk for any other type.
_VALUE_PROBLEMS: Mapping[str, str] = {
    "missing": N_("{field}: a value is required"),
    "string_too_short": N_("{field}: at least {min_length} characters"),
    "string_too_long": N_("{field}: at most {max_length} characters"),
    "too_short": N_("{field}: at least {min_length} entries"),
    "too_long": N_("{field}: at most {max_length} entries"),
    "greater_than": N_("{field}: must be greater than {gt}"),
    "greater_than_equal": N_("{field}: must be at least {ge}"),
    "less_than": N_("{field}: must be less than {lt}"),
    "less_than_equal": N_("{field}: must be at most {le}"),
    "string_type": N_("{field}: must be text"),
    "string_pattern_mismatch": N_("{field}: not in the expected form"),
    "list_type": N_("{field}: must be a list"),
    "extra_forbidden": N_("{field}: not a field of this form"),
    "date_type": _DATE,
    "date_parsing": _DATE,
    "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": _DATE,
    "datetime_type": _DATETIME,
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "timezone_aware": N_("{field}: give the time with its time zone offset"),
    "literal_error": _CHOICE,
    "enum": _CHOICE,
    "int_type": _WHOLE_NUMBER,
    "int_parsing": _WHOLE_NUMBER,
    "int_from_float": _WHOLE_NUMBER,
    "float_type": _NUMBER,
    "float_parsing": _NUMBER,
    "bool_type": _TRUE_OR_FALSE,
    "bool_parsing": _TRUE_OR_FALSE,
    "uuid_type": _UUID,
    "uuid_parsing": _UUID,
    "url_type": _URL,
    "url_parsing": _URL,
    "url_scheme": N_("{field}: the address must begin with {expected_schemes}"),
}


def _value_problem(e: ErrorDetails, where: str) -> str:
    msgid = _VALUE_PROBLEMS.get(e["type"])
    if msgid is None:
        return str(e["msg"])
    params = {k: v for k, v in (e.get("ctx") or {}).items() if "{" + k + "}" in msgid}
    for key in ("expected", "expected_schemes"):  # "'a', 'b' or 'c'": the "or" is English
        if key in params:
            params[key] = ", ".join(str(params[key]).rsplit(" or ", 1))
    return Phrase(msgid, english=str(e["msg"]), field=where, **params)


def problems_of(exc: ValidationError, prefix: str = "", whole: str = "") -> list[Problem]:
    """The problems pydantic found, each at its field (``prefix`` + dotted path; ``whole`` for a problem
    with the input as a whole)."""
    problems = []
    for e in exc.errors():
        where = prefix + ".".join(str(p) for p in e["loc"]) or whole
        problems.append(Problem(where, _value_problem(e, where), "invalid"))
    return problems


@dataclass
class CyberpactError(Exception):
    """Base of every expected failure."""

    detail: str
    problems: list[Problem] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request failed"

    def __post_init__(self) -> None:
        super().__init__(self.detail)
        # (action, object_type, object_id) of a refused access the audit record must keep even though the
        # request's own transaction rolls back; set by :meth:`denying`.
        self.denied: tuple[str, str, str] | None = None

    def denying(self, action: str, object_type: str, object_id: object) -> CyberpactError:
        self.denied = (action, object_type, str(object_id))
        return self

    @property
    def public_detail(self) -> str:
        """What a client or a peer is told; :attr:`detail` may be for the operator only."""
        return self.detail

    @property
    def public_message(self) -> str:
        """The one-line message (``str``) as a client or a peer may read it: the public detail alone when
        the detail is for the operator only."""
        return str(self) if self.public_detail == self.detail else self.public_detail

    def __str__(self) -> str:
        if not self.problems:
            return self.detail
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"{self.detail}: {first.field}: {first.message}{more}"


class InvalidInput(CyberpactError):
    code = "invalid_input"
    status = 422
    title = "Invalid input"


class MalformedInput(CyberpactError):
    code = "malformed"
    status = 400
    title = "Malformed request"


class NotFound(CyberpactError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(CyberpactError):
    code = "conflict"
    status = 409
    title = "Conflict"


class AuthenticationRequired(CyberpactError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class PermissionDenied(CyberpactError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class TooManyAttempts(CyberpactError):
    code = "locked_out"
    status = 429
    title = "Too many attempts"


class MethodNotAllowed(CyberpactError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class PayloadTooLarge(CyberpactError):
    code = "too_large"
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(CyberpactError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


MISCONFIGURED = "the node is misconfigured; its operator has been told"


class ConfigurationError(CyberpactError):
    """The node cannot work as configured. Its detail names this node's settings (the key passphrase's,
    say), so it goes to the operator's log and command line, never to a client or a peer."""

    code = "configuration"
    status = 503  # the node, not the request, is at fault; a peer retries later
    title = "Configuration error"

    @property
    def public_detail(self) -> str:
        return MISCONFIGURED


class IntegrityFailure(CyberpactError):
    """Stored or received data failed a cryptographic or chain check."""

    code = "integrity"
    status = 422
    title = "Integrity check failed"
