"""MISP sightings, both ways.

A MISP sighting says that an organisation saw an attribute's value (type 0), judged it a false positive
(type 1), or saw it expire (type 2). STIX 2.1 has a ``sighting`` for the first, of an indicator, with the
organisation both as its creator and as where it was sighted. It has no negative sighting; an organisation
disagreeing that an indicator is malicious is an ``opinion`` (``strongly-disagree``) on it, which is how a
false positive travels here. An expiration has no STIX form and is listed as not carried.

Export reverses both, onto the attribute the indicator becomes. A STIX sighting counts occurrences
(``count``), MISP lists each one: at most ``MAX_PER_SIGHTING`` entries are written for one STIX sighting.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cyberpact.intel.markings import TLP2_IDS, TLP_ORDER
from cyberpact.intel.misp_analyst import is_false_positive
from cyberpact.intel.misp_types import LOCAL_NAMESPACE, from_epoch, stix_uuid, text, to_epoch
from cyberpact.intel.stix import format_timestamp

MAX_PER_SIGHTING = 100
FALSE_POSITIVE = "Reported as a false positive (a MISP sighting of type 1)"
_LEVEL_OF = {v: k for k, v in TLP2_IDS.items()}


class SightingsIn:
    """The STIX objects for the sightings of one event's attributes, with one identity per organisation
    that reported any (marked as strictly as the strictest sighting naming it: who looked is as telling as
    what they saw)."""

    def __init__(self, created: str) -> None:
        self.created = created
        self.objects: list[dict[str, Any]] = []
        self.identities: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []

    def add(
        self,
        sightings: Any,
        target: str,
        *,
        markings: list[str],
        reporter: str,
        label: str,
    ) -> None:
        """The sightings of the attribute or object that became ``target`` (a STIX id)."""
        if sightings is None:
            return
        if not isinstance(sightings, list):
            self.skipped.append(f"{label}: Sighting is not a list; its sightings are not carried")
            return
        is_indicator = target.startswith("indicator--")
        expired = 0
        for n, s in enumerate(sightings):
            where = f"{label} sighting {text(s.get('uuid')) if isinstance(s, dict) else ''} #{n + 1}"
            if not isinstance(s, dict):
                self.skipped.append(f"{where}: not a sighting object")
                continue
            kind = text(s.get("type")) or "0"
            when = from_epoch(s.get("date_sighting"))
            if when is None or when.year < 1970:
                self.skipped.append(f"{where}: no date_sighting; not carried")
                continue
            if kind == "2":
                expired += 1
                continue
            if kind not in ("0", "1"):
                self.skipped.append(f"{where}: unknown sighting type {kind!r}; not carried")
                continue
            if kind == "0" and not is_indicator:
                self.skipped.append(
                    f"{where}: a STIX sighting is of an indicator, and this attribute is not for detection"
                    " (to_ids); not carried"
                )
                continue
            org = self.organisation(s.get("Organisation"), markings)
            stamp = format_timestamp(when)
            key = f"{target}|{kind}|{org or ''}|{stamp}|{text(s.get('source'))}"
            oid = stix_uuid(s.get("uuid"), key) if s.get("uuid") else str(uuid.uuid5(LOCAL_NAMESPACE, key))
            obj: dict[str, Any]
            if kind == "0":
                obj = {
                    "type": "sighting",
                    "spec_version": "2.1",
                    "id": f"sighting--{oid}",
                    "created": stamp,
                    "modified": stamp,
                    "first_seen": stamp,
                    "last_seen": stamp,
                    "count": 1,
                    "sighting_of_ref": target,
                    "created_by_ref": org or reporter,
                }
                if org:
                    obj["where_sighted_refs"] = [org]
            else:
                obj = {
                    "type": "opinion",
                    "spec_version": "2.1",
                    "id": f"opinion--{oid}",
                    "created": stamp,
                    "modified": stamp,
                    "opinion": "strongly-disagree",
                    "explanation": FALSE_POSITIVE,
                    "object_refs": [target],
                    "created_by_ref": org or reporter,
                }
            if text(s.get("source")):
                obj["x_misp_source"] = text(s.get("source"))[:1000]
            if markings:
                obj["object_marking_refs"] = markings
            self.objects.append(obj)
        if expired:
            self.skipped.append(f"{label}: {expired} expiration sighting(s) have no STIX form; not carried")

    def organisation(self, org: Any, markings: list[str]) -> str | None:
        if not isinstance(org, dict) or not (text(org.get("name")) or text(org.get("uuid"))):
            return None
        name = text(org.get("name"))[:200] or "unknown MISP organisation"
        iid = f"identity--{stix_uuid(org.get('uuid'), 'org:' + name)}"
        known = self.identities.get(iid)
        if known is None:
            self.identities[iid] = {
                "type": "identity",
                "spec_version": "2.1",
                "id": iid,
                "created": self.created,
                "modified": self.created,
                "name": name,
                "identity_class": "organization",
                **({"object_marking_refs": markings} if markings else {}),
            }
        elif _rank(markings) > _rank(known.get("object_marking_refs", [])):
            known["object_marking_refs"] = markings
        return iid


def _rank(markings: list[str]) -> int:
    levels = [TLP_ORDER.index(_LEVEL_OF[m]) for m in markings if m in _LEVEL_OF]
    return max(levels, default=-1)


# ------------------------------------------------------------------------------------------------ export


def to_misp(
    objs: Sequence[Mapping[str, Any]],
    by_id: Mapping[str, Mapping[str, Any]],
    attribute_of: Mapping[str, dict[str, Any]],
) -> list[str]:
    """Append the sightings and false positives (``is_false_positive``) among ``objs`` to the MISP
    attributes their indicators became (``attribute_of``: STIX id -> attribute); returns what could not
    be carried."""
    skipped: list[str] = []
    for o in objs:
        kind, oid = o.get("type"), str(o.get("id"))
        if kind == "sighting":
            targets, misp_type = [str(o.get("sighting_of_ref"))], "0"
        elif is_false_positive(o):
            targets, misp_type = [str(r) for r in o.get("object_refs", [])], "1"
        else:  # any other opinion is MISP analyst data (misp_analyst)
            continue
        carried = [t for t in targets if t in attribute_of]
        if not carried:
            skipped.append(f"{oid}: what it is about did not become a MISP attribute; not carried")
            continue
        org = by_id.get(str(o.get("created_by_ref")))
        if kind == "sighting" and o.get("where_sighted_refs"):
            org = by_id.get(str(o["where_sighted_refs"][0])) or org
        epoch = to_epoch(o.get("last_seen") or o.get("first_seen") or o.get("modified") or o.get("created"))
        if epoch is None:
            skipped.append(f"{oid}: no readable time; not carried")
            continue
        count = o.get("count", 1) if kind == "sighting" else 1
        count = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1
        if count > MAX_PER_SIGHTING:
            skipped.append(f"{oid}: counts {count} occurrences; {MAX_PER_SIGHTING} MISP sightings written")
        base: dict[str, Any] = {"type": misp_type, "date_sighting": epoch}
        if isinstance(o.get("x_misp_source"), str):
            base["source"] = o["x_misp_source"]
        if org is not None and org.get("type") == "identity":
            base["Organisation"] = {
                "name": str(org.get("name", "")),
                "uuid": str(org.get("id")).partition("--")[2],
            }
        for target in carried:
            entries = attribute_of[target].setdefault("Sighting", [])
            for n in range(min(count, MAX_PER_SIGHTING)):
                # The STIX id's uuid for the first: the same sighting re-exported is the same MISP one.
                sid = oid.partition("--")[2] if n == 0 and len(carried) == 1 else None
                entries.append(
                    {**base, "uuid": sid or str(uuid.uuid5(LOCAL_NAMESPACE, f"{oid}|{target}|{n}"))}
                )
    return skipped
