"""Intel-specific failures, as members of the one error hierarchy."""

from __future__ import annotations

from cyberpact.kit.errors import CyberpactError, MalformedInput


class NotAcceptable(CyberpactError):
    """The Accept header names no media type this endpoint produces (TAXII 2.1 answers 406)."""

    code = "not_acceptable"
    status = 406
    title = "Not acceptable"


class BadNextToken(MalformedInput):
    """A ``next`` token that this server did not issue for this collection and query."""

    code = "bad_next"
