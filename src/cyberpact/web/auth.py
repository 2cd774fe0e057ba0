"""Signing in (password, then a TOTP code or a recovery code; enrolment first for whoever has none),
signing out here or everywhere, and each person's language and time zone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from cyberpact.accounts import mfa
from cyberpact.accounts import service as accounts
from cyberpact.accounts.models import User, WebSession
from cyberpact.audit import service as audit
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import (
    AuthenticationRequired,
    CyberpactError,
    InvalidInput,
    Problem,
    TooManyAttempts,
)
from cyberpact.kit.http import client_address, get_database
from cyberpact.kit.i18n import LANGUAGES, N_, Phrase, translator
from cyberpact.kit.time import check_timezone
from cyberpact.web.render import page
from cyberpact.web.security import (
    PRE_COOKIE,
    CheckedForm,
    CheckedHalfForm,
    CurrentHalf,
    CurrentViewer,
    DeskRoute,
    HalfSession,
    Redirect,
    SignInForm,
    Viewer,
    clear_session_cookie,
    new_signin_nonce,
    session_policy,
    set_session_cookie,
    settings_of,
    signin_token,
)

router = APIRouter(route_class=DeskRoute, include_in_schema=False)

WRONG_PASSWORD = N_("Wrong username or password.")
WRONG_CODE = N_("That code did not match. Use the current code from your app, or an unused recovery code.")
QR_TITLE = N_("QR code to scan with your authenticator app")
LOCKED = N_("Too many failed attempts. Wait a few minutes, then try again.")


def safe_next(value: str | None) -> str:
    """Only a path of the desk itself: an open redirect after sign-in would lend our name to phishing."""
    if value and value.startswith("/desk") and not value.startswith("//") and "\\" not in value:
        return value
    return "/desk"


# --- password ------------------------------------------------------------------------------------------


def _sign_in_page(
    request: Request, error: str | None = None, status: int = 200, username: str = ""
) -> Response:
    settings = settings_of(request)
    nonce = new_signin_nonce()
    response = page(
        request,
        None,
        "sign_in.html",
        {
            "signin_csrf": signin_token(settings, nonce),
            "error": error,
            "username": username,
            "next": safe_next(request.query_params.get("next")),
        },
        status=status,
    )
    response.set_cookie(
        PRE_COOKIE,
        nonce,
        max_age=3600,
        httponly=True,
        secure=settings.web_secure_cookies,
        samesite="strict",
        path="/desk",
    )
    return response


@router.get("/desk/sign-in")
def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


@router.post("/desk/sign-in")
async def sign_in(request: Request, form: SignInForm) -> Response:
    settings = settings_of(request)
    username, password = form.get("username").strip()[:64], form.get("password")[:1000]
    target = safe_next(form.get("next"))
    policy = accounts.LoginPolicy(
        settings.login_max_failures, timedelta(seconds=settings.login_lockout_seconds)
    )
    source = client_address(request)

    def attempt() -> tuple[str | None, int, bool]:
        with get_database(request).transaction() as session:
            user, failures = accounts.authenticate(session, username, password, source, policy)
            if user is None:
                return None, failures, False
            _, secret = mfa.open_session(
                session, user, source, request.headers.get("user-agent"), session_policy(settings)
            )
            return secret, 0, mfa.enrolled(session, user)

    try:
        secret, failures, enrolled = await run_in_threadpool(attempt)
    except TooManyAttempts:
        return _sign_in_page(request, LOCKED, 429, username)
    if secret is None:
        await asyncio.sleep(policy.delay(max(failures, 1)))
        return _sign_in_page(request, WRONG_PASSWORD, 401, username)
    step = "/desk/sign-in/code" if enrolled else "/desk/enrol"
    response = RedirectResponse(f"{step}?next={quote(target, safe='')}", status_code=303)
    set_session_cookie(response, settings, secret)
    response.delete_cookie(PRE_COOKIE, path="/desk")
    return response


# --- the second factor ---------------------------------------------------------------------------------


def _complete(request: Request, session: Session, half: HalfSession, user: User) -> str:
    """Trade the half session for a full one under a new secret, so that a cookie planted or seen before
    the second factor (session fixation) is worth nothing after it."""
    old = session.get_one(WebSession, half.row_id)
    mfa.close_session(session, old)
    row, secret = mfa.open_session(
        session,
        user,
        client_address(request),
        request.headers.get("user-agent"),
        session_policy(settings_of(request)),
    )
    row.second_factor = True
    session.flush()
    return secret


@router.get("/desk/sign-in/code")
def code_form(request: Request, half: CurrentHalf) -> Response:
    if not half.enrolled:
        raise Redirect("/desk/enrol")
    return page(
        request,
        None,
        "code.html",
        {"half": half, "next": safe_next(request.query_params.get("next"))},
        lang=half.locale,
    )


@router.post("/desk/sign-in/code")
def code(request: Request, half: CurrentHalf, form: CheckedHalfForm) -> Response:
    settings = settings_of(request)
    target = safe_next(form.get("next"))
    window = timedelta(seconds=settings.login_lockout_seconds)
    db = get_database(request)
    secret: str | None = None
    error: str | None = None
    status = 200
    with db.transaction() as session:
        user = session.get_one(User, half.user_id)
        if mfa.recent_failures(session, user, window) >= settings.login_max_failures:
            mfa.close_session(session, session.get_one(WebSession, half.row_id))
            error, status = LOCKED, 429
        else:
            try:
                mfa.verify_second_factor(
                    session, request.app.state.keys, user, form.get("code")[:40], client_address(request)
                )
                secret = _complete(request, session, half, user)
            except AuthenticationRequired:
                # Kept (not rolled back): the denied attempt is the record the throttle counts.
                error, status = WRONG_CODE, 401
    if secret is None:
        return page(
            request,
            None,
            "code.html",
            {"half": half, "next": target, "error": error},
            status=status,
            lang=half.locale,
        )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, settings, secret)
    return response


@router.get("/desk/enrol")
def enrol_form(request: Request, half: CurrentHalf) -> Response:
    if half.enrolled:
        raise Redirect("/desk/sign-in/code")
    settings = settings_of(request)
    with get_database(request).transaction() as session:
        user = session.get_one(User, half.user_id)
        enrolment = mfa.begin_enrolment(session, request.app.state.keys, user, settings.node_name)
    return _enrol_page(request, half, enrolment, safe_next(request.query_params.get("next")))


def _enrol_page(
    request: Request,
    half: HalfSession,
    enrolment: mfa.Enrolment | None,
    target: str,
    error: str | None = None,
    status: int = 200,
) -> Response:
    svg: Markup | None = None
    secret = ""
    if enrolment is not None:
        # segno writes an English <title>; the picture's accessible name is in the reader's language.
        title = escape(translator(half.locale).gettext(QR_TITLE))
        svg = Markup(  # noqa: S704 - segno's own SVG, with our escaped title
            enrolment.qr_svg.replace("<title>TOTP enrolment code</title>", f"<title>{title}</title>", 1)
        )
        secret = " ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4))
    return page(
        request,
        None,
        "enrol.html",
        {"half": half, "qr": svg, "secret": secret, "next": target, "error": error},
        status=status,
        lang=half.locale,
    )


@router.post("/desk/enrol")
def enrol(request: Request, half: CurrentHalf, form: CheckedHalfForm) -> Response:
    settings = settings_of(request)
    target = safe_next(form.get("next"))
    keys = request.app.state.keys
    actor = Actor(user_id=half.user_id, username=half.username, source=client_address(request))
    db = get_database(request)
    try:
        with db.transaction() as session:
            user = session.get_one(User, half.user_id)
            codes = mfa.confirm_enrolment(session, keys, actor, user, form.get("code")[:40])
            secret = _complete(request, session, half, user)
    except InvalidInput:
        # The secret stays as enrolled in the app: a mistyped code must not force a new scan.
        return _enrol_page(request, half, None, target, WRONG_CODE, 422)
    # Shown once, in the answer to the post that made them: a reload cannot show them again.
    response = page(request, None, "recovery_codes.html", {"codes": codes, "next": target}, lang=half.locale)
    set_session_cookie(response, settings, secret)
    return response


# --- signing out, preferences ---------------------------------------------------------------------------


@router.post("/desk/sign-out")
def sign_out(request: Request, viewer: CurrentViewer, _: CheckedForm) -> Response:
    with get_database(request).transaction() as session:
        mfa.close_session(session, session.get_one(WebSession, viewer.session_id))
        audit.record(session, viewer.actor, "accounts.session.close", "user", viewer.user_id)
    response = RedirectResponse("/desk/sign-in", status_code=303)
    clear_session_cookie(response, settings_of(request))
    return response


@router.post("/desk/sign-out-everywhere")
def sign_out_everywhere(request: Request, viewer: CurrentViewer, _: CheckedForm) -> Response:
    with get_database(request).transaction() as session:
        mfa.revoke_sessions(session, viewer.actor, session.get_one(User, viewer.user_id))
    response = RedirectResponse("/desk/sign-in", status_code=303)
    clear_session_cookie(response, settings_of(request))
    return response


def _set_preferences(request: Request, viewer: Viewer, values: dict[str, Any]) -> None:
    with get_database(request).transaction() as session:
        user = session.get_one(User, viewer.user_id)
        before = {k: getattr(user, k) for k in values}
        for key, value in values.items():
            setattr(user, key, value)
        session.flush()
        audit.record(
            session,
            viewer.actor,
            "accounts.user.preferences",
            "user",
            user.id,
            detail={"before": before, "after": values},
        )


def _language_value(form_value: str) -> str:
    if form_value not in LANGUAGES:
        raise InvalidInput(Phrase("Unknown language"), [Problem("lang", f"one of {', '.join(LANGUAGES)}")])
    return form_value


@router.post("/desk/language")
def language(request: Request, viewer: CurrentViewer, form: CheckedForm) -> Response:
    _set_preferences(request, viewer, {"locale": _language_value(form.get("lang"))})
    return RedirectResponse(safe_next(form.get("back")), status_code=303)


@router.get("/desk/preferences")
def preferences(request: Request, viewer: CurrentViewer) -> HTMLResponse:
    return page(request, viewer, "preferences.html", {"saved": request.query_params.get("saved") == "1"})


@router.post("/desk/preferences")
def save_preferences(request: Request, viewer: CurrentViewer, form: CheckedForm) -> Response:
    lang = _language_value(form.get("lang"))
    zone = form.get("timezone").strip()
    try:
        check_timezone(zone, "timezone")
    except CyberpactError as exc:
        return page(
            request, viewer, "preferences.html", {"problems": exc.problems, "zone_value": zone}, status=422
        )
    _set_preferences(request, viewer, {"locale": lang, "timezone": zone})
    return RedirectResponse("/desk/preferences?saved=1", status_code=303)
