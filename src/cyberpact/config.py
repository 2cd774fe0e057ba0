"""Typed settings, read from ``CYBERPACT_*`` environment variables (or a ``.env`` file).

Outside ``CYBERPACT_ENV=dev`` the node refuses to start on a missing or default secret: a node that
silently ran with the development secret would sign sessions anyone can forge.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cyberpact.kit.errors import ConfigurationError

# A year at most: a token copied into a script outlives the reason it was issued; renew it instead.
MAX_TOKEN_DAYS = 366
# A node's id, here and wherever another node is named (a peer's card, a roster).
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,119}$"

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
    audit_check_hours: float = Field(
        24, ge=0, description="how often the node walks its whole audit chain itself (0: never)"
    )
    login_max_failures: int = Field(5, ge=1, description="failed logins before a lock-out")
    login_lockout_seconds: int = Field(900, ge=1, description="how long a lock-out lasts")
    token_default_days: int = Field(90, ge=1, le=MAX_TOKEN_DAYS, description="lifetime of a new API token")
    page_size_max: int = Field(500, ge=1, description="largest page an API list returns")
    catalog_dir: Path | None = Field(None, description="a corrected copy of the convention catalog to use")
    jobs_poll_seconds: float = Field(1.0, gt=0, description="how often the job worker looks for due jobs")

    # Federation: who this node is, and how it talks to peers.
    node_id: str = Field(
        "cyberpact-dev",
        pattern=NODE_ID_PATTERN,
        description="this node's stable identifier, unique among its peers",
    )
    node_country: str | None = Field(None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    node_authority: str | None = Field(None, max_length=300, description="the authority running the node")
    node_roles: str = Field(
        "central_authority",
        description="comma-separated: central_authority, contact_point_24_7, competent_authority",
    )
    card_validity_days: int = Field(365, ge=1, le=3650, description="lifetime of a node card")
    max_envelope_bytes: int = Field(256 * 1024, ge=1024, description="largest single envelope accepted")
    max_batch_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest inbox request body")
    max_message_age_seconds: int = Field(600, ge=1, description="envelopes older than this are refused")
    max_clock_skew_seconds: int = Field(60, ge=0, description="how far in the future an envelope may be")
    outbox_batch_size: int = Field(500, ge=1, le=1000, description="envelopes per delivery request")
    outbox_backoff_seconds: float = Field(
        0.5, gt=0, description="first retry delay; doubles per failure; each is jittered down by up to half"
    )
    outbox_backoff_max_seconds: float = Field(300, gt=0, description="longest retry delay")
    outbox_dead_after_seconds: int = Field(86_400, ge=1, description="undelivered this long: dead letter")
    outbox_poll_seconds: float = Field(0.2, gt=0, description="worker idle poll interval")
    outbox_workers: int = Field(2, ge=1, le=16, description="delivery threads in each node process")
    outbox_lease_seconds: int = Field(60, ge=1, description="how long a worker's claim on a message lasts")
    breaker_threshold: int = Field(5, ge=1, description="consecutive failures that open a peer's circuit")
    breaker_cooldown_seconds: float = Field(30, gt=0, description="how long an open circuit stays open")
    tls_cert_file: Path | None = Field(None, description="certificate `cyberpact serve` presents")
    tls_key_file: Path | None = Field(None, description="private key of that certificate")
    tls_ca_bundle: Path | None = Field(None, description="CA bundle that peers' certificates must chain to")

    # Evidence: where encrypted evidence chunks live, and how they are cut. Object keys never contain
    # plaintext names, and every object is AEAD-encrypted under its package's data key, so the object
    # store itself needs no more trust than a disk would.
    storage: Literal["local", "s3"] = Field("local", description="evidence storage backend: local or s3")
    storage_dir: Path | None = Field(None, description="local storage root; default: <data_dir>/evidence")
    s3_endpoint: str | None = Field(None, description="S3-compatible endpoint URL; default: AWS")
    s3_bucket: str = Field("cyberpact-evidence", description="bucket holding evidence chunks")
    s3_region: str = Field("us-east-1", description="region of the bucket")
    s3_access_key: SecretStr | None = Field(None, description="S3 access key id; default: boto3's chain")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret access key")
    evidence_chunk_bytes: int = Field(
        4 * 1024 * 1024, ge=64 * 1024, le=16 * 1024 * 1024, description="plaintext bytes per stored chunk"
    )
    evidence_max_file_bytes: int = Field(
        16 * 1024**4, ge=1, description="largest evidence file a node accepts (declared size)"
    )

    # Web desk (src/cyberpact/web): browser sessions. The idle timeout signs out a desk left open on a
    # shared machine; the absolute lifetime bounds what a stolen cookie is worth whatever its use.
    web_session_idle_minutes: int = Field(
        30, ge=1, le=24 * 60, description="a desk session unused this long is signed out"
    )
    web_session_absolute_hours: int = Field(
        12, ge=1, le=24 * 7, description="the longest a desk session lasts, used or not"
    )
    web_cookie_secure: bool | None = Field(
        None,
        description="send the desk's session cookie over HTTPS only; default: when the base URL is https",
    )

    @property
    def web_secure_cookies(self) -> bool:
        # In prod the base URL is https:// (check_secure), so a session cookie never travels in clear there.
        if self.env is Environment.prod:
            return True
        return (
            self.web_cookie_secure
            if self.web_cookie_secure is not None
            else self.base_url.startswith("https://")
        )

    @property
    def roles(self) -> list[str]:
        return [r.strip() for r in self.node_roles.split(",") if r.strip()]

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def dev(self) -> bool:
        return self.env is Environment.dev

    @property
    def tls_required(self) -> bool:
        """Peers are reached over HTTPS only in prod; dev and the test suite talk over loopback."""
        return self.env is Environment.prod

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
        if self.env is Environment.prod and not self.base_url.startswith("https://"):
            raise ConfigurationError("in prod CYBERPACT_BASE_URL must be an https:// URL")
        passphrase = self.key_passphrase_value()
        if passphrase == DEV_PASSPHRASE or len(passphrase) < 12:
            raise ConfigurationError("the key passphrase must be at least 12 characters and not the dev one")
