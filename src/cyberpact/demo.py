"""``cyberpact demo``: a node on its embedded defaults (SQLite, local data directory), ready to use."""

from __future__ import annotations

import os
import secrets
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from cyberpact.accounts import service as accounts
from cyberpact.app import create_app
from cyberpact.config import Settings
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.cli import console
from cyberpact.kit.db import Database
from cyberpact.kit.migrate import upgrade


def _serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"node on port {settings.port} failed to start")
        time.sleep(0.05)
    return server, thread


def run(port: int = 8000, once: bool = False, root: Path | None = None) -> None:
    root = root or Path(os.environ.get("CYBERPACT_DEMO_DIR", "var/demo"))
    data = (root / "node").resolve()
    data.mkdir(parents=True, exist_ok=True)
    settings = Settings(env="dev", data_dir=data, database_url=None, node_name="demo", port=port,
                        base_url=f"http://127.0.0.1:{port}")
    upgrade(settings.sqlalchemy_url)
    db = Database(settings.sqlalchemy_url)
    password = secrets.token_urlsafe(12)
    with db.transaction() as session:
        name = f"admin-{secrets.token_hex(3)}"
        user = accounts.create_user(session, SYSTEM, username=name, password=password,
                                    roles=["admin", "officer", "supervisor", "auditor"])
        _, token = accounts.issue_token(session, SYSTEM, user, "demo", timedelta(days=1))
    db.dispose()
    server, thread = _serve(settings)
    with httpx.Client(base_url=settings.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        convention = client.get("/api/v1/directory/convention")
        parties = client.get("/api/v1/directory/parties", params={"limit": 500})
    console.print(f"[bold]cyberpact node[/bold] at {settings.base_url}  (API docs: {settings.base_url}/api/docs)")
    console.print(f"  database: {settings.sqlalchemy_url}")
    console.print(f"  admin user: {name}  password: {password}")
    console.print(f"  admin API token (shown once): {token}")
    if parties.status_code == 200:
        console.print(f"  directory: {len(parties.json()['items'])} parties loaded")
    if convention.status_code == 200:
        console.print(f"  convention: {convention.json()}")
    console.print(f'  try: curl -H "Authorization: Bearer {token}" {settings.base_url}/api/v1/directory/parties')
    try:
        while not once and thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(timeout=15)
