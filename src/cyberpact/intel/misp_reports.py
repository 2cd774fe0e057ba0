"""MISP event reports, both ways.

An event report is an analyst's narrative (Markdown) attached to a MISP event. In STIX it is a ``note`` on
the event's ``report``: its name the note's ``abstract``, its text the ``content``, a deleted one a revoked
note. On export, the notes on the exported report come back as event reports, but those that came from
MISP analyst data (``misp_analyst``), which go back as what they were.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cyberpact.intel.misp_types import ANALYST_DATA, from_epoch, stix_uuid, text, to_epoch
from cyberpact.intel.stix import format_timestamp

# A report is prose, far longer than any attribute value; one beyond this is refused on its own.
MAX_CONTENT = 1_000_000


def to_notes(
    reports: Any,
    *,
    report_id: str,
    event_uuid: str,
    creator: str,
    fallback: datetime,
    markings_of: Callable[[Mapping[str, Any]], list[str]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The notes for an event's ``EventReport`` list, and what was not carried."""
    notes: list[dict[str, Any]] = []
    skipped: list[str] = []
    if reports is None:
        return notes, skipped
    if not isinstance(reports, list):
        return notes, ["EventReport is not a list; no event report is carried"]
    for n, er in enumerate(reports):
        label = f"event report {text(er.get('uuid')) if isinstance(er, dict) else ''} #{n + 1}"
        if not isinstance(er, dict):
            skipped.append(f"{label}: not an event report object")
            continue
        content = er.get("content")
        if not isinstance(content, str) or not content.strip():
            skipped.append(f"{label}: no content")
            continue
        if len(content) > MAX_CONTENT:
            skipped.append(f"{label}: longer than {MAX_CONTENT:,} characters")
            continue
        stamp = format_timestamp(from_epoch(er.get("timestamp")) or fallback)
        name = text(er.get("name")).strip()
        note: dict[str, Any] = {
            "type": "note",
            "spec_version": "2.1",
            "id": f"note--{note_uuid(er, event_uuid, n)}",
            "created": stamp,
            "modified": stamp,
            "content": content,
            "object_refs": [report_id],
            "created_by_ref": creator,
        }
        if name:
            note["abstract"] = name[:1000]
        markings = markings_of(er)
        if markings:
            note["object_marking_refs"] = markings
        if er.get("deleted") in (True, 1, "1", "true", "True"):
            note["revoked"] = True
        notes.append(note)
    return notes, skipped


def note_uuid(er: Mapping[str, Any], event_uuid: str, n: int) -> str:
    """The uuid of the note the ``n``-th event report of an event becomes."""
    return stix_uuid(er.get("uuid"), f"{event_uuid}:report:{text(er.get('name')).strip()}:{n}")


def is_event_report(o: Mapping[str, Any], report_id: str | None) -> bool:
    """A note on the event's report that is not analyst data: an event report in MISP."""
    return (
        o.get("type") == "note"
        and not o.get(ANALYST_DATA)
        and report_id is not None
        and report_id in o.get("object_refs", [])
    )


def to_event_reports(
    objs: Sequence[Mapping[str, Any]],
    report_id: str | None,
    distribution_of: Callable[[Mapping[str, Any]], str],
) -> list[dict[str, Any]]:
    """The event reports for the notes on ``report_id`` among ``objs`` (but analyst data: any other note
    goes to ``misp_analyst``)."""
    out: list[dict[str, Any]] = []
    for o in objs:
        if not is_event_report(o, report_id):
            continue
        oid = str(o.get("id"))
        epoch = to_epoch(o.get("modified") or o.get("created")) or "0"
        out.append(
            {
                "uuid": oid.partition("--")[2],
                "name": str(o.get("abstract") or "Note"),
                "content": str(o.get("content", "")),
                "timestamp": epoch,
                "distribution": distribution_of(o),
                "deleted": o.get("revoked") is True,
            }
        )
    return out
