"""Job ``deliver_webhook``: one signed attempt of an outbox row (webhook_deliveries) per run.

At-least-once: the row is written in the transaction of the event it announces
(webhook_outbox.py); receivers deduplicate by ``webhook-id``, which is the row's ``webhook_id`` on
every attempt and redelivery. Every attempt is signed the Standard Webhooks way
(shared/webhook_secrets.py) over the exact bytes sent, and made by webhook_http.py (SSRF rules,
timeouts, bounded read).

The schedule lives in the row, not in Redis, so it survives worker restarts and a Redis flush: a run
first CLAIMS a due attempt with a conditional UPDATE (``state = 'pending' AND next_attempt_at <=
now()``) that counts the attempt and moves ``next_attempt_at`` one lease ahead: two runs cannot make
the same attempt, and if the worker dies mid-attempt the row is due again when the lease ends. The
outcome is then recorded only if the row still holds that lease (a redelivery request in between
resets ``next_attempt_at`` and wins). A 2xx ends the delivery; a refused target fails it at once;
any other failure schedules the next attempt after the row's round count (:func:`retry_delay_s`),
and after the last one the delivery is ``failed``. The cron ``enqueue_due_webhooks`` runs every
2 s and enqueues due rows; settlement events are also enqueued right after their commit.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from yarl import URL

from lightning_worker import metrics, webhook_http
from lightning_worker.context import WorkerContext, get_context
from lightning_worker.queue import ensure_enqueued
from lightning_worker.retry import retry_transient
from shared import jobs
from shared.webhook_secrets import SecretBox, signature_header, signing_secrets

log = logging.getLogger(__name__)

ATTEMPT_LEASE_S = 60.0  # longer than one attempt can take (10 s) plus the database work around it
JITTER = 0.1  # each delay is stretched or shrunk by up to 10 %, so retries of many events spread out
USER_AGENT = "lightning-wallet-webhooks/2"

_CLAIM_SQL = text(
    """
    UPDATE webhook_deliveries
       SET attempts = attempts + 1, attempts_in_round = attempts_in_round + 1, last_attempt_at = now(),
           next_attempt_at = now() + make_interval(secs => :lease_s)
     WHERE id = :id AND state = 'pending' AND next_attempt_at <= now()
    RETURNING id, webhook_id, user_id, url, payload, attempts, attempts_in_round, next_attempt_at
    """
)
_RECORD_SQL = text(
    """
    UPDATE webhook_deliveries
       SET state = :state, last_status_code = :status_code, last_error = :error,
           next_attempt_at = CASE WHEN :state = 'pending' THEN now() + make_interval(secs => :retry_in_s)
                                  ELSE next_attempt_at END,
           delivered_at = CASE WHEN :state = 'delivered' THEN now() ELSE delivered_at END
     WHERE id = :id AND state = 'pending' AND next_attempt_at = :lease_until
    RETURNING state
    """
)


@dataclass(frozen=True, slots=True)
class Claim:
    id: int
    webhook_id: str
    user_id: Any
    url: str
    payload: Any
    attempts: int
    attempts_in_round: int
    next_attempt_at: datetime


def retry_delay_s(delays: Sequence[float], attempts_in_round: int) -> float | None:
    """Seconds to wait after the n-th failed attempt of a round, with jitter; None after the last.
    With the default schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, so 8 attempts in ~27.5 h."""
    if attempts_in_round > len(delays):
        return None
    return delays[attempts_in_round - 1] * random.uniform(1 - JITTER, 1 + JITTER)


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
    async with context.sessions() as session, session.begin():
        row = (
            await session.execute(_CLAIM_SQL, {"id": int(delivery_id), "lease_s": ATTEMPT_LEASE_S})
        ).one_or_none()
        if row is None:
            return {"state": "not_due"}
        claim = Claim(**row._mapping)
        secrets = await signing_secrets(session, SecretBox.from_settings(context.settings), claim.user_id)
    body = json.dumps(claim.payload, separators=(",", ":"), ensure_ascii=False)
    result = await webhook_http.post(
        claim.url,
        body.encode(),
        signed_headers(secrets, claim.webhook_id, body),
        allowed=context.settings.webhook_networks,
        resolver=context.webhook_resolver,
    )
    return await _record(context, claim, result)


def signed_headers(secrets: list[str], webhook_id: str, body: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header(secrets, webhook_id, now, body),
    }


async def _record(context: WorkerContext, claim: Claim, result: webhook_http.AttemptResult) -> dict[str, Any]:
    retry_in_s: float | None = None
    if result.delivered:
        state = "delivered"
    elif result.refused:
        state = "failed"
    else:
        retry_in_s = retry_delay_s(context.settings.webhook_retry_delays_s, claim.attempts_in_round)
        state = "failed" if retry_in_s is None else "pending"
    async with context.sessions() as session, session.begin():
        recorded = await session.scalar(
            _RECORD_SQL,
            {
                "id": claim.id,
                "state": state,
                "status_code": result.status_code,
                "error": result.error,
                "retry_in_s": retry_in_s or 0.0,
                "lease_until": claim.next_attempt_at,
            },
        )
    if recorded is None:
        state = "superseded"  # redelivery was requested while this attempt ran; that one counts
    else:
        metrics.count_webhook_delivery({"pending": "retry"}.get(state, state))  # metrics (issue 13)
    if not result.delivered:
        log.info(
            "webhook %s to %s, attempt %d: %s (%s)",
            claim.id,
            _host(claim.url),
            claim.attempts,
            result.error,
            state,
        )
    return {"state": state, "attempts": claim.attempts, "statusCode": result.status_code}


def _host(url: str) -> str | None:
    try:
        return URL(url).host
    except ValueError:
        return None
