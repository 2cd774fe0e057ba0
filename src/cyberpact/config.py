"""Typed settings, read from ``CYBERPACT_*`` environment variables (or a ``.env`` file).

Outside ``CYBERPACT_ENV=dev`` the node refuses to start on a missing or default secret: a node that
silently ran with the development secret would sign sessions anyone can forge.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cyberpact.kit.errors import ConfigurationError

DEV_SECRET = "dev-insecure-secret-change-me"  # noqa: S105 - the value refused outside dev
DEV_PASSPHRASE = "dev-insecure-passphrase"  # noqa: S105 - the value refused outside dev


class Environment(StrEnum):
    dev = "dev"
    test = "test"
    prod = "prod"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CYBERPACT_", env_file=".env", extra="ignore")

    env: Environment = Field(Environment.dev, description="dev, test or prod")
    data_dir: Path = Field(Path("var"), description="where the SQLite file, keys' backups and storage live")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file `cyberpact.db` in the data directory"
    )
    secret_key: SecretStr = Field(SecretStr(DEV_SECRET), description="signs sessions and CSRF tokens")
    node_name: str = Field("cyberpact-dev", description="this node's display name", max_length=120)
    base_url: str = Field("http://127.0.0.1:8000", description="the public URL peers and users reach")
    host: str = Field("127.0.0.1", description="address `cyberpact serve` binds")
    port: int = Field(8000, ge=0, le=65535, description="port `cyberpact serve` binds")
    log_level: str = Field("info", description="debug, info, warning or error")
    key_passphrase: SecretStr | None = Field(None, description="unlocks the node's private keys")
    key_passphrase_file: Path | None = Field(None, description="file holding the key passphrase")
    key_kdf_iterations: int = Field(
        210_000, ge=1000, le=300_000, description="PBKDF2 rounds protecting private keys at rest"
    )
    audit_anchor_seconds: int = Field(
        300, ge=1, description="how often the node signs an anchor of the audit chain head"
    )
    login_max_failures: int = Field(5, ge=1, description="failed logins before a lock-out")
    login_lockout_seconds: int = Field(900, ge=1, description="how long a lock-out lasts")
    token_default_days: int = Field(90, ge=1, le=3650, description="lifetime of a new API token")
    page_size_max: int = Field(500, ge=1, description="largest page an API list returns")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def dev(self) -> bool:
        return self.env is Environment.dev

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'cyberpact.db'}"

    def key_passphrase_value(self) -> str:
        if self.key_passphrase is not None:
            return self.key_passphrase.get_secret_value()
        if self.key_passphrase_file is not None:
            try:
                return self.key_passphrase_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(f"cannot read CYBERPACT_KEY_PASSPHRASE_FILE: {exc}") from exc
        if self.dev:
            return DEV_PASSPHRASE
        raise ConfigurationError(
            "outside dev the node's private keys need a passphrase: set CYBERPACT_KEY_PASSPHRASE "
            "or CYBERPACT_KEY_PASSPHRASE_FILE"
        )

    def check_secure(self) -> None:
        """Refuse insecure settings outside development; called by the app factory and the CLI."""
        if self.dev:
            return
        secret = self.secret_key.get_secret_value()
        if not secret or secret == DEV_SECRET or len(secret) < 32:
            raise ConfigurationError(
                "CYBERPACT_SECRET_KEY must be set to a random value of at least 32 characters outside "
                "dev; generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        passphrase = self.key_passphrase_value()
        if passphrase == DEV_PASSPHRASE or len(passphrase) < 12:
            raise ConfigurationError("the key passphrase must be at least 12 characters and not the dev one")
