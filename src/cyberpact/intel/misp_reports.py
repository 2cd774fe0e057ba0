"""MISP event reports, both ways.

An event report is an analyst's narrative (Markdown) attached to a MISP event. In STIX it is a ``note`` on
the event's ``report``: its name the note's ``abstract``, its text the ``content``, a deleted one a revoked
note. On export, the notes on the exported report come back as event reports; a note on anything else has
no place in a MISP event and is named as not carried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cyberpact.intel.misp_types import from_epoch, stix_uuid, text, to_epoch
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
            "id": f"note--{stix_uuid(er.get('uuid'), f'{event_uuid}:report:{name}:{n}')}",
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


def to_event_reports(
    objs: Sequence[Mapping[str, Any]],
    report_id: str | None,
    distribution_of: Callable[[Mapping[str, Any]], str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The event reports for the notes on ``report_id`` among ``objs``, and the notes not carried."""
    out: list[dict[str, Any]] = []
    skipped: list[str] = []
    for o in objs:
        if o.get("type") != "note":
            continue
        oid = str(o.get("id"))
        if report_id is None or report_id not in o.get("object_refs", []):
            skipped.append(f"{oid}: a note on anything but the event's report has no MISP form")
            continue
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
    return out, skipped
