"""Faults on a seeded schedule while the workload runs; each one is recorded with its time window.

Kinds: ``worker_kill`` (SIGKILL a worker, start it again), ``api_kill`` (SIGKILL an API process,
start it again on its port), ``redis_restart`` (stop the private redis-server, start it empty on the
same port), ``simnet_restart`` (SIGTERM lnd_simnet, start it on the same ports and data), and
``pg_terminate`` (``pg_terminate_backend`` of every backend of the soak database), each
``rounds`` times; ``lease_freeze`` once: SIGSTOP the worker holding the settlement lease for longer
than the lease TTL, then SIGCONT. The first and last tenth of the load stay fault-free.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.soak.stack import Stack
from bench.stack import asyncpg_dsn

KINDS = ("worker_kill", "api_kill", "redis_restart", "simnet_restart", "pg_terminate", "lease_freeze")
REPEATED = KINDS[:-1]
DOWN_S = (0.5, 2.0)  # how long a killed process or Redis stays down
LEASE_FREEZE_S = 9.0  # the lease TTL is 5 s: another worker takes over meanwhile


@dataclass
class Fault:
    kind: str
    started: float
    ended: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def schedule(rng: random.Random, load_s: float, rounds: int) -> list[tuple[float, str]]:
    """(offset_s, kind) pairs: each repeated kind ``rounds`` times and one lease freeze, spread
    evenly over the middle of the load with seeded jitter and order."""
    kinds = [kind for _ in range(rounds) for kind in rng.sample(REPEATED, len(REPEATED))]
    kinds.insert(
        rng.randrange(len(kinds) // 3, max(len(kinds) // 3 + 1, 2 * len(kinds) // 3)), "lease_freeze"
    )
    start, end = 0.1 * load_s, 0.85 * load_s
    step = (end - start) / len(kinds)
    return [(start + i * step + rng.uniform(0, step * 0.3), kind) for i, kind in enumerate(kinds)]


@dataclass
class Injector:
    stack: Stack
    rng: random.Random
    on_simnet_restart: Callable[[], Awaitable[None]]
    faults: list[Fault] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    async def run(self, plan: list[tuple[float, str]]) -> None:
        began = time.monotonic()
        for offset_s, kind in plan:
            await asyncio.sleep(max(0.0, began + offset_s - time.monotonic()))
            fault = Fault(kind, time.time())
            try:
                await getattr(self, kind)(fault)
            except Exception as exc:  # a fault that could not be injected is reported, not hidden
                self.errors.append({"kind": kind, "error": repr(exc)})
            fault.ended = time.time()
            self.faults.append(fault)

    async def down_for(self) -> None:
        await asyncio.sleep(self.rng.uniform(*DOWN_S))

    async def worker_kill(self, fault: Fault) -> None:
        name = self.rng.choice(sorted(self.stack.workers))
        fault.detail = {"process": name, "pid": self.stack.workers[name].popen.pid}
        self.stack.kill(self.stack.workers[name])
        await self.down_for()
        self.stack.start_worker(name)

    async def api_kill(self, fault: Fault) -> None:
        name = self.rng.choice(sorted(self.stack.apis))
        fault.detail = {"process": name, "pid": self.stack.apis[name].child.popen.pid}
        self.stack.kill(self.stack.apis[name].child)
        await self.down_for()
        await self.stack.start_api(name)

    async def redis_restart(self, fault: Fault) -> None:
        await asyncio.to_thread(self.stack.stop_redis)
        await self.down_for()
        await asyncio.to_thread(self.stack.start_redis)

    async def simnet_restart(self, fault: Fault) -> None:
        await asyncio.to_thread(self.stack.children.stop, self.stack.simnet.child)
        await self.down_for()
        await self.stack.restart_simnet()
        await self.on_simnet_restart()

    async def pg_terminate(self, fault: Fault) -> None:
        parts = urlsplit(asyncpg_dsn(self.stack.database_url))
        name = parts.path.lstrip("/")
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            terminated = await admin.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
                name,
            )
        finally:
            await admin.close()
        fault.detail = {"backends": terminated}

    async def lease_freeze(self, fault: Fault) -> None:
        holder = await self.stack.lease_holder()
        if holder is None:
            raise RuntimeError("no worker holds the settlement lease")
        name, child = holder
        fault.detail = {"process": name, "pid": child.popen.pid, "frozen_s": LEASE_FREEZE_S}
        os.kill(child.popen.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(LEASE_FREEZE_S)
        finally:
            os.kill(child.popen.pid, signal.SIGCONT)
        after = await self.stack.lease_holder()
        fault.detail["holder_after"] = after[0] if after else None
