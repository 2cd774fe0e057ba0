"""The base of every body the API accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from cyberpact.kit.text import first_unsafe


class Strict(BaseModel):
    """No field the model does not know, blanks trimmed, and no character that cannot be stored or
    printed (``kit.text``) anywhere in the body, nested free-form fields included: refused with the path
    of the string that holds it, before any service sees it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = first_unsafe(data)
        if found:
            raise ValueError(f"{found[0] or 'the body'} {found[1]}")
        return data
