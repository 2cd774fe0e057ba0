"""MISP interchange: MISP core-format events (draft-dulaunoy-misp-core-format) to STIX 2.1; the way back is
``misp_export``.

What maps, as far as STIX can carry it:

* the event becomes a ``report`` (its uuid kept), the creating organisation an ``identity``;
* an attribute with ``to_ids`` becomes an ``indicator`` (its uuid kept) whose pattern compares the value;
  one without becomes ``observed-data`` over the matching SCOs (UUIDv5 ids, as STIX prescribes for SCOs);
  ``stix2-pattern``, ``yara``, ``snort`` and ``sigma`` attributes become indicators of that pattern type;
* a MISP object becomes one indicator (any live attribute ``to_ids``) or one observed-data, over all its
  live attributes; two values of one property (a domain's second address) are two SCOs, two
  observations, never one impossible comparison; its references become relationships;
* ``tlp:*`` tags become TLP 2.0 markings, ``PAP:*`` tags PAP markings, other tags labels; an attribute or
  object takes the stricter of its own level and the event's, never a wider one; every other object made
  from the event (its identity, galaxy clusters, sightings, notes, opinions, relationships) is marked at
  least as the event, a cluster as the strictest of what names it, and what names something as strictly
  as what it names (``_bound``);
* galaxy clusters become threat-actor, malware, tool, attack-pattern, intrusion-set or course-of-action
  objects, tied to what carries them (``indicates`` from an indicator, ``related-to`` from anything else);
* a deleted attribute or object becomes a revoked version: re-importing an event takes back what MISP
  revoked instead of leaving it standing;
* sightings become STIX sightings of the indicator, false positives opinions on it (``misp_sightings``);
  event reports become notes on the report (``misp_reports``);
* analyst data (MISP 2.5 notes, opinions and relationships on the event, an attribute, an object or an
  event report) become notes, opinions and relationships about what it was on (``misp_analyst``).

MISP's own type, category, object name and object attributes ride along as ``x_misp_*`` properties so the
way back is exact. Whatever is not carried is named in ``Conversion.skipped`` with the reason, down to a
whole event whose structure is broken: nothing of a refused event is among the objects to store. The
vocabulary both directions share (types, categories, galaxies, a value as comparisons) is ``misp_types``;
tags and distribution levels are read in ``misp_tags``, galaxy clusters made in ``misp_galaxies``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from cyberpact.intel import misp_analyst, misp_reports
from cyberpact.intel import misp_types as vocab
from cyberpact.intel.markings import (
    KNOWN_TLP,
    PAP_ORDER,
    TLP_ORDER,
    pap_definition,
    tlp_definition,
)
from cyberpact.intel.misp_galaxies import Galaxies
from cyberpact.intel.misp_sightings import SightingsIn
from cyberpact.intel.misp_tags import Tags, kept_home, level_offset, strictest
from cyberpact.intel.misp_types import (
    LOCAL_NAMESPACE,
    MAX_VALUE,
    PATTERN_TYPES,
    Comp,
    Refused,
    comparisons,
    from_epoch,
    from_iso,
    stix_uuid,
    text,
)
from cyberpact.intel.stix import format_timestamp
from cyberpact.kit.errors import InvalidInput, Problem

_NOT_A_RELATIONSHIP_TYPE = re.compile(r"[^a-z0-9-]+")


@dataclass
class Conversion:
    objects: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def misp_to_stix(data: Any) -> Conversion:
    """STIX 2.1 objects for MISP events (``{"Event": ...}``, a bare event, a list, or a search response).

    An event whose structure is broken (a ``Tag`` that is not a list may hide its TLP) is refused whole,
    an attribute or object on its own, each with its reason in ``skipped`` and nothing of it in
    ``objects``.
    """
    out = Conversion()
    for n, candidate in enumerate(_candidates(data)):
        label = f"event {n + 1}"
        try:
            if not isinstance(candidate, dict) or not _looks_like_event(candidate):
                raise Refused(
                    "not a MISP event (expected {'Event': {...}}, a list of them or a search response)"
                )
            label = f"event {text(candidate.get('uuid')) or n + 1}"
            converted = _Event(candidate)
        except Refused as exc:
            out.skipped.append(f"{label}: {exc}")
            continue
        out.objects.extend(converted.objects)
        out.skipped.extend(converted.skipped)
    if not out.objects and not out.skipped:
        out.skipped.append("no MISP event found (expected {'Event': {...}})")
    return out


def _candidates(data: Any) -> list[Any]:
    # Read to a fixed depth, never recursively: a hostile file nests lists thousands deep.
    items = data.get("response") if isinstance(data, dict) and "response" in data else data
    if not isinstance(items, list):
        items = [items]
    return [item["Event"] if isinstance(item, dict) and "Event" in item else item for item in items]


def require_objects(converted: Conversion, source: str) -> None:
    """Refuse an import that holds nothing to store (no event, or every event refused), with the reasons:
    "stored 0" and success would tell a script all went well."""
    if not converted.objects:
        raise InvalidInput(
            f"Nothing to import from {source}",
            [Problem("events", reason) for reason in converted.skipped[:50]],
        )


def is_misp(data: Any) -> bool:
    """Whether ``data`` is shaped as MISP events rather than STIX objects (an import with no format)."""
    return any(
        isinstance(item, dict) and ("Event" in item or "response" in item or _looks_like_event(item))
        for item in (data if isinstance(data, list) else [data])[:1]
    )


def export_uuid(collection_id: uuid.UUID, ids: Sequence[str] = ()) -> str:
    """The MISP event uuid of a collection's export, or of a selection of it: stable across exports."""
    if not ids:
        return str(collection_id)
    return str(uuid.uuid5(collection_id, "\n".join(sorted(ids))))


def _looks_like_event(value: dict[str, Any]) -> bool:
    return any(k in value for k in ("Attribute", "Object", "info"))


def _list(container: Mapping[str, Any], key: str) -> list[Any]:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Refused(f"{key} is not a list")
    return value


def _value(attr: Mapping[str, Any]) -> str:
    value = attr.get("value")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise Refused("no value")
    if len(value) > MAX_VALUE:
        raise Refused(f"the value is longer than {MAX_VALUE} characters")
    return value


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _ts_epoch(value: Any, fallback: datetime) -> datetime:
    return from_epoch(value) or fallback


def _day(value: Any) -> datetime:
    try:
        d = date.fromisoformat(str(value))
    except ValueError:
        d = date(1970, 1, 1)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- event


class _Event:
    """One event's STIX objects; raises :class:`Refused` (before anything is kept) when its structure is
    broken, and lists in ``skipped`` the attributes and objects it does not carry."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.skipped: list[str] = []
        self.ev_uuid = stix_uuid(event.get("uuid"), "event")
        day = _day(event.get("date"))
        self.modified = _ts_epoch(event.get("timestamp"), day)
        self.created = min(day, self.modified)
        self.created_s, self.modified_s = format_timestamp(self.created), format_timestamp(self.modified)
        self.tags = Tags(_list(event, "Tag"))
        if why := kept_home(event):
            self.tags.local = True
            self.skipped.append(
                f"event {self.ev_uuid}: its MISP distribution is {why}: kept on this node as TLP:RED"
            )
        attributes, mobjects, galaxies = (_list(event, k) for k in ("Attribute", "Object", "Galaxy"))
        orgc = event.get("Orgc") or event.get("Org") or {}
        if not isinstance(orgc, dict) or not isinstance(orgc.get("name"), str | None):
            raise Refused("Orgc is not an organisation")
        identity = {
            "type": "identity",
            "spec_version": "2.1",
            "id": f"identity--{stix_uuid(orgc.get('uuid'), 'org:' + str(orgc.get('name')))}",
            "created": self.created_s,
            "modified": format_timestamp(self.modified + level_offset(self.tags.markings())),
            "name": orgc.get("name") or "unknown MISP organisation",
            "identity_class": "organization",
        }
        self.common = {"spec_version": "2.1", "created_by_ref": identity["id"]}
        self.refs: list[str] = []
        self.items: list[dict[str, Any]] = []
        self.stix_of: dict[str, str] = {}  # MISP uuid -> STIX id, for object references
        self.references: list[tuple[str, str, Mapping[str, Any], list[str], bool]] = []
        self.sightings = SightingsIn(self.created_s)
        self.galaxies = Galaxies(
            created=self.created_s,
            modified=self.modified_s,
            common=self.common,
            tags=self.tags,
            skipped=self.skipped,
        )

        declared = self.galaxies.declare(galaxies, "event")
        # An attribute's own Galaxy block names the cluster's uuid that its galaxy tag lacks.
        for attr in [
            *attributes,
            *(a for o in mobjects if isinstance(o, dict) for a in _loose(o, "Attribute")),
        ]:
            if isinstance(attr, dict):
                self.galaxies.declare(_loose(attr, "Galaxy"), None)
        for gtype, value in [*declared, *self.tags.galaxies]:
            self.galaxies.cluster(gtype, value, self.tags.markings())

        for n, attr in enumerate(attributes):
            label = f"attribute {_label(attr, n)}"
            try:
                self._attribute(attr, label)
            except Refused as exc:
                if not (isinstance(attr, dict) and _truthy(attr.get("deleted"))):
                    self.skipped.append(f"{label}: {exc}")
        for n, mobj in enumerate(mobjects):
            name = text(mobj.get("name")) if isinstance(mobj, dict) else ""
            label = f"object {name} {_label(mobj, n)}" if name else f"object {_label(mobj, n)}"
            try:
                self._object(mobj, label)
            except Refused as exc:
                self.skipped.append(f"{label}: {exc}")
        self._object_references()
        report_id = f"report--{self.ev_uuid}"
        notes, unreported = misp_reports.to_notes(
            event.get("EventReport"),
            report_id=report_id,
            event_uuid=self.ev_uuid,
            creator=identity["id"],
            fallback=self.modified,
            markings_of=self._own_markings,
        )
        self.items += notes
        self.skipped += unreported
        self._analyst_data(event, report_id, attributes, mobjects)
        self.items += [i for i in self.sightings.identities.values() if i["id"] != identity["id"]]
        self.items += self.sightings.objects
        self.skipped += self.sightings.skipped

        self.refs.extend(c["id"] for c in self.galaxies.objects())
        published = (
            _ts_epoch(event.get("publish_timestamp"), self.modified)
            if _truthy(event.get("published"))
            else None
        )
        report: dict[str, Any] = {
            "type": "report",
            "id": report_id,
            "created": self.created_s,
            "modified": self.modified_s,
            "name": text(event.get("info")) or "MISP event",
            "published": format_timestamp(published or self.modified),
            "report_types": ["threat-report"],
            "object_refs": self.refs or [identity["id"]],
            **self.common,
            "external_references": [{"source_name": "misp", "external_id": text(event.get("uuid"))}],
        }
        if self.tags.labels:
            report["labels"] = self.tags.labels
        for key in ("threat_level_id", "analysis"):
            if text(event.get(key)):
                report[f"x_misp_{key}"] = text(event[key])
        # A STIX report is always "published"; MISP's flag rides along so that a draft does not come back
        # published (publishing is what starts MISP's dissemination of an event).
        report["x_misp_published"] = published is not None
        if self.tags.markings():
            report["object_marking_refs"] = self.tags.markings()
        made = [identity, *self.galaxies.objects(), *self.items, report]
        _bound(made, self.tags.markings())
        used = {m for o in made for m in o.get("object_marking_refs", [])}
        definitions = [tlp_definition(lv) for lv in TLP_ORDER if tlp_definition(lv)["id"] in used]
        definitions += [pap_definition(lv) for lv in PAP_ORDER if pap_definition(lv)["id"] in used]
        self.objects = [*definitions, *made]

    # ------------------------------------------------------------------------- attributes, objects

    def _attribute(self, attr: Any, label: str) -> None:
        if not isinstance(attr, dict):
            raise Refused("not an attribute object")
        atype = attr.get("type")
        if not isinstance(atype, str) or not atype:
            raise Refused("no type")
        tags = Tags.of(_list(attr, "Tag"), attr)
        value = _value(attr)
        revoked = _truthy(attr.get("deleted"))
        to_ids = _truthy(attr.get("to_ids"))
        category = text(attr.get("category"))
        extra: dict[str, Any] = {"x_misp_type": atype, "x_misp_category": category}
        if atype == "vulnerability":
            self._vulnerability(attr, value, tags, revoked)
            return
        if atype in PATTERN_TYPES:
            if not to_ids:
                # An indicator is a detection rule whatever its flags: one MISP says not to deploy stays out.
                raise Refused(f"a {atype} rule without to_ids has no STIX form that is not for detection")
            sid = self._emit(
                attr, [], tags, extra, to_ids=True, revoked=revoked, rule=(value, PATTERN_TYPES[atype])
            )
        else:
            comps = comparisons(atype, value)
            if comps is None:
                raise Refused(f"type {atype} has no STIX form")
            if atype == "size-in-bytes":
                raise Refused(_SIZE_ALONE)
            sid = self._emit(attr, comps, tags, extra, to_ids=to_ids, revoked=revoked)
        if not revoked:
            self._sightings([attr], sid, tags, label)

    def _object(self, mobj: Any, label: str) -> None:
        if not isinstance(mobj, dict):
            raise Refused("not a MISP object")
        name = text(mobj.get("name"))
        if not name:
            raise Refused("no name")
        attrs = _list(mobj, "Attribute")
        live = [a for a in attrs if not (isinstance(a, dict) and _truthy(a.get("deleted")))]
        # An object whose every attribute is deleted is gone as surely as one deleted whole.
        revoked = _truthy(mobj.get("deleted")) or (bool(attrs) and not live)
        comps: list[Comp] = []
        entries: list[dict[str, Any]] = []
        tags = Tags.of([], mobj)
        to_ids = False
        for n, attr in enumerate(attrs if revoked else live):
            relation = text(attr.get("object_relation")) if isinstance(attr, dict) else ""
            try:
                if not isinstance(attr, dict):
                    raise Refused("not an attribute object")
                atype, value = text(attr.get("type")), _value(attr)
                more = Tags.of(_list(attr, "Tag"), attr)
                found = comparisons(atype, value)
                if found is None:
                    raise Refused(f"type {atype or '(none)'} has no STIX form")
            except Refused as exc:
                if not revoked:
                    self.skipped.append(f"{label} attribute {relation or _label(attr, n)}: {exc}")
                continue
            comps.extend(found)
            tags.merge(more)
            entry: dict[str, Any] = {"object_relation": relation or atype, "type": atype, "value": value}
            entry["to_ids"] = _truthy(attr.get("to_ids"))
            for key in ("uuid", "category"):
                if text(attr.get(key)):
                    entry[key] = text(attr.get(key))
            entries.append(entry)
            to_ids = to_ids or entry["to_ids"]
        if _unnamed_file(comps):
            # A size says which file only beside its name or a hash (STIX's file needs one of them).
            comps = [c for c in comps if c[:2] != ("file", "size")]
            entries = [e for e in entries if e["type"] != "size-in-bytes"]
            to_ids = any(e["to_ids"] for e in entries)
            if not revoked:
                self.skipped.append(f"{label} attribute size-in-bytes: {_SIZE_ALONE}")
        if not comps:
            if not attrs:
                raise Refused("no attributes")
            return
        extra: dict[str, Any] = {
            "x_misp_object_name": name,
            "x_misp_object_attributes": entries,
            "x_misp_category": text(mobj.get("meta-category")),
        }
        for key in ("template_uuid", "template_version"):
            if text(mobj.get(key)):
                extra[f"x_misp_{key}"] = text(mobj.get(key))
        sid = self._emit(mobj, comps, tags, extra, to_ids=to_ids, revoked=revoked)
        if not revoked:
            self._sightings([a for a in live if isinstance(a, dict)], sid, tags, label, in_object=True)
        for entry in entries:  # a reference may name one attribute of the object
            if "uuid" in entry:
                self.stix_of.setdefault(entry["uuid"].lower(), sid)
        for ref in _loose(mobj, "ObjectReference"):
            if isinstance(ref, dict):
                gone = revoked or _truthy(ref.get("deleted"))
                self.references.append((sid, label, ref, tags.markings(self.tags), gone))

    # ---------------------------------------------------------------------------- analyst data

    def _analyst_data(
        self, event: Mapping[str, Any], report_id: str, attributes: list[Any], mobjects: list[Any]
    ) -> None:
        """The notes, opinions and relationships MISP analysts hung on the event, its attributes, objects
        (and their attributes: on the object's STIX form) and event reports (``misp_analyst``)."""
        made = {o["id"]: o for o in self.items}
        known = {**self.stix_of, self.ev_uuid: report_id}
        owned: list[tuple[Mapping[str, Any], Mapping[str, Any], str]] = []  # item, what became STIX, label
        owned += [
            (a, a, f"attribute {_label(a, n)}") for n, a in enumerate(attributes) if isinstance(a, dict)
        ]
        for n, mobj in enumerate(mobjects):
            if isinstance(mobj, dict):
                label = f"object {_label(mobj, n)}"
                owned.append((mobj, mobj, label))
                owned += [
                    (a, mobj, f"{label} attribute {_label(a, k)}")
                    for k, a in enumerate(_loose(mobj, "Attribute"))
                    if isinstance(a, dict)
                ]
        for n, er in enumerate(_loose(event, "EventReport")):
            if isinstance(er, dict):
                if text(er.get("uuid")):
                    known[text(er["uuid"]).lower()] = f"note--{misp_reports.note_uuid(er, self.ev_uuid, n)}"
                owned.append((er, er, f"event report {_label(er, n)}"))

        def resolve(misp_uuid: str) -> str | None:
            found = known.get(misp_uuid)
            return found if found == report_id or found in made else None

        holders = [misp_analyst.Holder(event, report_id, self._markings_about(self.tags.markings()), "event")]
        for item, owner, label in owned:
            if not any(kind in item for kind in misp_analyst.KINDS):
                continue
            target = resolve(text(owner.get("uuid")).lower())
            if target is None:
                self.skipped.append(f"{label}: not carried, and neither is its analyst data")
                continue
            markings = list(made[target].get("object_marking_refs", []))
            holders.append(misp_analyst.Holder(item, target, self._markings_about(markings), label))
        analyst = misp_analyst.AnalystIn(
            creator=self.common["created_by_ref"],
            fallback=self.modified,
            resolve=resolve,
            marked=lambda sid: list(made[sid].get("object_marking_refs", [])) if sid in made else [],
            organisation=self.sightings.organisation,
        )
        for holder in holders:
            analyst.add(holder)
        self.items += analyst.objects
        self.skipped += analyst.skipped

    def _markings_about(self, target: list[str]) -> Callable[[Sequence[Mapping[str, Any]]], list[str]]:
        """Analyst data is marked as what it is about, but TLP:RED when MISP keeps it (or what holds it)
        in the organisation."""

        def of(chain: Sequence[Mapping[str, Any]]) -> list[str]:
            if not any(kept_home(item) for item in chain):
                return target
            red = tlp_definition("red")["id"]
            return [red, *(m for m in target if m not in KNOWN_TLP)]

        return of

    def _own_markings(self, item: Mapping[str, Any]) -> list[str]:
        """The markings of an item with no tags of its own: the event's, or RED if MISP keeps it home."""
        return Tags.of([], item).markings(self.tags)

    def _sightings(
        self, attrs: list[dict[str, Any]], sid: str, tags: Tags, label: str, *, in_object: bool = False
    ) -> None:
        for n, attr in enumerate(attrs):
            where = f"{label} attribute {text(attr.get('object_relation')) or _label(attr, n)}"
            self.sightings.add(
                attr.get("Sighting"),
                sid,
                markings=tags.markings(self.tags),
                reporter=self.common["created_by_ref"],
                label=where if in_object else label,
            )

    def _object_references(self) -> None:
        for source, label, ref, markings, revoked in self.references:
            target = self.stix_of.get(text(ref.get("referenced_uuid")).lower())
            misp_type = text(ref.get("relationship_type"))
            if target is None:
                if not revoked:
                    target_uuid = text(ref.get("referenced_uuid"))
                    self.skipped.append(
                        f"{label} reference {misp_type or '(untyped)'} to {target_uuid}:"
                        " the referenced attribute or object is not carried"
                    )
                continue
            # STIX allows only lower-case letters, digits and '-' in a relationship type.
            rel_type = _NOT_A_RELATIONSHIP_TYPE.sub("-", misp_type.lower()).strip("-") or "related-to"
            when = format_timestamp(self._when(ref))
            rel = _relationship(source, rel_type, target, when, self.common, ref.get("uuid"))
            if rel_type != misp_type:
                rel["x_misp_relationship_type"] = misp_type
            if isinstance(ref.get("comment"), str) and ref["comment"]:
                rel["description"] = ref["comment"]
            self._keep(rel, None, markings, revoked)

    def _when(self, source: Mapping[str, Any]) -> datetime:
        return max(_ts_epoch(source.get("timestamp"), self.modified), self.created)

    def _emit(
        self,
        source: dict[str, Any],
        comps: list[Comp],
        tags: Tags,
        extra: dict[str, Any],
        *,
        to_ids: bool,
        revoked: bool,
        rule: tuple[str, str] | None = None,
    ) -> str:
        oid = stix_uuid(source.get("uuid"), f"{self.ev_uuid}:{source.get('type')}:{source.get('value')}")
        when = self._when(source)
        when_s = format_timestamp(when)
        markings = tags.markings(self.tags)
        first = from_iso(source.get("first_seen"))
        last = from_iso(source.get("last_seen"))
        instances = vocab.instances(comps)
        obj: dict[str, Any]
        if to_ids:
            valid_from = first or when
            obj = {
                "type": "indicator",
                "id": f"indicator--{oid}",
                "created": when_s,
                "modified": when_s,
                "pattern": rule[0] if rule else vocab.pattern(instances),
                "pattern_type": rule[1] if rule else "stix",
                "valid_from": format_timestamp(valid_from),
                "indicator_types": ["malicious-activity"],
                **self.common,
            }
            if last and last > valid_from:
                obj["valid_until"] = format_timestamp(last)
        else:
            scos = vocab.scos(instances)
            for sco in scos:
                if markings:
                    sco["object_marking_refs"] = markings
                self.items.append(sco)
            first_observed = first or when
            obj = {
                "type": "observed-data",
                "id": f"observed-data--{oid}",
                "created": when_s,
                "modified": when_s,
                "first_observed": format_timestamp(first_observed),
                "last_observed": format_timestamp(max(last or first_observed, first_observed)),
                "number_observed": 1,
                "object_refs": list(dict.fromkeys(s["id"] for s in scos)),
                **self.common,
            }
        if isinstance(source.get("comment"), str) and source["comment"]:
            obj["description"] = source["comment"]
        if tags.labels:
            obj["labels"] = tags.labels
        obj.update(extra)
        self._keep(obj, source, markings, revoked)
        rel_type = "indicates" if to_ids else "related-to"
        for gtype, value in tags.galaxies:
            target = self.galaxies.cluster(gtype, value, markings)
            if target:
                rel = _relationship(obj["id"], rel_type, target, when_s, self.common, None)
                self._keep(rel, None, markings, revoked)
        return str(obj["id"])

    def _keep(
        self, obj: dict[str, Any], source: Mapping[str, Any] | None, markings: list[str], revoked: bool
    ) -> None:
        if markings:
            obj["object_marking_refs"] = markings
        if revoked:
            obj["revoked"] = True
        self.items.append(obj)
        if source is not None:
            self.refs.append(obj["id"])
            if text(source.get("uuid")):
                self.stix_of[text(source.get("uuid")).lower()] = obj["id"]

    def _vulnerability(self, attr: dict[str, Any], value: str, tags: Tags, revoked: bool) -> None:
        when = format_timestamp(_ts_epoch(attr.get("timestamp"), self.modified))
        vuln: dict[str, Any] = {
            "type": "vulnerability",
            "id": f"vulnerability--{stix_uuid(attr.get('uuid'), 'vuln:' + value)}",
            "created": when,
            "modified": when,
            "name": value,
            **self.common,
            "x_misp_type": "vulnerability",
            "x_misp_category": text(attr.get("category")) or "External analysis",
        }
        if value.upper().startswith("CVE-"):
            vuln["external_references"] = [{"source_name": "cve", "external_id": value.upper()}]
        if isinstance(attr.get("comment"), str) and attr["comment"]:
            vuln["description"] = attr["comment"]
        if tags.labels:
            vuln["labels"] = tags.labels
        markings = tags.markings(self.tags)
        self._keep(vuln, attr, markings, revoked)
        for gtype, gvalue in tags.galaxies:
            target = self.galaxies.cluster(gtype, gvalue, markings)
            if target:
                rel = _relationship(vuln["id"], "related-to", target, when, self.common, None)
                self._keep(rel, None, markings, revoked)


def _bound(objects: list[dict[str, Any]], event: list[str]) -> None:
    """Mark every object made from an event at least as the event, and what names other objects
    (relationships, sightings, notes, opinions) at least as strictly as what it names.

    Each converter marks what it makes, but an unmarked object takes its collection's default when
    stored, which may be wider than the event; this is the one place that holds for all of them,
    including kinds added later. A cluster's markings are only final once every attribute that names it
    is read, so what points at a cluster is bounded here too, not where it was made."""
    by_id = {str(o["id"]): o for o in objects}

    def names(o: Mapping[str, Any]) -> list[Any]:
        kind = o.get("type")
        if kind == "relationship":
            return [o.get("source_ref"), o.get("target_ref")]
        if kind == "sighting":
            return [o.get("sighting_of_ref")]
        if kind in ("note", "opinion"):
            return list(o.get("object_refs") or [])
        return []  # a report or observed-data holds what it refers to; it does not say more of it

    # Analyst data nests (an opinion on a note on a relationship): repeat until nothing changes.
    for _ in range(len(objects) + 1):
        changed = False
        for o in objects:
            named = [by_id[r].get("object_marking_refs", []) for r in names(o) if r in by_id]
            marked = strictest(o.get("object_marking_refs", []), event, *named)
            if marked and marked != o.get("object_marking_refs"):
                o["object_marking_refs"] = marked
                changed = True
        if not changed:
            return


_SIZE_ALONE = "a size alone names no file (STIX needs the file's name or a hash beside it)"


def _unnamed_file(comps: list[Comp]) -> bool:
    files = [path for kind, path, _ in comps if kind == "file"]
    return "size" in files and not any(p == "name" or p.startswith("hashes.") for p in files)


def _label(item: Any, n: int) -> str:
    return (text(item.get("uuid")) if isinstance(item, dict) else "") or f"#{n + 1}"


def _loose(container: Mapping[str, Any], key: str) -> list[Any]:
    value = container.get(key)
    return value if isinstance(value, list) else []


def _relationship(
    source: str, rel_type: str, target: str, when: str, common: dict[str, Any], misp_uuid: Any
) -> dict[str, Any]:
    key = f"{source}|{rel_type}|{target}"
    rid = stix_uuid(misp_uuid, key) if misp_uuid else str(uuid.uuid5(LOCAL_NAMESPACE, key))
    return {
        "type": "relationship",
        "id": f"relationship--{rid}",
        "created": when,
        "modified": when,
        "relationship_type": rel_type,
        "source_ref": source,
        "target_ref": target,
        **common,
    }
