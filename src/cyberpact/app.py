"""The application factory. Nothing here runs at import: ``create_app(settings)`` builds everything."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import Message, Scope

from cyberpact import __version__
from cyberpact.accounts.api import router as accounts_router
from cyberpact.audit import service as audit
from cyberpact.audit.api import router as audit_router
from cyberpact.catalog.service import get_catalog
from cyberpact.config import Settings
from cyberpact.federation.delivery import WorkerPool
from cyberpact.kit.actor import ANONYMOUS, SYSTEM, Actor
from cyberpact.kit.db import Database
from cyberpact.kit.errors import CyberpactError
from cyberpact.kit.http import (
    client_address,
    error_format,
    install_error_handlers,
    keep_queries_out_of_access_log,
    problem,
)
from cyberpact.kit.jobs import JobWorker
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.migrate import at_head

log = logging.getLogger("cyberpact")
CARD_RENEWAL_SECONDS = 6 * 3600


def unlock_keys(db: Database, keys: KeyStore) -> None:
    """Open every key the node uses now, once, or raise :class:`ConfigurationError` saying why.

    A wrong passphrase used to pass unnoticed until a peer's first message: the node said it was ready,
    and every inbox answer was an error, at the hour someone restarted it. Opened here, the keys stay in
    the key store's cache, so the cost (a PBKDF2 per key) is paid once. A node that has no keys yet
    (before `cyberpact init`) has nothing to open and makes them at start, as before.
    """
    from cyberpact.kit.keystore import KEK_PURPOSE, kek_by_id, public_keys

    with db.transaction(read_only=True) as session:
        for row in public_keys(session):
            if row.retired_at is not None:
                continue  # sealed under the same passphrase; the ones in use prove it
            if row.purpose == KEK_PURPOSE:
                kek_by_id(session, keys, row.kid)
            else:
                keys.private(row)


def _startup(db: Database, keys: KeyStore, settings: Settings) -> None:
    from cyberpact.directory import service as directory
    from cyberpact.federation import identity

    unlock_keys(db, keys)
    with db.transaction() as session:
        identity.ensure_card(session, keys, settings, SYSTEM)
        directory.load_seed_if_empty(session)


def _renew_card(db: Database, keys: KeyStore, settings: Settings) -> None:
    from cyberpact.federation import identity

    # Peers refuse a card out of force; a node that runs for longer than a card lives re-issues its own
    # (same keys) in the last week, as at startup.
    with db.transaction() as session:
        identity.ensure_card(session, keys, settings, SYSTEM)


def _anchor(db: Database, keys: KeyStore, settings: Settings) -> None:
    with db.transaction() as session:
        audit.anchor(session, keys, settings.node_name)


def _scheduled_check(db: Database, worker: JobWorker, every: timedelta) -> None:
    # A break found at night is on the auditors' Today page in the morning, not at the next inspection.
    with db.transaction() as session:
        queued = audit.request_check_if_due(session, every)
    if queued:
        worker.wake()


def create_app(settings: Settings | None = None, *, run_background: bool = True) -> FastAPI:
    settings = settings or Settings()
    settings.check_secure()
    db = Database(settings.sqlalchemy_url)
    keys = KeyStore(settings.key_passphrase_value(), settings.key_kdf_iterations)
    # Loaded and checked whole at start: a bad catalog edit stops the node here, with the file and reason.
    catalog = get_catalog(str(settings.catalog_dir) if settings.catalog_dir else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not at_head(db.engine):
            raise RuntimeError("the database is not at the latest migration: run `cyberpact db upgrade`")
        # Here, not at import: the server configures its loggers after the app is built.
        keep_queries_out_of_access_log()
        await run_in_threadpool(_startup, db, keys, settings)
        await _warm_routes(app)
        collector = _tune_collector()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        tasks: list[asyncio.Task[Any]] = []
        worker: WorkerPool | None = None
        job_worker: JobWorker | None = None
        if run_background:
            job_worker = JobWorker(db, settings.jobs_poll_seconds)
            job_worker.start()
            tasks.append(
                asyncio.create_task(_every(settings.audit_anchor_seconds, _anchor, db, keys, settings))
            )
            tasks.append(asyncio.create_task(_every(CARD_RENEWAL_SECONDS, _renew_card, db, keys, settings)))
            if settings.audit_check_hours:
                every = timedelta(hours=settings.audit_check_hours)
                # Looked at hourly (or more often, for a shorter schedule), so a restart delays nothing.
                tick = max(1, min(3600, int(every.total_seconds())))
                tasks.append(asyncio.create_task(_every(tick, _scheduled_check, db, job_worker, every)))
            app.state.job_worker = job_worker
            worker = WorkerPool(db, keys, settings, settings.outbox_workers)
            worker.start()
            app.state.outbox_worker = worker
        try:
            yield
        finally:
            if worker is not None:
                await run_in_threadpool(worker.stop)
            if job_worker is not None:
                await run_in_threadpool(job_worker.stop)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks)
            await run_in_threadpool(_anchor, db, keys, settings)
            db.dispose()
            _restore_collector(collector)
            sys.setswitchinterval(switch_interval)

    app = FastAPI(
        title="cyberpact",
        version=__version__,
        description="A node for cooperation under the UN Convention against Cybercrime.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.keys = keys
    app.state.catalog = catalog
    app.state.on_denied = _record_denied
    install_error_handlers(app)

    from cyberpact.cases.api import router as cases_router
    from cyberpact.directory.api import router as directory_router
    from cyberpact.evidence.api import router as evidence_router
    from cyberpact.federation.api import public as federation_public
    from cyberpact.federation.api import router as federation_router
    from cyberpact.intel.api import router as intel_router
    from cyberpact.intel.taxii import taxii_error
    from cyberpact.web import STATIC_PATH, static_files
    from cyberpact.web import router as web_router
    from cyberpact.web.security import desk_error

    app.include_router(cases_router)
    app.include_router(federation_public)
    app.include_router(federation_router)
    app.include_router(accounts_router)
    app.include_router(audit_router)
    app.include_router(directory_router)
    app.include_router(evidence_router)
    app.include_router(intel_router)
    error_format(app, "/taxii2/", lambda _request, exc: taxii_error(exc))
    app.include_router(web_router)
    error_format(app, "/desk/", desk_error)
    app.mount(STATIC_PATH, static_files(), name="desk-static")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """The process is up; says nothing about its dependencies."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    def readyz() -> dict[str, str] | JSONResponse:
        """The database answers and its schema is at the latest migration."""
        try:
            db.ping()
            ready = at_head(db.engine)
        except Exception as exc:  # any failure to reach the database means "not ready", never a 500
            log.warning("readiness check failed: %s", type(exc).__name__)
            return problem(503, "Not ready", "database unreachable", "not_ready")
        if not ready:
            return problem(503, "Not ready", "database schema is not at the latest migration", "not_ready")
        return {"status": "ready", "database": db.dialect}

    return app


async def _warm_routes(app: FastAPI) -> None:
    """Route one request that matches nothing, so that FastAPI builds every route's matching state now.

    It builds it lazily, at the first request that walks each router: that request (a peer's first message,
    an officer's first page) took 55-57 ms instead of 11-14 (benchmarks/bench_taxii.py, "first request
    after start"). Done before the collector freezes what startup built, so the routes' state is frozen too.
    """
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/.well-known/cyberpact-warm-up",
        "raw_path": b"/.well-known/cyberpact-warm-up",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": None,
        "server": None,
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        """The answer, a 404, has no one to go to."""

    try:
        await app.router(scope, receive, send)
    except Exception as exc:  # an optimisation only: the node starts without it
        log.warning("route warm-up skipped: %s", type(exc).__name__)


def _tune_collector() -> tuple[int, int, int]:
    """Freeze what startup built and collect the young generation less often; returns what to restore.

    Everything alive now (the ORM's registries, the routes, the catalog) lives as long as the process.
    Frozen, the collector no longer walks it at every full collection, which a desk page with a long
    timeline triggers every few requests: without it, one request in six on such a page waited about
    130 ms for the collector (benchmarks/bench_web.py, p99). The young threshold goes from 700 to 10,000
    allocations: a TAXII envelope or an inbox batch builds tens of thousands of short-lived objects, and
    at 700 the collector walked them dozens of times per request and promoted them only to find them
    dead a full collection later (about a tenth of the ingest's CPU; benchmarks/bench_taxii.py).
    """
    gc.collect()
    gc.freeze()
    previous = gc.get_threshold()
    gc.set_threshold(10_000, previous[1], previous[2])
    return previous


def _restore_collector(previous: tuple[int, int, int]) -> None:
    # A process that builds and stops several apps (the test suite) gets its collector back as it was.
    gc.set_threshold(*previous)
    gc.unfreeze()


# How long a thread may hold the interpreter before another that waits gets it (Python's default: 5 ms).
# A node's threads hand work to each other many times per request (the event loop, the request's worker
# thread, the outbox worker and its sending thread), and a thread woken by a peer's answer waited up to
# 5 ms behind one sealing the next batch at each hand-off: the two nodes of benchmarks/bench_federation.py
# then waited on each other for a tenth of the run. At 0.2 ms they moved about 7 % more messages.
SWITCH_INTERVAL = 0.0002


async def _every(seconds: int, fn: Any, *args: Any) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(fn, *args)
        except Exception:  # a failed round must not kill the loop; the next one retries
            log.exception("periodic task %s failed", getattr(fn, "__name__", fn))


async def _record_denied(request: Request, exc: CyberpactError) -> None:
    """Refusals (401, 403, and hidden 404s) roll back the request's own unit of work, so they are recorded
    in a unit of work of their own."""
    actor: Actor = getattr(request.state, "actor", None) or Actor(
        user_id=ANONYMOUS.user_id, username=ANONYMOUS.username, source=client_address(request)
    )
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)

    def write() -> None:
        with request.app.state.db.transaction() as session:
            audit.record_denial(session, actor, exc, path, action=f"http.{request.method.lower()}")

    await run_in_threadpool(write)
