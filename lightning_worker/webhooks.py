"""Job ``deliver_webhook``: POST an outbox row (webhook_deliveries) to its URL.

At-least-once: the outbox row is written in the same transaction as the settlement it announces;
the receiver dedupes by the ``X-Webhook-Id`` header. One HTTP attempt per job run: a failure
records the error and the next attempt time on the row and retries the job with backoff, up to
MAX_ATTEMPTS, then the row is ``failed``. Only http(s) URLs; redirects are never followed (a
redirect is a failed attempt), so a webhook cannot be bounced to another host.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from arq import Retry
from sqlalchemy import select, update

from lightning_worker.context import WorkerContext, get_context
from lightning_worker.queue import ensure_enqueued
from lightning_worker.retry import backoff_s, retry_transient
from shared import jobs
from shared.db.models import WebhookDelivery

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
TIMEOUT_S = 5.0
RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0
MAX_ERROR_CHARS = 300


def is_allowed_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def enqueue_deliveries(context: WorkerContext, delivery_ids: Iterable[int]) -> None:
    """Best effort right after a commit; the webhook cron enqueues whatever this misses."""
    for delivery_id in delivery_ids:
        try:
            await ensure_enqueued(
                context.redis,
                jobs.DELIVER_WEBHOOK,
                jobs.deliver_webhook_job_id(delivery_id),
                str(delivery_id),
                queue_name=context.settings.arq_queue_name,
            )
        except Exception:
            log.warning("could not enqueue webhook delivery %s", delivery_id, exc_info=True)


@retry_transient
async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> dict[str, Any]:
    context = get_context(ctx)
    async with context.sessions() as session:
        row = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == int(delivery_id)))
    if row is None:
        return {"state": "missing"}
    if row.state != "pending":
        return {"state": row.state}
    if not is_allowed_url(row.url):
        return await _record(context, row, state="failed", error="only http and https URLs are delivered")

    error = await _post(context, row)
    if error is None:
        return await _record(context, row, state="delivered", error=None)
    attempts = row.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        return await _record(context, row, state="failed", error=error)
    delay = backoff_s(attempts, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S)
    await _record(context, row, state="pending", error=error, retry_in_s=delay)
    raise Retry(defer=delay)


async def _post(context: WorkerContext, row: WebhookDelivery) -> str | None:
    """One attempt; None on a 2xx answer, else what went wrong."""
    headers = {
        "User-Agent": "lightning-wallet-webhooks/1",
        "X-Webhook-Id": str(row.id),
        "X-Webhook-Event": row.event,
    }
    try:
        async with context.http().post(
            row.url,
            json=row.payload,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
        ) as response:
            await response.read()
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


async def _record(
    context: WorkerContext, row: WebhookDelivery, *, state: str, error: str | None, retry_in_s: float = 0.0
) -> dict[str, Any]:
    now = datetime.now(UTC)
    values: dict[str, Any] = {"state": state, "attempts": WebhookDelivery.attempts + 1, "last_error": error}
    if state == "delivered":
        values["delivered_at"] = now
    if state == "pending":
        values["next_attempt_at"] = now + timedelta(seconds=retry_in_s)
    async with context.sessions() as session, session.begin():
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row.id, WebhookDelivery.state == "pending")
            .values(**values)
        )
    if error:
        log.info("webhook %s to %s: %s (%s)", row.id, urlsplit(row.url).hostname, error, state)
    return {"state": state, "attempts": row.attempts + 1}
