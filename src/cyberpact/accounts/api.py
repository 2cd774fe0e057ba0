"""Authentication dependencies every router uses, and the account endpoints."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from cyberpact.accounts import mfa, service
from cyberpact.accounts.models import User
from cyberpact.accounts.schemas import (
    LoginRequest,
    PasswordSet,
    RolesUpdate,
    TokenCreate,
    TokenIssued,
    TokenOut,
    UserCreate,
    UserOut,
)
from cyberpact.config import Settings
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import AuthenticationRequired, PermissionDenied, TooManyAttempts
from cyberpact.kit.http import ReadSession, WriteSession, client_address, get_database

_bearer = HTTPBearer(auto_error=False, description="a personal API token (`cpt_...`)")


def current_actor(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationRequired("Missing bearer token")
    db = get_database(request)
    with db.transaction(read_only=True) as session:
        actor, stale = service.resolve_token(session, credentials.credentials, client_address(request))
    if stale and actor.token_id is not None:
        with db.transaction() as session:
            service.touch_token(session, actor.token_id)
    request.state.actor = actor
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


def require_roles(*roles: str) -> Callable[[Actor], Actor]:
    """A dependency admitting only actors holding at least one of ``roles``."""

    def check(actor: CurrentActor) -> Actor:
        if not actor.has_any(*roles):
            raise PermissionDenied(f"This needs one of the roles: {', '.join(roles)}")
        return actor

    return check


AdminActor = Annotated[Actor, Depends(require_roles("admin"))]

router = APIRouter(prefix="/api/v1", tags=["accounts"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        roles=sorted(user.roles),
        disabled=user.disabled,
        timezone=user.timezone,
        created_at=user.created_at,
    )


LOCKED = "Too many wrong codes: wait before trying again"


def _second_factor(
    session: Session, request: Request, user: User, code: str | None, source: str | None, window: timedelta
) -> str | None:
    """Why the second factor refuses this login, or None when it accepts."""
    settings = _settings(request)
    if mfa.recent_failures(session, user, window) >= settings.login_max_failures:
        return LOCKED
    if not code:
        return "This account has a second factor: send its current code (or a recovery code) as `code`"
    try:
        mfa.verify_second_factor(session, request.app.state.keys, user, code, source)
    except AuthenticationRequired:
        return "Wrong code"
    return None


@router.post("/auth/token", status_code=status.HTTP_201_CREATED, response_model=TokenIssued)
async def login(body: LoginRequest, request: Request) -> TokenIssued:
    """Exchange a username and password for a short-lived API token."""
    settings = _settings(request)
    policy = service.LoginPolicy(
        settings.login_max_failures, timedelta(seconds=settings.login_lockout_seconds)
    )
    source = client_address(request)

    def attempt() -> tuple[TokenIssued | None, int, str | None]:
        with get_database(request).transaction() as session:
            user, failures = service.authenticate(session, body.username, body.password, source, policy)
            if user is None:
                return None, failures, None
            if mfa.enrolled(session, user):
                # The desk asks for the second factor after the password; a token is the same access, so
                # the API asks for it too. A refusal commits: the denied code is what the throttle counts.
                refusal = _second_factor(session, request, user, body.code, source, policy.lockout)
                if refusal is not None:
                    return None, 0, refusal
            actor = Actor(user_id=user.id, username=user.username, roles=user.roles, source=source)
            token, secret = service.issue_token(
                session, actor, user, body.token_name, timedelta(hours=body.hours)
            )
            return TokenIssued(token=secret, **TokenOut.model_validate(token).model_dump()), 0, None

    issued, failures, refusal = await run_in_threadpool(attempt)
    if refusal == LOCKED:
        raise TooManyAttempts(refusal, extra={"retry_after": int(policy.lockout.total_seconds())})
    if refusal is not None:
        await asyncio.sleep(policy.delay(1))
        raise AuthenticationRequired(refusal)
    if issued is None:
        # Slow the next guess without holding a worker thread.
        await asyncio.sleep(policy.delay(max(failures, 1)))
        raise AuthenticationRequired("Wrong username or password")
    return issued


@router.get("/me", response_model=UserOut)
def me(actor: CurrentActor, session: ReadSession) -> UserOut:
    assert actor.user_id is not None
    return _user_out(service.get_user(session, actor.user_id))


@router.get("/users", response_model=list[UserOut])
def list_users(_: AdminActor, session: ReadSession) -> list[UserOut]:
    return [_user_out(u) for u in service.list_users(session)]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_user(body: UserCreate, actor: AdminActor, session: WriteSession) -> UserOut:
    user = service.create_user(
        session,
        actor,
        username=body.username,
        password=body.password,
        display_name=body.display_name,
        email=body.email,
        roles=body.roles,
        timezone=body.timezone,
    )
    return _user_out(user)


@router.put("/users/{ref}/roles", response_model=UserOut)
def set_roles(ref: str, body: RolesUpdate, actor: AdminActor, session: WriteSession) -> UserOut:
    user = service.set_roles(session, actor, service.get_user(session, ref), body.roles)
    return _user_out(user)


@router.post("/users/{ref}/disable", response_model=UserOut)
def disable_user(ref: str, actor: AdminActor, session: WriteSession) -> UserOut:
    return _user_out(service.set_disabled(session, actor, service.get_user(session, ref), True))


@router.post("/users/{ref}/enable", response_model=UserOut)
def enable_user(ref: str, actor: AdminActor, session: WriteSession) -> UserOut:
    return _user_out(service.set_disabled(session, actor, service.get_user(session, ref), False))


@router.post("/users/{ref}/reset-factor", response_model=UserOut)
def reset_factor(ref: str, actor: AdminActor, session: WriteSession) -> UserOut:
    """Remove a user's second factor and recovery codes (a lost phone), after checking out of band who is
    asking; their desk sessions close and they enrol a new factor at the next sign-in. Not one's own."""
    user = service.get_user(session, ref)
    mfa.reset_factor(session, actor, user)
    return _user_out(user)


@router.post("/users/{ref}/password", response_model=UserOut)
def set_password(ref: str, body: PasswordSet, actor: AdminActor, session: WriteSession) -> UserOut:
    """Set a user's password, after checking out of band who is asking; their desk sessions and API tokens
    close and any sign-in lock-out ends. Not one's own."""
    return _user_out(service.set_password(session, actor, service.get_user(session, ref), body.password))


@router.get("/tokens", response_model=list[TokenOut])
def my_tokens(actor: CurrentActor, session: ReadSession) -> list[TokenOut]:
    assert actor.user_id is not None
    user = service.get_user(session, actor.user_id)
    return [TokenOut.model_validate(t) for t in service.list_tokens(session, user)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenIssued)
def create_token(
    body: TokenCreate, actor: CurrentActor, session: WriteSession, request: Request
) -> TokenIssued:
    assert actor.user_id is not None
    days = body.days or _settings(request).token_default_days
    token, secret = service.issue_token(
        session, actor, service.get_user(session, actor.user_id), body.name, timedelta(days=days)
    )
    return TokenIssued(token=secret, **TokenOut.model_validate(token).model_dump())


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: uuid.UUID, actor: CurrentActor, session: WriteSession) -> TokenOut:
    return TokenOut.model_validate(service.revoke_token(session, actor, token_id))
