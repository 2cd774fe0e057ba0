"""``cyberpact demo``: three nodes on localhost, each with its own SQLite database and keys, that pin each
other's cards and exchange signed, encrypted, receipted messages while their timelines scroll by.

Viet Nam's 24/7 contact point, Australia's 24/7 contact point and Poland's central authority. The nodes keep
serving until Ctrl-C; ``--once`` runs the scenario and exits (for tests and CI).
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

from cyberpact.accounts import service as accounts
from cyberpact.app import create_app
from cyberpact.config import Settings
from cyberpact.federation.models import ConversationEvent
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.cli import console
from cyberpact.kit.db import Database
from cyberpact.kit.errors import ConfigurationError
from cyberpact.kit.migrate import upgrade


@dataclass
class DemoNode:
    node_id: str
    name: str
    country: str
    authority: str
    roles: str
    colour: str
    port: int = 0
    settings: Settings | None = None
    token: str = ""
    password: str = ""
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    seen: int = 0
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        response = self.client.request(method, self.url + path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise ConfigurationError(
                f"{self.node_id} {method} {path}: {response.status_code} {response.text}"
            )
        return response


NODES = [
    DemoNode(
        "vn-24x7",
        "Viet Nam 24/7 contact point",
        "VN",
        "Ministry of Public Security, 24/7 point of contact",
        "contact_point_24_7",
        "red",
    ),
    DemoNode(
        "au-24x7",
        "Australia 24/7 contact point",
        "AU",
        "Australian Federal Police, 24/7 point of contact",
        "contact_point_24_7",
        "green",
    ),
    DemoNode(
        "pl-ca",
        "Poland central authority",
        "PL",
        "Ministry of Justice, central authority",
        "central_authority",
        "blue",
    ),
]


def _start(node: DemoNode, root: Path) -> None:
    data = root / node.node_id
    if data.exists():
        shutil.rmtree(data)  # every demo run starts clean: new keys, new cards, new fingerprints
    data.mkdir(parents=True)
    node.settings = Settings(
        env="dev",
        data_dir=data,
        database_url=None,
        node_name=node.name,
        node_id=node.node_id,
        node_country=node.country,
        node_authority=node.authority,
        node_roles=node.roles,
        port=node.port,
        base_url=node.url,
        outbox_poll_seconds=0.1,
    )
    upgrade(node.settings.sqlalchemy_url)
    db = Database(node.settings.sqlalchemy_url)
    node.password = secrets.token_urlsafe(12)
    with db.transaction() as session:
        user = accounts.create_user(
            session,
            SYSTEM,
            username="admin",
            password=node.password,
            roles=["admin", "officer", "supervisor", "auditor", "contact_point"],
        )
        _, node.token = accounts.issue_token(session, SYSTEM, user, "demo", timedelta(days=1))
    db.dispose()
    node.server = uvicorn.Server(
        uvicorn.Config(
            create_app(node.settings),
            host="127.0.0.1",
            port=node.port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )
    node.thread = threading.Thread(target=node.server.run, name=node.node_id, daemon=True)
    node.thread.start()
    deadline = time.monotonic() + 30
    while not node.server.started:
        if not node.thread.is_alive() or time.monotonic() > deadline:
            raise ConfigurationError(f"{node.node_id} could not start on port {node.port} (in use?)")
        time.sleep(0.05)


def _timeline(nodes: list[DemoNode]) -> int:
    """Print the events each node recorded since the last call; returns how many were printed."""
    printed = 0
    for node in nodes:
        assert node.settings is not None
        db = Database(node.settings.sqlalchemy_url)
        with db.transaction(read_only=True) as session:
            rows = session.scalars(
                select(ConversationEvent)
                .where(ConversationEvent.seq > node.seen)
                .order_by(ConversationEvent.seq)
            ).all()
        db.dispose()
        for e in rows:
            node.seen = e.seq
            arrow = "→" if e.direction == "out" else "←"
            console.print(
                f"[{node.colour}]{node.node_id:>8}[/] {e.at:%H:%M:%S.%f}"[:-3]
                + f"  {e.kind:<9} {arrow} {e.peer:<8} {e.message_type:<6} {e.summary[:70]}",
                highlight=False,
                soft_wrap=True,
            )
            printed += 1
    return printed


def _wait_delivered(nodes: list[DemoNode], expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _timeline(nodes)
        delivered = sum(
            len(n.api("GET", "/api/v1/federation/outbox", params={"status": "delivered"}).json())
            for n in nodes
        )
        if delivered >= expected:
            _timeline(nodes)
            return
        time.sleep(0.2)
    raise ConfigurationError(f"only some of {expected} messages were delivered within {timeout:.0f} s")


def run(port: int = 8000, once: bool = False, root: Path | None = None) -> None:
    root = (root or Path(os.environ.get("CYBERPACT_DEMO_DIR", "var/demo"))).resolve()
    nodes = [
        DemoNode(**{k: getattr(n, k) for k in ("node_id", "name", "country", "authority", "roles", "colour")})
        for n in NODES
    ]
    for i, node in enumerate(nodes):
        node.port = port + i
    try:
        for node in nodes:
            _start(node, root)
        console.rule("three nodes")
        for node in nodes:
            info = node.api("GET", "/api/v1/federation/node").json()
            console.print(f"[{node.colour}]{node.name}[/] at {node.url}  (API docs {node.url}/api/docs)")
            console.print(f"    fingerprint {info['fingerprint']}")
            console.print(f"    admin user 'admin', password {node.password}")
            console.print(f"    admin API token (shown once): {node.token}", soft_wrap=True)
        parties = nodes[0].api("GET", "/api/v1/directory/parties", params={"limit": 500}).json()["items"]
        console.print(f"directory loaded on each node: {len(parties)} parties")

        console.rule("pinning: each administrator checks the others' fingerprints, then adds them")
        for node in nodes:
            for other in nodes:
                if other is node:
                    continue
                fp = other.api("GET", "/api/v1/federation/node").json()["fingerprint"]
                node.api("POST", "/api/v1/federation/peers", json={"url": other.url, "fingerprint": fp})
                console.print(f"  {node.node_id} trusts {other.node_id} ({fp[:14]}…)")

        console.rule("messages both ways (signed, encrypted, receipted)")
        script = [
            (
                0,
                "au-24x7",
                "case-vn-2026-117",
                "Urgent: please preserve the cloud account data of "
                "user 'minh.tran.88' (suspected ransomware operator); MLA to follow.",
            ),
            (
                1,
                "vn-24x7",
                "case-vn-2026-117",
                "Received. Preservation order issued; data preserved for 90 days. "
                "Our reference AU-PRES-5521.",
            ),
            (
                2,
                "vn-24x7",
                "case-pl-2026-044",
                "Consultation before refusal: the request concerns a political "
                "offence under our law; can assistance be given under conditions?",
            ),
            (
                0,
                "pl-ca",
                "case-pl-2026-044",
                "Understood; we will send additional information on the offence.",
            ),
        ]
        for sender, recipient, conversation, text in script:
            nodes[sender].api(
                "POST",
                "/api/v1/federation/messages",
                json={"recipient": recipient, "payload": {"text": text}, "conversation_id": conversation},
            )
            time.sleep(0.3)
            _timeline(nodes)
        _wait_delivered(nodes, len(script))
        console.rule("done" if once else "serving: Ctrl-C to stop")
        while not once:
            time.sleep(0.5)
            _timeline(nodes)
    except KeyboardInterrupt:
        pass
    finally:
        for node in nodes:
            node.client.close()
            if node.server is not None:
                node.server.should_exit = True
        for node in nodes:
            if node.thread is not None:
                node.thread.join(timeout=15)
