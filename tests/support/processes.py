"""Real service processes for integration and e2e tests.

- :func:`service_env` — the environment a service subprocess needs to use the *test* database and
  Redis db with the same secrets as ``tests.support.env.make_settings()`` (so tokens minted in the
  test with ``auth_headers(self.settings, ...)`` are accepted by the process).
- :func:`managed_process` — an async context manager that starts any command with its stdout and
  stderr captured to a temp log file, waits for ``ready()`` with a deadline (failing at once if the
  process exits), yields a :class:`ManagedProcess`, and on exit sends SIGTERM, then SIGKILL after
  ``stop_timeout_s``. When startup or the body fails, the last lines of the log are printed (pytest
  shows them with the failure) and the log file is kept.
- :func:`api_process` — ``python -m api_service`` on a free port, ready when ``/readyz`` answers 200;
  yields the base URL (``http://127.0.0.1:PORT``).

Example (a worker, for the wallet tests)::

    async with managed_process([sys.executable, "-m", "lightning_worker"], service_env(),
                               name="worker", ready=my_probe) as worker:
        ...
        print(worker.log_tail())
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from devtools.netutil import free_port
from shared.config import Settings
from tests.support import env as test_env

REPO_ROOT = test_env.REPO_ROOT
Ready = Callable[[], Awaitable[bool]]
# A developer's shell may hold these; a test decides them itself.
_NOT_INHERITED = {"ADMIN_KEY", "SEED_ADMIN_PASSWORD", "SEED_DEMO_PASSWORD", "API_HOST", "API_PORT"}


@dataclass
class ManagedProcess:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def service_env(
    overrides: Mapping[str, str] | None = None, *, settings: Settings | None = None
) -> dict[str, str]:
    """Environment variables for a service subprocess pointed at the test database and Redis.

    ``settings`` defaults to ``tests.support.env.make_settings()``; its database, Redis, secrets,
    admin key and bcrypt cost are passed on. ``overrides`` win over everything."""
    settings = settings or test_env.make_settings()
    values = {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "PREIMAGE_SECRET": settings.preimage_secret.get_secret_value(),
        "WEBHOOK_SECRET_KEY": settings.webhook_secret_key.get_secret_value(),
        "WEBHOOK_ALLOWED_NETWORKS": settings.webhook_allowed_networks,
        "WORKER_METRICS_PORT": str(settings.worker_metrics_port),
        "BCRYPT_COST": str(settings.bcrypt_cost),
        "RUN_DIR": str(settings.run_dir),
        "RATE_LIMIT_LOGIN_PER_IP": str(settings.rate_limit_login_per_ip),
        "RATE_LIMIT_LOGIN_PER_USERNAME": str(settings.rate_limit_login_per_username),
        "RATE_LIMIT_REGISTER_PER_IP": str(settings.rate_limit_register_per_ip),
        "RATE_LIMIT_PAYMENTS_PER_USER": str(settings.rate_limit_payments_per_user),
    }
    if settings.admin_key is not None:
        values["ADMIN_KEY"] = settings.admin_key.get_secret_value()
    if settings.metrics_token is not None:
        values["METRICS_TOKEN"] = settings.metrics_token.get_secret_value()
    environ = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
    return {**environ, **values, **(overrides or {})}


async def _stop(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _report(managed: ManagedProcess, why: str) -> str:
    text = (
        f"--- {managed.name} (pid {managed.pid}) {why}; log {managed.log_path}, last lines: ---\n"
        f"{managed.log_tail()}\n--- end of {managed.name} log ---"
    )
    print(text, file=sys.stderr)
    return text


@contextlib.asynccontextmanager
async def managed_process(
    cmd: Sequence[str],
    env: Mapping[str, str],
    *,
    name: str,
    ready: Ready | None = None,
    ready_timeout_s: float = 30.0,
    stop_timeout_s: float = 10.0,
    cwd: Path = REPO_ROOT,
) -> AsyncIterator[ManagedProcess]:
    """Run ``cmd`` for the duration of the block (see the module docstring)."""
    fd, log_name = tempfile.mkstemp(prefix=f"lw-{name}-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(fd, "wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *cmd,
            env=dict(env),
            cwd=str(cwd),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    managed = ManagedProcess(name=name, process=process, log_path=log_path)
    failed = False
    try:
        if ready is not None:
            await _wait_ready(managed, ready, ready_timeout_s)
        yield managed
    except BaseException:
        failed = True
        _report(managed, "while the test failed")
        raise
    finally:
        await _stop(process, stop_timeout_s)
        if not failed:
            log_path.unlink(missing_ok=True)  # noqa: ASYNC240 - a tiny local file


async def _wait_ready(managed: ManagedProcess, ready: Ready, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if managed.returncode is not None:
            why = f"exited with code {managed.returncode} before it was ready"
            raise AssertionError(_report(managed, why))
        try:
            if await ready():
                return
        except (TimeoutError, OSError, aiohttp.ClientError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(_report(managed, f"was not ready within {timeout_s}s"))
        await asyncio.sleep(0.05)


def http_ok(url: str, *, timeout_s: float = 1.0) -> Ready:
    """A readiness probe: ``GET url`` answers 200."""

    async def probe() -> bool:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
            async with http.get(url) as response:
                return response.status == 200

    return probe


@contextlib.asynccontextmanager
async def api_process(
    settings_env: Mapping[str, str] | None = None, *, ready_timeout_s: float = 30.0
) -> AsyncIterator[str]:
    """``python -m api_service`` on a free port of 127.0.0.1; yields its base URL once /readyz is 200.

    ``settings_env`` overrides the variables of :func:`service_env` (e.g. ``{"BCRYPT_COST": "10"}``)."""
    port = free_port()
    environment = service_env({**(settings_env or {}), "API_HOST": "127.0.0.1", "API_PORT": str(port)})
    base_url = f"http://127.0.0.1:{port}"
    async with managed_process(
        [sys.executable, "-m", "api_service"],
        environment,
        name="api",
        ready=http_ok(f"{base_url}/readyz"),
        ready_timeout_s=ready_timeout_s,
    ):
        yield base_url
