"""TOTP second factor, recovery codes and browser sessions."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from cyberpact.accounts import mfa
from cyberpact.accounts import service as accounts
from cyberpact.accounts.models import TotpFactor
from cyberpact.config import Settings
from cyberpact.kit.actor import SYSTEM
from cyberpact.kit.db import Database
from cyberpact.kit.errors import AuthenticationRequired, Conflict, InvalidInput
from cyberpact.kit.keystore import KeyStore
from cyberpact.kit.time import utcnow


def _keys(settings: Settings) -> KeyStore:
    return KeyStore(settings.key_passphrase_value(), settings.key_kdf_iterations)


def _user(db: Database) -> accounts.User:
    with db.transaction() as s:
        return accounts.create_user(
            s, SYSTEM, username="lan", password="a long passphrase 7", roles=["officer"]
        )


def _enrol(db: Database, settings: Settings) -> tuple[str, list[str]]:
    keys = _keys(settings)
    user = _user(db)
    with db.transaction() as s:
        enrolment = mfa.begin_enrolment(s, keys, s.get_one(accounts.User, user.id), "test")
    assert enrolment.uri.startswith("otpauth://totp/") and "<svg" in enrolment.qr_svg
    totp = pyotp.TOTP(enrolment.secret)
    with db.transaction() as s, pytest.raises(InvalidInput):
        mfa.confirm_enrolment(s, keys, SYSTEM, s.get_one(accounts.User, user.id), "000000")
    with db.transaction() as s:
        codes = mfa.confirm_enrolment(s, keys, SYSTEM, s.get_one(accounts.User, user.id), totp.now())
    return enrolment.secret, codes


def test_secret_is_stored_wrapped_and_codes_verify_once(db: Database, settings: Settings) -> None:
    secret, codes = _enrol(db, settings)
    assert len(codes) == 10 and len(set(codes)) == 10
    with db.transaction(read_only=True) as s:
        factor = s.scalars(select(TotpFactor)).one()
        assert secret.encode() not in factor.wrapped_secret
        user = s.get_one(accounts.User, factor.user_id)
    keys = _keys(settings)
    later = pyotp.TOTP(secret).at(utcnow() + timedelta(seconds=30))
    with db.transaction() as s:
        assert mfa.verify_second_factor(s, keys, s.get_one(accounts.User, user.id), later, None) == "totp"
    with db.transaction() as s, pytest.raises(AuthenticationRequired):
        mfa.verify_second_factor(s, keys, s.get_one(accounts.User, user.id), later, None)  # replay
    with db.transaction() as s:
        assert (
            mfa.verify_second_factor(s, keys, s.get_one(accounts.User, user.id), codes[0], None) == "recovery"
        )
    with db.transaction() as s, pytest.raises(AuthenticationRequired):
        mfa.verify_second_factor(s, keys, s.get_one(accounts.User, user.id), codes[0], None)
    with db.transaction() as s, pytest.raises(Conflict):
        mfa.begin_enrolment(s, keys, s.get_one(accounts.User, user.id), "test")


def test_sessions_expire_when_idle_and_sign_out_everywhere(db: Database) -> None:
    user = _user(db)
    policy = mfa.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
    with db.transaction() as s:
        row, secret = mfa.open_session(s, s.get_one(accounts.User, user.id), "127.0.0.1", "test", policy)
        _, other = mfa.open_session(s, s.get_one(accounts.User, user.id), "127.0.0.1", "test", policy)
    with db.transaction() as s:
        assert mfa.find_session(s, secret, policy) is not None
        assert mfa.find_session(s, "forged", policy) is None
        s.get_one(type(row), row.id).last_seen_at = utcnow() - timedelta(minutes=31)
    with db.transaction() as s:
        assert mfa.find_session(s, secret, policy) is None, "idle timeout"
        assert mfa.revoke_sessions(s, SYSTEM, s.get_one(accounts.User, user.id)) == 2
    with db.transaction() as s:
        assert mfa.find_session(s, other, policy) is None, "signed out everywhere"
