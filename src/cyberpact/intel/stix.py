"""Validation of incoming STIX 2.1 objects, one by one, with a reason a producer can act on.

Why not ``stix2.parse``: it checks about 3,000 indicators a second on this class of machine (most of it
building Python objects and parsing patterns with ANTLR), a third of the ingest target before any storage.
This module checks what STIX 2.1 requires of an object on the wire: the identifier (``type--UUID`` with an
RFC 4122 variant UUID, the prefix equal to ``type``), timestamps in the STIX form (``Z``, at most six
fractional digits, a real calendar date), ``spec_version`` 2.1, the common properties' types, references
of the right object types, the required properties of every STIX 2.1 type, the ordering constraints
(``modified`` >= ``created``, ``valid_until`` > ``valid_from``, ...), and patterns (see ``patterns``). A
test corpus holds its verdicts equal to ``stix2``'s, and lists the few places where it follows the
specification's MUST where ``stix2`` is lenient (custom property names, ``confidence`` range,
``modified`` before ``created``).

Custom properties and custom object types are accepted, as ``stix2`` does with ``allow_custom=True``:
real feeds (MITRE ATT&CK among them) carry them, and refusing them would make the node useless.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cyberpact.intel import patterns

_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")
_PROP_RE = re.compile(r"[a-z][a-z0-9_]{0,249}")
# Property names already found well formed: the same few dozen recur in every object of an envelope, and
# a set lookup costs a fraction of the regular expression. Bounded, so hostile input cannot grow it.
_GOOD_PROPS: set[str] = set()
_GOOD_PROPS_MAX = 4096
_TS_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z")
_EXT_DEF_RE = re.compile(r"extension-definition--" + _UUID_RE.pattern)

SCO_TYPES = frozenset(
    [
        "artifact",
        "autonomous-system",
        "directory",
        "domain-name",
        "email-addr",
        "email-message",
        "file",
        "ipv4-addr",
        "ipv6-addr",
        "mac-addr",
        "mutex",
        "network-traffic",
        "process",
        "software",
        "url",
        "user-account",
        "windows-registry-key",
        "x509-certificate",
    ]
)
SDO_TYPES = frozenset(
    [
        "attack-pattern",
        "campaign",
        "course-of-action",
        "grouping",
        "identity",
        "incident",
        "indicator",
        "infrastructure",
        "intrusion-set",
        "location",
        "malware",
        "malware-analysis",
        "note",
        "observed-data",
        "opinion",
        "report",
        "threat-actor",
        "tool",
        "vulnerability",
    ]
)
SRO_TYPES = frozenset({"relationship", "sighting"})
META_TYPES = frozenset({"marking-definition", "language-content", "extension-definition"})
# Objects that a relationship may not point at (STIX 2.1 section 5.1: SDOs and SCOs only).
_NOT_RELATABLE = SRO_TYPES | META_TYPES | {"bundle"}

_REQUIRED: dict[str, tuple[str, ...]] = {
    "attack-pattern": ("name",),
    "campaign": ("name",),
    "course-of-action": ("name",),
    "grouping": ("context", "object_refs"),
    "identity": ("name",),
    "incident": ("name",),
    "indicator": ("pattern", "pattern_type", "valid_from"),
    "infrastructure": ("name",),
    "intrusion-set": ("name",),
    "malware": ("is_family",),
    "malware-analysis": ("product",),
    "note": ("content", "object_refs"),
    "observed-data": ("first_observed", "last_observed", "number_observed"),
    "opinion": ("opinion", "object_refs"),
    "report": ("name", "published", "object_refs"),
    "threat-actor": ("name",),
    "tool": ("name",),
    "vulnerability": ("name",),
    "relationship": ("relationship_type", "source_ref", "target_ref"),
    "sighting": ("sighting_of_ref",),
    "language-content": ("object_ref", "contents"),
    "extension-definition": ("name", "schema", "version", "extension_types", "created_by_ref"),
    "autonomous-system": ("number",),
    "directory": ("path",),
    "domain-name": ("value",),
    "email-addr": ("value",),
    "email-message": ("is_multipart",),
    "ipv4-addr": ("value",),
    "ipv6-addr": ("value",),
    "mac-addr": ("value",),
    "mutex": ("name",),
    "software": ("name",),
    "url": ("value",),
    "windows-registry-key": (),
}
# Types that need at least one of these properties.
_ONE_OF: dict[str, tuple[str, ...]] = {
    "file": ("hashes", "name"),
    "artifact": ("payload_bin", "url"),
    "malware-analysis": ("result", "analysis_sco_refs"),
    "location": ("region", "country", "latitude"),
    "observed-data": ("object_refs", "objects"),
    "network-traffic": ("src_ref", "dst_ref"),
}
_TIMESTAMPS = frozenset(
    [
        "created",
        "modified",
        "valid_from",
        "valid_until",
        "first_seen",
        "last_seen",
        "first_observed",
        "last_observed",
        "published",
        "start_time",
        "end_time",
        "stop_time",
        "analysis_started",
        "analysis_ended",
        "submitted",
        "date",
        "ctime",
        "mtime",
        "atime",
        "created_time",
        "modified_time",
        "account_created",
        "account_expires",
        "credential_last_changed",
        "account_first_login",
        "account_last_login",
        "validity_not_before",
        "validity_not_after",
        "start",
        "end",
    ]
)
_BOOLEANS = frozenset(
    ["revoked", "is_family", "is_multipart", "defanged", "is_active", "is_hidden", "aslr_enabled"]
)
_STRING_LISTS = frozenset(
    [
        "labels",
        "aliases",
        "indicator_types",
        "malware_types",
        "tool_types",
        "threat_actor_types",
        "infrastructure_types",
        "report_types",
        "roles",
        "goals",
        "secondary_motivations",
        "personal_motivations",
        "sectors",
        "architecture_execution_envs",
        "implementation_languages",
        "capabilities",
        "protocols",
        "authors",
    ]
)
_OPINIONS = frozenset({"strongly-disagree", "disagree", "neutral", "agree", "strongly-agree"})
_REF_TYPES: dict[str, frozenset[str]] = {
    "created_by_ref": frozenset({"identity"}),
    "object_marking_refs": frozenset({"marking-definition"}),
    "observed_data_refs": frozenset({"observed-data"}),
    "where_sighted_refs": frozenset({"identity", "location"}),
}


class InvalidObject(ValueError):
    """One object refused, with the property at fault and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Checked:
    obj: dict[str, Any]
    stix_id: str
    stix_type: str
    version: datetime | None  # modified, else created; None for objects that carry neither (most SCOs)
    created_by_ref: str | None
    markings: tuple[str, ...]  # object-level then granular marking refs


def parse_timestamp(value: Any) -> datetime:
    """A STIX timestamp (RFC 3339, UTC ``Z``, at most microsecond precision) to an aware datetime."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    return _parse_timestamp(value)


@lru_cache(maxsize=8192)
def _parse_timestamp(value: str) -> datetime:
    # Cached: an envelope's objects mostly share a handful of created/modified/valid_from values.
    m = _TS_RE.fullmatch(value)
    if m is None:
        raise ValueError(f"{value!r} is not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.s]Z)")
    year, month, day, hour, minute, second, frac = m.groups()
    micro = int((frac or "0").ljust(6, "0"))
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)


@lru_cache(maxsize=8192)
def format_timestamp(value: datetime) -> str:
    """STIX form: milliseconds, or microseconds when the value has them."""
    # Cached: an envelope's objects mostly share their versions.
    value = value.astimezone(UTC)
    # isoformat less its "+00:00": strftime's text at half the cost, once per object of every envelope.
    spec = "microseconds" if value.microsecond % 1000 else "milliseconds"
    return value.isoformat(timespec=spec)[:-6] + "Z"


def is_type_name(value: str) -> bool:
    return _TYPE_RE.fullmatch(value) is not None and "--" not in value


def is_identifier(value: Any, types: frozenset[str] | None = None) -> bool:
    if not isinstance(value, str):
        return False
    prefix, sep, rest = value.partition("--")
    if not sep or _TYPE_RE.fullmatch(prefix) is None or _UUID_RE.fullmatch(rest) is None:
        return False
    return types is None or prefix in types


def _ts(obj: Mapping[str, Any], name: str) -> datetime | None:
    if name not in obj:
        return None
    try:
        return parse_timestamp(obj[name])
    except ValueError as exc:
        raise InvalidObject(name, str(exc)) from None


def _ref(name: str, value: Any, types: frozenset[str] | None) -> None:
    if not is_identifier(value, types):
        want = f" of type {'/'.join(sorted(types))}" if types else ""
        raise InvalidObject(name, f"{value!r} is not a STIX identifier{want}")


def _refs(name: str, value: Any, types: frozenset[str] | None) -> None:
    if not isinstance(value, list) or not value:
        raise InvalidObject(name, "must be a non-empty list of identifiers")
    for item in value:
        _ref(name, item, types)


def _int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidObject(name, f"must be an integer from {low} to {high}")


def _selector_exists(obj: Any, selector: str) -> bool:
    node = obj
    for step in selector.split("."):
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return False
    return True


def _common(obj: dict[str, Any]) -> tuple[str, ...]:
    for key in obj:
        if key not in _GOOD_PROPS:
            if _PROP_RE.fullmatch(key) is None:
                raise InvalidObject(key, "property names are lower-case ASCII letters, digits and '_'")
            if len(_GOOD_PROPS) < _GOOD_PROPS_MAX:
                _GOOD_PROPS.add(key)
    if "created_by_ref" in obj:
        _ref("created_by_ref", obj["created_by_ref"], _REF_TYPES["created_by_ref"])
    for name in _BOOLEANS.intersection(obj):
        if not isinstance(obj[name], bool):
            raise InvalidObject(name, "must be true or false")
    for name in _STRING_LISTS.intersection(obj):
        value = obj[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidObject(name, "must be a list of strings")
    if "confidence" in obj:
        _int("confidence", obj["confidence"], 0, 100)
    if "lang" in obj and not isinstance(obj["lang"], str):
        raise InvalidObject("lang", "must be a language tag")
    for name in ("name", "description"):
        if name in obj and not isinstance(obj[name], str):
            raise InvalidObject(name, "must be a string")
    if "external_references" in obj:
        refs = obj["external_references"]
        if not isinstance(refs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("source_name"), str) for r in refs
        ):
            raise InvalidObject("external_references", "each needs a source_name")
    if "kill_chain_phases" in obj:
        phases = obj["kill_chain_phases"]
        if not isinstance(phases, list) or not all(
            isinstance(p, dict)
            and isinstance(p.get("kill_chain_name"), str)
            and isinstance(p.get("phase_name"), str)
            for p in phases
        ):
            raise InvalidObject("kill_chain_phases", "each needs kill_chain_name and phase_name")
    markings: list[str] = []
    if "object_marking_refs" in obj:
        _refs("object_marking_refs", obj["object_marking_refs"], _REF_TYPES["object_marking_refs"])
        markings.extend(obj["object_marking_refs"])
    if "granular_markings" in obj:
        markings.extend(_granular(obj))
    if "extensions" in obj:
        ext = obj["extensions"]
        if not isinstance(ext, dict) or not all(isinstance(v, dict) for v in ext.values()):
            raise InvalidObject("extensions", "must map extension names to objects")
    for key, value in obj.items():
        if key in _TIMESTAMPS:
            _ts(obj, key)
        elif key.endswith("_refs") and key not in _REF_TYPES:
            _refs(key, value, None)
        elif key.endswith("_ref") and key != "created_by_ref":
            _ref(key, value, None)
    return tuple(markings)


def _granular(obj: dict[str, Any]) -> list[str]:
    granular = obj["granular_markings"]
    if not isinstance(granular, list) or not granular:
        raise InvalidObject("granular_markings", "must be a non-empty list")
    refs = []
    for g in granular:
        if not isinstance(g, dict) or not isinstance(g.get("selectors"), list) or not g["selectors"]:
            raise InvalidObject("granular_markings", "each needs a non-empty list of selectors")
        if ("marking_ref" in g) == ("lang" in g):
            raise InvalidObject("granular_markings", "each needs exactly one of marking_ref and lang")
        for sel in g["selectors"]:
            if not isinstance(sel, str) or not _selector_exists(obj, sel):
                raise InvalidObject("granular_markings", f"selector {sel!r} names no property of the object")
        if "marking_ref" in g:
            _ref("granular_markings", g["marking_ref"], _REF_TYPES["object_marking_refs"])
            refs.append(g["marking_ref"])
    return refs


def _specific(kind: str, obj: dict[str, Any]) -> None:
    for name in _REQUIRED.get(kind, ()):
        if name not in obj:
            raise InvalidObject(name, f"required for {kind}")
    one_of = _ONE_OF.get(kind)
    if one_of and not any(n in obj for n in one_of):
        raise InvalidObject(one_of[0], f"{kind} needs at least one of {', '.join(one_of)}")
    if kind == "indicator":
        for name in ("pattern", "pattern_type"):
            if not isinstance(obj[name], str):
                raise InvalidObject(name, "must be a string")
        if obj["pattern_type"] == "stix":
            problem = patterns.validate(obj["pattern"])
            if problem:
                raise InvalidObject("pattern", problem)
        _ordered(obj, "valid_from", "valid_until", strict=True)
    elif kind == "malware":
        if obj.get("is_family") is True and "name" not in obj:
            raise InvalidObject("name", "required when is_family is true")
        _ordered(obj, "first_seen", "last_seen")
    elif kind == "observed-data":
        _int("number_observed", obj["number_observed"], 1, 999_999_999)
        _ordered(obj, "first_observed", "last_observed")
    elif kind == "sighting":
        if "count" in obj:
            _int("count", obj["count"], 0, 999_999_999)
        _ordered(obj, "first_seen", "last_seen")
    elif kind == "relationship":
        if not isinstance(obj["relationship_type"], str) or not obj["relationship_type"]:
            raise InvalidObject("relationship_type", "must be a non-empty string")
        for name in ("source_ref", "target_ref"):
            if obj[name].partition("--")[0] in _NOT_RELATABLE:
                raise InvalidObject(name, "must refer to an SDO or SCO")
    elif kind == "opinion":
        if obj["opinion"] not in _OPINIONS:
            raise InvalidObject("opinion", f"must be one of {', '.join(sorted(_OPINIONS))}")
    elif kind == "location":
        _location(obj)
    elif kind == "marking-definition":
        _marking(obj)
    elif kind in ("campaign", "intrusion-set", "threat-actor", "infrastructure"):
        _ordered(obj, "first_seen", "last_seen")
    elif kind == "autonomous-system":
        _int("number", obj["number"], 0, 2**32 - 1)
    elif kind in _REQUIRED and kind in SCO_TYPES:
        for name in _REQUIRED[kind]:
            expected: type = bool if name == "is_multipart" else str
            if not isinstance(obj[name], expected):
                raise InvalidObject(name, f"must be a {'boolean' if expected is bool else 'string'}")


def _ordered(obj: dict[str, Any], first: str, last: str, *, strict: bool = False) -> None:
    a, b = _ts(obj, first), _ts(obj, last)
    if a is not None and b is not None and (b <= a if strict else b < a):
        raise InvalidObject(last, f"must be {'later than' if strict else 'at or after'} {first}")


def _location(obj: dict[str, Any]) -> None:
    lat, lon = obj.get("latitude"), obj.get("longitude")
    if (lat is None) != (lon is None):
        raise InvalidObject("longitude", "latitude and longitude go together")
    for name, value, bound in (("latitude", lat, 90), ("longitude", lon, 180)):
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not -bound <= value <= bound
        ):
            raise InvalidObject(name, f"must be a number from -{bound} to {bound}")


def _marking(obj: dict[str, Any]) -> None:
    if "extensions" in obj and "definition_type" not in obj:
        return
    kind, definition = obj.get("definition_type"), obj.get("definition")
    if not isinstance(kind, str) or not isinstance(definition, dict):
        raise InvalidObject("definition", "needs definition_type and definition, or extensions")
    if kind == "tlp" and definition.get("tlp") not in ("white", "green", "amber", "red"):
        raise InvalidObject("definition", "a TLP 1.0 definition names white, green, amber or red")
    if kind == "statement" and not isinstance(definition.get("statement"), str):
        raise InvalidObject("definition", "a statement definition needs a statement")


def check(obj: Any) -> Checked:
    """Validate one STIX 2.1 object; raises :class:`InvalidObject` naming the first fault."""
    if not isinstance(obj, dict):
        raise InvalidObject("object", "is not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or _TYPE_RE.fullmatch(kind) is None or "--" in kind:
        raise InvalidObject("type", "missing, or not 3-250 lower-case letters, digits and '-'")
    if kind == "bundle":
        raise InvalidObject("type", "a bundle is a container, not an object to store")
    stix_id = obj.get("id")
    if not isinstance(stix_id, str) or not is_identifier(stix_id) or not stix_id.startswith(kind + "--"):
        raise InvalidObject("id", f"must be {kind}--<RFC 4122 UUID>")
    sco = kind in SCO_TYPES
    spec = obj.get("spec_version")
    if spec is None and not sco:
        raise InvalidObject("spec_version", "required (only STIX 2.1 objects are accepted)")
    if spec is not None and spec != "2.1":
        raise InvalidObject("spec_version", f"{spec!r} is not supported; only 2.1")
    created = _ts(obj, "created")
    modified = _ts(obj, "modified")
    if not sco and kind in SDO_TYPES | SRO_TYPES | META_TYPES:
        if created is None:
            raise InvalidObject("created", f"required for {kind}")
        if modified is None and kind != "marking-definition":
            raise InvalidObject("modified", f"required for {kind}")
    if created is not None and modified is not None and modified < created:
        raise InvalidObject("modified", "must not be earlier than created")
    markings = _common(obj)
    _specific(kind, obj)
    return Checked(
        obj=obj,
        stix_id=stix_id,
        stix_type=kind,
        version=modified or created,
        created_by_ref=obj.get("created_by_ref"),
        markings=markings,
    )
