"""What the soak runs, each process started directly so a fault can kill and restart it.

Postgres is the server of the given database URL (the database itself is dropped, created and
migrated at the start, and left in place for inspection). Redis is a private ``redis-server`` under
the run folder (``devtools.private_redis``): the soak restarts it, so it is never a shared one.
lnd_simnet (alice: our node, bob: the world), two API processes and two workers, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from bench import stack as bench_stack
from bench.procs import Child, Children, free_port
from devtools.private_redis import start_private_redis, stop_private_redis
from lightning_worker.lease import SETTLEMENT_LEASE_KEY, holder_pid

API_COUNT = 2
WORKER_COUNT = 2
# Short waits and sweeps, so a fault's consequences play out within a soak of minutes; the rest is
# the production default. bcrypt cost 10 (not 12): registrations and logins are a tenth of the mix
# and must not take the two cores from everything else.
SOAK_SETTINGS = {
    "LOG_LEVEL": "WARNING",
    "PYTHONUNBUFFERED": "1",
    "BCRYPT_COST": "10",
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "LNDHUB_ALLOW_CREATE": "true",
    "PAYMENT_WAIT_S": "3",
    "INVOICE_WAIT_S": "3",
    "LND_TIMEOUT_S": "5",
    "STALE_ROW_AFTER_S": "5",
    "SETTLEMENT_SWEEP_S": "10",
    "RECONCILE_EVERY_S": "10",
    "RECONCILE_GRACE_S": "30",
    "RATE_LIMIT_LNURL_PER_IP": "1000000",
    "DB_POOL_SIZE": "8",
}


@dataclass
class Stack:
    run_dir: Path
    database_url: str
    children: Children
    admin_key: str = field(default_factory=lambda: "soak-admin-" + secrets.token_hex(16))
    redis_url: str = ""
    simnet: bench_stack.Simnet | None = None
    env: dict[str, str] = field(default_factory=dict)
    apis: dict[str, bench_stack.ApiChild] = field(default_factory=dict)
    workers: dict[str, Child] = field(default_factory=dict)
    api_ports: dict[str, int] = field(default_factory=dict)

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports.values()]

    async def start(self) -> None:
        await bench_stack.recreate_database(self.database_url, self.run_dir / "alembic.log")
        self.redis_url, _ = start_private_redis(self.run_dir)
        self.simnet = await bench_stack.start_simnet(self.children, self.run_dir / "simnet")
        self.env = {
            **bench_stack.wallet_env(
                self.database_url, self.redis_url, self.simnet, 8000, self.run_dir, self.admin_key
            ),
            **SOAK_SETTINGS,
        }
        for index in range(1, WORKER_COUNT + 1):
            self.start_worker(f"worker-{index}")
        for index in range(1, API_COUNT + 1):
            self.api_ports[f"api-{index}"] = free_port()
        await asyncio.gather(*(self.start_api(name) for name in self.api_ports))
        await self.wait_workers_healthy()

    async def start_api(self, name: str) -> None:
        env = {**self.env, "API_PORT": str(self.api_ports[name])}
        self.apis[name] = await bench_stack.start_api(self.children, env, name)

    def start_worker(self, name: str) -> None:
        self.workers[name] = bench_stack.start_worker(self.children, self.env, name)

    async def wait_workers_healthy(self, timeout_s: float = 60.0) -> None:
        key = "arq:queue:health-check"
        async with self.redis() as redis:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while not await redis.exists(key):
                for child in self.workers.values():
                    if not child.alive():
                        raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError("no worker recorded its health within the deadline")
                await asyncio.sleep(0.2)

    @contextlib.asynccontextmanager
    async def redis(self):
        client = Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            yield client
        finally:
            await client.aclose()

    # -- faults -----------------------------------------------------------------------------------

    def kill(self, child: Child) -> None:
        """SIGKILL the child's process group, no grace."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.popen.pid, signal.SIGKILL)
        child.popen.wait(10)
        if child in self.children.children:
            self.children.children.remove(child)

    def stop_redis(self) -> None:
        stop_private_redis(self.run_dir)

    def start_redis(self) -> None:
        url, _ = start_private_redis(self.run_dir)
        if url != self.redis_url:
            raise RuntimeError(f"Redis came back on another port ({url}, was {self.redis_url})")

    async def restart_simnet(self) -> None:
        assert self.simnet is not None
        ports = (self.simnet.alice_port, self.simnet.bob_port)
        self.children.stop(self.simnet.child)
        self.simnet = await bench_stack.start_simnet(self.children, self.simnet.data_dir, ports=ports)

    async def lease_holder(self) -> tuple[str, Child] | None:
        """The worker holding the settlement lease (its pid is in the lease token)."""
        async with self.redis() as redis:
            token = await redis.get(SETTLEMENT_LEASE_KEY)
        pid = holder_pid(token.decode() if token else None)
        for name, child in self.workers.items():
            if child.popen.pid == pid and child.alive():
                return name, child
        return None

    def exited(self) -> list[dict]:
        """Processes that ended by themselves (nothing here should, whatever the faults)."""
        running = [*self.workers.values(), *(api.child for api in self.apis.values())]
        running += [self.simnet.child] if self.simnet else []
        return [
            {"process": child.name, "returncode": child.popen.returncode, "log_tail": child.log_tail(6)}
            for child in running
            if not child.alive()
        ]

    def log_files(self) -> list[Path]:
        return sorted(self.run_dir.glob("*.log"))
