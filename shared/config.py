"""One frozen settings object, read from the environment.

Every entry point calls :func:`load_settings` once and passes the result down; nothing reads the
environment at import time. Outside ``development`` the secrets (``JWT_SECRET``, ``PREIMAGE_SECRET``,
``WEBHOOK_SECRET_KEY``, ``METRICS_TOKEN``) must be set and strong, else start-up stops with a message
naming the variable. In development the first three are generated once and kept under ``RUN_DIR`` so
tokens, invoices and webhook secrets survive restarts; ``METRICS_TOKEN`` stays unset there, which
leaves ``/metrics`` open.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.webhook_targets import IPNetwork, parse_networks

MIN_SECRET_BYTES = 32
_GENERATED_SECRETS = ("JWT_SECRET", "PREIMAGE_SECRET", "WEBHOOK_SECRET_KEY")
_REQUIRED_SECRETS = (*_GENERATED_SECRETS, "METRICS_TOKEN")
# Standard Webhooks retries: after the first attempt, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (~27.5 h).
WEBHOOK_RETRY_SCHEDULE_DEFAULT = "5,300,1800,7200,18000,36000,36000"


class ConfigError(Exception):
    """The environment does not describe a valid configuration; the message says what to fix."""


class Settings(BaseSettings):
    """All configuration of both services. Field names are the environment variable names, lowercased."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=".env", case_sensitive=False)

    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    run_dir: Path = Path(".run")

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = Field(
        None, description="base URL clients reach the API at; default http://API_HOST:API_PORT"
    )
    api_workers: int = Field(1, ge=1, le=64, description="API processes; above 1, gunicorn runs them")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lightning_wallet"
    db_pool_size: int = Field(
        20, ge=1, le=200, description="connections kept per process (plus half as many for bursts)"
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    arq_queue_name: str = Field("arq:queue", min_length=1)

    jwt_secret: SecretStr | None = None
    access_token_ttl: int = Field(900, ge=30, le=24 * 3600, description="seconds")
    refresh_token_ttl: int = Field(30 * 24 * 3600, ge=300, le=365 * 24 * 3600, description="seconds")
    admin_key: SecretStr | None = None
    bcrypt_cost: int = Field(12, ge=4, le=16)
    lndhub_allow_create: bool | None = Field(None, description="default: true in development only")
    lndhub_access_token_ttl: int = Field(2 * 24 * 3600, ge=60, le=30 * 24 * 3600, description="seconds")
    preimage_secret: SecretStr | None = None

    rate_limit_login_per_ip: int = Field(30, ge=1, description="per minute")
    rate_limit_login_per_username: int = Field(10, ge=1, description="per minute")
    rate_limit_register_per_ip: int = Field(10, ge=1, description="per minute")
    rate_limit_payments_per_user: int = Field(120, ge=1, description="per minute")
    rate_limit_lnurl_per_ip: int = Field(60, ge=1, description="per minute")

    lnd_grpc_host: str = "127.0.0.1:10009"
    lnd_tls_cert_path: Path = Path(".run/simnet/alice/tls.cert")
    lnd_macaroon_path: Path = Path(".run/simnet/alice/data/chain/bitcoin/regtest/admin.macaroon")
    lnd_macaroon_hex: SecretStr | None = None
    lnd_network: Literal["regtest", "testnet", "signet", "simnet", "mainnet"] = "regtest"
    lnd_timeout_s: float = Field(10.0, gt=0, le=300)
    lnd_allow_node_change: bool = False  # record a new LND node instead of refusing to run
    # gRPC keepalive on the LND channel: a ping every keepalive_time_s on an idle transport, dead when
    # not answered within keepalive_timeout_s. LND refuses pings more often than every 5 s.
    lnd_keepalive_time_s: float = Field(30.0, ge=5, le=3600)
    lnd_keepalive_timeout_s: float = Field(10.0, ge=1, le=600)
    settlement_idle_probe_s: float = Field(60.0, ge=1, le=3600, description="probe the node after this idle")
    settlement_sweep_s: float = Field(60.0, ge=1, le=3600, description="LookupInvoice sweep interval")

    invoice_wait_s: float = Field(5.0, ge=0, le=60)
    payment_wait_s: float = Field(10.0, ge=0, le=120)
    wait_recheck_s: float = Field(1.0, gt=0, le=3600, description="re-read a waited-for row this often")
    payment_timeout_s: int = Field(60, ge=5, le=3600, description="SendPaymentV2 timeout_seconds")
    fee_reserve_ppm: int = Field(10_000, ge=0, le=1_000_000)
    fee_reserve_min_sat: int = Field(10, ge=0, le=1_000_000)
    max_invoice_sat: int = Field(10_000_000, ge=1, le=2_100_000_000_000_000)
    max_payment_sat: int = Field(10_000_000, ge=1, le=2_100_000_000_000_000)

    reconcile_every_s: int = Field(60, ge=5, le=24 * 3600, description="reconciliation against the node")
    reconcile_window_s: int = Field(24 * 3600, ge=60, le=90 * 24 * 3600, description="how far back it looks")
    reconcile_grace_s: int = Field(60, ge=0, le=3600, description="younger settlements are still moving")
    idempotency_ttl_s: int = Field(24 * 3600, ge=60, le=365 * 24 * 3600, description="keys kept this long")
    stale_row_after_s: int = Field(30, ge=1, le=3600, description="re-enqueue pending rows older than this")
    job_result_retention_s: int = Field(24 * 3600, ge=60, le=30 * 24 * 3600)
    worker_max_jobs: int = Field(50, ge=1, le=1000)
    worker_poll_delay_s: float = Field(0.005, gt=0, le=5)

    # ---- webhooks (see shared/webhook_targets.py, shared/webhook_secrets.py) ----
    webhook_allowed_networks: str = Field("", description="comma-separated CIDRs opened to webhooks")
    webhook_secret_key: SecretStr | None = None
    webhook_retry_schedule_s: str = Field(
        WEBHOOK_RETRY_SCHEDULE_DEFAULT, description="comma-separated delays between webhook attempts"
    )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        _parse_schedule(value)
        return value

    @property
    def webhook_networks(self) -> tuple[IPNetwork, ...]:
        """WEBHOOK_ALLOWED_NETWORKS as ``ipaddress`` networks."""
        return parse_networks(self.webhook_allowed_networks)

    @property
    def webhook_retry_delays_s(self) -> tuple[float, ...]:
        return _parse_schedule(self.webhook_retry_schedule_s)

    @property
    def webhook_key(self) -> bytes:
        assert self.webhook_secret_key is not None  # guaranteed by load_settings
        return self.webhook_secret_key.get_secret_value().encode()

    # Prometheus: bearer token of both /metrics endpoints; the worker's own endpoint (port 0: any free one).
    metrics_token: SecretStr | None = None
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(9101, ge=0, le=65535)
    worker_metrics_sample_s: float = Field(10.0, gt=0, le=3600, description="money and in-flight gauges")

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        for name in _REQUIRED_SECRETS:
            value = getattr(self, name.lower())
            if value is None:
                raise ValueError(
                    f"{name} must be set outside development (at least {MIN_SECRET_BYTES} bytes)"
                )
            if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"{name} is too weak: use at least {MIN_SECRET_BYTES} bytes of random data")
        if self.admin_key is not None and len(self.admin_key.get_secret_value()) < 16:
            raise ValueError("ADMIN_KEY is too weak: use at least 16 characters, or leave it unset")
        return self

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("PUBLIC_URL must be an http(s) URL with a host, e.g. https://wallet.example.com")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("PUBLIC_URL must not have a query, fragment or credentials")
        return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")

    @property
    def public_base_url(self) -> str:
        """Where clients reach the API (no trailing slash): LNURL callbacks and Lightning Addresses."""
        if self.public_url is not None:
            return self.public_url
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def lndhub_create_allowed(self) -> bool:
        """LndHub POST /create makes anonymous accounts: on by default only in development."""
        if self.lndhub_allow_create is None:
            return self.environment == "development"
        return self.lndhub_allow_create

    @property
    def jwt_key(self) -> bytes:
        assert self.jwt_secret is not None  # guaranteed by load_settings
        return self.jwt_secret.get_secret_value().encode()

    @property
    def preimage_key(self) -> bytes:
        assert self.preimage_secret is not None  # guaranteed by load_settings
        return self.preimage_secret.get_secret_value().encode()

    @property
    def asyncpg_dsn(self) -> str:
        """The database URL in the form asyncpg itself accepts (no SQLAlchemy driver suffix)."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment (and ``.env``) plus explicit overrides.

    Raises ConfigError with one line per bad variable."""
    environment = str(overrides.get("environment") or os.environ.get("ENVIRONMENT") or "development")
    if environment == "development":
        run_dir = Path(str(overrides.get("run_dir") or os.environ.get("RUN_DIR") or ".run"))
        for name in _GENERATED_SECRETS:
            if not os.environ.get(name) and overrides.get(name.lower()) is None:
                overrides[name.lower()] = _dev_secret(run_dir, name)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _parse_schedule(text: str) -> tuple[float, ...]:
    """Delays in seconds between attempts: 1 to 20 of them, each 0..7 days."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError("must be comma-separated numbers of seconds") from None
    if not 1 <= len(delays) <= 20 or any(not 0 <= delay <= 7 * 24 * 3600 for delay in delays):
        raise ValueError("must list 1 to 20 delays, each between 0 and 604800 seconds")
    return delays


def _dev_secret(run_dir: Path, name: str) -> str:
    """A development secret generated once and kept in ``run_dir`` (mode 0600)."""
    path = run_dir / f"{name.lower()}.secret"
    if path.exists():
        return path.read_text().strip()
    run_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]).upper() or "settings"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
