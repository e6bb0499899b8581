"""Test configuration: a dedicated test database and Redis db, never the ones `make run` uses.

`make test` exports LW_TEST_DATABASE_URL and LW_TEST_REDIS_URL; without them the local defaults
are used. The schema comes from `alembic upgrade head`, once per test process (guarded by an
advisory lock so parallel processes do not race).

Under pytest-xdist (`make test` runs two workers) every worker has its own database
(``<test db>_gw1``...), Redis db and run folder, so tests that empty tables, flush Redis or kill a
worker never meet another worker's: see :func:`isolate_xdist_worker`, called by tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.config import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEST_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/lightning_wallet_test"
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"
_SECRETS = {
    "jwt_secret": secrets.token_urlsafe(48),
    "preimage_secret": secrets.token_urlsafe(48),
    "webhook_secret_key": secrets.token_urlsafe(48),
    "metrics_token": secrets.token_urlsafe(32),
}
TEST_ADMIN_KEY = "test-admin-key-" + secrets.token_hex(8)
# pytest-xdist names its workers gw0, gw1, ...; empty when the tests run in one process.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# Per checkout (and per xdist worker), never a shared /tmp path: two checkouts may test at once.
TEST_RUN_DIR = REPO_ROOT / ".run" / ("test-run-" + XDIST_WORKER if XDIST_WORKER else "test-run")
# Redis db 14 is the bench's; an xdist worker past gw0 takes the db below it (gw1 13, gw2 12, ...).
BENCH_REDIS_DB = 14
_migrated: set[str] = set()

TABLES = (
    "reconciliation_runs, anomalies, webhook_deliveries, webhook_secrets, ledger_entries, adjustments, "
    "idempotency_keys, payments, invoices, refresh_tokens, accounts, settlement_cursor, node_identity, users"
)
SYSTEM_ACCOUNTS_SQL = "INSERT INTO accounts (kind) VALUES ('treasury'), ('fees'), ('external'), ('equity')"


def database_url() -> str:
    return os.environ.get("LW_TEST_DATABASE_URL") or DEFAULT_TEST_DB


def redis_url() -> str:
    return os.environ.get("LW_TEST_REDIS_URL") or DEFAULT_TEST_REDIS


def make_settings(**overrides: object) -> Settings:
    """Settings for a test: fast bcrypt, generous rate limits, fixed secrets, a temp run dir."""
    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url(),
        "redis_url": redis_url(),
        "bcrypt_cost": 4,
        "admin_key": TEST_ADMIN_KEY,
        "run_dir": TEST_RUN_DIR,
        "rate_limit_login_per_ip": 10_000,
        "rate_limit_login_per_username": 10_000,
        "rate_limit_register_per_ip": 10_000,
        "rate_limit_payments_per_user": 10_000,
        "db_pool_size": 5,
        "worker_metrics_port": 0,  # several workers per test run, and maybe `make run` beside them
        **_SECRETS,
    }
    values.update(overrides)
    return load_settings(**values)


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def worker_urls(worker: str, database: str, redis: str) -> tuple[str, str]:
    """The database and Redis URLs of xdist worker ``worker`` (``gwN``) from the run's test URLs.

    gw0 keeps the test Redis db; gwN (N >= 1) takes db ``BENCH_REDIS_DB - N``, never the bench's.
    Every worker has its own database, ``<test database>_gwN``, on the same server.
    """
    index = int(worker.removeprefix("gw"))
    parts = urlsplit(redis)
    db = int(parts.path.lstrip("/") or 0)
    if index > 0:
        db = BENCH_REDIS_DB - index
        if db < 1:
            raise RuntimeError(f"xdist worker {worker}: no Redis db left for it (use fewer workers)")
    return (
        with_database(database, f"{database_name(database)}_{worker}"),
        urlunsplit(parts._replace(path=f"/{db}")),
    )


def isolate_xdist_worker() -> None:
    """In an xdist worker, point the test URLs (and what subprocesses inherit) at the worker's own."""
    if not XDIST_WORKER:
        return
    database, redis = worker_urls(XDIST_WORKER, database_url(), redis_url())
    for name, value in (
        ("LW_TEST_DATABASE_URL", database),
        ("LW_TEST_REDIS_URL", redis),
        ("DATABASE_URL", database),
        ("REDIS_URL", redis),
    ):
        os.environ[name] = value


async def create_database_if_missing(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(asyncpg_dsn(with_database(url, "postgres")))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await admin.close()


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(asyncpg_dsn(with_database(url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def run_alembic(url: str, *commands: tuple[str, str | None]) -> None:
    """Run alembic commands (e.g. ("upgrade", "head")) against ``url`` in this process."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    for name, target in commands:
        if target is None:
            getattr(command, name)(config)
        else:
            getattr(command, name)(config, target)


async def ensure_schema(url: str | None = None) -> None:
    """Create the test database if needed and migrate it to head, once per process."""
    url = url or database_url()
    if url in _migrated:
        return
    await create_database_if_missing(url)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute("SELECT pg_advisory_lock(724311)")
        await asyncio.to_thread(run_alembic, url, ("upgrade", "head"))
        await connection.execute("SELECT pg_advisory_unlock(724311)")
    finally:
        await connection.close()
    _migrated.add(url)


async def reset_database(url: str | None = None) -> None:
    """Empty every table and recreate the system accounts: each test starts from a clean ledger."""
    connection = await asyncpg.connect(asyncpg_dsn(url or database_url()))
    try:
        await connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        await connection.execute(SYSTEM_ACCOUNTS_SQL)
    finally:
        await connection.close()
