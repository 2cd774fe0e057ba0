"""The web desk: server-rendered pages for the people who run a node, on the same services as the API.

``router`` carries every page; ``static_files()`` serves the one stylesheet and the upload script. Both
are mounted by ``create_app``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool

from cyberpact.kit.i18n import LANGUAGES, translator
from cyberpact.web import admin, auth, charts, desk, evidence, intel, requests, wizard
from cyberpact.web.render import STATIC, TEMPLATES, clock, environment
from cyberpact.web.security import DeskStatic

STATIC_PATH = "/desk/static"


def warm_up() -> None:
    """Load now what every page would otherwise load on first use: each language's catalog and CLDR
    data, and every template compiled."""
    for lang in LANGUAGES:
        t = translator(lang)
        t.country_name("VN"), t.language_name("en"), t.format_number(1)
        clock(lang, "UTC")
    env = environment()
    for path in TEMPLATES.glob("*.html"):
        env.get_template(path.name)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(warm_up)
    # Everything alive now (catalog, CLDR data, compiled templates, the ORM's registries) lives as long
    # as the process. Freezing it keeps the collector from walking it again at every full collection,
    # which a page with a long timeline triggers every few requests: without this, one request in six
    # on such a page waits about 130 ms for the collector (benchmarks/bench_web.py, p99).
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
