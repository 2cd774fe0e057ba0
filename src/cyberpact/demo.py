"""``cyberpact demo``: three nodes on localhost, each with its own SQLite database and keys, that pin each
other's cards (by telephone with one of them, then through the roster it signs) and exchange signed,
encrypted, receipted messages while their timelines scroll by.

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
from rich.markup import escape
from sqlalchemy import select

from cyberpact.accounts import service as accounts
from cyberpact.app import create_app
from cyberpact.cases.models import Request, RequestEvent
from cyberpact.config import Settings
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
    tokens: dict[str, str] = field(default_factory=dict)
    password: str = ""
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    seen: int = 0
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(
        self,
        method: str,
        path: str,
        *,
        as_: str = "admin",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {**(headers or {}), "Authorization": f"Bearer {self.tokens[as_]}"}
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
        # Also the central authority's node here: the story's MLA request follows its preservation to the
        # same node, which a State running one node for both offices would set up the same way.
        "contact_point_24_7,central_authority",
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
    people = {
        "admin": ["admin", "auditor"],
        "officer": ["officer", "contact_point", "central_authority"],
        "supervisor": ["supervisor"],
    }
    with db.transaction() as session:
        for username, roles in people.items():
            user = accounts.create_user(
                session, SYSTEM, username=username, password=node.password, roles=roles
            )
            _, node.tokens[username] = accounts.issue_token(session, SYSTEM, user, "demo", timedelta(days=1))
    node.token = node.tokens["admin"]
    db.dispose()
    node.server = uvicorn.Server(
        uvicorn.Config(
            create_app(node.settings),
            host="127.0.0.1",
            port=node.port,
            log_level="warning",
            # As `cyberpact serve`: uvicorn otherwise takes X-Forwarded-For from loopback clients as their
            # address, which the audit record names and no one here proxies.
            proxy_headers=False,
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
    """Print the request events each node recorded since the last call; returns how many were printed."""
    printed = 0
    for node in nodes:
        assert node.settings is not None
        db = Database(node.settings.sqlalchemy_url)
        with db.transaction(read_only=True) as session:
            rows = session.execute(
                select(RequestEvent, Request.type, Request.counterpart, Request.direction)
                .join(Request, Request.id == RequestEvent.request_id)
                .where(RequestEvent.seq > node.seen)
                .order_by(RequestEvent.seq)
            ).all()
        db.dispose()
        for e, type_, peer, direction in rows:
            node.seen = e.seq
            arrow = "→" if direction == "outgoing" else "←"
            who = "" if e.side == "local" else f" ({e.side})"
            change = (
                f"{e.from_status or '·'} → {e.to_status}" if e.from_status != e.to_status else e.to_status
            )
            # A draft need not name its requested State yet: an officer trying the demo's desk makes one.
            peer = escape(peer or "—")
            console.print(
                f"[{node.colour}]{node.node_id:>8}[/] {e.at:%H:%M:%S} {type_:<12} {arrow} {peer:<8} "
                f"[bold]{e.action:<17}[/bold]{escape(who)} {change}",
                highlight=False,
                soft_wrap=True,
            )
            printed += 1
    return printed


def _wait(
    nodes: list[DemoNode], node: DemoNode, rid: str, statuses: tuple[str, ...], timeout: float = 30
) -> None:
    """Wait until ``node`` sees request ``rid`` in one of ``statuses``, printing timelines meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _timeline(nodes)
        r = node.client.get(
            f"{node.url}/api/v1/requests/{rid}", headers={"Authorization": f"Bearer {node.tokens['officer']}"}
        )
        if r.status_code == 200 and r.json()["status"] in statuses:
            _timeline(nodes)
            return
        time.sleep(0.1)
    raise ConfigurationError(
        f"{node.node_id} did not see {rid} become {' or '.join(statuses)} in {timeout:.0f} s"
    )


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
            console.print(f"[{node.colour}]{node.name}[/] at {node.url}")
            console.print(f"    web desk {node.url}/desk   API docs {node.url}/api/docs")
            console.print(f"    fingerprint {info['fingerprint']}")
            console.print(f"    users admin, officer, supervisor; password {node.password}")
            console.print(f"    admin API token (shown once): {node.token}", soft_wrap=True)
        parties = nodes[0].api("GET", "/api/v1/directory/parties", params={"limit": 500}).json()["items"]
        console.print(f"directory loaded on each node: {len(parties)} parties")

        hub, members = nodes[0], nodes[1:]
        console.rule(f"pinning by telephone: {hub.node_id} and each other administrator read fingerprints")
        for node, other in [(hub, m) for m in members] + [(m, hub) for m in members]:
            fp = other.api("GET", "/api/v1/federation/node").json()["fingerprint"]
            node.api("POST", "/api/v1/federation/peers", json={"url": other.url, "fingerprint": fp})
            console.print(f"  {node.node_id} trusts {other.node_id} ({fp[:14]}…)")
        console.rule(f"a signed roster: {hub.node_id} vouches for the nodes it pinned; the others take it")
        signed = hub.api("POST", "/api/v1/federation/roster/signed", json={"days": 30}).json()
        console.print(f"  {hub.node_id} signs a roster of {signed['nodes']} nodes")
        for node in members:
            node.api("POST", "/api/v1/federation/roster/publishers", json={"node_id": hub.node_id})
            taken = node.api("POST", "/api/v1/federation/roster", json={"roster": signed["roster"]}).json()
            for added in taken["added"]:
                console.print(f"  {node.node_id} trusts {added} (from {hub.node_id}'s roster: no call)")

        story(nodes)
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


def story(nodes: list[DemoNode]) -> None:
    """The scenario of issue 4, told through the same API an officer's tools use."""
    from cyberpact.demo_story import run_story

    run_story(nodes, _wait, _timeline)
