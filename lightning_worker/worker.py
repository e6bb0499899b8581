"""arq WorkerSettings for lightning_worker, built from one Settings object.

``build_worker_settings(settings)`` returns the class arq reads (its ``__dict__``); tests pass a
``lightning_factory`` to run the same worker over a fake node. ``lightning_worker.worker.WorkerSettings``
(for ``arq lightning_worker.worker.WorkerSettings [--check]``) is built from ``load_settings()`` on
first access, never at import time.

on_startup builds one typed :class:`WorkerContext` (engine and session pool, Lightning client with
its reused gRPC channel, arq's Redis) under ``ctx["lw"]`` and starts the settlement subscription
as a background task; on_shutdown stops it and closes everything. Jobs and results are JSON
(shared.jobs.SERIALIZERS). Before the node is used at all, its identity is checked against the
database (node_identity.py); another node stops the worker (exit status 3, both pubkeys named).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import func

from lightning_worker import crons, metrics, metrics_endpoint
from lightning_worker.context import (
    CTX_KEY,
    LightningFactory,
    close_context,
    create_context,
    default_lightning_factory,
    get_context,
)
from lightning_worker.invoices import create_invoice
from lightning_worker.lightning import DeferredLightningClient
from lightning_worker.node import node_info
from lightning_worker.node_identity import NodeIdentityMismatch, verify_node_identity
from lightning_worker.payments import pay_invoice
from lightning_worker.subscription import SettlementSubscription
from lightning_worker.webhooks import deliver_webhook
from shared import anomalies, jobs
from shared.config import Settings, load_settings

log = logging.getLogger(__name__)

HEALTH_CHECK_INTERVAL_S = 5
DEFAULT_MAX_TRIES = 25
# A payment may stay in flight for a long time; each run follows it for a bounded window, then
# retries. The stale-row cron revives it should even this run out.
PAY_MAX_TRIES = 2000
CRON_EVERY_5_S = set(range(0, 60, 5))
CRON_EVERY_2_S = set(range(0, 60, 2))
WEBHOOK_MAX_TRIES = 10  # one attempt per run; tries only absorb Postgres/Redis blips (retry_transient)
# Set when the worker must not run (another node); lightning_worker.__main__ exits non-zero with it.
FATAL_ERRORS: list[str] = []


def stop_worker(message: str) -> None:
    """Refuse to go on: log the reason, remember it for the exit status, and stop the worker."""
    if not FATAL_ERRORS:
        log.critical(message)
        FATAL_ERRORS.append(message)
        os.kill(os.getpid(), signal.SIGTERM)  # arq's own graceful shutdown


def job_timeout_s(settings: Settings) -> float:
    """Every job makes a few node calls bounded by lnd_timeout_s (a payment stream is followed
    for at most that long per run). Kept short on purpose: a job of a killed worker is taken over
    when its in-progress key expires, job_timeout + 10 s later."""
    return 4 * settings.lnd_timeout_s + 2


def build_worker_settings(
    settings: Settings,
    *,
    lightning_factory: LightningFactory | None = None,
    lease_ttl_s: float = 5.0,
    run_subscription: bool = True,
) -> type:
    factory = lightning_factory or default_lightning_factory
    timeout_s = job_timeout_s(settings)

    async def on_startup(ctx: dict[str, Any]) -> None:
        context: Any = None

        async def verify(client: Any) -> None:
            info = await client.get_info()
            try:
                await verify_node_identity(
                    context.sessions, info, allow_change=settings.lnd_allow_node_change
                )
            except NodeIdentityMismatch as exc:
                stop_worker(str(exc))
                raise

        lightning = DeferredLightningClient(lambda: factory(settings), verify=verify)
        context = create_context(settings, ctx["redis"], lightning)
        ctx[CTX_KEY] = context
        await metrics_endpoint.start(context)  # metrics (issue 13)
        anomalies.add_observer(metrics.count_anomaly)
        if run_subscription:
            subscription = SettlementSubscription(context, lease_ttl_s=lease_ttl_s)
            metrics.watch_leader(subscription.holding)  # metrics (issue 13)
            context.background.append(asyncio.create_task(subscription.run_forever(), name="settlement"))
        context.background.append(asyncio.create_task(_log_node(context), name="node-probe"))
        log.info(
            "lightning worker started",
            extra={"queue": settings.arq_queue_name, "lnd": settings.lnd_grpc_host},
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if CTX_KEY in ctx:
            await close_context(get_context(ctx))
            del ctx[CTX_KEY]
        log.info("lightning worker stopped")

    cron_opts: dict[str, Any] = {"unique": True, "timeout": timeout_s, "keep_result": 60, "max_tries": 1}
    attrs: dict[str, Any] = {
        "functions": [
            func(create_invoice, name=jobs.CREATE_INVOICE, timeout=timeout_s),
            func(pay_invoice, name=jobs.PAY_INVOICE, timeout=timeout_s, max_tries=PAY_MAX_TRIES),
            func(
                deliver_webhook,
                name=jobs.DELIVER_WEBHOOK,
                timeout=timeout_s,
                max_tries=WEBHOOK_MAX_TRIES,
            ),
            func(node_info, name=jobs.NODE_INFO, timeout=timeout_s, max_tries=1, keep_result=300),
        ],
        "cron_jobs": [
            cron(crons.requeue_stale_rows, second=CRON_EVERY_5_S, run_at_startup=True, **cron_opts),
            cron(crons.expire_invoices, second=CRON_EVERY_5_S, run_at_startup=True, **cron_opts),
            cron(crons.enqueue_due_webhooks, second=CRON_EVERY_2_S, **cron_opts),
            cron(crons.reconcile, second=CRON_EVERY_5_S, run_at_startup=True, **cron_opts),
            cron(crons.purge_idempotency_keys, minute={7, 37}, second={45}, **cron_opts),
        ],
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.arq_queue_name,
        "poll_delay": settings.worker_poll_delay_s,
        "max_jobs": settings.worker_max_jobs,
        "keep_result": settings.job_result_retention_s,
        "job_timeout": timeout_s,
        "max_tries": DEFAULT_MAX_TRIES,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry_jobs": True,
        "allow_abort_jobs": False,
        **jobs.SERIALIZERS,
    }
    metrics.instrument_jobs(attrs)  # metrics (issue 13): jobs_total, job_duration_seconds
    return type("WorkerSettings", (), attrs)


async def _log_node(context: Any) -> None:
    """Say once, at start, whether the node answers; never stop the worker over it."""
    try:
        info = await context.lightning.get_info()
        log.info(
            "LND reachable",
            extra={"alias": info.alias, "network": info.network, "pubkey": info.identity_pubkey},
        )
    except NodeIdentityMismatch:
        pass  # stop_worker has said why and is stopping the worker
    except Exception as exc:
        log.warning("LND not reachable yet (%s: %s); jobs will retry", type(exc).__name__, exc)


_settings_cls: type | None = None


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        global _settings_cls
        if _settings_cls is None:
            _settings_cls = build_worker_settings(load_settings())
        return _settings_cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
