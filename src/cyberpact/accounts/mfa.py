"""The second factor (TOTP, RFC 6238, with recovery codes) and browser sessions.

The web desk signs people in with a password and then a code; the API keeps using personal tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cyberpact.accounts.models import RecoveryCode, TotpFactor, User, WebSession
from cyberpact.audit import service as audit
from cyberpact.audit.models import AuditRecord
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import AuthenticationRequired, Conflict, InvalidInput, PermissionDenied, Problem
from cyberpact.kit.keystore import KeyStore, current_kek, kek_by_id
from cyberpact.kit.time import utcnow

ISSUER = "cyberpact"
RECOVERY_CODES = 10
STEP = 30


def _context(user: User) -> bytes:
    return b"totp:" + user.id.bytes


def _secret(session: Session, keys: KeyStore, factor: TotpFactor, user: User) -> str:
    return kek_by_id(session, keys, factor.kek_id).unwrap(factor.wrapped_secret, _context(user)).decode()


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, for typing in by hand
    uri: str  # otpauth:// for authenticator apps
    qr_svg: str  # the same URI as an inline SVG QR code (no external image, CSP-friendly)


def begin_enrolment(session: Session, keys: KeyStore, user: User, node_name: str) -> Enrolment:
    """Start (or restart) TOTP enrolment; the factor counts only once a code confirms it."""
    existing = session.get(TotpFactor, user.id)
    if existing is not None and existing.confirmed_at is not None:
        raise Conflict("A second factor is already enrolled; reset it first")
    secret = pyotp.random_base32(32)
    kek = current_kek(session, keys)
    wrapped = kek.wrap(secret.encode(), _context(user))
    if existing is None:
        session.add(
            TotpFactor(
                user_id=user.id, wrapped_secret=wrapped, kek_id=kek.kek_id, created_at=utcnow(), last_step=0
            )
        )
    else:
        existing.wrapped_secret, existing.kek_id, existing.created_at = wrapped, kek.kek_id, utcnow()
    session.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=f"{ISSUER} {node_name}")
    qr = segno.make(uri, error="m").svg_inline(scale=4, title="TOTP enrolment code")
    return Enrolment(secret=secret, uri=uri, qr_svg=qr)


def _step_matching(secret: str, code: str, now: datetime, last_step: int) -> int | None:
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP
    # One step either side absorbs clock drift; a step at or before the last one used is a replay.
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(totp.at(step * STEP), code):
            return step
    return None


def confirm_enrolment(session: Session, keys: KeyStore, actor: Actor, user: User, code: str) -> list[str]:
    """Confirm with a first code; returns the recovery codes, shown once."""
    factor = session.get(TotpFactor, user.id)
    if factor is None or factor.confirmed_at is not None:
        raise Conflict("No enrolment in progress")
    step = _step_matching(_secret(session, keys, factor, user), code, utcnow(), factor.last_step)
    if step is None:
        raise InvalidInput("Wrong code", [Problem("code", "the 6-digit code from your app did not match")])
    factor.confirmed_at, factor.last_step = utcnow(), step
    codes = _new_recovery_codes(session, user)
    audit.record(session, actor, "accounts.mfa.enrol", "user", user.id)
    return codes


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").lower().encode()).hexdigest()


def _new_recovery_codes(session: Session, user: User) -> list[str]:
    session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)  # 40 bits each, single use, behind the password: enough
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(user_id=user.id, code_hash=_hash_code(raw)))
    session.flush()
    return codes


def enrolled(session: Session, user: User) -> bool:
    factor = session.get(TotpFactor, user.id)
    return factor is not None and factor.confirmed_at is not None


def verify_second_factor(session: Session, keys: KeyStore, user: User, code: str, source: str | None) -> str:
    """Accept a current TOTP code or an unused recovery code; returns which one was used."""
    actor = Actor(user_id=user.id, username=user.username, source=source)
    factor = session.get(TotpFactor, user.id)
    if factor is None or factor.confirmed_at is None:
        raise AuthenticationRequired("No second factor is enrolled")
    step = _step_matching(_secret(session, keys, factor, user), code, utcnow(), factor.last_step)
    if step is not None:
        factor.last_step = step
        audit.record(session, actor, "accounts.mfa.verify", "user", user.id, detail={"method": "totp"})
        return "totp"
    row = session.scalar(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash_code(code.strip()),
            RecoveryCode.used_at.is_(None),
        )
    )
    if row is not None:
        row.used_at = utcnow()
        audit.record(session, actor, "accounts.mfa.verify", "user", user.id, detail={"method": "recovery"})
        return "recovery"
    audit.record(session, actor, "accounts.mfa.verify", "user", user.id, outcome="denied")
    raise AuthenticationRequired("Wrong code")


def recent_failures(session: Session, user: User, window: timedelta) -> int:
    """Wrong codes for ``user`` within ``window``. The audit record already counts every one; reading it
    back throttles guessing without a second counter that could disagree with it."""
    since = utcnow() - window
    query = (
        select(func.count())
        .select_from(AuditRecord)
        .where(
            AuditRecord.action == "accounts.mfa.verify",
            AuditRecord.object_id == str(user.id),
            AuditRecord.outcome == "denied",
            AuditRecord.at > since,
        )
    )
    return int(session.scalar(query) or 0)


def reset_factor(session: Session, actor: Actor, user: User) -> None:
    """An administrator's reset, after checking the person's identity out of band. Every desk session
    closes; the owner enrols a new factor at the next sign-in."""
    if actor.user_id is not None and actor.user_id == user.id:
        # Not one's own: whoever holds an administrator's token (or password) must not be able to drop
        # the factor that guards the desk and enrol their own. Another administrator resets it, or the
        # operator at the server's command line, who acts as no account.
        raise PermissionDenied("Your own second factor is reset by another administrator")
    factor = session.get(TotpFactor, user.id)
    if factor is not None:
        session.delete(factor)
    session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    revoke_sessions(session, actor, user)
    audit.record(session, actor, "accounts.mfa.reset", "user", user.id)


# --- sessions -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def open_session(
    session: Session, user: User, source: str | None, user_agent: str | None, policy: SessionPolicy
) -> tuple[WebSession, str]:
    now = utcnow()
    secret = secrets.token_urlsafe(32)
    row = WebSession(
        user_id=user.id,
        secret_hash=_digest(secret),
        csrf_token=secrets.token_urlsafe(32),
        second_factor=False,
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.absolute,
        source=source,
        user_agent=(user_agent or "")[:300],
    )
    session.add(row)
    session.flush()
    return row, secret


def find_session(session: Session, secret: str, policy: SessionPolicy) -> WebSession | None:
    """The live session behind a cookie, or None when unknown, revoked, expired or idle too long."""
    row = session.scalar(select(WebSession).where(WebSession.secret_hash == _digest(secret)))
    now = utcnow()
    if (
        row is None
        or row.revoked_at is not None
        or row.expires_at <= now
        or row.last_seen_at + policy.idle <= now
    ):
        return None
    return row


def touch_session(session: Session, session_id: uuid.UUID) -> None:
    session.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=utcnow()))


def close_session(session: Session, row: WebSession) -> None:
    row.revoked_at = utcnow()
    session.flush()


def revoke_sessions(session: Session, actor: Actor, user: User) -> int:
    """Sign out everywhere."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    audit.record(session, actor, "accounts.session.revoke_all", "user", user.id)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
