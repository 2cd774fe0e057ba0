"""MISP galaxy clusters as STIX objects (the import side of ``misp``): threat actors, malware, tools,
attack patterns, intrusion sets and courses of action, one object per (galaxy, value) however many
attributes and objects of the event carry it.

A cluster is marked at least as its event, and as the strictest of what names it: MISP users keep their
own clusters (suspects, informants, victims) in these galaxies, and a cluster is shared on its own, apart
from the report and the attributes that say why it matters. Naming an actor in a TLP:RED attribute makes
the actor itself TLP:RED, whatever a wider event or attribute says of it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cyberpact.intel import misp_types as vocab
from cyberpact.intel.misp_tags import Tags, strictest
from cyberpact.intel.misp_types import stix_uuid, text

# STIX 2.1 types with ``aliases``, where MISP's synonyms go (as misp-stix does): an actor's other names are
# how partners match "LockBit Black" with "LockBit". A course of action has none; its synonyms ride along.
_ALIASED = ("threat-actor", "intrusion-set", "malware", "tool", "attack-pattern")
# ATT&CK ids (technique, sub-technique, tactic, group, software, mitigation, campaign): the source name
# ATT&CK's own STIX uses, so that partners line up TTPs across reports.
_ATTACK_ID = re.compile(r"(?:T\d{4}(?:\.\d{3})?|TA\d{4}|G\d{4}|S\d{4}|M\d{4}|C\d{4})")
_CAPEC_ID = re.compile(r"CAPEC-\d+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_URL = re.compile(r"https?://[^\s]+")
# The source name of a cluster's reference (``meta.refs``): a page about it, of no id scheme.
REFERENCE = "misp-galaxy-ref"
MAX_NAMES = 100  # synonyms or ids of one cluster; real clusters have a few dozen at most
MAX_NAME = 1000


def external_source(external_id: str) -> str | None:
    """The STIX ``source_name`` of a cluster's ``external_id``; None for an id of no known scheme."""
    if _ATTACK_ID.fullmatch(external_id):
        return "mitre-attack"
    if _CAPEC_ID.fullmatch(external_id):
        return "capec"
    return None


class Galaxies:
    def __init__(
        self, *, created: str, modified: str, common: Mapping[str, Any], tags: Tags, skipped: list[str]
    ) -> None:
        self.created, self.modified, self.common = created, modified, common
        self.tags = tags  # the event's: a cluster of an event MISP keeps home stays home too
        self.skipped = skipped
        self.clusters: dict[tuple[str, str], dict[str, Any]] = {}
        self.meta: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.galaxy: dict[tuple[str, str], Mapping[str, Any]] = {}  # the Galaxy block declaring it

    def declare(self, galaxies: list[Any], where: str | None) -> list[tuple[str, str]]:
        """The (galaxy, value) of each cluster in MISP ``Galaxy`` blocks, whose details (uuid, description)
        are kept for when the cluster is named; what cannot be read is named in ``skipped`` when ``where``
        says where it was. The first block to describe a cluster describes it."""
        out: list[tuple[str, str]] = []
        for galaxy in galaxies:
            clusters = galaxy.get("GalaxyCluster") if isinstance(galaxy, dict) else None
            if not isinstance(clusters, list):
                if where:
                    self.skipped.append(f"{where} Galaxy entry without a GalaxyCluster list")
                continue
            for c in clusters:
                if isinstance(c, dict) and isinstance(c.get("value"), str) and c["value"]:
                    key = (text(c.get("type")) or text(galaxy.get("type")), c["value"])
                    self.meta.setdefault(key, c)
                    self.galaxy.setdefault(key, galaxy)
                    out.append(key)
                elif where:
                    self.skipped.append(f"{where} galaxy cluster without a value")
        return out

    def cluster(self, gtype: str, value: str, markings: list[str]) -> str | None:
        """The cluster's STIX id, made on first use and marked at least as strictly as ``markings`` (those
        of what names it here); None (and named) for a galaxy with no STIX type."""
        stix_type = vocab.GALAXIES.get(gtype)
        if stix_type is None:
            note = f"galaxy {gtype}={value!r}: no STIX type for this galaxy"
            if note not in self.skipped:
                self.skipped.append(note)
            return None
        key = (gtype, value)
        if key not in self.clusters:
            meta = self.meta.get(key, {})
            obj: dict[str, Any] = {
                "type": stix_type,
                "id": f"{stix_type}--{stix_uuid(meta.get('uuid'), f'galaxy:{gtype}:{value}')}",
                "created": self.created,
                "modified": self.modified,
                "name": value,
                **self.common,
                "x_misp_galaxy_type": gtype,
            }
            if stix_type == "malware":
                obj["is_family"] = True
            if isinstance(meta.get("description"), str) and meta["description"]:
                obj["description"] = meta["description"]
            galaxy = self.galaxy.get(key, {})
            if text(galaxy.get("name")).strip():
                obj["x_misp_galaxy_name"] = text(galaxy.get("name")).strip()[:MAX_NAME]
            if _UUID.fullmatch(text(galaxy.get("uuid"))):
                obj["x_misp_galaxy_uuid"] = text(galaxy.get("uuid")).lower()
            self._meta(obj, meta.get("meta"), f"galaxy {gtype}={value!r}")
            self.clusters[key] = obj
        obj = self.clusters[key]
        marked = strictest(obj.get("object_marking_refs", []), self.tags.markings(), markings)
        if marked:
            obj["object_marking_refs"] = marked
        return str(obj["id"])

    def _meta(self, obj: dict[str, Any], meta: Any, label: str) -> None:
        """The cluster's synonyms as ``aliases`` and its ``external_id``s as external references; what
        cannot be read is named in ``skipped``, and the cluster is kept with its name."""
        if meta is None:
            return
        if not isinstance(meta, dict):
            self.skipped.append(f"{label}: meta is not an object; its synonyms and ids are not carried")
            return
        synonyms = self._names(meta.get("synonyms"), f"{label} synonyms")
        synonyms = [n for n in synonyms if n != obj["name"]]
        if synonyms:
            obj["aliases" if obj["type"] in _ALIASED else "x_misp_synonyms"] = synonyms
        refs = []
        for external_id in self._names(meta.get("external_id"), f"{label} external_id"):
            source = external_source(external_id)
            if source is None:
                self.skipped.append(f"{label}: external_id {external_id[:40]!r} is of no known scheme")
                continue
            refs.append({"source_name": source, "external_id": external_id})
        for url in self._names(meta.get("refs"), f"{label} refs"):
            if not _URL.fullmatch(url):
                self.skipped.append(f"{label}: ref {url[:40]!r} is not an http(s) address")
                continue
            refs.append({"source_name": REFERENCE, "url": url})
        if refs:
            obj["external_references"] = refs
        # Where MISP says an actor comes from or operates (ISO 3166 codes or names): STIX's threat actor has
        # no such property short of a location object, so it rides along as MISP wrote it.
        countries = self._names(meta.get("country"), f"{label} country")
        if countries:
            obj["x_misp_country"] = countries

    def _names(self, value: Any, label: str) -> list[str]:
        """A meta entry MISP writes as a list of strings (or one string); anything else is named."""
        if value is None:
            return []
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.skipped.append(f"{label}: not a list of strings; not carried")
            return []
        names = list(dict.fromkeys(v.strip() for v in values if v.strip()))
        if len(names) > MAX_NAMES or any(len(n) > MAX_NAME for n in names):
            self.skipped.append(f"{label}: more than {MAX_NAMES} or longer than {MAX_NAME}; not carried")
            return []
        return names

    def objects(self) -> list[dict[str, Any]]:
        return list(self.clusters.values())
