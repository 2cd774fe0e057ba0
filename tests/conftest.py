"""Test infrastructure: every database test runs twice, on a fresh SQLite file and on a fresh
PostgreSQL database, each cloned from a migrated template so no test sees another's state."""

from __future__ import annotations

import os
import shutil
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cyberpact.accounts import service as accounts
from cyberpact.app import create_app
from cyberpact.config import Settings
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.migrate import upgrade

PG_ADMIN_URL = os.environ.get("CYBERPACT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SHARED = Path(__file__).resolve().parents[2] / "shared"
BACKENDS = [b for b in os.environ.get("CYBERPACT_TEST_DATABASES", "sqlite,postgresql").split(",") if b]


def _pg_admin() -> Any:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=None)


def _pg_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"cyberpact_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(_pg_url(name))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class DatabaseFactory:
    """Fresh, migrated, empty databases of one kind, dropped when the test ends."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.kind, self.request, self.tmp_path = kind, request, tmp_path
        self.created: list[str] = []

    def __call__(self) -> str:
        if self.kind == "sqlite":
            path = self.tmp_path / f"db{len(self.created)}" / "cyberpact.db"
            path.parent.mkdir()
            shutil.copyfile(self.request.getfixturevalue("sqlite_template"), path)
            self.created.append(str(path))
            return f"sqlite:///{path}"
        template = self.request.getfixturevalue("pg_template")
        name = f"cyberpact_t_{uuid.uuid4().hex[:12]}"
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        admin.dispose()
        self.created.append(name)
        return _pg_url(name)

    def drop_all(self) -> None:
        if self.kind != "postgresql" or not self.created:
            return
        admin = _pg_admin()
        with admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(request.param, request, tmp_path)
    yield factory
    factory.drop_all()


@pytest.fixture
def db_url(db_factory: DatabaseFactory) -> str:
    """A fresh, migrated, empty database of each kind."""
    return db_factory()


def make_settings(db_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "secret_key": "test-secret-" + "x" * 32,
        "key_passphrase": "test-passphrase-long-enough",
        "key_kdf_iterations": 1000,
        "data_dir": data_dir,
        "database_url": db_url,
        "node_name": "test-node",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.sqlalchemy_url)
    yield database
    database.dispose()


@dataclass
class LiveNode:
    """A node served by a real uvicorn on a loopback port, reached over real HTTP."""

    settings: Settings
    url: str
    db: Database
    server: uvicorn.Server
    thread: threading.Thread
    app: Any = None
    admin_token: str = ""
    verify: Any = True  # a CA bundle path for nodes served over TLS
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify = (
            ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify
        )
        c = httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=verify)
        self.clients.append(c)
        return c

    def user(self, username: str, *roles: str, password: str = "correct horse battery") -> str:
        """Create a user with ``roles`` and return an API token for it."""
        with self.db.transaction() as session:
            user = accounts.create_user(session, SYSTEM, username=username, password=password, roles=roles)
            _, secret = accounts.issue_token(session, SYSTEM, user, "test", timedelta(days=1))
        return secret

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.db.dispose()


def start_node(
    settings: Settings,
    *,
    port: int = 0,
    run_background: bool = False,
    ssl: tuple[Path, Path] | None = None,
    proxy_headers: bool = False,
) -> LiveNode:
    """``proxy_headers``: serve as behind a reverse proxy on loopback, taking X-Forwarded-For as the client's
    address (uvicorn's default, which `cyberpact serve` turns off)."""
    app = create_app(settings, run_background=run_background)
    extra: dict[str, Any] = {"ssl_certfile": str(ssl[0]), "ssl_keyfile": str(ssl[1])} if ssl else {}
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        proxy_headers=proxy_headers,
        timeout_graceful_shutdown=2,
        **extra,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test node failed to start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return LiveNode(
        settings=settings,
        url=f"{'https' if ssl else 'http'}://127.0.0.1:{port}",
        db=Database(settings.sqlalchemy_url),
        server=server,
        thread=thread,
        app=app,
    )


@pytest.fixture
def node(settings: Settings) -> Iterator[LiveNode]:
    live = start_node(settings)
    yield live
    live.stop()


@pytest.fixture
def admin(node: LiveNode) -> httpx.Client:
    return node.client(node.user("root", "admin"))


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the in-process CLI at this test's database."""
    env = {
        "CYBERPACT_ENV": "test",
        "CYBERPACT_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CYBERPACT_KEY_PASSPHRASE": "test-passphrase-long-enough",
        "CYBERPACT_KEY_KDF_ITERATIONS": "1000",
        "CYBERPACT_DATA_DIR": str(settings.data_dir),
        "CYBERPACT_DATABASE_URL": settings.sqlalchemy_url,
        "CYBERPACT_NODE_NAME": settings.node_name,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports (the demo binds its port and the next ones):
    checking only the first let another test's server, already on the second, fail the demo's start."""
    import socket

    for _ in range(100):
        first = free_port()
        socks = [socket.socket() for _ in range(count)]
        try:
            for n, sock in enumerate(socks):
                sock.bind(("127.0.0.1", first + n))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports on loopback")


def federation_node(
    db_factory: DatabaseFactory,
    tmp_path: Path,
    node_id: str,
    *,
    run_background: bool = False,
    port: int | None = None,
    db: str | None = None,
    **overrides: Any,
) -> LiveNode:
    """A node with its own database and keys, whose card states the URL it really listens on."""
    port = port or free_port()
    settings = make_settings(
        db or db_factory(),
        tmp_path / node_id,
        node_id=node_id,
        node_name=node_id.upper(),
        base_url=f"http://127.0.0.1:{port}",
        **overrides,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    node = start_node(settings, port=port, run_background=run_background)
    node.admin_token = node.user(f"admin-{node_id}", "admin", "officer")
    return node


def pin(a: LiveNode, b: LiveNode) -> None:
    """a trusts b, after reading b's fingerprint the way an administrator would."""
    fp = b.client(b.admin_token).get("/api/v1/federation/node").json()["fingerprint"]
    r = a.client(a.admin_token).post("/api/v1/federation/peers", json={"url": b.url, "fingerprint": fp})
    assert r.status_code == 201, r.text


@pytest.fixture
def pair(db_factory: DatabaseFactory, tmp_path: Path) -> Iterator[tuple[LiveNode, LiveNode]]:
    """Viet Nam's and Australia's 24/7 points of contact, each pinning the other. Each also serves as its
    State's central authority, so that a request of either channel goes to it without a warning."""
    roles = "contact_point_24_7,central_authority"
    a = federation_node(db_factory, tmp_path, "vn-24x7", node_country="VN", node_roles=roles)
    b = federation_node(db_factory, tmp_path, "au-24x7", node_country="AU", node_roles=roles)
    pin(a, b)
    pin(b, a)
    yield a, b
    a.stop()
    b.stop()
