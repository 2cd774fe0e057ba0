"""The MISP vocabulary cyberpact speaks, shared by import (``misp``) and export (``misp_export``): MISP
attribute types and the STIX paths they map to, categories, galaxies, and how one attribute value becomes
STIX comparisons, a pattern and SCOs."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

from cyberpact.intel.stix import parse_timestamp
from cyberpact.kit.canonical import canonical_json_floatless


class Refused(Exception):
    """One attribute, object or event that is not converted, and why."""


SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")  # STIX 2.1, section 2.9
LOCAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cyberpact.dev/stix/misp")
# Real values (a URL, a YARA rule) stay far below this; a longer one is refused on its own, before it
# becomes a pattern that the validator would quote whole in its refusal.
MAX_VALUE = 65_536
# Set on the notes, opinions and relationships that came from MISP analyst data (``misp_analyst``), which
# tells them apart from event reports (notes) and false-positive sightings (opinions) on the way back.
ANALYST_DATA = "x_misp_analyst_data"


def text(value: Any) -> str:
    """A MISP string field ('' when absent); MISP writes some numbers bare, anything else is not text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def stix_uuid(value: Any, salt: str) -> str:
    """The MISP uuid when it is an RFC 4122 UUID (STIX requires that variant), else a stable UUIDv5."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # not a UUID at all: derived below like any other value
            u = uuid.UUID(value)
            if u.variant == uuid.RFC_4122:
                return str(u)
    # Only scalars are spelled out: printing a hostile nested value would recurse without bound.
    shown = value if isinstance(value, str | int | None) else type(value).__name__
    return str(uuid.uuid5(LOCAL_NAMESPACE, f"{salt}:{shown}"))


def from_epoch(value: Any) -> datetime | None:
    """A MISP time (epoch seconds, written bare or as a string) in UTC; None when it is not one."""
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def from_iso(value: Any) -> datetime | None:
    """A MISP time written as ISO 8601 (first_seen, analyst data) in UTC; None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # MISP stores its times in UTC; a value without an offset is UTC, not the server's zone.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def to_epoch(value: Any) -> str | None:
    """A STIX timestamp as MISP writes a time (epoch seconds as text); None when it is not one."""
    try:
        return str(int(parse_timestamp(value).timestamp()))
    except ValueError:
        return None


Comp = tuple[str, str, Any]  # (SCO type, property path, value) of one comparison

# MISP attribute type -> (SCO type, property path); addresses, AS numbers, hashes and composites apart.
SIMPLE: dict[str, tuple[str, str]] = {
    "domain": ("domain-name", "value"),
    "hostname": ("domain-name", "value"),
    "url": ("url", "value"),
    "link": ("url", "value"),
    "uri": ("url", "value"),
    "email": ("email-addr", "value"),
    "email-src": ("email-addr", "value"),
    "email-dst": ("email-addr", "value"),
    "email-subject": ("email-message", "subject"),
    "filename": ("file", "name"),
    "mac-address": ("mac-addr", "value"),
    "mutex": ("mutex", "name"),
    "regkey": ("windows-registry-key", "key"),
}
# Only the algorithms of STIX's hash-algorithm-ov, so that every consumer knows the key.
HASHES = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "sha512": "SHA-512",
    "sha3-256": "SHA3-256",
    "sha3-512": "SHA3-512",
    "ssdeep": "SSDEEP",
    "tlsh": "TLSH",
}
# A registry value's data, whichever of the key's values holds it (the pattern's "any element" index).
_REG_DATA = "windows-registry-key:values[*].data"
# Composite MISP types: the pattern paths that may hold each part of the "a|b" value, in order.
COMPOSITE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ip-dst|port": (("network-traffic:dst_ref.value",), ("network-traffic:dst_port",)),
    "ip-src|port": (("network-traffic:src_ref.value",), ("network-traffic:src_port",)),
    "domain|ip": (("domain-name:value",), ("ipv4-addr:value", "ipv6-addr:value")),
    "regkey|value": (("windows-registry-key:key",), (_REG_DATA,)),
    **{f"filename|{k}": (("file:name",), (f"file:hashes.{v}",)) for k, v in HASHES.items()},
}
# Attributes that are detection rules: indicators of that STIX pattern type (pattern-type-ov).
PATTERN_TYPES = {"stix2-pattern": "stix", "yara": "yara", "snort": "snort", "sigma": "sigma"}
# STIX path -> MISP type, for objects that do not say which MISP type they came from.
MISP_TYPE_OF = {
    "ipv4-addr:value": "ip-dst",
    "ipv6-addr:value": "ip-dst",
    "domain-name:value": "domain",
    "url:value": "url",
    "email-addr:value": "email",
    "email-message:subject": "email-subject",
    "file:name": "filename",
    "mac-addr:value": "mac-address",
    "mutex:name": "mutex",
    "windows-registry-key:key": "regkey",
    "file:size": "size-in-bytes",
    "autonomous-system:number": "AS",
    "network-traffic:dst_ref.value": "ip-dst",
    "network-traffic:src_ref.value": "ip-src",
    "network-traffic:dst_port": "port",
    "network-traffic:src_port": "port",
    **{f"file:hashes.{v}": k for k, v in HASHES.items()},
}
# A category valid for the type (the core format's category-type table), for objects that carry none.
CATEGORY_OF = {
    **dict.fromkeys(HASHES, "Payload delivery"),
    **{k: "Payload delivery" for k in COMPOSITE if k.startswith("filename|")},
    "filename": "Payload delivery",
    "email-subject": "Payload delivery",
    "mutex": "Artifacts dropped",
    "regkey": "Persistence mechanism",
    "regkey|value": "Persistence mechanism",
    "size-in-bytes": "Other",
    "vulnerability": "External analysis",
    "yara": "Payload installation",
    "sigma": "Payload installation",
}
# Galaxy type -> STIX type.
GALAXIES = {
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


# ------------------------------------------------------------------------------- values to comparisons


def address(value: str) -> str:
    return "ipv6-addr" if ":" in value else "ipv4-addr"


def number(text: str, what: str, top: int) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > top:
        raise Refused(f"{text!r} is not {what}")
    return int(text)


def comparisons(misp_type: str, value: str) -> list[Comp] | None:
    """(SCO type, property path, value) for a MISP attribute, or None when STIX has no form for its type;
    raises :class:`Refused` for a value its type cannot hold."""
    if misp_type in ("ip-src", "ip-dst"):
        return [(address(value), "value", value)]
    if misp_type == "AS":
        return [
            (
                "autonomous-system",
                "number",
                number(value.upper().removeprefix("AS"), "an AS number", 2**32 - 1),
            )
        ]
    if misp_type == "size-in-bytes":
        # STIX's file size is an integer (section 6.7); MISP's is text that must hold one.
        return [("file", "size", number(value, "a size in bytes", 2**63 - 1))]
    if misp_type in SIMPLE:
        kind, path = SIMPLE[misp_type]
        return [(kind, path, value)]
    if misp_type in HASHES:
        return [("file", f"hashes.{HASHES[misp_type]}", value)]
    if misp_type == "regkey|value":
        # The first '|': a key's path holds none in practice, while the data (a command line) may.
        key, sep, data = value.partition("|")
        if not sep or not key:
            raise Refused("a regkey|value value is a registry key and its data joined by '|'")
        return [("windows-registry-key", "key", key), ("windows-registry-key", "values[*].data", data)]
    if misp_type in COMPOSITE:
        # The last '|': a file name may hold one, a hash, address or port never does.
        first, sep, second = value.rpartition("|")
        if not sep or not first or not second:
            raise Refused(f"a {misp_type} value is two parts joined by '|'")
        if misp_type == "domain|ip":
            return [("domain-name", "value", first), (address(second), "value", second)]
        if misp_type.endswith("|port"):
            end = misp_type[3:6]
            port = number(second, "a port number", 65535)
            return [("network-traffic", f"{end}_ref.value", first), ("network-traffic", f"{end}_port", port)]
        return [("file", "name", first), ("file", f"hashes.{HASHES[misp_type[9:]]}", second)]
    return None


def instances(comps: list[Comp]) -> list[tuple[str, dict[str, Any]]]:
    """The comparisons grouped into the SCOs they describe. A second value for a property (a domain's
    second address) is a second SCO: one object cannot have two values, so ANDing them in one observation
    would give a pattern that never matches."""
    out: list[tuple[str, dict[str, Any]]] = []
    for kind, path, value in comps:
        for k, props in out:
            if k == kind and props.get(path, value) == value:
                props[path] = value
                break
        else:
            out.append((kind, {path: value}))
    return out


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern(instances: list[tuple[str, dict[str, Any]]]) -> str:
    def one(kind: str, path: str, value: Any) -> str:
        steps = path.split(".")
        rendered = steps[0] + "".join(f".{quote(s)}" if "-" in s else f".{s}" for s in steps[1:])
        literal = str(value) if isinstance(value, int) else quote(str(value))
        return f"{kind}:{rendered} = {literal}"

    return " AND ".join(
        f"[{' AND '.join(one(kind, p, v) for p, v in props.items())}]" for kind, props in instances
    )


def sco(kind: str, props: dict[str, Any]) -> dict[str, Any]:
    # The id contributing properties STIX lists per type; a file with hashes is named by them alone.
    keys = (
        "hashes",
        "value",
        "name",
        "number",
        "subject",
        "key",
        "values",
        "src_ref",
        "dst_ref",
        "src_port",
        "dst_port",
    )
    id_props = {k: props[k] for k in keys if k in props}
    if kind == "file" and "hashes" in props:
        id_props = {"hashes": props["hashes"]}
    if kind == "network-traffic":
        id_props["protocols"] = props["protocols"]
    sid = uuid.uuid5(SCO_NAMESPACE, canonical_json_floatless(id_props).decode())
    return {"type": kind, "spec_version": "2.1", "id": f"{kind}--{sid}", **props}


def scos(instances: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for kind, props in instances:
        body: dict[str, Any] = {}
        for path, value in props.items():
            if path.startswith("hashes."):
                body.setdefault("hashes", {})[path[7:]] = value
            elif path == "values[*].data":
                body.setdefault("values", []).append({"data": value})
            elif path.endswith("_ref.value"):
                ref = sco(address(value), {"value": value})
                out.append(ref)
                body[path[: -len(".value")]] = ref["id"]
                body["protocols"] = ["ipv6" if ref["type"] == "ipv6-addr" else "ipv4"]
            else:
                body[path] = value
        if kind == "email-message":
            body["is_multipart"] = False
        out.append(sco(kind, body))
    return out
