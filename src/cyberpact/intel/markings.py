"""TLP 2.0 and PAP as STIX 2.1 marking definitions, and reading an object's effective levels.

TLP 2.0 uses the marking definitions FIRST published through the OASIS common-objects repository (fixed
ids, the ``tlp_2_0`` property extension). The TLP 1.0 definitions STIX 2.1 predefines are mapped to their
2.0 equivalents (WHITE means CLEAR). PAP has no published STIX form, so cyberpact defines statement
markings with fixed ids; any marking definition named ``PAP:<LEVEL>`` is recognised as well, which covers
the definitions other platforms (MISP, OpenCTI) emit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

Tlp = Literal["clear", "green", "amber", "amber+strict", "red"]
Pap = Literal["clear", "green", "amber", "red"]

# Ordered from least to most restrictive: the effective level of an object is the maximum.
TLP_ORDER: tuple[Tlp, ...] = ("clear", "green", "amber", "amber+strict", "red")
PAP_ORDER: tuple[Pap, ...] = ("clear", "green", "amber", "red")

TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
_TLP2_CREATED = "2022-10-01T00:00:00.000Z"
TLP2_IDS: dict[Tlp, str] = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP1_IDS: dict[str, Tlp] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "clear",  # TLP:WHITE
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
}
# uuid5(PAP_NAMESPACE, "PAP:<LEVEL>"), written out so every node emits the same objects (a test
# recomputes them).
PAP_NAMESPACE = "bb9a0810-c60a-53fd-9864-e05b074084ec"  # uuid5(NAMESPACE_URL, cyberpact marking URL)
PAP_IDS: dict[Pap, str] = {
    "clear": "marking-definition--69212e72-e518-5c5e-85f7-a7d87e93913c",
    "green": "marking-definition--33d5fc41-83a8-55bc-8d20-d9b30f701f98",
    "amber": "marking-definition--0778ffc3-4050-5f65-8008-469f321ea398",
    "red": "marking-definition--23d07241-1ae4-52d6-a820-89a536165a77",
}
_PAP_CREATED = "2024-01-01T00:00:00.000Z"

KNOWN_TLP: dict[str, Tlp] = {**{v: k for k, v in TLP2_IDS.items()}, **TLP1_IDS}
KNOWN_PAP: dict[str, Pap] = {v: k for k, v in PAP_IDS.items()}


def tlp_definition(level: Tlp) -> dict[str, Any]:
    """The published TLP 2.0 marking-definition object for ``level``."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP2_IDS[level],
        "created": _TLP2_CREATED,
        "name": f"TLP:{level.upper()}",
        "extensions": {TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}},
    }


def pap_definition(level: Pap) -> dict[str, Any]:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": PAP_IDS[level],
        "created": _PAP_CREATED,
        "name": f"PAP:{level.upper()}",
        "definition_type": "statement",
        "definition": {"statement": f"PAP:{level.upper()}"},
    }


def parse_tlp(text: str) -> Tlp | None:
    """``TLP:AMBER+STRICT``, ``amber+strict``, ``tlp:white`` -> the TLP 2.0 level, or None."""
    value = text.strip().lower().removeprefix("tlp:").strip()
    if value == "white":
        return "clear"
    for level in TLP_ORDER:
        if value == level:
            return level
    return None


def parse_pap(text: str) -> Pap | None:
    value = text.strip().lower()
    if not value.startswith("pap:"):
        return None
    value = value[4:].strip()
    if value == "white":
        return "clear"
    for level in PAP_ORDER:
        if value == level:
            return level
    return None


def definition_levels(obj: Mapping[str, Any]) -> tuple[Tlp | None, Pap | None]:
    """What a marking-definition object itself says: (tlp, pap). Unknown definitions give (None, None)."""
    if obj.get("type") != "marking-definition":
        return None, None
    known = KNOWN_TLP.get(str(obj.get("id")))
    if known:
        return known, None
    ext = obj.get("extensions")
    if isinstance(ext, dict):
        body = ext.get(TLP2_EXTENSION)
        if isinstance(body, dict) and isinstance(body.get("tlp_2_0"), str):
            return parse_tlp(body["tlp_2_0"]), None
    definition = obj.get("definition")
    if obj.get("definition_type") == "tlp" and isinstance(definition, dict):
        return parse_tlp(str(definition.get("tlp", ""))), None
    name = obj.get("name")
    if isinstance(name, str):
        return parse_tlp(name) if name.lower().startswith("tlp:") else None, parse_pap(name)
    return None, None


def unreadable(refs: Iterable[str], extra: Mapping[str, tuple[Tlp | None, Pap | None]]) -> list[str]:
    """The marking refs that are neither well known nor among the definitions in ``extra``."""
    return [r for r in refs if r not in KNOWN_TLP and r not in KNOWN_PAP and r not in extra]


def effective(
    refs: Iterable[str], extra: Mapping[str, tuple[Tlp | None, Pap | None]] | None = None
) -> tuple[Tlp | None, Pap | None]:
    """The most restrictive TLP and PAP among marking refs (None where no ref says anything).

    ``extra`` maps marking-definition ids that are not well known (e.g. defined in the same envelope) to
    their levels.
    """
    tlp_rank = -1
    pap_rank = -1
    for ref in refs:
        tlp = KNOWN_TLP.get(ref)
        pap = KNOWN_PAP.get(ref)
        if tlp is None and pap is None and extra is not None and ref in extra:
            tlp, pap = extra[ref]
        if tlp is not None:
            tlp_rank = max(tlp_rank, TLP_ORDER.index(tlp))
        if pap is not None:
            pap_rank = max(pap_rank, PAP_ORDER.index(pap))
    return (TLP_ORDER[tlp_rank] if tlp_rank >= 0 else None, PAP_ORDER[pap_rank] if pap_rank >= 0 else None)
