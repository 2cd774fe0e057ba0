"""The demo's story: Viet Nam's 24/7 point asks Australia to preserve a cloud account's data (art. 42);
Australia acknowledges and preserves; Viet Nam's central authority follows with an MLA request for
disclosure (art. 44), which holds the preservation until it is decided; Australia asks for more
information, then executes, sending the produced data as sealed electronic evidence, and releases the
preserved data. In a separate case Poland consults, then refuses citing a ground. Last, Viet Nam
shares the ransomware's indicators with Australia under TLP (``demo_sharing``). Every step is a signed
message the other side checks again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, Protocol

from rich.markup import escape

from cyberpact.demo_sharing import send_evidence, share_indicators
from cyberpact.kit.cli import console


class Node(Protocol):
    node_id: str

    def api(self, method: str, path: str, *, as_: str = "admin", **kwargs: Any) -> Any: ...


Wait = Callable[[list[Any], Any, str, tuple[str, ...]], None]

HEADER = {
    "language": "en",
    "request_kind": "new",
    "requesting_authority": "Ministry of Public Security of Viet Nam, 24/7 point of contact (A05)",
    "contact_name": "Lt. Col. Nguyen Van An",
    "contact_email": "contact247@a05.example.vn",
    "contact_phone": "+84 24 3826 0000",
    "contact_timezone": "Asia/Ho_Chi_Minh",
    "investigating_authority": "A05 Investigation Division, Hanoi",
}
PRESERVATION = {
    "offence": "Illegal access (art. 7) and extortion by ransomware",
    "facts_summary": "On 2 November 2026 the systems of two Hanoi hospitals were encrypted; the ransom note "
    "gives the cloud mailbox minh.tran.88@cloudmail.example for contact.",
    "data_to_preserve": "Stored content, subscriber information and access logs of "
    "minh.tran.88@cloudmail.example, "
    "1 October 2026 to date",
    "relationship_to_offence": "The mailbox was used to negotiate the ransom and to receive payment notices.",
    "custodian_or_location": "CloudMail Pty Ltd, Sydney, Australia",
    "mla_intended": True,
    "follow_up_mla_planned": (date.today() + timedelta(days=21)).isoformat(),
}


def _step(node: Node, rid: str, action: str, as_: str = "officer", **data: Any) -> None:
    node.api("POST", f"/api/v1/requests/{rid}/actions/{action}", as_=as_, json={"data": data})


def _send(node: Node, to: str, type_: str, title: str, header: dict[str, Any], fields: dict[str, Any]) -> str:
    r = node.api(
        "POST",
        "/api/v1/requests",
        as_="officer",
        json={"type": type_, "case_title": title, "counterpart": to, "header": header, "fields": fields},
    )
    body = r.json()
    for problem in body["check"]["errors"]:
        console.print(
            f"  [yellow]the draft is missing[/yellow] {escape(problem['message'])}", highlight=False
        )
    for warning in body["check"]["warnings"]:
        console.print(f"  [dim]warning: {escape(warning['message'])}[/dim]", highlight=False)
    return str(body["request"]["id"])


def run_story(nodes: list[Any], wait: Wait, timeline: Callable[[list[Any]], int]) -> None:
    vn, au, pl = nodes
    today = date.today()

    console.rule("1. Viet Nam asks Australia to preserve a cloud account (art. 42)")
    rid = _send(
        vn,
        "au-24x7",
        "preservation",
        "Hanoi hospitals ransomware",
        {**HEADER, "our_reference": "VN-A05-2026-117"},
        PRESERVATION,
    )
    necessity = "The provider deletes the mailbox of a closed account after 30 days; the suspect closed it."
    vn.api(
        "PUT",
        f"/api/v1/requests/{rid}",
        as_="officer",
        json={
            "counterpart": "au-24x7",
            "header": {**HEADER, "our_reference": "VN-A05-2026-117"},
            "fields": {**PRESERVATION, "necessity": necessity},
        },
    )
    console.print("  the officer adds why preservation is necessary; the draft is complete")
    _step(vn, rid, "submit")
    _step(vn, rid, "approve", as_="supervisor")
    wait(nodes, au, rid, ("received",))
    _step(au, rid, "acknowledge", reference="AU-PRES-5521")
    _step(
        au,
        rid,
        "preserve",
        preserved_until=(today + timedelta(days=90)).isoformat(),
        note="Preservation notice served on CloudMail Pty Ltd.",
    )
    wait(nodes, vn, rid, ("preserved",))

    console.rule("2. Viet Nam's central authority follows with an MLA request for disclosure (art. 44)")
    mla = _send(
        vn,
        "au-24x7",
        "stored_data",
        "Hanoi hospitals ransomware: disclosure",
        {
            **HEADER,
            "our_reference": "VN-CA-2026-0442",
            "request_kind": "follow_up_to_preservation",
            "related_ticket": "AU-PRES-5521",
            "requesting_authority": "Supreme People's Procuracy of Viet Nam, central authority",
        },
        {
            "subject_matter": "Criminal investigation of a ransomware group attacking hospitals in Hanoi",
            "facts_summary": PRESERVATION["facts_summary"],
            "assistance_sought": "Produce the preserved data with a certificate of authenticity.",
            "data_sought": PRESERVATION["data_to_preserve"],
            "preservation_reference": "AU-PRES-5521",
            "purpose": "Identify the operators and use the data as evidence at trial.",
        },
    )
    _step(vn, mla, "submit")
    _step(vn, mla, "approve", as_="supervisor")
    wait(nodes, au, mla, ("received",))
    _step(au, mla, "acknowledge", reference="AU-MLA-2026-088")
    _step(
        au,
        mla,
        "request_info",
        questions="Please give the maximum penalty for the offence (dual criminality "
        "for the production order).",
    )
    wait(nodes, vn, mla, ("info_requested",))
    _step(vn, mla, "provide_info", answers="Article 289 of the Penal Code: up to 7 years' imprisonment.")
    wait(nodes, au, mla, ("info_provided",))
    _step(au, mla, "start_execution")
    package = send_evidence(au, vn, lambda: timeline(nodes), mla, "AU-MLA-2026-088")
    _step(
        au,
        mla,
        "execute",
        results="Mailbox content and logs produced under production order 2026/114.",
        evidence_refs=[package],
    )
    wait(nodes, vn, mla, ("executed",))
    # The preservation was held while the MLA request waited for its decision (art. 42); decided, the
    # data it kept can go.
    _step(au, rid, "release", reason="Produced under the MLA request AU-MLA-2026-088.")
    wait(nodes, vn, rid, ("released",))

    console.rule("3. A separate case: Poland consults, then refuses citing a ground")
    pl_rid = _send(
        vn,
        "pl-ca",
        "mla_general",
        "Online fraud network",
        {
            **HEADER,
            "our_reference": "VN-CA-2026-0510",
            "requesting_authority": "Supreme People's Procuracy of Viet Nam, central authority",
        },
        {
            "assistance_kind": "taking_evidence",
            "subject_matter": "Prosecution of the organisers of an investment-fraud website",
            "facts_summary": "A Polish company hosted the website until March 2026.",
            "assistance_sought": "Take a witness statement from the hosting company's director.",
            "purpose": "Evidence of who rented the server.",
        },
    )
    _step(vn, pl_rid, "submit")
    _step(vn, pl_rid, "approve", as_="supervisor")
    wait(nodes, pl, pl_rid, ("received",))
    _step(pl, pl_rid, "acknowledge", reference="PL-PK-II-2026-311")
    _step(
        pl,
        pl_rid,
        "consult",
        subject="Polish law bars compelling this witness for a similar domestic offence; "
        "could a voluntary statement meet your needs?",
    )
    wait(nodes, vn, pl_rid, ("consultation",))
    _step(vn, pl_rid, "provide_info", answers="A voluntary statement would not be admissible in our courts.")
    wait(nodes, pl, pl_rid, ("info_provided",))
    _step(
        pl,
        pl_rid,
        "refuse",
        grounds=["domestic_prohibition"],
        reasons="Domestic law would prohibit compelling the witness for a similar domestic offence.",
    )
    wait(nodes, vn, pl_rid, ("refused",))

    console.rule("4. Viet Nam shares threat indicators with Australia, under TLP")
    share_indicators(vn, au, pl, lambda: timeline(nodes))
    timeline(nodes)
