"""Periodic jobs: the safety net under the queue.

- ``requeue_stale_rows``: rows are the truth. A pending invoice, or a pending / in-flight payment,
  not touched for ``stale_row_after_s`` gets its job enqueued again under the same id (a lost job:
  Redis flushed or restarted, a worker gave up after max tries). A job still queued or running is
  left alone.
- ``expire_invoices``: open invoices past expires_at become ``expired``.
- ``enqueue_due_webhooks``: outbox rows whose next attempt is due.
- ``reconcile``: before the first settlement is recorded, ask the node about open invoices (the
  stream replays nothing for cursor 0); and check the ledger's invariants, logging any breach.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text

from lightning_worker.context import get_context
from lightning_worker.queue import ensure_enqueued
from lightning_worker.retry import retry_transient
from lightning_worker.subscription import reconcile_open_invoices
from shared import jobs, ledger
from shared.events import RowEvent

log = logging.getLogger(__name__)

BATCH_LIMIT = 1000


@retry_transient
async def requeue_stale_rows(ctx: dict[str, Any]) -> dict[str, Any]:
    context = get_context(ctx)
    params = {"age_s": context.settings.stale_row_after_s, "limit": BATCH_LIMIT}
    async with context.sessions() as session:
        invoices = (
            (
                await session.execute(
                    text(
                        "SELECT id FROM invoices WHERE state = 'pending'"
                        " AND updated_at < now() - make_interval(secs => :age_s)"
                        " ORDER BY updated_at LIMIT :limit"
                    ),
                    params,
                )
            )
            .scalars()
            .all()
        )
        payments = (
            (
                await session.execute(
                    text(
                        "SELECT id FROM payments WHERE state IN ('pending', 'in_flight')"
                        " AND updated_at < now() - make_interval(secs => :age_s)"
                        " ORDER BY updated_at LIMIT :limit"
                    ),
                    params,
                )
            )
            .scalars()
            .all()
        )
    outcome: dict[str, int] = {"enqueued": 0, "revived": 0, "queued": 0}
    queue = context.settings.arq_queue_name
    stale = (
        (jobs.CREATE_INVOICE, jobs.create_invoice_job_id, invoices),
        (jobs.PAY_INVOICE, jobs.pay_invoice_job_id, payments),
    )
    for function, job_id, row_ids in stale:
        for row_id in row_ids:
            status = await ensure_enqueued(
                context.redis, function, job_id(row_id), str(row_id), queue_name=queue
            )
            outcome[status] += 1
    if outcome["enqueued"] or outcome["revived"]:
        log.info("re-enqueued stale rows: %s", outcome)
    return outcome


@retry_transient
async def expire_invoices(ctx: dict[str, Any]) -> dict[str, Any]:
    context = get_context(ctx)
    async with context.sessions() as session, session.begin():
        rows = (
            await session.execute(
                text(
                    "UPDATE invoices SET state = 'expired', updated_at = now()"
                    " WHERE id IN (SELECT id FROM invoices WHERE state = 'open' AND expires_at < now()"
                    "              ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
                    " AND state = 'open' RETURNING id, user_id"
                ),
                {"limit": BATCH_LIMIT},
            )
        ).all()
    await context.publish(RowEvent("invoice", row.id, "expired", row.user_id) for row in rows)
    return {"expired": len(rows)}


@retry_transient
async def enqueue_due_webhooks(ctx: dict[str, Any]) -> dict[str, Any]:
    context = get_context(ctx)
    async with context.sessions() as session:
        ids = (
            (
                await session.execute(
                    text(
                        "SELECT id FROM webhook_deliveries"
                        " WHERE state = 'pending' AND next_attempt_at <= now()"
                        " ORDER BY next_attempt_at LIMIT :limit"
                    ),
                    {"limit": BATCH_LIMIT},
                )
            )
            .scalars()
            .all()
        )
    enqueued = 0
    for delivery_id in ids:
        status = await ensure_enqueued(
            context.redis,
            jobs.DELIVER_WEBHOOK,
            jobs.deliver_webhook_job_id(delivery_id),
            str(delivery_id),
            queue_name=context.settings.arq_queue_name,
        )
        enqueued += status != "queued"
    return {"due": len(ids), "enqueued": enqueued}


@retry_transient
async def reconcile(ctx: dict[str, Any]) -> dict[str, Any]:
    context = get_context(ctx)
    async with context.sessions() as session:
        has_cursor = await session.scalar(
            text("SELECT EXISTS (SELECT 1 FROM settlement_cursor WHERE settle_index > 0)")
        )
    if not has_cursor:
        await reconcile_open_invoices(context)
    async with context.sessions() as session:
        entries, balances = await ledger.ledger_totals(session)
        bad_holds = (
            await session.execute(
                text(
                    "SELECT a.id, a.held_msat, coalesce(sum(p.hold_msat), 0) AS active"
                    "  FROM accounts a LEFT JOIN payments p"
                    "    ON p.account_id = a.id AND p.state IN ('pending', 'in_flight')"
                    " GROUP BY a.id HAVING a.held_msat <> coalesce(sum(p.hold_msat), 0)"
                )
            )
        ).all()
    if entries != 0 or balances != 0:
        log.error("LEDGER OUT OF BALANCE: entries sum %d, balances sum %d", entries, balances)
    for row in bad_holds:
        log.error(
            "HOLD MISMATCH on account %s: held %d, active payments hold %d", row.id, row.held_msat, row.active
        )
    return {
        "ledger_ok": entries == 0 and balances == 0,
        "hold_mismatches": len(bad_holds),
        "reconciled_open_invoices": not has_cursor,
    }
