"""One frozen settings object, read from the environment.

Every entry point calls :func:`load_settings` once and passes the result down; nothing reads the
environment at import time. Outside ``development`` the secrets (``JWT_SECRET``, ``PREIMAGE_SECRET``,
``METRICS_TOKEN``) must be set and strong, else start-up stops with a message naming the variable. In
development the first two are generated once and kept under ``RUN_DIR`` so tokens and invoices survive
restarts; ``METRICS_TOKEN`` stays unset there, which leaves ``/metrics`` open.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32
_GENERATED_SECRETS = ("JWT_SECRET", "PREIMAGE_SECRET")
_REQUIRED_SECRETS = (*_GENERATED_SECRETS, "METRICS_TOKEN")


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
    api_workers: int = Field(1, ge=1, le=64, description="API processes; above 1, gunicorn runs them")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/lightning_wallet"
    db_pool_size: int = Field(10, ge=1, le=200)
    redis_url: str = "redis://127.0.0.1:6379/0"
    arq_queue_name: str = Field("arq:queue", min_length=1)

    jwt_secret: SecretStr | None = None
    access_token_ttl: int = Field(900, ge=30, le=24 * 3600, description="seconds")
    refresh_token_ttl: int = Field(30 * 24 * 3600, ge=300, le=365 * 24 * 3600, description="seconds")
    admin_key: SecretStr | None = None
    bcrypt_cost: int = Field(12, ge=4, le=16)
    preimage_secret: SecretStr | None = None

    rate_limit_login_per_ip: int = Field(30, ge=1, description="per minute")
    rate_limit_login_per_username: int = Field(10, ge=1, description="per minute")
    rate_limit_register_per_ip: int = Field(10, ge=1, description="per minute")
    rate_limit_payments_per_user: int = Field(120, ge=1, description="per minute")

    lnd_grpc_host: str = "127.0.0.1:10009"
    lnd_tls_cert_path: Path = Path(".run/simnet/alice/tls.cert")
    lnd_macaroon_path: Path = Path(".run/simnet/alice/data/chain/bitcoin/regtest/admin.macaroon")
    lnd_macaroon_hex: SecretStr | None = None
    lnd_network: Literal["regtest", "testnet", "signet", "simnet", "mainnet"] = "regtest"
    lnd_timeout_s: float = Field(10.0, gt=0, le=300)

    invoice_wait_s: float = Field(5.0, ge=0, le=60)
    payment_wait_s: float = Field(10.0, ge=0, le=120)
    payment_timeout_s: int = Field(60, ge=5, le=3600, description="SendPaymentV2 timeout_seconds")
    fee_reserve_ppm: int = Field(10_000, ge=0, le=1_000_000)
    fee_reserve_min_sat: int = Field(10, ge=0, le=1_000_000)
    max_invoice_sat: int = Field(10_000_000, ge=1, le=2_100_000_000_000_000)
    max_payment_sat: int = Field(10_000_000, ge=1, le=2_100_000_000_000_000)

    stale_row_after_s: int = Field(30, ge=1, le=3600, description="re-enqueue pending rows older than this")
    job_result_retention_s: int = Field(24 * 3600, ge=60, le=30 * 24 * 3600)
    worker_max_jobs: int = Field(50, ge=1, le=1000)
    worker_poll_delay_s: float = Field(0.005, gt=0, le=5)

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
