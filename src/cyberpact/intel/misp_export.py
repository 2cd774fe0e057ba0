"""STIX 2.1 objects to one MISP event (the MISP core JSON format): the way back of ``misp``.

Indicators whose pattern is a conjunction of equality comparisons become attributes with ``to_ids`` (or the
MISP object they came from); other patterns travel whole as ``stix2-pattern`` attributes. Observed data
and SCOs become attributes without ``to_ids``; threat actors, malware, tools, attack patterns, intrusion
sets and courses of action become galaxy clusters; TLP and PAP markings become ``tlp:*`` and ``PAP:*`` tags.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cyberpact.intel import patterns
from cyberpact.intel.markings import Pap, Tlp, definition_levels, effective
from cyberpact.intel.misp import CATEGORY_OF, GALAXY_OF_TYPE, LOCAL_NAMESPACE, MISP_TYPE_OF
from cyberpact.intel.stix import format_timestamp, parse_timestamp


def _epoch(value: Any) -> str:
    try:
        return str(int(parse_timestamp(value).timestamp()))
    except ValueError:
        return "0"


def _levels(obj: Mapping[str, Any], defs: Mapping[str, tuple[Tlp | None, Pap | None]]) -> tuple[Any, Any]:
    return effective(obj.get("object_marking_refs", []), defs)


def _tags(obj: Mapping[str, Any], defs: Mapping[str, tuple[Tlp | None, Pap | None]]) -> list[dict[str, str]]:
    tlp, pap = _levels(obj, defs)
    names = ([f"tlp:{tlp}"] if tlp else []) + ([f"PAP:{pap.upper()}"] if pap else [])
    return [{"name": n} for n in [*names, *obj.get("labels", [])]]


def stix_to_misp(
    objects: Iterable[Mapping[str, Any]], *, info: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """One MISP event (``{"Event": ...}``) for STIX objects, and what could not be carried."""
    objs = [dict(o) for o in objects]
    by_id = {str(o.get("id")): o for o in objs}
    defs = {i: definition_levels(o) for i, o in by_id.items() if o.get("type") == "marking-definition"}
    skipped: list[str] = []
    report = next((o for o in objs if o.get("type") == "report"), None)
    creator = by_id.get(str((report or {}).get("created_by_ref"))) or next(
        (o for o in objs if o.get("type") == "identity"), None
    )
    galaxy_of: dict[str, tuple[str, str]] = {}
    galaxies: dict[str, dict[str, Any]] = {}
    for o in objs:
        gtype = o.get("x_misp_galaxy_type") or GALAXY_OF_TYPE.get(str(o.get("type")))
        if gtype and o.get("type") in GALAXY_OF_TYPE:
            galaxy_of[str(o["id"])] = (str(gtype), str(o.get("name")))
            g = galaxies.setdefault(str(gtype), {"type": gtype, "name": gtype, "GalaxyCluster": []})
            cluster = {"uuid": str(o["id"]).partition("--")[2], "type": gtype, "value": o.get("name")}
            if o.get("description"):
                cluster["description"] = o["description"]
            g["GalaxyCluster"].append(cluster)
    indicated: dict[str, list[str]] = {}
    for o in objs:
        if o.get("type") == "relationship" and o.get("relationship_type") == "indicates":
            target = galaxy_of.get(str(o.get("target_ref")))
            if target:
                indicated.setdefault(str(o.get("source_ref")), []).append(
                    f'misp-galaxy:{target[0]}="{target[1]}"'
                )

    attributes: list[dict[str, Any]] = []
    misp_objects: list[dict[str, Any]] = []
    consumed: set[str] = set()
    for o in objs:
        kind, oid = o.get("type"), str(o.get("id"))
        tags = _tags(o, defs) + [{"name": t} for t in indicated.get(oid, [])]
        base = {
            "uuid": oid.partition("--")[2],
            "timestamp": _epoch(o.get("modified") or o.get("created")),
            "comment": str(o.get("description", "")),
            "Tag": tags,
        }
        if kind == "indicator":
            comps = _pattern_values(o)
            if comps is None:
                attributes.append(
                    {
                        **base,
                        "type": "stix2-pattern",
                        "category": "Network activity",
                        "value": o.get("pattern"),
                        "to_ids": True,
                    }
                )
                continue
            _emit_misp(o, base, comps, True, attributes, misp_objects)
        elif kind == "observed-data":
            comps = []
            for ref in o.get("object_refs", []):
                sco = by_id.get(str(ref))
                if sco is None:
                    skipped.append(f"{oid}: {ref} is not in the selection")
                    continue
                consumed.add(str(ref))
                comps.extend(_sco_values(sco))
            if comps:
                _emit_misp(o, base, comps, False, attributes, misp_objects)
        elif kind == "vulnerability":
            attributes.append(
                {
                    **base,
                    "type": "vulnerability",
                    "value": o.get("name"),
                    "to_ids": False,
                    "category": o.get("x_misp_category") or "External analysis",
                }
            )
    for o in objs:
        kind, oid = str(o.get("type")), str(o.get("id"))
        if kind in _SCO_BACK_TYPES and oid not in consumed:
            comps = _sco_values(o)
            base = {"uuid": oid.partition("--")[2], "timestamp": "0", "comment": "", "Tag": _tags(o, defs)}
            _emit_misp(o, base, comps, False, attributes, misp_objects)
        elif kind not in _HANDLED and kind not in GALAXY_OF_TYPE and kind not in _SCO_BACK_TYPES:
            skipped.append(f"{oid}: {kind} has no MISP form")

    event_tags = _tags(report, defs) if report else []
    event_tags += [
        {"name": f'misp-galaxy:{g}="{c["value"]}"'}
        for g, gal in galaxies.items()
        for c in gal["GalaxyCluster"]
    ]
    when = (report or {}).get("modified") or format_timestamp(datetime.now(UTC))
    event: dict[str, Any] = {
        "uuid": str((report or {}).get("id", f"report--{uuid.uuid4()}")).partition("--")[2],
        "info": (report or {}).get("name") or info or "cyberpact export",
        "date": str(when)[:10],
        "timestamp": _epoch(when),
        "published": report is not None,
        "publish_timestamp": _epoch((report or {}).get("published") or when),
        "threat_level_id": str((report or {}).get("x_misp_threat_level_id", "4")),
        "analysis": str((report or {}).get("x_misp_analysis", "0")),
        "distribution": "0",
        "Orgc": {
            "name": (creator or {}).get("name", "cyberpact"),
            "uuid": str((creator or {}).get("id", "identity--")).partition("--")[2],
        },
        "Tag": event_tags,
        "Attribute": attributes,
        "Object": misp_objects,
        "Galaxy": list(galaxies.values()),
    }
    return {"Event": event}, skipped


_HANDLED = {
    "indicator",
    "observed-data",
    "vulnerability",
    "report",
    "identity",
    "marking-definition",
    "relationship",
}
_SCO_BACK_TYPES = {
    "ipv4-addr",
    "ipv6-addr",
    "domain-name",
    "url",
    "email-addr",
    "mac-addr",
    "file",
    "autonomous-system",
}


def _pattern_values(ind: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    if ind.get("pattern_type") != "stix":
        return None
    parsed = patterns.fast_parse(str(ind.get("pattern", "")))
    if not parsed or any(c.op != "=" for c in parsed):
        return None
    return [(f"{c.object_type}:{'.'.join(c.path)}", c.value) for c in parsed]


def _sco_values(sco: Mapping[str, Any]) -> list[tuple[str, Any]]:
    kind = sco.get("type")
    out: list[tuple[str, Any]] = []
    for prop in ("value", "name", "number"):
        if prop in sco:
            out.append((f"{kind}:{prop}", sco[prop]))
    for alg, digest in (sco.get("hashes") or {}).items():
        out.append((f"{kind}:hashes.{alg}", digest))
    return out


def _emit_misp(
    o: Mapping[str, Any],
    base: dict[str, Any],
    comps: list[tuple[str, Any]],
    to_ids: bool,
    attributes: list[dict[str, Any]],
    misp_objects: list[dict[str, Any]],
) -> None:
    relations = o.get("x_misp_object_relations")
    if o.get("x_misp_object_name"):
        attrs = []
        for i, (path, value) in enumerate(comps):
            rel, mtype = relations[i] if isinstance(relations, list) and i < len(relations) else (None, None)
            mtype = mtype or MISP_TYPE_OF.get(path, "text")
            attrs.append(
                {
                    "object_relation": rel or mtype,
                    "type": mtype,
                    "value": str(value),
                    "to_ids": to_ids,
                    "Tag": base["Tag"],
                }
            )
        misp_objects.append(
            {
                "uuid": base["uuid"],
                "name": o["x_misp_object_name"],
                "timestamp": base["timestamp"],
                "meta-category": o.get("x_misp_category", ""),
                "comment": base["comment"],
                "Attribute": attrs,
            }
        )
        return
    mtype = o.get("x_misp_type")
    if isinstance(mtype, str) and mtype.startswith("filename|") and len(comps) == 2:
        value = f"{comps[0][1]}|{comps[1][1]}"
        attributes.append(
            {
                **base,
                "type": mtype,
                "value": value,
                "to_ids": to_ids,
                "category": o.get("x_misp_category") or "Payload delivery",
            }
        )
        return
    for i, (path, value) in enumerate(comps):
        t = mtype if isinstance(mtype, str) and len(comps) == 1 else MISP_TYPE_OF.get(path, "text")
        attr = {
            **base,
            "type": t,
            "value": str(value),
            "to_ids": to_ids,
            "category": o.get("x_misp_category") or CATEGORY_OF.get(t, "Network activity"),
        }
        if i:
            attr["uuid"] = str(uuid.uuid5(LOCAL_NAMESPACE, f"{base['uuid']}:{i}"))
        attributes.append(attr)
