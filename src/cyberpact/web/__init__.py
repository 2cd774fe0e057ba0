"""The web desk: server-rendered pages for the people who run a node, on the same services as the API.

``router`` carries every page; ``static_files()`` serves the one stylesheet and the upload script. Both
are mounted by ``create_app``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI

from cyberpact.web import admin, auth, charts, desk, evidence, intel, requests, wizard
from cyberpact.web.render import STATIC
from cyberpact.web.security import DeskStatic

STATIC_PATH = "/desk/static"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Nothing of the desk is loaded here: each language's catalog and CLDR data (about 2 MB each, 12 MB
    # for the seven) and each template load on the first page that needs them, tens of milliseconds once
    # per process, so that a node whose desk is used in one language, or not at all, does not carry them.
    #
    # Everything alive now (the ORM's registries, the routes, the catalog) lives as long as the process.
    # Freezing it keeps the collector from walking it again at every full collection, which a page with
    # a long timeline triggers every few requests: without this, one request in six on such a page waits
    # about 130 ms for the collector (benchmarks/bench_web.py, p99).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        # Hand it all back at shutdown, so a process that builds and stops several apps (the test suite)
        # leaks nothing.
        gc.unfreeze()


router = APIRouter(lifespan=lifespan)
for _module in (auth, desk, requests, wizard, evidence, admin, intel, charts):
    router.include_router(_module.router)


def static_files() -> DeskStatic:
    return DeskStatic(directory=STATIC)
