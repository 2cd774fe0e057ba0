"""The sharing decision: which peers may receive an object, from its markings and its collection's policy.

A pure function so that the federation channel can call it per object and tests can cover it exhaustively.
TLP 2.0 semantics (FIRST, 2022), read for nodes that exchange intelligence between organizations:

* RED: for the eyes of the individual recipients only; it never leaves this node.
* AMBER+STRICT: only the recipient organization. The collection names that one peer; a node that
  *received* the object is itself the recipient organization and may not pass it on.
* AMBER: the recipient organization and its clients. Objects this node originated go to the collection's
  sharing group; objects received from a peer are not forwarded, since the other nodes are other
  organizations.
* GREEN: the community. Goes to the sharing group, whether originated here or received.
* CLEAR: no restriction. Goes to every trusted peer.

An object without a TLP marking is treated as the collection's ``default_tlp`` (AMBER unless configured),
never as CLEAR: an unmarked object is not a public one. An object marked with a definition this node cannot
read (never seen, neither well known nor sent with it) is held as RED: that definition may be a RED one.
Several TLP markings resolve to the most restrictive.
Whatever the level, an object is never sent back to the peer it came from, and a collection that does not
federate sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cyberpact.intel.markings import Pap, Tlp, effective, unreadable


@dataclass(frozen=True)
class SharingPolicy:
    federate: bool = False
    sharing_group: frozenset[str] = field(default_factory=frozenset)
    strict_recipient: str | None = None
    default_tlp: Tlp = "amber"


def recipients(
    obj_markings: Iterable[str],
    collection_policy: SharingPolicy,
    peers: Iterable[str],
    *,
    source_peer: str | None = None,
    definitions: Mapping[str, tuple[Tlp | None, Pap | None]] | None = None,
) -> set[str]:
    """The ids of the peers, among the trusted ``peers``, that may receive an object with these markings.

    ``source_peer`` is the peer the object came from (None when it originated on this node);
    ``definitions`` resolves marking-definition ids that are not well known (see ``markings.effective``).
    """
    policy = collection_policy
    if not policy.federate:
        return set()
    trusted = set(peers)
    refs = list(obj_markings)
    if unreadable(refs, definitions or {}):
        return set()
    tlp, _ = effective(refs, definitions)
    level = tlp or policy.default_tlp
    received = source_peer is not None
    if level == "red":
        chosen: set[str] = set()
    elif level == "amber+strict":
        named = {policy.strict_recipient} if policy.strict_recipient and not received else set()
        chosen = named & trusted
    elif level == "amber":
        chosen = set() if received else set(policy.sharing_group) & trusted
    elif level == "green":
        chosen = set(policy.sharing_group) & trusted
    else:
        chosen = trusted
    if source_peer is not None:
        chosen.discard(source_peer)
    return chosen
