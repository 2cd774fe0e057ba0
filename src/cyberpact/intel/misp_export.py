"""STIX 2.1 objects to one MISP event (the MISP core JSON format): the way back of ``misp``.

An indicator becomes what it came from (an attribute or a MISP object, exactly, from its ``x_misp_*``
properties); otherwise one attribute with ``to_ids`` per value when every comparison of its pattern is an
equality on a value MISP has a type for and no comparison narrows another (a conjunction is kept whole: its
parts alone would match far more than it does). Any other pattern travels whole as a ``stix2-pattern``,
``yara``, ``snort`` or ``sigma`` attribute. Observed data and SCOs become attributes without ``to_ids``;
threat actors, malware, tools, attack patterns, intrusion sets and courses of action become galaxy
clusters; relationships to them become galaxy tags, those between MISP objects object references; TLP and
PAP markings become ``tlp:*`` and ``PAP:*`` tags; a revoked object becomes a deleted attribute, which is
how MISP tells other instances of a revocation; sightings and disagreeing opinions become the attribute's
sightings (``misp_sightings``); notes on the report become event reports (``misp_reports``); other notes,
opinions and relationships become MISP analyst data on what they are about (``misp_analyst``). What cannot
be carried is returned with the reason.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cyberpact.intel import misp_analyst, misp_reports, misp_sightings, patterns
from cyberpact.intel.markings import Pap, Tlp, definition_levels, effective
from cyberpact.intel.misp_galaxies import REFERENCE
from cyberpact.intel.misp_types import (
    ANALYST_DATA,
    CATEGORY_OF,
    COMPOSITE,
    GALAXY_OF_TYPE,
    LOCAL_NAMESPACE,
    MISP_TYPE_OF,
    Refused,
    comparisons,
    to_epoch,
)
from cyberpact.intel.stix import format_timestamp, parse_timestamp

# STIX pattern_type -> MISP attribute type, and a category valid for that type.
_RULE_TYPES = {
    "stix": ("stix2-pattern", "Network activity"),
    "yara": ("yara", "Payload installation"),
    "snort": ("snort", "Network activity"),
    "sigma": ("sigma", "Payload installation"),
}
# Hash names as producers write them ("SHA256", "sha-256") -> MISP type.
_HASH_TYPES = {
    path.rpartition(".")[2].upper().replace("-", ""): mtype
    for path, mtype in MISP_TYPE_OF.items()
    if path.startswith("file:hashes.")
}
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'")
_AND = re.compile(r"\bAND\b")
_DEFAULT_CATEGORY = "Network activity"
_REGISTRY_VALUE = ("windows-registry-key:key", "windows-registry-key:values[*].data")


def _epoch(value: Any) -> str:
    return to_epoch(value) or "0"


def _day(value: Any) -> str | None:
    try:
        return parse_timestamp(value).astimezone(UTC).date().isoformat()
    except (TypeError, ValueError):
        return None


def _levels(obj: Mapping[str, Any], defs: Mapping[str, tuple[Tlp | None, Pap | None]]) -> tuple[Any, Any]:
    return effective(obj.get("object_marking_refs", []), defs)


# Levels that may not go beyond the receiving organisation in MISP terms (distribution 0): imported back,
# such an item is kept on this node as TLP:RED (misp._kept_home), stricter, never wider.
_ORGANISATION_ONLY = ("amber", "amber+strict", "red")


def _tags(obj: Mapping[str, Any], defs: Mapping[str, tuple[Tlp | None, Pap | None]]) -> list[dict[str, str]]:
    tlp, pap = _levels(obj, defs)
    names = ([f"tlp:{tlp}"] if tlp else []) + ([f"PAP:{pap.upper()}"] if pap else [])
    return [{"name": n} for n in [*names, *obj.get("labels", [])]]


def misp_type(path: str) -> str | None:
    """The MISP attribute type for a STIX path (``file:hashes.SHA-256``), None when MISP has none."""
    if path.startswith("file:hashes."):
        return _HASH_TYPES.get(path.rpartition(".")[2].upper().replace("-", ""))
    return MISP_TYPE_OF.get(path)


def stix_to_misp(
    objects: Iterable[Mapping[str, Any]], *, info: str | None = None, event_uuid: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """One MISP event (``{"Event": ...}``) for STIX objects, and what could not be carried.

    The event's uuid is its report's; without a report, ``event_uuid``: the same export must be the same
    event, or MISP makes a new copy at every import."""
    return _Export([dict(o) for o in objects], info, event_uuid).event()


class _Export:
    def __init__(self, objs: list[dict[str, Any]], info: str | None, event_uuid: str | None = None) -> None:
        self.objs = objs
        self.info = info
        self.event_uuid = event_uuid or str(uuid.uuid4())
        self.by_id = {str(o.get("id")): o for o in objs}
        self.defs = {
            i: definition_levels(o) for i, o in self.by_id.items() if o.get("type") == "marking-definition"
        }
        self.skipped: list[str] = []
        self.attributes: list[dict[str, Any]] = []
        self.misp_objects: dict[str, dict[str, Any]] = {}  # STIX id -> MISP object
        self.emitted: dict[str, str] = {}  # STIX id -> uuid of the MISP attribute or object it became
        self.galaxy_of: dict[str, tuple[str, str]] = {}  # STIX id of a cluster -> (galaxy type, value)
        self.galaxy_tags: dict[str, list[str]] = {}  # STIX id -> the galaxy tags relationships give it
        self.carried: set[str] = set()  # relationships carried as galaxy tags or object references

    def event(self) -> tuple[dict[str, Any], list[str]]:
        reports = [o for o in self.objs if o.get("type") == "report"]
        report = reports[0] if reports else None
        for extra in reports[1:]:
            self.skipped.append(
                f"{extra.get('id')}: one event holds one report; its name and tags are not carried"
            )
        creator = self.by_id.get(str((report or {}).get("created_by_ref"))) or next(
            (o for o in self.objs if o.get("type") == "identity"), None
        )
        galaxies = self._galaxies()
        consumed: set[str] = set()
        for o in self.objs:
            kind, oid = o.get("type"), str(o.get("id"))
            tags = _tags(o, self.defs) + [{"name": t} for t in self.galaxy_tags.get(oid, [])]
            base = self._base(o, tags)
            if kind == "indicator":
                self._indicator(o, base)
            elif kind == "observed-data":
                scos = []
                for ref in o.get("object_refs", []):
                    sco = self.by_id.get(str(ref))
                    if sco is None:
                        self.skipped.append(f"{oid}: {ref} is not in the selection")
                        continue
                    consumed.add(str(ref))
                    scos.append(sco)
                self._observed(o, base, scos, consumed)
            elif kind == "vulnerability":
                self._attribute(o, base, "vulnerability", o.get("name"), False, "External analysis")
        when = (report or {}).get("modified") or format_timestamp(datetime.now(UTC))
        consumed |= {
            str(o[f"{end}_ref"])
            for o in self.objs
            if o.get("type") == "network-traffic" and str(o.get("id")) not in consumed
            for end in ("src", "dst")
            if o.get(f"{end}_ref")
        }
        for o in self.objs:
            kind, oid = str(o.get("type")), str(o.get("id"))
            if kind in _SCO_BACK_TYPES and oid not in consumed:
                base = self._base(o, _tags(o, self.defs))
                base["timestamp"] = _epoch(when)
                self._observed(o, base, [o], consumed)
            elif kind not in _HANDLED and kind not in GALAXY_OF_TYPE and kind not in _SCO_BACK_TYPES:
                self.skipped.append(f"{oid}: {kind} has no MISP form")
        self._relationships()
        self.skipped += misp_sightings.to_misp(self.objs, self.by_id, self._attribute_of())
        event_uuid = str(report["id"]).partition("--")[2] if report else self.event_uuid
        report_id = str(report["id"]) if report else None
        on_event: dict[str, Any] = {}
        event_reports = misp_reports.to_event_reports(self.objs, report_id, self._distribution)
        places = self._places(report_id, event_uuid, on_event)
        for er in event_reports:
            places[f"note--{er['uuid']}"] = misp_analyst.Place(er, "EventReport", er["uuid"])
        self.skipped += misp_analyst.to_misp(
            self.objs,
            places,
            carried_elsewhere=lambda o: (
                misp_reports.is_event_report(o, report_id)
                or misp_analyst.is_false_positive(o)
                or str(o.get("id")) in self.carried
            ),
            distribution_of=self._distribution,
            by_id=self.by_id,
        )

        event_tags = _tags(report, self.defs) if report else []
        event_tags += [
            {"name": f'misp-galaxy:{g}="{c["value"]}"'}
            for g, gal in galaxies.items()
            for c in gal["GalaxyCluster"]
        ]
        published = report is not None and report.get("x_misp_published") is not False
        event: dict[str, Any] = {
            "uuid": event_uuid,
            "info": (report or {}).get("name") or self.info or "cyberpact export",
            # The day of the incident, which the import keeps as the report's created; analysts sort and
            # correlate on it and it ends up in court files, so the last edit (timestamp) must not replace it.
            "date": _day((report or {}).get("created")) or str(when)[:10],
            "timestamp": _epoch(when),
            "published": published,
            # The core format: 0 for an event never published.
            "publish_timestamp": _epoch((report or {}).get("published") or when) if published else "0",
            "threat_level_id": str((report or {}).get("x_misp_threat_level_id", "4")),
            "analysis": str((report or {}).get("x_misp_analysis", "0")),
            # The community: what TLP:GREEN means. Anything stricter is kept to the receiving organisation
            # on the item itself (_base), which is what a MISP sync honours; its TLP tag alone is not.
            "distribution": "1",
        }
        if creator is not None:
            # Without a known creator the receiving MISP names its own organisation; an empty uuid would
            # be an organisation of its own.
            event["Orgc"] = {
                "name": creator.get("name", "cyberpact"),
                "uuid": str(creator["id"]).partition("--")[2],
            }
        event.update(
            {
                "Tag": event_tags,
                "Attribute": self.attributes,
                "Object": list(self.misp_objects.values()),
                "Galaxy": list(galaxies.values()),
            }
        )
        if event_reports:
            event["EventReport"] = event_reports
        event.update(on_event)
        return {"Event": event}, self.skipped

    def _places(
        self, report_id: str | None, event_uuid: str, on_event: dict[str, Any]
    ) -> dict[str, misp_analyst.Place]:
        """Where analyst data about each STIX id goes: the event (its report), the attribute or MISP object
        it became, or the event report."""
        places: dict[str, misp_analyst.Place] = {}
        if report_id is not None:
            places[report_id] = misp_analyst.Place(on_event, "Event", event_uuid)
        for sid, attr in self._emitted_attributes().items():
            places[sid] = misp_analyst.Place(attr, "Attribute", attr["uuid"])
        for sid, mobj in self.misp_objects.items():
            places[sid] = misp_analyst.Place(mobj, "Object", mobj["uuid"])
        return places

    def _emitted_attributes(self) -> dict[str, dict[str, Any]]:
        """STIX id -> the MISP attribute (outside any object) it became."""
        by_uuid = {a["uuid"]: a for a in self.attributes}
        return {sid: by_uuid[u] for sid, u in self.emitted.items() if u in by_uuid}

    def _attribute_of(self) -> dict[str, dict[str, Any]]:
        """STIX id -> the MISP attribute it became; for a MISP object, its first attribute for detection
        (MISP keeps sightings on attributes, never on objects)."""
        out = self._emitted_attributes()
        for sid, mobj in self.misp_objects.items():
            attrs = mobj.get("Attribute") or []
            first = next((a for a in attrs if a.get("to_ids")), attrs[0] if attrs else None)
            if first is not None:
                out[sid] = first
        return out

    # ------------------------------------------------------------------------------ galaxies

    def _galaxies(self) -> dict[str, dict[str, Any]]:
        galaxies: dict[str, dict[str, Any]] = {}
        for o in self.objs:
            gtype = o.get("x_misp_galaxy_type") or GALAXY_OF_TYPE.get(str(o.get("type")))
            if gtype and o.get("type") in GALAXY_OF_TYPE:
                self.galaxy_of[str(o["id"])] = (str(gtype), str(o.get("name")))
                name = o.get("x_misp_galaxy_name")
                g = galaxies.setdefault(
                    str(gtype),
                    {"type": gtype, "name": name if isinstance(name, str) else gtype, "GalaxyCluster": []},
                )
                if isinstance(o.get("x_misp_galaxy_uuid"), str):
                    g.setdefault("uuid", o["x_misp_galaxy_uuid"])
                cluster = {
                    "uuid": str(o["id"]).partition("--")[2],
                    "type": gtype,
                    "value": o.get("name"),
                    "tag_name": f'misp-galaxy:{gtype}="{o.get("name")}"',
                }
                if o.get("description"):
                    cluster["description"] = o["description"]
                if meta := _cluster_meta(o):
                    cluster["meta"] = meta
                g["GalaxyCluster"].append(cluster)
        for o in self.objs:
            if o.get("type") == "relationship" and o.get("relationship_type") in _TAGGING:
                target = self.galaxy_of.get(str(o.get("target_ref")))
                if target:
                    self.galaxy_tags.setdefault(str(o.get("source_ref")), []).append(
                        f'misp-galaxy:{target[0]}="{target[1]}"'
                    )
        return galaxies

    def _relationships(self) -> None:
        for o in self.objs:
            if o.get("type") != "relationship":
                continue
            oid, source, target = str(o.get("id")), str(o.get("source_ref")), str(o.get("target_ref"))
            rel_type = str(o.get("relationship_type"))
            if target in self.galaxy_of and rel_type in _TAGGING and source in self.emitted:
                self.carried.add(oid)  # as the galaxy tag of its source
                continue
            mobj = self.misp_objects.get(source)
            if o.get(ANALYST_DATA) or mobj is None or target not in self.emitted:
                continue  # a MISP analyst relationship, if anything (misp_analyst)
            self.carried.add(oid)
            mobj.setdefault("ObjectReference", []).append(
                {
                    "uuid": oid.partition("--")[2],
                    "object_uuid": mobj["uuid"],
                    "referenced_uuid": self.emitted[target],
                    "relationship_type": o.get("x_misp_relationship_type") or rel_type,
                    "timestamp": _epoch(o.get("modified") or o.get("created")),
                    "comment": str(o.get("description", "")),
                    "deleted": o.get("revoked") is True,
                }
            )

    # --------------------------------------------------------------------- attributes and objects

    def _distribution(self, o: Mapping[str, Any]) -> str:
        return "0" if _levels(o, self.defs)[0] in _ORGANISATION_ONLY else "5"

    def _base(self, o: Mapping[str, Any], tags: list[dict[str, str]]) -> dict[str, Any]:
        base: dict[str, Any] = {
            "uuid": str(o.get("id")).partition("--")[2],
            "timestamp": _epoch(o.get("modified") or o.get("created")),
            "distribution": self._distribution(o),
            "comment": str(o.get("description", "")),
            "deleted": o.get("revoked") is True,
            "Tag": tags,
        }
        created = o.get("created")
        if o.get("type") == "indicator":
            first, last = o.get("valid_from"), o.get("valid_until")
        else:
            first, last = o.get("first_observed"), o.get("last_observed")
            last = last if last != first else None
        # Taken as MISP's first_seen only where it says more than when the object was made, which is
        # what the import fills it with when MISP had none.
        if isinstance(first, str) and first != created:
            base["first_seen"] = first
        if isinstance(last, str):
            base["last_seen"] = last
        return base

    def _attribute(
        self,
        o: Mapping[str, Any],
        base: dict[str, Any],
        mtype: str,
        value: Any,
        to_ids: bool,
        category: str | None = None,
    ) -> None:
        origin = o.get("x_misp_category") if o.get("x_misp_type") == mtype else None
        self.attributes.append(
            {
                **base,
                "type": mtype,
                "category": origin or category or CATEGORY_OF.get(mtype, _DEFAULT_CATEGORY),
                "value": str(value),
                "to_ids": to_ids,
            }
        )
        self.emitted.setdefault(str(o.get("id")), base["uuid"])

    def _indicator(self, o: dict[str, Any], base: dict[str, Any]) -> None:
        pattern = str(o.get("pattern", ""))
        comps = _pattern_values(o)
        if comps is not None and self._values(
            o, base, comps, True, conjunction=_AND.search(_LITERAL.sub("", pattern)) is not None
        ):
            return
        rule = _RULE_TYPES.get(str(o.get("pattern_type")))
        if rule is None:
            self.skipped.append(
                f"{o.get('id')}: a {o.get('pattern_type')} pattern has no MISP attribute type"
            )
            return
        self._attribute(o, base, rule[0], pattern, True, rule[1])

    def _observed(
        self,
        o: Mapping[str, Any],
        base: dict[str, Any],
        scos: Sequence[Mapping[str, Any]],
        consumed: set[str],
    ) -> None:
        # An address a network-traffic object points at is said by it (ip-dst|port), not again alone.
        children = {str(s.get(f"{end}_ref")) for s in scos for end in ("src", "dst") if s.get(f"{end}_ref")}
        consumed |= children
        comps = [c for s in scos if str(s.get("id")) not in children for c in _sco_values(s, self.by_id)]
        if comps:
            self._values(o, base, comps, False, conjunction=False)

    def _values(
        self,
        o: Mapping[str, Any],
        base: dict[str, Any],
        comps: list[tuple[str, Any]],
        to_ids: bool,
        *,
        conjunction: bool,
    ) -> bool:
        """Attributes (or the MISP object) for these comparisons; False when they cannot be carried
        exactly, for the caller to send the pattern whole."""
        oid = str(o.get("id"))
        if o.get("x_misp_object_name"):
            self._object(o, base, comps, to_ids)
            return True
        mtype = o.get("x_misp_type")
        if mtype is None and sorted(p for p, _ in comps) == list(_REGISTRY_VALUE):
            mtype = "regkey|value"  # a value's data has no MISP type of its own, only with its key
        if isinstance(mtype, str) and mtype in COMPOSITE and len(comps) == 2:
            value = _composite(mtype, comps)
            if value is not None:
                self._attribute(o, base, mtype, value, to_ids)
                return True
        typed = [(misp_type(path), path, value) for path, value in comps]
        if to_ids and ((conjunction and len(comps) > 1) or any(t is None for t, _, _ in typed)):
            return False
        for i, (t, path, value) in enumerate(typed):
            if t is None:
                self.skipped.append(f"{oid}: {path} has no MISP attribute type")
                continue
            if isinstance(mtype, str) and len(comps) == 1 and mtype not in COMPOSITE:
                t = mtype
            one = dict(base)
            if i:
                one["uuid"] = str(uuid.uuid5(LOCAL_NAMESPACE, f"{base['uuid']}:{i}"))
            self._attribute(o, one, t, value, to_ids)
        self.emitted[oid] = base["uuid"]
        return True

    def _object(
        self, o: Mapping[str, Any], base: dict[str, Any], comps: list[tuple[str, Any]], to_ids: bool
    ) -> None:
        oid = str(o.get("id"))
        attrs: list[dict[str, Any]] = []

        def add(
            relation: str, mtype: str, value: Any, ids: bool, auuid: str | None, category: str | None
        ) -> None:
            attrs.append(
                {
                    "uuid": auuid or str(uuid.uuid5(LOCAL_NAMESPACE, f"{base['uuid']}:{relation}:{value}")),
                    "object_relation": relation,
                    "type": mtype,
                    "category": category or CATEGORY_OF.get(mtype, _DEFAULT_CATEGORY),
                    "value": str(value),
                    "to_ids": ids,
                    "timestamp": base["timestamp"],
                    "distribution": base["distribution"],
                    "deleted": base["deleted"],
                    "Tag": base["Tag"],
                }
            )

        remaining = list(comps)
        entries = o.get("x_misp_object_attributes")
        legacy = o.get("x_misp_object_relations")
        if isinstance(entries, list):
            # Matched by value, not position: the pattern and the SCOs order values their own way.
            for e in entries:
                wanted = _entry_comparisons(e)
                if wanted is None or any(remaining.count(w) < wanted.count(w) for w in wanted):
                    continue
                for w in wanted:
                    remaining.remove(w)
                ids = to_ids and e.get("to_ids") is not False
                add(
                    str(e.get("object_relation") or e["type"]),
                    e["type"],
                    e["value"],
                    ids,
                    _str(e.get("uuid")),
                    _str(e.get("category")),
                )
        elif isinstance(legacy, list):
            # Objects stored before the attributes rode along: [relation, type] in the pattern's order.
            for i, (path, value) in enumerate(remaining):
                rel, mtype = (
                    legacy[i]
                    if i < len(legacy) and isinstance(legacy[i], list) and len(legacy[i]) == 2
                    else (None, None)
                )
                mtype = mtype or misp_type(path) or "text"
                add(str(rel or mtype), str(mtype), value, to_ids, None, None)
            remaining = []
        for path, value in remaining:  # values a later version added to what MISP sent
            t = misp_type(path)
            if t is None:
                self.skipped.append(f"{oid}: {path} has no MISP attribute type")
                continue
            add(t, t, value, to_ids, None, None)
        mobj: dict[str, Any] = {
            "uuid": base["uuid"],
            "name": o["x_misp_object_name"],
            "meta-category": o.get("x_misp_category", ""),
            "timestamp": base["timestamp"],
            "distribution": base["distribution"],
            "deleted": base["deleted"],
            "comment": base["comment"],
            "Attribute": attrs,
        }
        for key in ("template_uuid", "template_version"):
            if o.get(f"x_misp_{key}"):
                mobj[key] = o[f"x_misp_{key}"]
        for key in ("first_seen", "last_seen"):
            if key in base:
                mobj[key] = base[key]
        self.misp_objects[oid] = mobj
        self.emitted[oid] = base["uuid"]


def _cluster_meta(o: Mapping[str, Any]) -> dict[str, list[str]]:
    """What a galaxy cluster's MISP ``meta`` can say of a STIX object: its other names and its ids in a
    known scheme (ATT&CK, CAPEC), as the import reads them."""
    meta: dict[str, list[str]] = {}
    names = o.get("aliases", o.get("x_misp_synonyms"))
    if isinstance(names, list) and (synonyms := [n for n in names if isinstance(n, str)]):
        meta["synonyms"] = synonyms
    ids = [
        str(r["external_id"])
        for r in o.get("external_references") or []
        if isinstance(r, dict)
        and r.get("source_name") in ("mitre-attack", "capec")
        and isinstance(r.get("external_id"), str)
    ]
    if ids:
        meta["external_id"] = ids
    refs = [
        str(r["url"])
        for r in o.get("external_references") or []
        if isinstance(r, dict) and r.get("source_name") == REFERENCE and isinstance(r.get("url"), str)
    ]
    if refs:
        meta["refs"] = refs
    countries = o.get("x_misp_country")
    if isinstance(countries, list) and (named := [c for c in countries if isinstance(c, str)]):
        meta["country"] = named
    return meta


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _entry_comparisons(entry: Any) -> list[tuple[str, Any]] | None:
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("type"), str)
        or not isinstance(entry.get("value"), str)
    ):
        return None
    try:
        found = comparisons(entry["type"], entry["value"])
    except Refused:
        return None
    return [(f"{kind}:{path}", value) for kind, path, value in found] if found else None


def _composite(mtype: str, comps: list[tuple[str, Any]]) -> str | None:
    parts = []
    for paths in COMPOSITE[mtype]:
        value = next((v for p, v in comps if p in paths), None)
        if value is None:
            return None
        parts.append(str(value))
    return "|".join(parts)


_HANDLED = {
    "indicator",
    "observed-data",
    "vulnerability",
    "report",
    "identity",
    "marking-definition",
    "relationship",
    "sighting",
    "opinion",
    "note",
}
_TAGGING = ("indicates", "related-to")
_SCO_BACK_TYPES = {
    "ipv4-addr",
    "ipv6-addr",
    "domain-name",
    "url",
    "email-addr",
    "email-message",
    "mac-addr",
    "mutex",
    "file",
    "autonomous-system",
    "network-traffic",
    "windows-registry-key",
}


def _pattern_values(ind: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    if ind.get("pattern_type") != "stix":
        return None
    parsed = patterns.fast_parse(str(ind.get("pattern", "")))
    if not parsed or any(c.op != "=" for c in parsed):
        return None
    return [(f"{c.object_type}:{_path(c.path)}", c.value) for c in parsed]


def _path(steps: Sequence[str]) -> str:
    """A pattern's property path as the MISP vocabulary spells it: ``values[*].data``, an index step
    written against the step it indexes."""
    return "".join(s if s.startswith("[") else f".{s}" for s in steps)[1:]


def _sco_values(sco: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Any]]:
    kind = sco.get("type")
    out: list[tuple[str, Any]] = []
    for prop in ("value", "name", "number", "subject", "key", "size"):
        if prop in sco:
            out.append((f"{kind}:{prop}", sco[prop]))
    for alg, digest in (sco.get("hashes") or {}).items():
        out.append((f"{kind}:hashes.{alg}", digest))
    if kind == "windows-registry-key" and isinstance(sco.get("values"), list):
        out += [
            (f"{kind}:values[*].data", v["data"])
            for v in sco["values"]
            if isinstance(v, dict) and isinstance(v.get("data"), str)
        ]
    for end in ("src", "dst"):
        ref = by_id.get(str(sco.get(f"{end}_ref")))
        if ref is not None and "value" in ref:
            out.append((f"{kind}:{end}_ref.value", ref["value"]))
        if f"{end}_port" in sco:
            out.append((f"{kind}:{end}_port", sco[f"{end}_port"]))
    return out
