"""MISP interchange: MISP core-format events to STIX 2.1, and STIX 2.1 objects back to a MISP event.

What maps, as far as STIX can carry it:

* the event becomes a ``report`` (its uuid kept), the creating organisation an ``identity``;
* an attribute with ``to_ids`` becomes an ``indicator`` (its uuid kept) whose pattern compares the value;
  one without becomes ``observed-data`` over the matching SCO (UUIDv5 ids, as STIX prescribes for SCOs);
* a MISP object becomes one indicator (any attribute ``to_ids``) or one observed-data, over all its
  attributes;
* ``tlp:*`` tags become TLP 2.0 markings, ``PAP:*`` tags PAP markings, other tags labels;
* galaxy clusters become threat-actor, malware, tool, attack-pattern, intrusion-set or course-of-action
  objects, tied to the attributes that carry them by ``indicates`` relationships.

MISP's own type, category and object name ride along as ``x_misp_*`` properties so the way back
(``misp_export``) is exact. Attribute types with no STIX form are reported as skipped, never silently dropped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from cyberpact.intel.markings import (
    PAP_ORDER,
    TLP_ORDER,
    Pap,
    Tlp,
    pap_definition,
    parse_pap,
    parse_tlp,
    tlp_definition,
)
from cyberpact.intel.stix import format_timestamp
from cyberpact.kit.canonical import canonical_json_floatless

SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")  # STIX 2.1, section 2.9
LOCAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cyberpact.dev/stix/misp")
_GALAXY_TAG = re.compile(r'misp-galaxy:([^=]+)="(.*)"')

# MISP attribute type -> (SCO type, property path); hashes are handled apart.
_SIMPLE: dict[str, tuple[str, str]] = {
    "domain": ("domain-name", "value"),
    "hostname": ("domain-name", "value"),
    "url": ("url", "value"),
    "link": ("url", "value"),
    "uri": ("url", "value"),
    "email": ("email-addr", "value"),
    "email-src": ("email-addr", "value"),
    "email-dst": ("email-addr", "value"),
    "filename": ("file", "name"),
    "mac-address": ("mac-addr", "value"),
    "AS": ("autonomous-system", "number"),
}
_HASHES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512", "ssdeep": "SSDEEP"}
# STIX path -> MISP type, for objects that do not say which MISP type they came from.
MISP_TYPE_OF = {
    "ipv4-addr:value": "ip-dst",
    "ipv6-addr:value": "ip-dst",
    "domain-name:value": "domain",
    "url:value": "url",
    "email-addr:value": "email",
    "file:name": "filename",
    "mac-addr:value": "mac-address",
    "autonomous-system:number": "AS",
    **{f"file:hashes.{v}": k for k, v in _HASHES.items()},
}
CATEGORY_OF = {
    "md5": "Payload delivery",
    "sha1": "Payload delivery",
    "sha256": "Payload delivery",
    "sha512": "Payload delivery",
    "ssdeep": "Payload delivery",
    "filename": "Payload delivery",
    "vulnerability": "External analysis",
}
# Galaxy type -> STIX type.
_GALAXIES = {
    "threat-actor": "threat-actor",
    "mitre-intrusion-set": "intrusion-set",
    "intrusion-set": "intrusion-set",
    "mitre-attack-pattern": "attack-pattern",
    "attack-pattern": "attack-pattern",
    "mitre-malware": "malware",
    "malpedia": "malware",
    "ransomware": "malware",
    "malware": "malware",
    "mitre-tool": "tool",
    "tool": "tool",
    "mitre-course-of-action": "course-of-action",
}
GALAXY_OF_TYPE = {
    "threat-actor": "threat-actor",
    "intrusion-set": "mitre-intrusion-set",
    "attack-pattern": "mitre-attack-pattern",
    "malware": "malpedia",
    "tool": "mitre-tool",
    "course-of-action": "mitre-course-of-action",
}


@dataclass
class Conversion:
    objects: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _ts_epoch(value: Any, fallback: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return fallback


def _uuid(value: Any, salt: str) -> str:
    """The MISP uuid when it is an RFC 4122 UUID (STIX requires that variant), else a stable UUIDv5."""
    try:
        u = uuid.UUID(str(value))
        if u.variant == uuid.RFC_4122:
            return str(u)
    except ValueError:
        pass
    return str(uuid.uuid5(LOCAL_NAMESPACE, f"{salt}:{value}"))


def _sco_id(kind: str, props: Mapping[str, Any]) -> str:
    return f"{kind}--{uuid.uuid5(SCO_NAMESPACE, canonical_json_floatless(dict(props)).decode())}"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _comparisons(misp_type: str, value: str) -> list[tuple[str, str, Any]] | None:
    """(SCO type, property path, value) for a MISP attribute, or None when STIX has no form for it."""
    if misp_type in ("ip-src", "ip-dst"):
        return [("ipv6-addr" if ":" in value else "ipv4-addr", "value", value)]
    if misp_type in _SIMPLE:
        kind, path = _SIMPLE[misp_type]
        if misp_type == "AS":
            digits = value.upper().removeprefix("AS")
            return [(kind, path, int(digits))] if digits.isdigit() else None
        return [(kind, path, value)]
    if misp_type in _HASHES:
        return [("file", f"hashes.{_HASHES[misp_type]}", value)]
    if misp_type.startswith("filename|") and misp_type[9:] in _HASHES:
        name, _, digest = value.partition("|")
        return [("file", "name", name), ("file", f"hashes.{_HASHES[misp_type[9:]]}", digest)]
    return None


def _pattern(comps: list[tuple[str, str, Any]]) -> str:
    def one(kind: str, path: str, value: Any) -> str:
        steps = path.split(".")
        rendered = steps[0] + "".join(f".{_quote(s)}" if "-" in s else f".{s}" for s in steps[1:])
        literal = str(value) if isinstance(value, int) else _quote(str(value))
        return f"{kind}:{rendered} = {literal}"

    by_type: dict[str, list[str]] = {}
    for kind, path, value in comps:
        by_type.setdefault(kind, []).append(one(kind, path, value))
    return " AND ".join(f"[{' AND '.join(parts)}]" for parts in by_type.values())


def _scos(comps: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for kind, path, value in comps:
        props = grouped.setdefault(kind, {})
        if path.startswith("hashes."):
            props.setdefault("hashes", {})[path[7:]] = value
        else:
            props[path] = value
    out = []
    for kind, props in grouped.items():
        id_props: dict[str, Any] = {k: props[k] for k in ("hashes", "value", "name", "number") if k in props}
        if kind == "file" and "hashes" in props:
            id_props = {"hashes": props["hashes"]}
        out.append({"type": kind, "spec_version": "2.1", "id": _sco_id(kind, id_props), **props})
    return out


class _Tags:
    def __init__(self, tags: Iterable[Any]) -> None:
        self.tlp: Tlp | None = None
        self.pap: Pap | None = None
        self.labels: list[str] = []
        self.galaxies: list[tuple[str, str]] = []
        for tag in tags or ():
            name = tag.get("name") if isinstance(tag, dict) else tag
            if not isinstance(name, str) or not name:
                continue
            if (tlp := parse_tlp(name)) and name.lower().startswith("tlp:"):
                self.tlp = _stricter(self.tlp, tlp, TLP_ORDER)
            elif pap := parse_pap(name):
                self.pap = _stricter(self.pap, pap, PAP_ORDER)
            elif m := _GALAXY_TAG.fullmatch(name):
                self.galaxies.append((m.group(1), m.group(2)))
            else:
                self.labels.append(name)

    def markings(self, inherited: _Tags | None = None) -> list[str]:
        tlp = self.tlp or (inherited.tlp if inherited else None)
        pap = self.pap or (inherited.pap if inherited else None)
        out = [tlp_definition(tlp)["id"]] if tlp else []
        return out + ([pap_definition(pap)["id"]] if pap else [])


def _stricter(a: Any, b: Any, order: tuple[Any, ...]) -> Any:
    return b if a is None or order.index(b) > order.index(a) else a


def _events(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [e for item in data for e in _events(item)]
    if isinstance(data, dict):
        if "response" in data:
            return _events(data["response"])
        if isinstance(data.get("Event"), dict):
            return [data["Event"]]
        if "Attribute" in data or "info" in data:
            return [data]
    return []


def misp_to_stix(data: Any) -> Conversion:
    """STIX 2.1 objects for MISP events (``{"Event": ...}``, a bare event, a list, or a search response)."""
    out = Conversion()
    events = _events(data)
    if not events:
        out.skipped.append("no MISP event found (expected {'Event': {...}})")
    for event in events:
        _event(event, out)
    return out


def _event(event: dict[str, Any], out: Conversion) -> None:
    ev_uuid = _uuid(event.get("uuid"), "event")
    day = _day(event.get("date"))
    modified = _ts_epoch(event.get("timestamp"), day)
    created = min(day, modified)
    published = _ts_epoch(event.get("publish_timestamp"), modified) if event.get("published") else modified
    created_s, modified_s = format_timestamp(created), format_timestamp(modified)
    tags = _Tags(event.get("Tag", []))
    orgc = event.get("Orgc") or event.get("Org") or {}
    identity = {
        "type": "identity",
        "spec_version": "2.1",
        "id": f"identity--{_uuid(orgc.get('uuid'), 'org:' + str(orgc.get('name')))}",
        "created": created_s,
        "modified": created_s,
        "name": str(orgc.get("name") or "unknown MISP organisation"),
        "identity_class": "organization",
    }
    common = {"spec_version": "2.1", "created_by_ref": identity["id"]}
    refs: list[str] = []
    objects: list[dict[str, Any]] = []
    clusters: dict[tuple[str, str], dict[str, Any]] = {}

    def cluster(gtype: str, value: str, meta: Mapping[str, Any] | None = None) -> str | None:
        stix_type = _GALAXIES.get(gtype)
        if stix_type is None:
            out.skipped.append(f"galaxy {gtype}={value!r}: no STIX type for this galaxy")
            return None
        key = (gtype, value)
        if key not in clusters:
            meta = meta or {}
            obj: dict[str, Any] = {
                "type": stix_type,
                "id": f"{stix_type}--{_uuid(meta.get('uuid'), f'galaxy:{gtype}:{value}')}",
                "created": created_s,
                "modified": modified_s,
                "name": value,
                **common,
                "x_misp_galaxy_type": gtype,
            }
            if stix_type == "malware":
                obj["is_family"] = True
            if isinstance(meta.get("description"), str) and meta["description"]:
                obj["description"] = meta["description"]
            clusters[key] = obj
        return str(clusters[key]["id"])

    for galaxy in event.get("Galaxy", []) or []:
        for c in galaxy.get("GalaxyCluster", []) or []:
            if isinstance(c, dict) and c.get("value"):
                cluster(str(c.get("type") or galaxy.get("type")), str(c["value"]), c)
    for gtype, value in tags.galaxies:
        cluster(gtype, value)

    def emit(
        source: dict[str, Any], comps: list[tuple[str, str, Any]], item_tags: _Tags, extra: dict[str, Any]
    ) -> None:
        oid = _uuid(source.get("uuid"), f"{ev_uuid}:{source.get('type')}:{source.get('value')}")
        when = _ts_epoch(source.get("timestamp"), modified)
        when_s = format_timestamp(max(when, created))
        markings = item_tags.markings(tags)
        labelled = {"labels": item_tags.labels} if item_tags.labels else {}
        described = {"description": source["comment"]} if source.get("comment") else {}
        seen = _seen(source.get("first_seen")) or when_s
        to_ids = extra.pop("_to_ids")
        if to_ids:
            obj: dict[str, Any] = {
                "type": "indicator",
                "id": f"indicator--{oid}",
                "created": when_s,
                "modified": when_s,
                "pattern": extra.pop("_pattern", None) or _pattern(comps),
                "pattern_type": "stix",
                "valid_from": seen,
                "indicator_types": ["malicious-activity"],
                **common,
            }
        else:
            scos = _scos(comps)
            for sco in scos:
                if markings:
                    sco["object_marking_refs"] = markings
                objects.append(sco)
            last = _seen(source.get("last_seen")) or seen
            obj = {
                "type": "observed-data",
                "id": f"observed-data--{oid}",
                "created": when_s,
                "modified": when_s,
                "first_observed": seen,
                "last_observed": max(last, seen),
                "number_observed": 1,
                "object_refs": [s["id"] for s in scos],
                **common,
            }
        obj.update(described, **labelled, **extra)
        if markings:
            obj["object_marking_refs"] = markings
        objects.append(obj)
        refs.append(obj["id"])
        for gtype, value in item_tags.galaxies:
            target = cluster(gtype, value)
            if target and to_ids:
                objects.append(_relationship(obj["id"], target, when_s, common))

    for attr in event.get("Attribute", []) or []:
        if not isinstance(attr, dict) or attr.get("deleted") in (True, "1"):
            continue
        atype, value = str(attr.get("type")), str(attr.get("value", ""))
        item_tags = _Tags(attr.get("Tag", []))
        if atype == "vulnerability":
            vuln = _vulnerability(attr, value, modified, common, item_tags.markings(tags))
            objects.append(vuln)
            refs.append(vuln["id"])
            continue
        if atype == "stix2-pattern":
            extra = {
                "x_misp_type": atype,
                "x_misp_category": str(attr.get("category") or ""),
                "_to_ids": True,
                "_pattern": value,
            }
            emit(attr, [], item_tags, extra)
            continue
        comps = _comparisons(atype, value)
        if comps is None:
            out.skipped.append(f"attribute {attr.get('uuid')} of type {atype}: no STIX form")
            continue
        extra = {
            "x_misp_type": atype,
            "x_misp_category": str(attr.get("category") or ""),
            "_to_ids": _truthy(attr.get("to_ids")),
        }
        emit(attr, comps, item_tags, extra)

    for mobj in event.get("Object", []) or []:
        if not isinstance(mobj, dict) or mobj.get("deleted") in (True, "1"):
            continue
        comps, relations, to_ids, obj_tags = [], [], False, _Tags([])
        for attr in mobj.get("Attribute", []) or []:
            found = _comparisons(str(attr.get("type")), str(attr.get("value", "")))
            if found is None:
                out.skipped.append(
                    f"object {mobj.get('name')} attribute {attr.get('object_relation')}: no STIX form"
                )
                continue
            comps.extend(found)
            relations.append([attr.get("object_relation"), attr.get("type")])
            to_ids = to_ids or _truthy(attr.get("to_ids"))
            more = _Tags(attr.get("Tag", []))
            obj_tags.tlp = _stricter(obj_tags.tlp, more.tlp, TLP_ORDER) if more.tlp else obj_tags.tlp
            obj_tags.pap = _stricter(obj_tags.pap, more.pap, PAP_ORDER) if more.pap else obj_tags.pap
            obj_tags.galaxies += more.galaxies
        if not comps:
            continue
        extra = {
            "x_misp_object_name": str(mobj.get("name")),
            "x_misp_object_relations": relations,
            "x_misp_category": str(mobj.get("meta-category") or ""),
            "_to_ids": to_ids,
        }
        emit(mobj, comps, obj_tags, extra)

    refs.extend(c["id"] for c in clusters.values())
    report: dict[str, Any] = {
        "type": "report",
        "id": f"report--{ev_uuid}",
        "created": created_s,
        "modified": modified_s,
        "name": str(event.get("info") or "MISP event"),
        "published": format_timestamp(published),
        "report_types": ["threat-report"],
        "object_refs": refs or [identity["id"]],
        **common,
        "external_references": [{"source_name": "misp", "external_id": str(event.get("uuid"))}],
    }
    if tags.labels:
        report["labels"] = tags.labels
    for key in ("threat_level_id", "analysis"):
        if event.get(key) is not None:
            report[f"x_misp_{key}"] = str(event[key])
    if tags.markings():
        report["object_marking_refs"] = tags.markings()
    used = {m for o in [*objects, report] for m in o.get("object_marking_refs", [])}
    definitions = [tlp_definition(lv) for lv in TLP_ORDER if tlp_definition(lv)["id"] in used]
    definitions += [pap_definition(lv) for lv in PAP_ORDER if pap_definition(lv)["id"] in used]
    out.objects.extend([*definitions, identity, *clusters.values(), *objects, report])


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _day(value: Any) -> datetime:
    try:
        d = date.fromisoformat(str(value))
    except ValueError:
        d = date(1970, 1, 1)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _seen(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return format_timestamp(datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC))
    except ValueError:
        return None


def _relationship(source: str, target: str, when: str, common: dict[str, Any]) -> dict[str, Any]:
    rid = uuid.uuid5(LOCAL_NAMESPACE, f"{source}|indicates|{target}")
    return {
        "type": "relationship",
        "id": f"relationship--{rid}",
        "created": when,
        "modified": when,
        "relationship_type": "indicates",
        "source_ref": source,
        "target_ref": target,
        **common,
    }


def _vulnerability(
    attr: dict[str, Any], value: str, modified: datetime, common: dict[str, Any], markings: list[str]
) -> dict[str, Any]:
    when = format_timestamp(_ts_epoch(attr.get("timestamp"), modified))
    vuln: dict[str, Any] = {
        "type": "vulnerability",
        "id": f"vulnerability--{_uuid(attr.get('uuid'), 'vuln:' + value)}",
        "created": when,
        "modified": when,
        "name": value,
        **common,
        "x_misp_type": "vulnerability",
        "x_misp_category": str(attr.get("category") or "External analysis"),
    }
    if value.upper().startswith("CVE-"):
        vuln["external_references"] = [{"source_name": "cve", "external_id": value.upper()}]
    if markings:
        vuln["object_marking_refs"] = markings
    return vuln
