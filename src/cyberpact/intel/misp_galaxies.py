"""MISP galaxy clusters as STIX objects (the import side of ``misp``): threat actors, malware, tools,
attack patterns, intrusion sets and courses of action, one object per (galaxy, value) however many
attributes and objects of the event carry it.

A cluster is marked at least as its event, and as the strictest of what names it: MISP users keep their
own clusters (suspects, informants, victims) in these galaxies, and a cluster is shared on its own, apart
from the report and the attributes that say why it matters. Naming an actor in a TLP:RED attribute makes
the actor itself TLP:RED, whatever a wider event or attribute says of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cyberpact.intel import misp_types as vocab
from cyberpact.intel.misp_tags import Tags, strictest
from cyberpact.intel.misp_types import stix_uuid, text


class Galaxies:
    def __init__(
        self, *, created: str, modified: str, common: Mapping[str, Any], tags: Tags, skipped: list[str]
    ) -> None:
        self.created, self.modified, self.common = created, modified, common
        self.tags = tags  # the event's: a cluster of an event MISP keeps home stays home too
        self.skipped = skipped
        self.clusters: dict[tuple[str, str], dict[str, Any]] = {}
        self.meta: dict[tuple[str, str], Mapping[str, Any]] = {}

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
            self.clusters[key] = obj
        obj = self.clusters[key]
        marked = strictest(obj.get("object_marking_refs", []), self.tags.markings(), markings)
        if marked:
            obj["object_marking_refs"] = marked
        return str(obj["id"])

    def objects(self) -> list[dict[str, Any]]:
        return list(self.clusters.values())
