"""The worker's typed context: one object built in on_startup, stored under one arq ctx key.

Jobs receive arq's ``ctx`` dict; :func:`get_context` returns the :class:`WorkerContext` in it, so no
job reads loose string keys. Tests build the same object with :func:`create_context` and a fake
Lightning client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lightning_worker.webhook_http import Resolver, system_resolver
from shared import ledger
from shared.config import Settings
from shared.db.engine import create_engine, create_sessionmaker
from shared.events import CHANNEL, RowEvent
from shared.lightning.interface import LightningClient

log = logging.getLogger(__name__)

CTX_KEY = "lw"
LightningFactory = Callable[[Settings], LightningClient]


@dataclass(frozen=True, slots=True)
class SystemAccounts:
    treasury: int
    fees: int
    external: int


@dataclass(eq=False)
class WorkerContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    lightning: LightningClient
    redis: Redis  # arq's ArqRedis pool in a running worker (enqueue_job available)
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    # How webhook hosts are resolved (tests put a stub here; see lightning_worker/webhook_http.py).
    webhook_resolver: Resolver = system_resolver
    _accounts: SystemAccounts | None = None

    async def system_accounts(self) -> SystemAccounts:
        """The ids of the system accounts (created by the migration; they never change)."""
        if self._accounts is None:
            async with self.sessions() as session:
                self._accounts = SystemAccounts(
                    treasury=await ledger.system_account_id(session, "treasury"),
                    fees=await ledger.system_account_id(session, "fees"),
                    external=await ledger.system_account_id(session, "external"),
                )
        return self._accounts

    async def publish(self, events: Iterable[RowEvent]) -> None:
        """Announce committed state changes. Events are hints (the row is the truth), so a Redis
        failure here is logged, never raised: the job must not be retried for a lost hint."""
        batch = list(events)
        if not batch:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in batch:
                    pipe.publish(CHANNEL, event.encode())
                await pipe.execute()
        except Exception:
            log.warning("could not publish %d row event(s)", len(batch), exc_info=True)


def get_context(ctx: dict[str, Any]) -> WorkerContext:
    context = ctx.get(CTX_KEY)
    if not isinstance(context, WorkerContext):
        raise RuntimeError("worker context missing: on_startup did not run")
    return context


def default_lightning_factory(settings: Settings) -> LightningClient:
    """The gRPC client from settings. The channel connects lazily, so a node that is not up yet
    does not stop the worker from starting; jobs retry until it answers."""
    from shared.lightning.grpc_client import GrpcLightningClient

    macaroon: Any = (
        settings.lnd_macaroon_hex.get_secret_value()
        if settings.lnd_macaroon_hex
        else settings.lnd_macaroon_path
    )
    return GrpcLightningClient.from_paths(
        settings.lnd_grpc_host,
        settings.lnd_tls_cert_path,
        macaroon,
        timeout_s=settings.lnd_timeout_s,
        keepalive_time_s=settings.lnd_keepalive_time_s,
        keepalive_timeout_s=settings.lnd_keepalive_timeout_s,
    )


def create_context(settings: Settings, redis: Redis, lightning: LightningClient) -> WorkerContext:
    engine = create_engine(settings)
    return WorkerContext(
        settings=settings,
        engine=engine,
        sessions=create_sessionmaker(engine),
        lightning=lightning,
        redis=redis,
    )


async def close_context(context: WorkerContext) -> None:
    for task in context.background:
        task.cancel()
    for task in context.background:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    context.background.clear()
    try:
        await context.lightning.close()
    finally:
        await context.engine.dispose()
