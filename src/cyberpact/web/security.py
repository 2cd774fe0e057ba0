"""The desk's defences: who is signed in, CSRF tokens, security headers, and errors as HTML pages.

* The session cookie carries 256 random bits; the database keeps only their SHA-256 (accounts.mfa). It is
  HttpOnly and SameSite=Lax, and over HTTPS it is Secure with the ``__Host-`` prefix, which a browser
  accepts only from this exact origin, on path ``/``, without a Domain: a sibling host cannot plant one.
* Every POST and PUT carries the session's synchronizer token (a hidden ``csrf`` field, or the
  ``X-CSRF-Token`` header from the upload script), compared in constant time; a cross-site Origin is
  refused before that. The sign-in form, posted before any session exists, uses a signed double-submit
  token: an HMAC, under the node's secret key, of a random value kept in a short-lived cookie.
* Every response of the desk carries a strict Content-Security-Policy with no inline script or style, so
  text that slipped past escaping still could not run.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from cyberpact.accounts import mfa
from cyberpact.accounts.models import User, WebSession
from cyberpact.config import Settings
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import CyberpactError, PermissionDenied
from cyberpact.kit.http import client_address, get_database
from cyberpact.kit.i18n import LANGUAGES, SOURCE_LANGUAGE, Translator, translator
from cyberpact.kit.time import utcnow

PLAIN_COOKIE = "cyberpact_session"
HOST_COOKIE = "__Host-cyberpact_session"
PRE_COOKIE = "cyberpact_signin"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
# The formal document is a self-contained page with its own inline stylesheet; it is only ever shown in a
# sandboxed frame of the desk, so it may style itself but never run anything or leave its frame.
DOCUMENT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
# Case data must not outlive the session in a shared browser's cache or its back button.
NO_STORE = "no-store"
_TOUCH_EVERY = timedelta(minutes=1)


class Redirect(Exception):
    """Answer with a 303 to ``location`` (a path of this site, never a caller-supplied URL)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class CsrfRefused(PermissionDenied):
    code = "csrf"
    title = "Form refused"


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def session_policy(settings: Settings) -> mfa.SessionPolicy:
    return mfa.SessionPolicy(
        idle=timedelta(minutes=settings.web_session_idle_minutes),
        absolute=timedelta(hours=settings.web_session_absolute_hours),
    )


def cookie_name(settings: Settings) -> str:
    return HOST_COOKIE if settings.web_secure_cookies else PLAIN_COOKIE


def set_session_cookie(response: Response, settings: Settings, secret: str) -> None:
    response.set_cookie(
        cookie_name(settings),
        secret,
        httponly=True,
        secure=settings.web_secure_cookies,
        samesite="lax",
        path="/",
        # No Max-Age: a session cookie dies with the browser; the server ends it sooner when idle.
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings), path="/", secure=settings.web_secure_cookies, httponly=True, samesite="lax"
    )


# --- who is signed in --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """The signed-in person, as every page needs them: identity, roles, language, zone and CSRF token."""

    user_id: uuid.UUID
    username: str
    display_name: str
    roles: frozenset[str]
    locale: str
    timezone: str
    session_id: uuid.UUID
    csrf: str
    actor: Actor

    @property
    def t(self) -> Translator:
        return translator(self.locale)

    def has_any(self, *roles: str) -> bool:
        return self.actor.has_any(*roles)


@dataclass(frozen=True)
class HalfSession:
    """A password checked, the second factor not yet: good only for the code and enrolment pages."""

    row_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    locale: str
    csrf: str
    enrolled: bool


def _language(request: Request, user: User) -> str:
    """The language the person chose, else their browser's for as long as they have not chosen."""
    chosen = user.locale
    return chosen if chosen is not None and chosen in LANGUAGES else negotiate_language(request)


def negotiate_language(request: Request) -> str:
    """For pages before sign-in: ``?lang=``, else the browser's Accept-Language, else English."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return SOURCE_LANGUAGE


def _lookup(request: Request) -> tuple[WebSession, User] | None:
    settings = settings_of(request)
    secret = request.cookies.get(cookie_name(settings))
    if not secret or len(secret) > 100:
        return None
    db = get_database(request)
    with db.transaction(read_only=True) as session:
        row = mfa.find_session(session, secret, session_policy(settings))
        if row is None:
            return None
        user = session.get(User, row.user_id)
        if user is None or user.disabled:
            return None
        _ = user.roles  # loaded now, while the session is open
    if utcnow() - row.last_seen_at > _TOUCH_EVERY:
        # At most once a minute: a write per page would serialise every reader on SQLite.
        with db.transaction() as session:
            mfa.touch_session(session, row.id)
    return row, user


def _viewer(request: Request, row: WebSession, user: User) -> Viewer:
    actor = Actor(user_id=user.id, username=user.username, roles=user.roles, source=client_address(request))
    return Viewer(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=user.roles,
        locale=_language(request, user),
        timezone=user.timezone or "UTC",
        session_id=row.id,
        csrf=row.csrf_token,
        actor=actor,
    )


def _sign_in_location(request: Request) -> str:
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    from urllib.parse import quote

    return "/desk/sign-in?next=" + quote(target, safe="")


async def current_viewer(request: Request) -> Viewer:
    found = await run_in_threadpool(_lookup, request)
    if found is None:
        raise Redirect(_sign_in_location(request))
    row, user = found
    if not row.second_factor:
        # The password alone opens nothing but the second-factor pages.
        raise Redirect("/desk/sign-in/code")
    viewer = _viewer(request, row, user)
    request.state.actor = viewer.actor
    request.state.viewer = viewer
    return viewer


async def half_session(request: Request) -> HalfSession:
    found = await run_in_threadpool(_lookup, request)
    if found is None:
        raise Redirect("/desk/sign-in")
    row, user = found
    if row.second_factor:
        raise Redirect("/desk")

    def enrolled() -> bool:
        with get_database(request).transaction(read_only=True) as session:
            return mfa.enrolled(session, session.get_one(User, user.id))

    request.state.actor = Actor(user_id=user.id, username=user.username, source=client_address(request))
    return HalfSession(
        row.id,
        user.id,
        user.username,
        _language(request, user),
        row.csrf_token,
        await run_in_threadpool(enrolled),
    )


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
CurrentHalf = Annotated[HalfSession, Depends(half_session)]


def require(viewer: Viewer, *roles: str) -> None:
    """Refuse a page or an action the viewer's roles do not open (403, recorded by the denial hook)."""
    if not viewer.has_any(*roles):
        raise PermissionDenied(f"This needs one of the roles: {', '.join(roles)}")


# --- CSRF ------------------------------------------------------------------------------------------------


def _same_origin(request: Request) -> bool:
    """A browser names the page a form came from in Origin; when it does, it must be this site."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    public = settings_of(request).base_url.rstrip("/")
    # Behind a proxy that ends TLS the request arrives as http://; the configured public URL still counts.
    return any(hmac.compare_digest(origin.rstrip("/").encode(), o.encode()) for o in (own, public))


def check_token(expected: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRefused("The form was refused: its security token is missing or wrong. Reload the page.")


@dataclass(frozen=True)
class Posted:
    """A form that passed the CSRF check; values are strings (files are refused)."""

    form: FormData

    def get(self, name: str, default: str = "") -> str:
        value = self.form.get(name)
        return value if isinstance(value, str) else default

    def all(self, name: str) -> list[str]:
        return [v for v in self.form.getlist(name) if isinstance(v, str)]

    def names(self) -> set[str]:
        return set(self.form.keys())


async def _read_form(request: Request) -> FormData:
    try:
        return await request.form(max_files=0, max_fields=400, max_part_size=256 * 1024)
    except Exception as exc:  # multipart's own errors: a malformed or oversized body is the client's fault
        from cyberpact.kit.errors import MalformedInput

        raise MalformedInput("The form could not be read") from exc


async def posted(request: Request, viewer: CurrentViewer) -> Posted:
    """The request's form, after the Origin and synchronizer-token checks."""
    if not _same_origin(request):
        raise CsrfRefused("The form was refused: it was sent from another site.")
    form = await _read_form(request)
    token = form.get(CSRF_FIELD)
    check_token(viewer.csrf, token if isinstance(token, str) else None)
    return Posted(form)


async def posted_half(request: Request, half: CurrentHalf) -> Posted:
    if not _same_origin(request):
        raise CsrfRefused("The form was refused: it was sent from another site.")
    form = await _read_form(request)
    token = form.get(CSRF_FIELD)
    check_token(half.csrf, token if isinstance(token, str) else None)
    return Posted(form)


def header_token(request: Request, viewer: CurrentViewer) -> Viewer:
    """For the upload script's PUTs, whose body is the file: the token travels in a header."""
    if not _same_origin(request):
        raise CsrfRefused("The request was refused: it was sent from another site.")
    check_token(viewer.csrf, request.headers.get(CSRF_HEADER))
    return viewer


CheckedForm = Annotated[Posted, Depends(posted)]
CheckedHalfForm = Annotated[Posted, Depends(posted_half)]
HeaderChecked = Annotated[Viewer, Depends(header_token)]


def signin_token(settings: Settings, nonce: str) -> str:
    key = hashlib.sha256(
        b"cyberpact/desk-signin/v1" + settings.secret_key.get_secret_value().encode()
    ).digest()
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()


def new_signin_nonce() -> str:
    return secrets.token_urlsafe(24)


async def posted_signin(request: Request) -> Posted:
    """The sign-in form: a signed double-submit token, since no session exists yet (login CSRF)."""
    if not _same_origin(request):
        raise CsrfRefused("The form was refused: it was sent from another site.")
    form = await _read_form(request)
    nonce = request.cookies.get(PRE_COOKIE)
    token = form.get(CSRF_FIELD)
    if not nonce:
        raise CsrfRefused("The form was refused: its security token is missing or wrong. Reload the page.")
    check_token(signin_token(settings_of(request), nonce), token if isinstance(token, str) else None)
    return Posted(form)


SignInForm = Annotated[Posted, Depends(posted_signin)]


# --- responses -----------------------------------------------------------------------------------------


def secure(response: Response, csp: str = CSP) -> Response:
    response.headers.setdefault("Content-Security-Policy", csp)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", NO_STORE)
    return response


class DeskRoute(APIRoute):
    """Every desk route: security headers on every answer, redirects for signed-out visitors, and expected
    failures as HTML pages (not problem details), refusals recorded by the app's denial hook."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except Redirect as redirect:
                response = RedirectResponse(redirect.location, status_code=303)
            except CyberpactError as exc:
                from cyberpact.web.render import error_page

                response = error_page(request, exc.status, exc.title, exc.public_detail, exc.code)
                hook = getattr(request.app.state, "on_denied", None)
                if (exc.status in (401, 403) or exc.denied is not None) and hook is not None:
                    # Before the answer, as the API records them: a refusal written after it could be
                    # lost to a stop in between, and was missing from an audit page read straight after.
                    await hook(request, exc)
            except RequestValidationError:
                from cyberpact.web.render import error_page

                response = error_page(
                    request, 422, "Invalid input", "A value in the request is not valid.", ""
                )
            return secure(response)

        return handler


def desk_error(request: Request, exc: CyberpactError) -> Response:
    """A desk address no page answers (a mistyped or stale link, a form posted to a page that only shows):
    the desk's own error page in the person's language, as a browser reads it, not problem details."""
    from cyberpact.web.render import error_page

    found = _lookup(request)
    if found is not None and found[0].second_factor:
        request.state.viewer = _viewer(request, *found)
    return secure(error_page(request, exc.status, exc.title, exc.public_detail, exc.code))


class DeskStatic(StaticFiles):
    """The desk's CSS and script, with the same headers as its pages (nosniff matters most here)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
        return response
