"""HTTP plumbing shared by every router: the unit-of-work dependencies and RFC 9457 problem details."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Mount

from cyberpact.kit.db import Database
from cyberpact.kit.errors import CyberpactError, MalformedInput, MethodNotAllowed, NotFound, PayloadTooLarge

log = logging.getLogger("cyberpact.http")
PROBLEM = "application/problem+json"
# How a part of the site answers a request no route takes there (see error_format).
ErrorFormat = Callable[[Request, CyberpactError], Response]


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _write_session(request: Request) -> Iterator[Session]:
    with get_database(request).transaction() as session:
        yield session


def _read_session(request: Request) -> Iterator[Session]:
    with get_database(request).transaction(read_only=True) as session:
        yield session


def wake_jobs(request: Request) -> None:
    """Have this process's job worker look for due jobs now. Call it once the job is committed (after the
    request's unit of work, e.g. as a background task of the response): woken earlier, the worker finds
    nothing and sleeps a poll interval."""
    worker = getattr(request.app.state, "job_worker", None)
    if worker is not None:
        worker.wake()


# scope="function": the unit of work commits when the endpoint returns, *before* the response is sent,
# so a client never sees success for a change that then fails to commit.
WriteSession = Annotated[Session, Depends(_write_session, scope="function")]
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (declared or actual), so a
    peer or client cannot make the node buffer more than it allows."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body exceeds {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"the body exceeds {limit} bytes")
    except ClientDisconnect:
        # A sender killed or cut off mid-body (it resumes later): an ordinary event, answered like any
        # bad request, not an unhandled exception with a traceback in the log.
        raise MalformedInput(f"the client went away after {len(body)} bytes of the body") from None
    return bytes(body)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def problem(
    status: int, title: str, detail: str, code: str, *, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://cyberpact.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="cyberpact"'
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CyberpactError)
    async def _cyberpact(request: Request, exc: CyberpactError) -> JSONResponse:
        if exc.status >= 500:
            # The operator's copy, in full; the answer below may say less.
            log.error("server-side error %s on %s: %s", exc.code, request.url.path, exc.detail)
        hook = getattr(request.app.state, "on_denied", None)
        if (exc.status in (401, 403) or exc.denied is not None) and hook is not None:
            await hook(request, exc)
        if exc.public_detail != exc.detail:
            # Only the public detail: the problems and extras explain the hidden one.
            return problem(exc.status, exc.title, exc.public_detail, exc.code, instance=request.url.path)
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            exc.code,
            instance=request.url.path,
            errors=[p.as_dict() for p in exc.problems] or None,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        malformed = False
        for err in exc.errors():
            kind = str(err.get("type", "invalid"))
            if kind == "json_invalid":
                malformed = True
            errors.append(
                {
                    "field": _loc_to_field(err.get("loc", ())),
                    "code": kind,
                    "message": str(err.get("msg", "invalid")),
                }
            )
        if malformed:
            return problem(
                400,
                "Malformed request",
                "The body is not valid JSON",
                "malformed",
                instance=request.url.path,
                errors=errors,
            )
        # The detail says what the first error says, in the same words ("password: Field required"), so
        # that a client showing only the detail does not contradict the field's own message.
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return problem(
            422,
            "Invalid input",
            f"{first['field']}: {first['message']}{more}",
            "invalid_input",
            instance=request.url.path,
            errors=errors,
        )

    app.state.error_formats = {}

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # No route answered (an unknown path, a method a path does not take): a part of the API that
        # speaks its own error format (TAXII) still answers in it.
        error = {404: NotFound, 405: MethodNotAllowed}.get(exc.status_code)
        formats: dict[str, ErrorFormat] = app.state.error_formats
        path = request.url.path
        render = next(
            (fn for prefix, fn in formats.items() if path.startswith(prefix) or path == prefix.rstrip("/")),
            None,
        )
        response: Response
        if error is not None and render is not None:
            # In a worker thread: a format may read the database (the desk looks up who is asking).
            response = await run_in_threadpool(render, request, error(str(exc.detail)))
        else:
            codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden"}
            response = problem(
                exc.status_code,
                str(exc.detail),
                str(exc.detail),
                codes.get(exc.status_code, "http"),
                instance=request.url.path,
            )
        response.headers.update(exc.headers or {})
        if exc.status_code == 405 and (allowed := _allowed(request)):
            response.headers["Allow"] = allowed
        return response


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed(request: Request) -> str:
    """Every method some route takes on this path (RFC 9110, 15.5.6). Starlette names only those of the
    first route whose path matches, which leaves out POST where GET and POST are two routes of one path.
    Found by asking each route whether it would take the path with each method: FastAPI wraps included
    routers in route objects of its own, and ``matches`` is the interface they all share."""
    scope = request.scope
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
            if not isinstance(route, Mount)  # a mount takes its whole prefix, whatever the method
        )
    ]
    return ", ".join(allowed)


def error_format(app: FastAPI, prefix: str, render: ErrorFormat) -> None:
    """Answer requests under ``prefix`` that no route takes in ``render``'s format, not the problem one."""
    app.state.error_formats[prefix] = render


class _PathOnly(logging.Filter):
    """Access-log lines keep a request's method, path and status but not its query: queries carry what
    people type (a withdrawal's reason, a search for a name), and a node's logs leave its safeguards."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access record: (client, method, path with query, HTTP version, status).
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (args[0], args[1], args[2].partition("?")[0] + "?…", args[3], args[4])
        return True


def keep_queries_out_of_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _PathOnly) for f in access.filters):
        access.addFilter(_PathOnly())
