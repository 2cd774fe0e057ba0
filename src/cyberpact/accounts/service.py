"""Users, roles, passwords and API tokens. Services flush; the caller's unit of work commits."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cyberpact.accounts import mfa
from cyberpact.accounts.models import ROLES, ApiToken, User, UserRole
from cyberpact.audit import service as audit
from cyberpact.config import MAX_TOKEN_DAYS
from cyberpact.kit.actor import Actor
from cyberpact.kit.db import Lock, advisory_lock
from cyberpact.kit.errors import (
    AuthenticationRequired,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Problem,
    TooManyAttempts,
)
from cyberpact.kit.ids import parse_uuid
from cyberpact.kit.time import check_timezone, utcnow

TOKEN_PREFIX = "cpt_"  # noqa: S105 - a public marker, not a secret
# Argon2id with the library's RFC 9106 "low memory" profile; parameters live in each hash, so raising
# them later re-hashes on the next successful login.
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verifying against this keeps a login for an unknown user as slow as one for a known user. Made on
    # first use, not at import: hashing takes 64 MiB for a moment, which every process importing this
    # module (the node, each CLI command) would otherwise carry in its peak memory.
    return _hasher.hash(secrets.token_urlsafe(16))


# Who drafted and who approved is shown by username alone (the desk, a peer's copy, the audit record), so
# two accounts must never read alike: no spaces, no upper case, no letters that only look Latin (Cyrillic,
# full-width), nothing a page could take for markup. The API schema checks this same rule.
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
USERNAME_RULE = "use 2 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
_USERNAME = re.compile(USERNAME_PATTERN)
PASSWORD_MIN = 12
PASSWORD_MAX = 256  # Argon2 takes any length; a bound keeps one request from hashing megabytes


def username_problem(username: str) -> str | None:
    """What is wrong with ``username`` as a new account's name, or None."""
    # fullmatch: with search or match, "$" would let a trailing newline through.
    return None if _USERNAME.fullmatch(username) else USERNAME_RULE


def check_username(username: str) -> str:
    if (problem := username_problem(username)) is not None:
        raise InvalidInput("Invalid username", [Problem("username", problem)])
    return username


def password_problem(password: str) -> str | None:
    if len(password) < PASSWORD_MIN:
        return f"use at least {PASSWORD_MIN} characters"
    if len(password) > PASSWORD_MAX:
        return f"use at most {PASSWORD_MAX} characters"
    return None


def _check_password(password: str) -> None:
    if (problem := password_problem(password)) is not None:
        raise InvalidInput("Unusable password", [Problem("password", problem)])


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_roles(roles: Iterable[str]) -> list[str]:
    wanted = sorted(set(roles))
    bad = [r for r in wanted if r not in ROLES]
    if bad:
        raise InvalidInput("Unknown role", [Problem("roles", f"unknown role(s): {', '.join(bad)}")])
    return wanted


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    password: str,
    display_name: str | None = None,
    email: str | None = None,
    roles: Iterable[str] = (),
    timezone: str = "UTC",
) -> User:
    check_username(username)
    _check_password(password)
    check_timezone(timezone)
    role_list = _check_roles(roles)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict("Username taken", [Problem("username", f"{username!r} already exists", "duplicate")])
    user = User(
        username=username,
        display_name=display_name or username,
        email=email,
        password_hash=hash_password(password),
        timezone=timezone,
        created_at=utcnow(),
        role_rows=[UserRole(role=r) for r in role_list],
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        "accounts.user.create",
        "user",
        user.id,
        detail={"username": username, "roles": role_list},
    )
    return user


def get_user(session: Session, ref: str | uuid.UUID) -> User:
    user: User | None
    if isinstance(ref, uuid.UUID):
        user = session.get(User, ref)
    else:
        user = session.scalar(select(User).where(User.username == ref))
        if user is None and (user_id := parse_uuid(ref)) is not None:
            user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {ref}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def _still_administered(session: Session, user: User, was_admin: bool) -> None:
    """Refuse a change (flushed, not yet committed) that leaves no enabled account with the admin role.

    Without one, nobody can add users, pin peers or answer what the desk says needs an administrator,
    until someone with the server's shell finds the command that mends it.
    """
    if not was_admin or ("admin" in user.roles and not user.disabled):
        return
    left = session.scalar(
        select(func.count())
        .select_from(User)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == "admin", User.disabled.is_(False))
    )
    if not left:
        raise Conflict(
            f"{user.username} is the node's last administrator; give another account the admin role first"
        )


def set_roles(session: Session, actor: Actor, user: User, roles: Iterable[str]) -> User:
    role_list = _check_roles(roles)
    # Two administrators taking each other's role at once would each still see the other.
    advisory_lock(session, Lock.ADMINISTRATORS)
    before = sorted(user.roles)
    if actor.user_id == user.id and set(role_list) - set(before):
        # Separation of duties: an administrator reads no case material and does not audit themselves,
        # unless a second person agrees. Stepping down (fewer roles) needs nobody.
        raise PermissionDenied(
            "Your own roles are changed by another administrator; you may only give roles up"
        )
    was_admin = "admin" in before and not user.disabled
    user.role_rows = [UserRole(role=r) for r in role_list]
    session.flush()
    _still_administered(session, user, was_admin)
    audit.record(
        session, actor, "accounts.user.roles", "user", user.id, detail={"before": before, "after": role_list}
    )
    return user


def set_disabled(session: Session, actor: Actor, user: User, disabled: bool = True) -> User:
    advisory_lock(session, Lock.ADMINISTRATORS)
    was_admin = "admin" in user.roles and not user.disabled
    user.disabled = disabled
    session.flush()
    _still_administered(session, user, was_admin)
    if disabled:
        # A disabled account must stop working at once, tokens and desk sessions included, and stay
        # stopped once enabled again: an account is disabled when a laptop or phone is lost, and enabled
        # when its owner has a new one, not the lost one back.
        _revoke_tokens(session, user)
        mfa.revoke_sessions(session, actor, user)
    session.flush()
    audit.record(
        session, actor, "accounts.user.disable" if disabled else "accounts.user.enable", "user", user.id
    )
    return user


def set_password(session: Session, actor: Actor, user: User, password: str) -> User:
    """An administrator's reset, after checking the person's identity out of band (a locked-out duty
    officer at 3 a.m.). Whoever held the old password is signed out: desk sessions and API tokens close,
    and a lock-out from failed sign-ins ends, so the owner can sign in at once."""
    if actor.user_id is not None and actor.user_id == user.id:
        # Separation of duties, as for roles: a stolen administrator's token must not become that
        # administrator's password. Another administrator resets it, or the operator at the server's
        # command line (who acts as no account). Changing one's own password with the old one is a
        # different matter, which the desk does not offer yet.
        raise PermissionDenied("Your own password is reset by another administrator")
    _check_password(password)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    _revoke_tokens(session, user)
    mfa.revoke_sessions(session, actor, user)
    session.flush()
    audit.record(session, actor, "accounts.user.password", "user", user.id)  # never the password itself
    return user


def _revoke_tokens(session: Session, user: User) -> None:
    now = utcnow()
    for token in session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        token.revoked_at = now


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)

    def delay(self, failures: int) -> float:
        """Seconds to hold back the answer to a failed login: doubles per failure, capped at 4 s."""
        return 0.0 if failures <= 0 else min(0.25 * 2 ** (failures - 1), 4.0)


def authenticate(
    session: Session, username: str, password: str, source: str | None, policy: LoginPolicy
) -> tuple[User | None, int]:
    """Check a password. Returns (user or None, consecutive failures so far) and records the attempt.

    A locked account answers :class:`TooManyAttempts` without looking at the password, so guessing
    during a lock-out gains nothing.
    """
    now = utcnow()
    user = session.scalar(select(User).where(User.username == username))
    actor = Actor(user_id=user.id if user else None, username=username, source=source)
    if user is not None and user.locked_until is not None and user.locked_until > now:
        audit.record(
            session, actor, "accounts.login", "user", user.id, outcome="denied", detail={"reason": "locked"}
        )
        raise TooManyAttempts(
            "Account temporarily locked after repeated failed sign-ins",
            extra={"retry_after": int((user.locked_until - now).total_seconds()) + 1},
        )
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if user is None or not ok or user.disabled:
        failures = 0
        if user is not None:
            user.failed_logins += 1
            failures = user.failed_logins
            if failures >= policy.max_failures:
                user.locked_until = now + policy.lockout
                user.failed_logins = 0
        audit.record(
            session,
            actor,
            "accounts.login",
            "user",
            user.id if user else None,
            outcome="denied",
            detail={"reason": "disabled" if user is not None and ok else "bad_credentials"},
        )
        return None, failures
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    audit.record(session, actor, "accounts.login", "user", user.id)
    return user, 0


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    session: Session, actor: Actor, user: User, name: str, lifetime: timedelta
) -> tuple[ApiToken, str]:
    """Create a token; the plaintext is returned once and never stored."""
    if lifetime > timedelta(days=MAX_TOKEN_DAYS):
        raise InvalidInput(
            f"A token lasts at most {MAX_TOKEN_DAYS} days", [Problem("days", f"at most {MAX_TOKEN_DAYS}")]
        )
    if user.disabled:
        raise Conflict("Cannot issue a token to a disabled user")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=name,
        secret_hash=_digest(secret),
        prefix=secret[:10],
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor,
        "accounts.token.create",
        "api_token",
        token.id,
        detail={"user": user.username, "name": name, "expires": token.expires_at.isoformat()},
    )
    return token, secret


def list_tokens(session: Session, user: User | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at)
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.scalars(query))


def revoke_token(session: Session, actor: Actor, token_id: uuid.UUID) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No token {token_id}")
    if actor.user_id != token.user_id and not actor.has_any("admin", "system"):
        raise NotFound(f"No token {token_id}")  # not 403: do not confirm other users' token ids
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    audit.record(session, actor, "accounts.token.revoke", "api_token", token.id)
    return token


def resolve_token(
    session: Session, secret: str, source: str | None, now: datetime | None = None
) -> tuple[Actor, bool]:
    """Turn a bearer secret into the acting user, or raise 401 saying which check failed.

    Returns the actor and whether the token's last-use time is stale enough to be worth a write; the
    caller touches it in a unit of work of its own so that read-only requests stay read-only.
    """
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        raise AuthenticationRequired("Malformed API token")
    # One round trip for token and user (roles follow in one more): this runs on every API request.
    found = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.secret_hash == _digest(secret))
    ).first()
    token, user = (found[0], found[1]) if found else (None, None)
    # The lookup is by digest, so a timing difference reveals nothing about other tokens; compare again
    # in constant time anyway in case a database collates or truncates.
    if token is None or not hmac.compare_digest(token.secret_hash, _digest(secret)):
        raise AuthenticationRequired("Unknown API token")
    now = now or utcnow()
    if token.revoked_at is not None:
        raise AuthenticationRequired("API token revoked")
    if token.expires_at <= now:
        raise AuthenticationRequired("API token expired")
    if user is None or user.disabled:
        raise AuthenticationRequired("Account disabled")
    # Touch at most once a minute: a write per request would serialise every reader on SQLite.
    stale = token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1)
    actor = Actor(user_id=user.id, username=user.username, roles=user.roles, source=source, token_id=token.id)
    return actor, stale


def touch_token(session: Session, token_id: uuid.UUID) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))
