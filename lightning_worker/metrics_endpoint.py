"""The worker's own /metrics endpoint, and the sample that keeps its money gauges current.

:func:`start` (on_startup) binds ``WORKER_METRICS_HOST:WORKER_METRICS_PORT``, a small aiohttp server
in the worker's own event loop, and logs the address it got (port 0 asks the kernel for a free one:
tests run several workers, and so can one host). A port already taken stops the worker's start-up
loudly rather than leaving it unobservable. It then samples Postgres (one statement) and the node
(ChannelBalance) every ``WORKER_METRICS_SAMPLE_S`` until shutdown cancels it, which closes the server.

The endpoint asks for ``Authorization: Bearer $METRICS_TOKEN`` when that is set, like the API's.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import text

from lightning_worker import metrics
from lightning_worker.context import WorkerContext
from shared.metrics import exposition, scrape_allowed

log = logging.getLogger(__name__)

TOKEN = web.AppKey("metrics_token", SecretStr)
_SAMPLE_SQL = text(
    """
    SELECT (SELECT coalesce(sum(balance_msat), 0) FROM accounts WHERE kind = 'user') AS liabilities_msat,
           (SELECT coalesce(sum(balance_msat), 0) FROM accounts WHERE kind = 'treasury') AS treasury_msat,
           count(*) AS in_flight,
           coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest_s
      FROM payments
     WHERE state IN ('pending', 'in_flight')
    """
)


async def _metrics(request: web.Request) -> web.Response:
    if not scrape_allowed(request.headers.get("Authorization"), request.app.get(TOKEN)):
        return web.Response(
            status=401,
            text="send Authorization: Bearer <METRICS_TOKEN>\n",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body, content_type = exposition(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


async def start(context: WorkerContext) -> None:
    """Serve /metrics and start the sampler (a background task of ``context``)."""
    settings = context.settings
    app = web.Application()
    if settings.metrics_token is not None:
        app[TOKEN] = settings.metrics_token
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.worker_metrics_host, settings.worker_metrics_port).start()
    except BaseException:
        await runner.cleanup()
        raise
    host, port = runner.addresses[0][:2]
    log.info(
        "worker metrics on http://%s:%d/metrics",
        host,
        port,
        extra={"metrics_host": host, "metrics_port": port},
    )
    context.background.append(asyncio.create_task(_sample_until_cancelled(context, runner), name="metrics"))


async def _sample_until_cancelled(context: WorkerContext, runner: web.AppRunner) -> None:
    failing: tuple[str, ...] = ()
    try:
        while True:
            now_failing = await sample(context)
            if now_failing != failing:  # say it once per change, not every interval
                if now_failing:
                    log.warning("metrics sample: no answer from %s (gauges show NaN)", ", ".join(now_failing))
                else:
                    log.info("metrics sample: every source answers again")
                failing = now_failing
            await asyncio.sleep(context.settings.worker_metrics_sample_s)
    finally:
        await runner.cleanup()


async def sample(context: WorkerContext) -> tuple[str, ...]:
    """Refresh the sampled gauges; a source that fails leaves its gauges at NaN. Returns the failed ones."""
    failed: list[str] = []
    try:
        async with context.sessions() as session:
            row = (await session.execute(_SAMPLE_SQL)).one()
    except Exception:
        log.debug("metrics sample: Postgres", exc_info=True)
        metrics.forget_ledger_sample()
        failed.append("postgres")
    else:
        metrics.record_ledger_sample(
            liabilities_msat=int(row.liabilities_msat),
            treasury_msat=int(row.treasury_msat),
            in_flight=int(row.in_flight),
            oldest_in_flight_s=float(row.oldest_s),
        )
    try:
        balance = await context.lightning.channel_balance()
    except Exception:
        log.debug("metrics sample: ChannelBalance", exc_info=True)
        metrics.record_node_balance(None)
        failed.append("the node")
    else:
        metrics.record_node_balance(balance.local_msat)
    return tuple(failed)
