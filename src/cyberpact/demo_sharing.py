"""The demo's other two exchanges, told through the same API an officer's or a CERT's tools use.

Evidence: Australia produces the preserved mailbox as an electronic evidence package, seals it and sends it
to Viet Nam, which checks every byte against the manifest and Australia's custody log on arrival.

Threat information: Viet Nam shares the ransomware's indicators as STIX 2.1 over TAXII 2.1 with Australia
alone. TLP:GREEN and TLP:AMBER cross; TLP:RED stays home; a malformed object is refused on its own while the
rest of its envelope lands. Australia reports the same command-and-control address from its own case, and
the two States' reports show as one correlation.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from cyberpact.intel.markings import TLP2_IDS
from cyberpact.kit.cli import console
from cyberpact.kit.errors import ConfigurationError

if TYPE_CHECKING:  # demo_story tells the whole story and calls these chapters
    from cyberpact.demo_story import Node

TAXII = {"Accept": "application/taxii+json;version=2.1", "Content-Type": "application/taxii+json;version=2.1"}
VN_CERT = "identity--0b2f9a3c-6d1e-4f57-9c8a-3e5d7b1f2a64"
AU_CERT = "identity--5c8e1d27-9a4b-4e63-8f1c-7d2a6b9e0c35"
C2_ADDRESS = "203.0.113.45"  # the ransomware's command-and-control server, seen by both States

Tick = Callable[[], Any]  # prints whatever the nodes' timelines recorded meanwhile


def _until(what: str, tick: Tick, check: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something truthy; the nodes work on their own meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick()
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise ConfigurationError(f"the demo waited {timeout:.0f} s for {what}")


# --- evidence -----------------------------------------------------------------------------------------------

_MAILBOX = (
    b"From: minh.tran.88@cloudmail.example\r\nTo: finance@benhvien-hn.example\r\n"
    b"Date: Mon, 2 Nov 2026 03:12:44 +0000\r\nSubject: your files\r\n\r\n"
    b"Pay 12 BTC to the wallet below within 72 hours or the data is published.\r\n"
)
_ACCESS_LOG = (
    b"2026-10-29T22:14:03Z login minh.tran.88 from 203.0.113.45\r\n"
    b"2026-11-02T03:10:51Z login minh.tran.88 from 203.0.113.45\r\n"
    b"2026-11-02T03:12:44Z send finance@benhvien-hn.example\r\n"
)


def send_evidence(au: Node, vn: Node, tick: Tick, request_id: str, their_ref: str) -> str:
    """Australia seals what CloudMail produced and sends it; Viet Nam verifies it. Filed under the
    request's id, which both nodes share, the package shows on that request on both desks. Returns the id
    of Australia's package, which its execution of the request cites."""
    console.print("  au-24x7 packages what CloudMail produced as electronic evidence")
    acquisition = {
        "by": "Sgt. J. Walker, AFP Cybercrime Operations",
        "at": "2026-11-20T10:05:00+11:00",
        "where": "CloudMail Pty Ltd, Sydney: production portal",
        "method": "provider export under production order",
        "tool": "CloudMail lawful-request export",
        "tool_version": "4.2",
        "authority": "Production order 2026/114, Federal Court of Australia",
    }
    pkg = au.api(
        "POST",
        "/api/v1/evidence/packages",
        as_="officer",
        json={
            "case_ref": their_ref,
            "request_ref": request_id,
            "title": "CloudMail production: minh.tran.88@cloudmail.example",
            "use_conditions": {
                "purpose": "Criminal proceedings in Viet Nam on the Hanoi hospitals ransomware",
                "restrictions": ["No onward transfer to a third State without Australia's consent"],
            },
        },
    ).json()
    base = f"/api/v1/evidence/packages/{pkg['id']}"
    files = (("mailbox.eml", _MAILBOX, "message/rfc822"), ("access-log.txt", _ACCESS_LOG, "text/plain"))
    for index, (name, data, media) in enumerate(files):
        au.api(
            "POST",
            f"{base}/files",
            as_="officer",
            json={
                "name": name,
                "size": len(data),
                "media_type": media,
                "sha256": hashlib.sha256(data).hexdigest(),
                "acquisition": acquisition,
            },
        )
        au.api(
            "PUT",
            f"{base}/files/{index}/content",
            as_="officer",
            content=data,
            headers={"Upload-Offset": "0", "Content-Type": "application/octet-stream"},
        )
    digest = au.api("POST", f"{base}/seal", as_="officer").json()["manifest_digest"]
    console.print(f"  au-24x7 sealed {len(files)} files; manifest digest {digest[:16]}…", highlight=False)
    transfer = au.api("POST", f"{base}/transfers", as_="officer", json={"peer": "vn-24x7"}).json()

    def accepted() -> bool:
        found = au.api("GET", f"/api/v1/evidence/transfers/{transfer['id']}", as_="officer").json()
        if found["status"] == "failed":
            raise ConfigurationError(f"the evidence transfer failed: {found['error']}")
        return bool(found["status"] == "accepted")

    _until("the evidence to reach vn-24x7", tick, accepted)
    received = vn.api(
        "GET", "/api/v1/evidence/packages", as_="officer", params={"request_ref": request_id}
    ).json()["items"]
    package = next(p for p in received if p["manifest_digest"] == digest)
    checked = vn.api("POST", f"/api/v1/evidence/packages/{package['id']}/verify", as_="officer").json()
    kinds = [
        e["entry"]["kind"]
        for e in vn.api("GET", f"/api/v1/evidence/packages/{package['id']}/custody", as_="officer").json()
    ]
    console.print(
        f"  vn-24x7 received the package, signed a receipt, and an officer re-checked it: "
        f"{'every file matches the manifest' if checked['ok'] else 'MISMATCH'}; its custody log here: "
        f"{' → '.join(kinds)}",
        highlight=False,
    )
    return str(pkg["id"])


# --- threat information -------------------------------------------------------------------------------------


def _stix_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _identity(oid: str, name: str) -> dict[str, Any]:
    now = _stix_now()
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": oid,
        "created": now,
        "modified": now,
        "name": name,
        "identity_class": "organization",
    }


def _indicator(by: str, name: str, pattern: str, tlp: str) -> dict[str, Any]:
    now = _stix_now()
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created_by_ref": by,
        "created": now,
        "modified": now,
        "name": name,
        "indicator_types": ["malicious-activity"],
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": now,
        "object_marking_refs": [TLP2_IDS[tlp]],  # type: ignore[index]
    }


def _post(node: Node, cid: str, objects: list[dict[str, Any]]) -> dict[str, Any]:
    status: dict[str, Any] = node.api(
        "POST",
        f"/taxii2/intel/collections/{cid}/objects/",
        as_="officer",
        json={"objects": objects},
        headers=TAXII,
    ).json()
    console.print(
        f"  {node.node_id} TAXII status: {status['success_count']} stored, {status['failure_count']} refused",
        highlight=False,
    )
    for failure in status.get("failures", []):
        console.print(
            f"    [yellow]refused[/yellow] {escape(failure['id'])}: {escape(failure['message'])}",
            highlight=False,
        )
    return status


def _collection(node: Node, title: str, sharing_group: list[str]) -> str:
    body = {"title": title, "federate": bool(sharing_group), "sharing_group": sharing_group}
    cid = str(node.api("POST", "/api/v1/intel/collections", json=body).json()["id"])
    # Least privilege: the officer who posts the indicators is granted this collection, nothing more.
    node.api("PUT", f"/api/v1/intel/collections/{cid}/grants/officer", json={"read": True, "write": True})
    return cid


def _object_ids(node: Node, cid: str) -> set[str]:
    page = node.api("GET", f"/taxii2/intel/collections/{cid}/objects/", headers=TAXII).json()
    return {o["id"] for o in page.get("objects", [])}


def share_indicators(vn: Node, au: Node, pl: Node, tick: Tick) -> None:
    """Viet Nam shares with Australia alone; Australia's own report of the same address correlates."""
    cid = _collection(vn, "Hanoi hospitals ransomware: indicators", ["au-24x7"])
    console.print("  vn-24x7 shares the collection with au-24x7 only (its sharing group)")
    shared = {
        "green": _indicator(VN_CERT, "Ransomware C2 server", f"[ipv4-addr:value = '{C2_ADDRESS}']", "green"),
        "amber": _indicator(
            VN_CERT,
            "Ransom negotiation mailbox",
            "[email-addr:value = 'minh.tran.88@cloudmail.example']",
            "amber",
        ),
    }
    red = _indicator(
        VN_CERT, "Address of an undercover account", "[ipv4-addr:value = '198.51.100.77']", "red"
    )
    malformed = _indicator(VN_CERT, "Typo in the id", "[domain-name:value = 'x.example']", "green")
    malformed["id"] = "indicator--not-a-uuid"
    _post(vn, cid, [_identity(VN_CERT, "VNCERT/CC"), *shared.values(), red, malformed])

    expected = {VN_CERT, *(o["id"] for o in shared.values())}

    def mirrored() -> bool:
        mirrors = [c for c in au.api("GET", "/api/v1/intel/collections").json() if c["id"] == cid]
        return bool(mirrors) and expected <= _object_ids(au, cid)

    _until("au-24x7 to receive the shared indicators", tick, mirrored)
    got = _object_ids(au, cid)
    console.print(
        f"  au-24x7 holds {len(got)} objects from vn-24x7 (TLP:GREEN, TLP:AMBER, their author); "
        f"the TLP:RED one {'CROSSED' if red['id'] in got else 'stayed on vn-24x7'}",
        highlight=False,
    )
    outside = [c for c in pl.api("GET", "/api/v1/intel/collections").json() if c["id"] == cid]
    console.print(f"  pl-ca, outside the sharing group, {'HOLDS IT' if outside else 'received nothing'}")

    own = _collection(au, "AFP ransomware investigations", [])
    _post(
        au,
        own,
        [
            _identity(AU_CERT, "AFP Cybercrime Operations"),
            _indicator(
                AU_CERT, "C2 of the Sydney clinic ransomware", f"[ipv4-addr:value = '{C2_ADDRESS}']", "amber"
            ),
        ],
    )
    # What a peer shares is readable on arrival by no one but the administrators, who grant it on; and an
    # author counts for a State once an administrator says which one it speaks for.
    au.api("PUT", f"/api/v1/intel/collections/{cid}/grants/officer", json={"read": True})
    for reporter, state, name in ((VN_CERT, "VN", "VNCERT/CC"), (AU_CERT, "AU", "AFP Cybercrime Operations")):
        au.api("PUT", f"/api/v1/intel/identities/{reporter}", json={"state": state, "name": name})
    console.print(
        "  au-24x7's administrator grants the officer Viet Nam's collection and maps each author to its State"
    )
    found = au.api(
        "GET",
        "/api/v1/intel/correlations",
        as_="officer",
        params={"kind": "ipv4-addr:value", "value": C2_ADDRESS},
    ).json()["items"]
    for item in found:
        states = ", ".join(
            f"{s['state']} ({s['reports']} report{'' if s['reports'] == 1 else 's'})" for s in item["states"]
        )
        console.print(
            f"  the au-24x7 officer sees a correlation: {item['kind']} {item['value']} reported by {states}; "
            f"first seen {item['first_seen'][:19]}, last seen {item['last_seen'][:19]}",
            highlight=False,
        )
