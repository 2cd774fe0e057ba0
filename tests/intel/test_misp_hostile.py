"""The MISP import against generated hostile events: whatever the input, it is refused whole with a clear
error, or every object it produces is valid STIX, and nothing of a TLP:RED event comes out less than RED."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyberpact.intel import misp, misp_export, stix
from cyberpact.intel.markings import TLP2_IDS
from cyberpact.kit.errors import InvalidInput

JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly what MISP writes, sometimes anything at all."""
    return st.one_of(valid, valid, valid, valid, valid, JUNK)


TAG = either(
    st.fixed_dictionaries(
        {
            "name": either(
                st.sampled_from(
                    ["tlp:clear", "tlp:amber", "tlp:red", "PAP:RED", "osint", 'misp-galaxy:threat-actor="X"']
                )
            )
        }
    )
)
TIMESTAMP = either(st.integers(min_value=0, max_value=4_102_444_800).map(str))
ORG = either(
    st.fixed_dictionaries({"name": either(st.text(max_size=10)), "uuid": either(st.uuids().map(str))})
)
SIGHTING = either(
    st.fixed_dictionaries(
        {"type": either(st.sampled_from(["0", "1", "2"])), "date_sighting": TIMESTAMP, "Organisation": ORG},
        optional={"uuid": either(st.uuids().map(str)), "source": either(st.text(max_size=10))},
    )
)
UUID = either(st.uuids().map(str))
OPINION = either(
    st.fixed_dictionaries(
        {"opinion": either(st.integers(min_value=-5, max_value=120).map(str))},
        optional={"uuid": UUID, "comment": either(st.text(max_size=10)), "distribution": st.just("0")},
    )
)
ANALYST = {
    "Note": either(
        st.lists(
            either(
                st.fixed_dictionaries(
                    {"note": either(st.text(max_size=20))},
                    optional={
                        "uuid": UUID,
                        "language": either(st.sampled_from(["en", "vi", "zh-Hans", "not a tag"])),
                        "authors": either(st.text(max_size=10)),
                        "created": either(st.sampled_from(["2024-06-10 12:40:00", "2024-06-10T12:40:00Z"])),
                        "distribution": either(st.sampled_from(["0", "5"])),
                        "Orgc": ORG,
                        "Opinion": either(st.lists(OPINION, max_size=2)),
                    },
                )
            ),
            max_size=2,
        )
    ),
    "Opinion": either(st.lists(OPINION, max_size=2)),
    "Relationship": either(
        st.lists(
            st.fixed_dictionaries(
                {"related_object_uuid": either(st.uuids().map(str)), "relationship_type": JUNK},
                optional={"uuid": UUID},
            ),
            max_size=2,
        )
    ),
}
TYPED_VALUES = [
    ("ip-dst", "203.0.113.9"),
    ("domain", "a.example"),
    ("url", "http://a.example/x"),
    ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("ip-dst|port", "203.0.113.9|443"),
    ("yara", "rule x { condition: true }"),
    ("regkey", "HKLM\\Software\\x"),
    ("ip-dst", "a.example"),  # a value that is not of its type
]
FIELDS = st.fixed_dictionaries(
    {"to_ids": either(st.booleans())},
    optional={
        "uuid": either(st.uuids().map(str)),
        "timestamp": TIMESTAMP,
        "distribution": either(st.sampled_from(["0", "1", "4", "5"])),
        "deleted": either(st.booleans()),
        "first_seen": either(st.just("2024-05-01T10:00:00+00:00")),
        "Tag": either(st.lists(TAG, max_size=3)),
        "Sighting": either(st.lists(SIGHTING, max_size=3)),
        "object_relation": either(st.sampled_from(["ip", "domain"])),
        **ANALYST,
    },
)
ATTRIBUTE = either(
    st.builds(
        lambda typed, fields: {"type": typed[0], "value": typed[1], **fields},
        either(st.sampled_from(TYPED_VALUES)).filter(lambda t: isinstance(t, tuple)),
        FIELDS,
    )
)
OBJECT = either(
    st.fixed_dictionaries(
        {
            "name": either(st.sampled_from(["domain-ip", "file"])),
            "Attribute": either(st.lists(ATTRIBUTE, max_size=3)),
        },
        optional={
            "uuid": either(st.uuids().map(str)),
            "distribution": either(st.sampled_from(["0", "5"])),
            "ObjectReference": either(
                st.lists(
                    st.fixed_dictionaries({"referenced_uuid": JUNK, "relationship_type": JUNK}), max_size=2
                )
            ),
            **ANALYST,
        },
    )
)
REPORT = either(
    st.fixed_dictionaries(
        {"content": either(st.text(max_size=30)), "name": either(st.text(max_size=10))},
        optional={
            "uuid": UUID,
            "distribution": either(st.sampled_from(["0", "5"])),
            "deleted": either(st.booleans()),
            **ANALYST,
        },
    )
)
EVENT = st.fixed_dictionaries(
    {
        "uuid": either(st.uuids().map(str)),
        "info": either(st.text(max_size=20)),
        "Attribute": either(st.lists(ATTRIBUTE, max_size=4)),
    },
    optional={
        "date": either(st.just("2024-05-01")),
        "timestamp": TIMESTAMP,
        "Orgc": ORG,
        "Object": either(st.lists(OBJECT, max_size=2)),
        "EventReport": either(st.lists(REPORT, max_size=2)),
        "Tag": either(st.lists(TAG, max_size=3)),
        "Galaxy": either(st.just([])),
        "distribution": either(st.sampled_from(["0", "1", "3"])),
        **ANALYST,
    },
)

# Objects that say who or what, not what an event holds: an author's identity and the definitions of the
# markings themselves carry no level.
_UNMARKED = {"identity", "marking-definition"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENT)
def test_any_event_is_refused_whole_or_gives_valid_objects_never_less_than_red(event: dict[str, Any]) -> None:
    try:
        converted = misp.misp_to_stix({"Event": event})
    except InvalidInput as exc:
        assert exc.detail and exc.status == 422
        return
    for obj in converted.objects:
        stix.check(obj)
    # And the way back takes whatever came in: one MISP event that serialises (no loop of notes).
    exported, _ = misp_export.stix_to_misp(converted.objects)
    json.dumps(exported)
    tags = event.get("Tag")
    red_event = isinstance(tags, list) and any(
        isinstance(t, dict) and t.get("name") == "tlp:red" for t in tags
    )
    if red_event:
        for obj in converted.objects:
            if obj["type"] in _UNMARKED or obj.get("x_misp_galaxy_type"):
                continue
            assert TLP2_IDS["red"] in obj.get("object_marking_refs", []), obj
