"""The sharing decision, exhaustively: every TLP level (and none), every policy shape, origin or relay."""

from __future__ import annotations

import itertools
import uuid

import pytest

from cyberpact.intel.markings import (
    PAP_IDS,
    PAP_NAMESPACE,
    TLP1_IDS,
    TLP2_IDS,
    TLP_ORDER,
    definition_levels,
    effective,
    pap_definition,
    tlp_definition,
)
from cyberpact.intel.policy import SharingPolicy, recipients

PEERS = frozenset({"fr", "de", "vn", "br"})
GROUP = frozenset({"fr", "de", "xx"})  # "xx" is in the group but not (or no longer) a trusted peer


def expected(level: str, policy: SharingPolicy, source: str | None) -> set[str]:
    """The rules, written out independently of the implementation."""
    if not policy.federate or level == "red":
        out: set[str] = set()
    elif level == "amber+strict":
        out = {policy.strict_recipient} & PEERS if policy.strict_recipient and source is None else set()
    elif level == "amber":
        out = set(policy.sharing_group & PEERS) if source is None else set()
    elif level == "green":
        out = set(policy.sharing_group & PEERS)
    else:
        out = set(PEERS)
    return out - {source}


POLICIES = [
    SharingPolicy(federate=f, sharing_group=g, strict_recipient=r, default_tlp=d)  # type: ignore[arg-type]
    for f, g, r, d in itertools.product(
        (False, True), (frozenset(), GROUP), (None, "vn", "zz"), ("amber", "green", "red", "clear")
    )
]
MARKINGS: list[tuple[str | None, list[str]]] = [(None, [])]
MARKINGS += [(lv, [TLP2_IDS[lv]]) for lv in TLP_ORDER]  # type: ignore[index]
MARKINGS += [(lv, [ref]) for ref, lv in TLP1_IDS.items()]


@pytest.mark.parametrize("source", [None, "fr", "vn"])
@pytest.mark.parametrize(("level", "refs"), MARKINGS, ids=[f"{m[0]}-{i}" for i, m in enumerate(MARKINGS)])
def test_every_level_policy_and_origin(level: str | None, refs: list[str], source: str | None) -> None:
    for policy in POLICIES:
        effective_level = level or policy.default_tlp
        got = recipients(refs, policy, PEERS, source_peer=source)
        assert got == expected(effective_level, policy, source), (level, policy, source)


def test_red_never_leaves_even_with_pap_and_everyone_named() -> None:
    policy = SharingPolicy(federate=True, sharing_group=PEERS, strict_recipient="fr", default_tlp="clear")
    refs = [TLP2_IDS["red"], PAP_IDS["clear"], TLP2_IDS["clear"]]
    assert recipients(refs, policy, PEERS) == set()


def test_most_restrictive_marking_wins() -> None:
    policy = SharingPolicy(federate=True, sharing_group=GROUP, strict_recipient="vn")
    assert recipients([TLP2_IDS["clear"], TLP2_IDS["amber+strict"]], policy, PEERS) == {"vn"}
    tlp1_amber = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
    assert recipients([TLP2_IDS["green"], tlp1_amber], policy, PEERS) == {"fr", "de"}


def test_unmarked_objects_take_the_default_and_unreadable_markings_are_held_as_red() -> None:
    policy = SharingPolicy(federate=True, sharing_group=GROUP, default_tlp="amber")
    assert recipients([], policy, PEERS) == {"fr", "de"}
    custom = f"marking-definition--{uuid.uuid4()}"
    # A definition this node has never read may be a RED one: nothing leaves.
    assert recipients([custom], policy, PEERS) == set()
    assert recipients([TLP2_IDS["green"], custom], policy, PEERS) == set()
    assert recipients([custom], policy, PEERS, definitions={custom: ("red", None)}) == set()
    assert recipients([custom], policy, PEERS, definitions={custom: ("green", None)}) == {"fr", "de"}
    # A definition that is read and says nothing of TLP (a copyright statement) leaves the default.
    assert recipients([custom], policy, PEERS, definitions={custom: (None, None)}) == {"fr", "de"}


def test_tlp_definitions_are_the_published_ones() -> None:
    for level in TLP_ORDER:
        d = tlp_definition(level)
        assert definition_levels(d) == (level, None)
        assert d["created"] == "2022-10-01T00:00:00.000Z"
    legacy = {
        "type": "marking-definition",
        "id": f"marking-definition--{uuid.uuid4()}",
        "definition_type": "tlp",
        "definition": {"tlp": "white"},
    }
    assert definition_levels(legacy) == ("clear", None)


def test_pap_ids_are_derived_as_documented() -> None:
    for level, ref in PAP_IDS.items():
        assert ref == f"marking-definition--{uuid.uuid5(uuid.UUID(PAP_NAMESPACE), f'PAP:{level.upper()}')}"
        assert definition_levels(pap_definition(level)) == (None, level)
    foreign = {
        "type": "marking-definition",
        "id": f"marking-definition--{uuid.uuid4()}",
        "name": "PAP:AMBER",
        "definition_type": "statement",
        "definition": {"statement": "PAP:AMBER"},
    }
    assert definition_levels(foreign) == (None, "amber")
    assert effective([PAP_IDS["green"], PAP_IDS["red"]]) == (None, "red")
