"""MISP analyst data (MISP 2.5: ``Note``, ``Opinion``, ``Relationship``), both ways.

Analysts in MISP attach short notes, opinions (a confidence from 0 to 100 with a comment) and typed
relationships to an event, an attribute, an object, an event report or to another piece of analyst data.
STIX 2.1 has a domain object for each: a ``note`` (``content``, ``authors``, ``lang``), an ``opinion`` (a
five-step scale with an ``explanation``) and a ``relationship``, each pointing at what the MISP item became.

* The opinion's number rides along as ``x_misp_opinion`` so that it comes back exactly; the scale step is
  the fifth of 0-100 it falls in (0-20 strongly disagree ... 81-100 strongly agree), and an opinion from
  elsewhere goes to MISP as the middle of its step.
* An item MISP keeps in the organisation (distribution 0 or a sharing group) is TLP:RED here; any other
  is marked as strictly as what it is about: a note says as much as the thing it annotates.
* The organisation that wrote it (``Orgc``) is its creator; without one, the event's.
* A relationship needs both ends in the event; one to anything else is named as not carried.

The objects this module writes carry ``x_misp_analyst_data`` so that the way back tells them from an
event report (also a note, on the report) and a false-positive sighting (also a disagreeing opinion).
Analyst data nests (an opinion on a note); it is read to ``MAX_DEPTH`` levels, never further.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cyberpact.intel.markings import KNOWN_TLP, TLP_ORDER
from cyberpact.intel.misp_reports import MAX_CONTENT
from cyberpact.intel.misp_types import ANALYST_DATA, from_epoch, from_iso, stix_uuid, text
from cyberpact.intel.stix import format_timestamp, parse_timestamp

KINDS = ("Note", "Opinion", "Relationship")
MAX_DEPTH = 4
MARK = ANALYST_DATA
# The five steps of STIX's opinion scale over MISP's 0-100, and the number each step goes back to.
_STEPS = ("strongly-disagree", "disagree", "neutral", "agree", "strongly-agree")
_MIDDLE = {step: 10 + 20 * n for n, step in enumerate(_STEPS)}
_DISAGREE = ("strongly-disagree", "disagree")
_LANG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}")
_NOT_A_RELATIONSHIP_TYPE = re.compile(r"[^a-z0-9-]+")
_MAX_AUTHORS = 1000


def step(opinion: int) -> str:
    """The STIX opinion for MISP's 0-100."""
    return _STEPS[min(max(opinion - 1, 0) // 20, 4)]


@dataclass(frozen=True)
class Holder:
    """Something MISP hangs analyst data on, and what it became: ``target`` (a STIX id), the markings of
    analyst data on it (``markings_of``, given the chain of analyst items from the one marked up to the
    holder: one kept in the organisation keeps all below it there too), and how to name it in what is not
    carried."""

    item: Mapping[str, Any]
    target: str
    markings_of: Callable[[Sequence[Mapping[str, Any]]], list[str]]
    label: str


class AnalystIn:
    """The STIX objects for the analyst data of one event, read once every attribute and object has its
    STIX id (``resolve``: a MISP uuid -> the STIX id it became), since a relationship may point forward."""

    def __init__(
        self,
        *,
        creator: str,
        fallback: datetime,
        resolve: Callable[[str], str | None],
        marked: Callable[[str], list[str]],
        organisation: Callable[[Any, list[str]], str | None],
    ) -> None:
        self.creator = creator
        self.fallback = fallback
        self.resolve = resolve
        self.marked = marked
        self.organisation = organisation
        self.objects: list[dict[str, Any]] = []
        self.skipped: list[str] = []

    def add(self, holder: Holder, depth: int = 1) -> None:
        for kind in KINDS:
            found = holder.item.get(kind)
            if found is None:
                continue
            if not isinstance(found, list):
                self.skipped.append(f"{holder.label}: {kind} is not a list; not carried")
                continue
            for n, entry in enumerate(found):
                label = f"{holder.label} {kind.lower()} {_uuid_text(entry) or f'#{n + 1}'}"
                if not isinstance(entry, dict):
                    self.skipped.append(f"{label}: not an analyst data object")
                    continue
                if depth > MAX_DEPTH:
                    self.skipped.append(f"{label}: nested deeper than {MAX_DEPTH} levels; not carried")
                    continue
                try:
                    obj = self._convert(kind, entry, holder)
                except ValueError as exc:
                    self.skipped.append(f"{label}: {exc}")
                    continue
                self.objects.append(obj)
                self.add(Holder(entry, obj["id"], _within(holder.markings_of, entry), label), depth + 1)

    def _convert(self, kind: str, entry: Mapping[str, Any], holder: Holder) -> dict[str, Any]:
        markings = holder.markings_of([entry])
        created = _when(entry.get("created")) or self.fallback
        modified = max(_when(entry.get("modified")) or created, created)
        salt = f"{holder.target}|{kind}|{n_text(entry)}"
        obj: dict[str, Any] = {
            "type": kind.lower(),
            "spec_version": "2.1",
            "id": f"{kind.lower()}--{stix_uuid(entry.get('uuid'), salt)}",
            "created": format_timestamp(created),
            "modified": format_timestamp(modified),
        }
        if kind == "Note":
            content = entry.get("note")
            if not isinstance(content, str) or not content.strip():
                raise ValueError("a note without text; not carried")
            if len(content) > MAX_CONTENT:
                raise ValueError(f"a note longer than {MAX_CONTENT:,} characters; not carried")
            obj.update(content=content, object_refs=[holder.target])
            lang = text(entry.get("language"))
            if _LANG.fullmatch(lang):
                obj["lang"] = lang
        elif kind == "Opinion":
            raw = entry.get("opinion")
            digits = str(raw).strip() if isinstance(raw, int | str) and not isinstance(raw, bool) else ""
            value = int(digits) if digits.isascii() and digits.isdigit() else -1
            if not 0 <= value <= 100:
                raise ValueError(f"opinion {str(raw)[:20]!r} is not a number from 0 to 100; not carried")
            obj.update(opinion=step(value), object_refs=[holder.target], x_misp_opinion=value)
            comment = entry.get("comment")
            if isinstance(comment, str) and comment.strip():
                obj["explanation"] = comment[:MAX_CONTENT]
        else:
            related = self.resolve(text(entry.get("related_object_uuid")).lower())
            if related is None:
                raise ValueError(
                    f"what it relates to ({text(entry.get('related_object_uuid'))[:40] or 'nothing'})"
                    " is not carried from this event, so neither is the relationship"
                )
            misp_type = text(entry.get("relationship_type"))
            rel_type = _NOT_A_RELATIONSHIP_TYPE.sub("-", misp_type.lower()).strip("-") or "related-to"
            obj.update(relationship_type=rel_type, source_ref=holder.target, target_ref=related)
            # It names both ends: marked as the stricter of the two.
            markings = stricter(markings, self.marked(related))
            if rel_type != misp_type:
                obj["x_misp_relationship_type"] = misp_type
        authors = text(entry.get("authors")).strip()
        if authors and kind != "Relationship":
            obj["authors"] = [authors[:_MAX_AUTHORS]]
        # Only now that the item is carried: an identity nothing points at would be noise.
        obj["created_by_ref"] = self.organisation(entry.get("Orgc"), markings) or self.creator
        if markings:
            obj["object_marking_refs"] = markings
        obj[MARK] = True
        return obj


def stricter(a: list[str], b: list[str]) -> list[str]:
    """Of two lists of markings, the one with the stricter TLP (``a`` when they tie)."""
    return b if _tlp_rank(b) > _tlp_rank(a) else a


def _tlp_rank(markings: list[str]) -> int:
    return max((TLP_ORDER.index(KNOWN_TLP[m]) for m in markings if m in KNOWN_TLP), default=-1)


def _within(
    markings_of: Callable[[Sequence[Mapping[str, Any]]], list[str]], parent: Mapping[str, Any]
) -> Callable[[Sequence[Mapping[str, Any]]], list[str]]:
    return lambda chain: markings_of([*chain, parent])


def n_text(entry: Mapping[str, Any]) -> str:
    """What an entry without a uuid is named by, for a stable id."""
    return "|".join(text(entry.get(k)) for k in ("note", "opinion", "comment", "related_object_uuid"))


def _uuid_text(entry: Any) -> str:
    return text(entry.get("uuid"))[:40] if isinstance(entry, dict) else ""


def _when(value: Any) -> datetime | None:
    """MISP writes analyst data times as its database does ("2024-06-12 12:30:50", UTC), some exports as
    ISO 8601 with an offset, older ones as epoch seconds."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return from_epoch(value)
    return from_iso(value)


# ------------------------------------------------------------------------------------------------ export


def is_false_positive(o: Mapping[str, Any]) -> bool:
    """A disagreeing opinion from anywhere but MISP's analyst data: a false-positive sighting in MISP."""
    return o.get("type") == "opinion" and o.get("opinion") in _DISAGREE and not o.get(MARK)


@dataclass
class Place:
    """Where analyst data about one STIX id goes in the MISP event: the dict to append to and the MISP
    type and uuid of what it is about (``object_type``, ``object_uuid``)."""

    container: dict[str, Any]
    misp_type: str
    misp_uuid: str


def to_misp(
    objs: Sequence[Mapping[str, Any]],
    places: dict[str, Place],
    *,
    carried_elsewhere: Callable[[Mapping[str, Any]], bool],
    distribution_of: Callable[[Mapping[str, Any]], str],
    by_id: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Append the notes, opinions and relationships among ``objs`` as MISP analyst data to the places of
    what they are about (``places``: STIX id -> where; an item placed here is itself a place for what is
    about it). Those ``carried_elsewhere`` (event reports, false positives, object references) are left
    alone. Returns what could not be carried."""
    skipped: list[str] = []
    pending = []
    for o in objs:
        if o.get("type") not in ("note", "opinion", "relationship") or carried_elsewhere(o):
            continue
        if o.get("revoked") is True:
            # MISP analyst data has no deleted flag: the withdrawn item must not go out as standing.
            skipped.append(f"{o.get('id')}: revoked, and MISP analyst data cannot say so; not carried")
            continue
        pending.append(o)
    # Parents before what is about them: each round places what it can; an item whose target never
    # gets a place (outside the export, or a cycle of notes about each other) is named at the end.
    for _ in range(MAX_DEPTH + 1):
        later = []
        for o in pending:
            target = _about(o)
            place = places.get(target)
            if place is None:
                later.append(o)
                continue
            entry = _entry(o, place, places, distribution_of, by_id)
            if entry is None:
                skipped.append(
                    f"{o.get('id')}: {o.get('relationship_type')} from {target} to {o.get('target_ref')} has"
                    " no MISP form (its target did not become part of the MISP event)"
                )
                continue
            kind = str(o["type"]).capitalize()
            place.container.setdefault(kind, []).append(entry)
            places[str(o["id"])] = Place(entry, kind, entry["uuid"])
        if len(later) == len(pending):
            break
        pending = later
    for o in pending:
        if o.get("type") == "relationship":
            skipped.append(
                f"{o.get('id')}: {o.get('relationship_type')} from {_about(o)} to {o.get('target_ref')} has"
                " no MISP form (its source did not become part of the MISP event)"
            )
        else:
            skipped.append(f"{o.get('id')}: what it is about ({_about(o)}) is not in the MISP event")
    return skipped


def _about(o: Mapping[str, Any]) -> str:
    if o.get("type") == "relationship":
        return str(o.get("source_ref"))
    refs = o.get("object_refs") or [None]
    return str(refs[0])


def _entry(
    o: Mapping[str, Any],
    place: Place,
    places: Mapping[str, Place],
    distribution_of: Callable[[Mapping[str, Any]], str],
    by_id: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any] | None:
    oid = str(o.get("id"))
    kind = str(o.get("type"))
    entry: dict[str, Any] = {
        "uuid": oid.partition("--")[2],
        "note_type_name": kind.capitalize(),
        "object_uuid": place.misp_uuid,
        "object_type": place.misp_type,
        "created": _misp_time(o.get("created")),
        "modified": _misp_time(o.get("modified") or o.get("created")),
        "distribution": distribution_of(o),
    }
    authors = o.get("authors")
    if isinstance(authors, list) and authors:
        entry["authors"] = ", ".join(str(a) for a in authors)
    creator = by_id.get(str(o.get("created_by_ref")))
    if creator is not None and creator.get("type") == "identity":
        entry["Orgc"] = {"name": str(creator.get("name", "")), "uuid": str(creator["id"]).partition("--")[2]}
    if kind == "note":
        entry["note"] = str(o.get("content", ""))
        if isinstance(o.get("lang"), str):
            entry["language"] = o["lang"]
        if o.get("abstract"):
            # MISP's note has no title; the abstract leads the text instead of being lost.
            entry["note"] = f"{o['abstract']}\n\n{entry['note']}"
    elif kind == "opinion":
        exact = o.get("x_misp_opinion")
        exact_ok = isinstance(exact, int) and not isinstance(exact, bool) and 0 <= exact <= 100
        number = exact if exact_ok else _MIDDLE.get(str(o.get("opinion")), 50)
        entry["opinion"] = str(number)
        entry["comment"] = str(o.get("explanation", ""))
    else:
        related = places.get(str(o.get("target_ref")))
        if related is None:
            return None
        entry.update(
            relationship_type=o.get("x_misp_relationship_type") or o.get("relationship_type"),
            related_object_uuid=related.misp_uuid,
            related_object_type=related.misp_type,
        )
    return entry


def _misp_time(value: Any) -> str:
    try:
        when = parse_timestamp(value)
    except (TypeError, ValueError):
        when = datetime.now(UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
