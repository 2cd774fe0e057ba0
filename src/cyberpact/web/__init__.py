"""The web desk: server-rendered pages for the people who run a node, on the same services as the API.

``router`` carries every page; ``static_files()`` serves the one stylesheet and the upload script. Both
are mounted by ``create_app``.
"""

from __future__ import annotations

from fastapi import APIRouter

from cyberpact.web import (
    admin,
    audit,
    auth,
    cases,
    charts,
    desk,
    evidence,
    intel,
    register,
    requests,
    wizard,
)
from cyberpact.web.render import STATIC
from cyberpact.web.security import DeskStatic

STATIC_PATH = "/desk/static"


# Nothing of the desk is loaded at start: each language's catalog and CLDR data (about 2 MB each, 12 MB for
# the seven) and each template load on the first page that needs them, tens of milliseconds once per
# process, so that a node whose desk is used in one language, or not at all, does not carry them.
router = APIRouter()
for _module in (auth, desk, cases, requests, wizard, register, evidence, admin, audit, intel, charts):
    router.include_router(_module.router)


def static_files() -> DeskStatic:
    return DeskStatic(directory=STATIC)
