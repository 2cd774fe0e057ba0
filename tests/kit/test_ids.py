"""Ids taken from people, peers and URLs: one written form, everything else is no id."""

from __future__ import annotations

import uuid

import pytest

from cyberpact.kit.ids import parse_uuid

ID = "0b5a6c1e-1111-4222-8333-944455556666"


@pytest.mark.parametrize("text", [ID, ID.upper(), uuid.UUID(ID)])
def test_the_written_form_in_either_case(text: str | uuid.UUID) -> None:
    assert parse_uuid(text) == uuid.UUID(ID)


@pytest.mark.parametrize(
    "hostile",
    [
        "{" + ID + "}",
        "urn:uuid:" + ID,
        ID.replace("-", ""),  # what a paper file number of 32 hex digits looks like
        "0-b5a6c1e1111422283339444555566-66",  # the standard parser drops hyphens wherever they are
        "\u0660b5a6c1e-1111-4222-8333-944455556666",  # an Arabic-Indic zero, which int() reads as 0
        ID + "\n",
        " " + ID,
        ID[:-1],
        ID + "0",
        "../" + ID,
        ID[:8] + "-1111-4222-8333-94445555666g",
        "",
        None,
        7,
        uuid.UUID(ID).int,
        uuid.UUID(ID).bytes,
        [ID],
        {"id": ID},
    ],
)
def test_anything_else_is_no_id(hostile: object) -> None:
    assert parse_uuid(hostile) is None
