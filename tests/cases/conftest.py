"""Two nodes with the people a request passes through on each side."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conftest import LiveNode
from cyberpact.catalog.service import DATA
from cyberpact.federation.delivery import OutboxWorker
from cyberpact.kit.keystore import KeyStore

ROLES = {
    "officer": ("officer", "contact_point"),
    "supervisor": ("supervisor",),
    "supervisor2": ("supervisor", "officer"),
    "ca": ("central_authority", "officer"),
    "plain": ("officer",),
    "auditor": ("auditor",),
}


@dataclass
class Side:
    node: LiveNode
    prefix: str
    people: dict[str, httpx.Client] = field(default_factory=dict)

    def __getattr__(self, name: str) -> httpx.Client:
        # People are created on first use: each costs an Argon2id hash, and most tests need two or three.
        if name not in ROLES:
            raise AttributeError(name)
        people = self.__dict__["people"]
        if name not in people:
            node = self.__dict__["node"]
            people[name] = node.client(node.user(f"{self.__dict__['prefix']}-{name}", *ROLES[name]))
        return people[name]

    def deliver(self) -> int:
        """Run the outbox until nothing is left to send; returns messages delivered."""
        s = self.node.settings
        worker = OutboxWorker(self.node.db, KeyStore(s.key_passphrase_value(), s.key_kdf_iterations), s)
        delivered = 0
        try:
            while True:
                result = worker.run_once()
                delivered += result.delivered + result.rejected
                if not result.claimed:
                    return delivered
        finally:
            worker.client.close()


@pytest.fixture
def two_sides(pair: tuple[LiveNode, LiveNode]) -> tuple[Side, Side]:
    a, b = pair
    return Side(a, "vn"), Side(b, "au")


HEADER: dict[str, Any] = {
    "language": "en",
    "our_reference": "VN-A05-2026-117",
    "request_kind": "new",
    "requesting_authority": "Ministry of Public Security, Department of Cybersecurity (A05)",
    "contact_name": "Nguyen Van An",
    "contact_email": "an.nguyen@a05.example.vn",
    "contact_phone": "+84 24 3826 0000",
    "contact_timezone": "Asia/Ho_Chi_Minh",
    "investigating_authority": "A05 Investigation Division",
}
PRESERVATION: dict[str, Any] = {
    "offence": "Illegal access (art. 7) and ransomware extortion",
    "facts_summary": "Hospital systems in Hanoi were encrypted on 2 Nov 2026; ransom notes name a mailbox.",
    "data_to_preserve": "All stored content and logs of the account minh.tran.88@cloudmail.example",
    "relationship_to_offence": "The account received the ransom payments notifications.",
    "custodian_or_location": "CloudMail Pty Ltd, Sydney",
    "necessity": "The provider deletes inactive accounts after 30 days.",
    "mla_intended": True,
    "follow_up_mla_planned": (date.today() + timedelta(days=30)).isoformat(),
}


@pytest.fixture
def vn_cli(two_sides: tuple[Side, Side], monkeypatch: pytest.MonkeyPatch) -> tuple[Side, Side]:
    """Two sides, with the CLI pointed at the Vietnamese node as its operator would run it there."""
    vn, au = two_sides
    s = vn.node.settings
    for k, v in {
        "CYBERPACT_ENV": "test",
        "CYBERPACT_SECRET_KEY": s.secret_key.get_secret_value(),
        "CYBERPACT_KEY_PASSPHRASE": "test-passphrase-long-enough",
        "CYBERPACT_KEY_KDF_ITERATIONS": "1000",
        "CYBERPACT_DATABASE_URL": s.sqlalchemy_url,
        "CYBERPACT_NODE_ID": s.node_id,
    }.items():
        monkeypatch.setenv(k, v)
    vn.officer, vn.supervisor  # create the users  # noqa: B018
    from cyberpact.kit.cli import console

    monkeypatch.setattr(console, "width", 250)  # tables must not wrap ids in the test's narrow terminal
    return vn, au


def draft(
    side: Side,
    *,
    type_: str = "preservation",
    header: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    to: str | None = "au-24x7",
) -> httpx.Response:
    body = {
        "type": type_,
        "case_title": "Hanoi hospital ransomware",
        "counterpart": to,
        "header": HEADER if header is None else header,
        "fields": PRESERVATION if fields is None else fields,
    }
    return side.officer.post("/api/v1/requests", json=body)


def act(client: httpx.Client, request_id: str, action: str, **data: Any) -> httpx.Response:
    return client.post(f"/api/v1/requests/{request_id}/actions/{action}", json={"data": data})


def sent(vn: Side, type_: str = "preservation", fields: dict[str, Any] | None = None) -> str:
    """A complete request drafted, approved on VN's side and delivered to AU."""
    r = draft(vn, type_=type_, fields=fields)
    assert r.status_code == 201, r.text
    rid = r.json()["request"]["id"]
    assert act(vn.officer, rid, "submit").status_code == 200
    assert act(vn.supervisor, rid, "approve").status_code == 200
    assert vn.deliver() == 1
    return str(rid)


def sent_preservation(vn: Side, au: Side) -> str:
    """A complete preservation request, approved on VN's side and delivered to AU."""
    return sent(vn)


def edited_catalog(tmp_path: Path, type_file: str, old: str, new: str) -> Path:
    """A copy of the catalog with one change to one request type's file."""
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    path = data / "types" / type_file
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), "utf-8")
    return data


def sent_follow_up(vn: Side, ticket: str) -> tuple[str, list[str]]:
    """An MLA request for the stored data citing a preservation's ``ticket``, delivered to AU; with the
    codes of the draft check's warnings."""
    header = {**HEADER, "request_kind": "follow_up_to_preservation", "related_ticket": ticket}
    fields = {
        "subject_matter": "Criminal investigation of a ransomware group attacking hospitals in Hanoi",
        "facts_summary": "Hospital systems in Hanoi were encrypted on 2 Nov 2026.",
        "assistance_sought": "Produce the preserved data with a certificate of authenticity.",
        "data_sought": "All stored content and logs of the account minh.tran.88@cloudmail.example",
        "purpose": "Identify the operators and use the data as evidence at trial.",
    }
    r = draft(vn, type_="stored_data", header=header, fields=fields)
    assert r.status_code == 201, r.text
    mla = str(r.json()["request"]["id"])
    warned = [w["code"] for w in r.json()["check"]["warnings"]]
    assert act(vn.officer, mla, "submit").status_code == 200
    assert act(vn.supervisor, mla, "approve").status_code == 200
    assert vn.deliver() == 1
    return mla, warned


def count_rows(side: Side, model: type) -> int:
    with side.node.db.transaction(read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)
