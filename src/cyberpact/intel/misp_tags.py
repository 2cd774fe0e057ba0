"""MISP tags and distribution levels, read as STIX markings and labels (the import side of ``misp``).

``tlp:*`` tags become TLP 2.0 levels, ``PAP:*`` tags PAP levels, ``misp-galaxy:type="value"`` tags name
galaxy clusters, anything else is a label. MISP's ``distribution`` has levels cyberpact's TLP-governed
sharing cannot express (the organisation only, a sharing group); an item so kept is TLP:RED here, which
never leaves the node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from cyberpact.intel.markings import (
    KNOWN_PAP,
    KNOWN_TLP,
    PAP_ORDER,
    TLP_ORDER,
    Pap,
    Tlp,
    effective,
    pap_definition,
    parse_pap,
    parse_tlp,
    tlp_definition,
)
from cyberpact.intel.misp_types import Refused

_GALAXY_TAG = re.compile(r'misp-galaxy:([^=]+)="(.*)"')


class Tags:
    def __init__(self, tags: list[Any]) -> None:
        # MISP's distribution said this may not leave the organisation (see kept_home): TLP:RED here.
        self.local = False
        self.tlp: Tlp | None = None
        self.pap: Pap | None = None
        self.labels: list[str] = []
        self.galaxies: list[tuple[str, str]] = []
        for tag in tags:
            name = tag.get("name") if isinstance(tag, dict) else tag
            if not isinstance(name, str):
                # The unreadable tag may be the one that carries the TLP: refuse, never store unmarked.
                raise Refused("a Tag has no name")
            self.add(name.strip())

    @classmethod
    def of(cls, tags: list[Any], source: Mapping[str, Any]) -> Tags:
        """The tags of an item, kept home (TLP:RED) if its own MISP distribution says so."""
        out = cls(tags)
        out.local = kept_home(source) is not None
        return out

    def add(self, name: str) -> None:
        if not name:
            return
        if (tlp := parse_tlp(name)) and name.lower().startswith("tlp:"):
            self.tlp = stricter(self.tlp, tlp, TLP_ORDER)
        elif pap := parse_pap(name):
            self.pap = stricter(self.pap, pap, PAP_ORDER)
        elif m := _GALAXY_TAG.fullmatch(name):
            if (m.group(1), m.group(2)) not in self.galaxies:
                self.galaxies.append((m.group(1), m.group(2)))
        elif name not in self.labels:
            self.labels.append(name)

    def merge(self, other: Tags) -> None:
        self.local = self.local or other.local
        self.tlp = stricter(self.tlp, other.tlp, TLP_ORDER) if other.tlp else self.tlp
        self.pap = stricter(self.pap, other.pap, PAP_ORDER) if other.pap else self.pap
        for label in other.labels:
            self.add(label)
        self.galaxies += [g for g in other.galaxies if g not in self.galaxies]

    def markings(self, inherited: Tags | None = None) -> list[str]:
        """The item's TLP and PAP markings. An event's levels bound its attributes' and objects': a
        ``tlp:clear`` attribute in a ``tlp:amber`` event is AMBER, since whoever marked the event did not
        clear it for wider sharing; a stricter tag on the item wins as well."""
        tlp, pap = self.tlp, self.pap
        if inherited is not None:
            tlp = stricter(tlp, inherited.tlp, TLP_ORDER) if inherited.tlp else tlp
            pap = stricter(pap, inherited.pap, PAP_ORDER) if inherited.pap else pap
        if self.local or (inherited is not None and inherited.local):
            tlp = "red"
        out = [tlp_definition(tlp)["id"]] if tlp else []
        return out + ([pap_definition(pap)["id"]] if pap else [])


# MISP distribution levels that keep an item inside the organisation or a sharing group this node cannot
# express; 5 (inherit) and an absent value follow the event.
_DISTRIBUTIONS = {0: "your organisation only", 4: "a sharing group"}


def kept_home(source: Mapping[str, Any]) -> str | None:
    """Why MISP's ``distribution`` keeps ``source`` from being shared beyond this node, if it does.

    An event's distribution bounds its attributes and objects whatever theirs says, as in MISP itself;
    cyberpact's sharing follows TLP, so such an item is marked TLP:RED, which never leaves the node."""
    raw = source.get("distribution")
    level = int(raw) if isinstance(raw, int | str) and str(raw).strip().isdigit() else None
    return _DISTRIBUTIONS.get(level) if level is not None else None


def stricter(a: Any, b: Any, order: tuple[Any, ...]) -> Any:
    return b if a is None or order.index(b) > order.index(a) else a


def strictest(*lists: Iterable[str]) -> list[str]:
    """One list of markings as strict as all of ``lists`` together: the strictest TLP and the strictest
    PAP among them (each list may set only one of the two), then any other marking any of them names."""
    refs = [m for refs in lists for m in refs]
    tlp, pap = effective(refs)
    out = [tlp_definition(tlp)["id"]] if tlp else []
    out += [pap_definition(pap)["id"]] if pap else []
    return out + list(dict.fromkeys(m for m in refs if m not in KNOWN_TLP and m not in KNOWN_PAP))


def level_offset(markings: Iterable[str]) -> timedelta:
    """A few milliseconds, distinct for each TLP and PAP pair, to add to the version of an object that
    every event of one organisation makes again (its identity) and that is marked as each event is.

    Two events of one organisation, edited in the same second but marked GREEN and RED, would otherwise
    make two different identities with one id and version, and STIX versions are immutable: the second
    import would be refused. MISP times are whole seconds, so the milliseconds tell the levels apart."""
    tlp, pap = effective(markings)
    if tlp is None and pap is None:
        return timedelta(0)
    tlp_rank = TLP_ORDER.index(tlp) + 1 if tlp else 0
    pap_rank = PAP_ORDER.index(pap) + 1 if pap else 0
    return timedelta(milliseconds=1 + tlp_rank * (len(PAP_ORDER) + 1) + pap_rank)
