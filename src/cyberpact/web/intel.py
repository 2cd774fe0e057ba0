"""Intel on the desk: the collections a person may read, their objects with TLP badges, and the
observables that several States reported (correlations). Reads go through the intel service's access
rules and the TAXII store's pager, as the TAXII endpoints do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cyberpact.intel import correlate, query, service
from cyberpact.intel.models import IntelObject
from cyberpact.kit.errors import NotFound
from cyberpact.kit.http import get_database
from cyberpact.web.render import page
from cyberpact.web.security import CurrentViewer, DeskRoute

router = APIRouter(route_class=DeskRoute, include_in_schema=False)
PAGE = 100
_OBJ = IntelObject.__table__.c


@router.get("/desk/intel")
def collections(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    with get_database(request).transaction(read_only=True) as session:
        rows = service.visible_collections(session, viewer.actor)
    return page(request, viewer, "intel.html", {"collections": rows})


@dataclass(frozen=True)
class ObjectLine:
    stix_id: str
    type: str
    name: str
    tlp: str | None
    source_peer: str | None
    added: datetime
    detail: str = ""  # what an analyst acts on: an indicator's pattern, an observable's value


# A note by its abstract, an opinion by its verdict, a sighting by what was sighted; the id only as a last
# resort. The detail is what to read next: a pattern or value, a note's text, the opinion's reasons, when a
# sighting was last seen.
_NAMING = ("name", "abstract", "value", "pattern", "path", "hashes", "opinion", "sighting_of_ref", "id")
_DETAIL = ("pattern", "value", "content", "explanation", "last_seen")


def _line(raw: str) -> tuple[str, str]:
    """What a person recognises an object by (``_NAMING``, the first it has) and what to read next
    (``_DETAIL``, the first that is not the name itself)."""
    try:
        obj: dict[str, Any] = json.loads(raw)
    except ValueError:
        return "", ""
    first = next((obj[k] for k in _NAMING if obj.get(k)), "")
    name = first if isinstance(first, str) else json.dumps(first, ensure_ascii=False)
    details = [obj[k] for k in _DETAIL if isinstance(obj.get(k), str) and obj[k] and obj[k] != name]
    detail = details[0] if details else ""
    return name[:300], detail[:1000]


@router.get("/desk/intel/correlations")
def correlations(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    with get_database(request).transaction() as session:
        found, _ = correlate.correlations(
            session, readable=service.readable_collection_ids(session, viewer.actor), limit=PAGE
        )
        service.record_read(session, viewer.actor, None, "desk correlations", len(found))
    return page(request, viewer, "intel_correlations.html", {"correlations": found})


@router.get("/desk/intel/{ref}")
def collection(request: Request, ref: str, viewer: CurrentViewer) -> HTMLResponse:
    token = request.query_params.get("next") or None
    with get_database(request).transaction() as session:
        row = service.get_collection(session, ref[:120])
        if not service.access(session, viewer.actor, row.id).can_read:
            raise NotFound(f"No collection {ref[:120]}").denying(
                "intel.objects.read", "intel_collection", row.id
            )
        pager = query.Pager(request.app.state.settings.secret_key.get_secret_value())
        result = query.page(
            session,
            pager,
            row.id,
            "desk",
            query.Filters(),
            limit=PAGE,
            next_token=token,
            columns=[_OBJ.stix_id, _OBJ.stix_type, _OBJ.tlp, _OBJ.source_peer, _OBJ.raw],
        )
        objects = []
        for r in result.rows:
            name, detail = _line(r.raw)
            objects.append(
                ObjectLine(r.stix_id, r.stix_type, name, r.tlp, r.source_peer, r.date_added, detail)
            )
        service.record_read(session, viewer.actor, row.id, "desk", len(objects), page=token is not None)
    return page(
        request, viewer, "intel_collection.html", {"collection": row, "objects": objects, "next": result.next}
    )
