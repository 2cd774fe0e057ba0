"""The list of cases: every case the officer may see, newest first, a page at a time, found by its reference
or title.

It is the cases service's own listing (``list_cases``: who may see which case, the search, the audit record
of the reading) paged by the same cursor as the API's, so a case hidden from the officer is neither listed
nor found, and a page never skips or repeats a case opened meanwhile.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import QueryParams

from cyberpact.cases import service as cases
from cyberpact.kit.errors import InvalidInput
from cyberpact.kit.http import get_database
from cyberpact.kit.i18n import N_
from cyberpact.kit.pagination import after_time_cursor, next_time_cursor
from cyberpact.web.render import CASE_ROLES, page
from cyberpact.web.security import CurrentViewer, DeskRoute, require

router = APIRouter(route_class=DeskRoute, include_in_schema=False)
PAGE = 50
# The name each query parameter has on the form, for the problems shown beside it.
FILTER_LABELS = {"q": N_("Reference or title"), "cursor": N_("Page")}


@dataclass(frozen=True)
class CaseRow:
    id: uuid.UUID
    reference: str
    title: str
    created_at: datetime
    requests: int


def _query(search: str, **changes: str) -> str:
    kept = {"q": search} if search else {}
    return str(QueryParams(kept | changes))


@router.get("/desk/cases")
def list_cases(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    require(viewer, *CASE_ROLES)
    params = request.query_params
    search = params.get("q", "").strip()
    cursor = params.get("cursor") or None
    context: dict[str, Any] = {"search": search, "labels": FILTER_LABELS, "max_search": cases.SEARCH_MAX}
    try:
        after = after_time_cursor(cursor, cases.CASES_CURSOR)
        with get_database(request).transaction() as session:
            found = cases.list_cases(session, viewer.actor, PAGE + 1, after, search=search, view="desk.cases")
            shown = found[:PAGE]
            counts = cases.request_counts(session, viewer.actor, [c.id for c in shown])
    except InvalidInput as exc:
        # Beside the search, each at its field, as the audit page does; nothing was listed or recorded.
        return page(
            request,
            viewer,
            "cases.html",
            {**context, "rows": [], "problems": exc.problems},
            status=exc.status,
        )
    rows = [CaseRow(c.id, c.reference, c.title, c.created_at, counts.get(c.id, 0)) for c in shown]
    nxt = next_time_cursor(cases.CASES_CURSOR, found, PAGE)
    context |= {
        "rows": rows,
        "problems": [],
        "older": f"?{_query(search, cursor=nxt)}" if nxt else None,
        "newest": f"?{_query(search)}" if cursor else None,
    }
    return page(request, viewer, "cases.html", context)
