"""What the bench starts of our own system: its database, a fresh lnd_simnet, the API and one worker.

Everything listens on 127.0.0.1 on free ports, uses the database ``lightning_wallet_bench`` (dropped
and migrated at the start of every run) and Redis db 14 (flushed), so a run never touches the data
of ``make run`` or the tests.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.procs import REPO_ROOT, Child, Children, free_port, python_argv, wait_files, wait_http
from shared.lightning.grpc_client import GrpcLightningClient

BENCH_DB = "lightning_wallet_bench"
BENCH_REDIS_DB = 14
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/lightning_wallet"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MACAROON = Path("data/chain/bitcoin/regtest/admin.macaroon")


def bench_database_url(base_url: str) -> str:
    """The same server as ``base_url`` (e.g. make's DATABASE_URL), database ``lightning_wallet_bench``."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_DB}", parts.query, parts.fragment))


def bench_redis_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", parts.query, parts.fragment))


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def recreate_database(database_url: str, log: Path) -> None:
    """Drop and create the bench database, then ``alembic upgrade head`` into it."""
    parts = urlsplit(asyncpg_dsn(database_url))
    name = parts.path.lstrip("/")
    admin_dsn = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    proc = await asyncio.create_subprocess_exec(
        *python_argv("-m", "alembic", "upgrade", "head"),
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    log.write_bytes(output)  # noqa: ASYNC240 - a few hundred bytes, once
    if proc.returncode != 0:
        raise RuntimeError(
            f"alembic upgrade head failed ({proc.returncode}):\n{output.decode(errors='replace')}"
        )


@dataclass(frozen=True)
class Simnet:
    data_dir: Path
    alice_port: int
    bob_port: int
    child: Child

    def cert(self, node: str) -> Path:
        return self.data_dir / node / "tls.cert"

    def macaroon(self, node: str) -> Path:
        return self.data_dir / node / MACAROON

    def port(self, node: str) -> int:
        return self.alice_port if node == "alice" else self.bob_port

    def client(self, node: str) -> GrpcLightningClient:
        return GrpcLightningClient.from_paths(
            f"127.0.0.1:{self.port(node)}", self.cert(node), self.macaroon(node)
        )


async def start_simnet(
    children: Children, data_dir: Path, *, ports: tuple[int, int] | None = None, args: tuple[str, ...] = ()
) -> Simnet:
    """Start lnd_simnet on free ports (or ``ports``: a restart on the same ones, same data dir)."""
    alice, bob = ports or (free_port(), free_port())
    (data_dir / "network.json").unlink(missing_ok=True)  # written again once the new process is up
    child = children.start(
        "lnd_simnet",
        python_argv(
            "-m",
            "lnd_simnet",
            "serve",
            "--dir",
            str(data_dir),
            "--alice-port",
            str(alice),
            "--bob-port",
            str(bob),
            "--log-level",
            "WARNING",
            *args,
        ),
    )
    await wait_files([data_dir / "network.json"], child, timeout_s=60)
    return Simnet(data_dir, alice, bob, child)


def wallet_env(
    database_url: str, redis_url: str, simnet: Simnet, api_port: int, run_dir: Path, admin_key: str
) -> dict[str, str]:
    """The environment of our API and worker: production-like (bcrypt cost 12), rate limits lifted."""
    return {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "RUN_DIR": str(run_dir),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": secrets.token_urlsafe(48),
        "PREIMAGE_SECRET": secrets.token_urlsafe(48),
        "WEBHOOK_SECRET_KEY": secrets.token_urlsafe(48),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "WORKER_METRICS_PORT": "0",  # one port per worker process; the bench may start two
        "ADMIN_KEY": admin_key,
        "BCRYPT_COST": "12",
        "RATE_LIMIT_LOGIN_PER_IP": "1000000",
        "RATE_LIMIT_LOGIN_PER_USERNAME": "1000000",
        "RATE_LIMIT_REGISTER_PER_IP": "1000000",
        "RATE_LIMIT_PAYMENTS_PER_USER": "1000000",
        "LND_GRPC_HOST": f"127.0.0.1:{simnet.alice_port}",
        "LND_TLS_CERT_PATH": str(simnet.cert("alice")),
        "LND_MACAROON_PATH": str(simnet.macaroon("alice")),
    }


@dataclass(frozen=True)
class ApiChild:
    url: str
    child: Child


async def start_api(children: Children, env: dict[str, str], name: str = "api") -> ApiChild:
    """Our API (``API_WORKERS`` of ``env`` processes, ``python -m api_service`` on
    ``env['API_PORT']``), once /healthz answers."""
    child = children.start(name, python_argv("-m", "api_service"), env=env)
    url = f"http://127.0.0.1:{env['API_PORT']}"
    await wait_http(f"{url}/healthz", child, timeout_s=60)
    return ApiChild(url, child)


def start_worker(children: Children, env: dict[str, str], name: str = "worker") -> Child:
    return children.start(name, python_argv("-m", "lightning_worker"), env=env)


def new_admin_key() -> str:
    return "bench-admin-" + secrets.token_hex(16)


def new_api_port() -> int:
    return free_port()
