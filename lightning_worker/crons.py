"""Periodic jobs: the safety net under the queue.

- ``requeue_stale_rows``: rows are the truth. A pending invoice, or a pending / in-flight payment,
  not touched for ``stale_row_after_s`` gets its job enqueued again under the same id (a lost job:
  Redis flushed or restarted, a worker gave up after max tries). A job still queued or running is
  left alone.
- ``expire_invoices``: open invoices past expires_at become ``expired``.
- ``enqueue_due_webhooks``: outbox rows whose next attempt is due.
- ``reconcile``: every RECONCILE_EVERY_S (the cron looks every 5 s whether a pass is due), check the
  ledger against itself: all entries and all balances sum to zero, every account's balance equals
  the sum of its entries, every account's held amount equals the holds of its active payments (each
  breach is logged and recorded as an anomaly, shared/anomalies.py); then against the node
  (reconciliation.py). Both go into the stored result the admin reconciliation view shows.
- ``purge_idempotency_keys``: keys older than ``IDEMPOTENCY_TTL_S`` are forgotten.

(Open invoices are swept against the node by the settlement lease holder: subscription.py.)
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import text

from lightning_worker import metrics, reconciliation
from lightning_worker.context import get_context
from lightning_worker.queue import ensure_enqueued
from lightning_worker.retry import retry_transient
from shared import anomalies, jobs, ledger
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


_BALANCE_MISMATCH_SQL = text(
    """
    SELECT a.id, a.kind, a.balance_msat, coalesce(e.total, 0) AS entries
      FROM accounts a
      LEFT JOIN (SELECT account_id, sum(amount_msat) AS total FROM ledger_entries GROUP BY account_id) e
        ON e.account_id = a.id
     WHERE a.balance_msat <> coalesce(e.total, 0)
    """
)
_HOLD_MISMATCH_SQL = text(
    """
    SELECT a.id, a.kind, a.held_msat, coalesce(sum(p.hold_msat), 0) AS active
      FROM accounts a
      LEFT JOIN payments p ON p.account_id = a.id AND p.state IN ('pending', 'in_flight')
     GROUP BY a.id
    HAVING a.held_msat <> coalesce(sum(p.hold_msat), 0)
    """
)


@retry_transient
async def reconcile(ctx: dict[str, Any]) -> dict[str, Any]:
    context = get_context(ctx)
    if not await reconciliation.is_due(context):
        return {"due": False}
    started = time.monotonic()
    ledger_result = await check_ledger(context)
    result = await reconciliation.reconcile_with_node(context)
    result.mismatches = ledger_result["mismatches"] + result.mismatches
    duration_ms = int((time.monotonic() - started) * 1000)
    await reconciliation.store_result(context, result, duration_ms=duration_ms)
    metrics.set_reconciliation_mismatches(len(result.mismatches))
    return {
        "ledger_ok": ledger_result["ledger_ok"],
        "balance_mismatches": ledger_result["balance_mismatches"],
        "hold_mismatches": ledger_result["hold_mismatches"],
        "status": result.status,
        "mismatches": len(result.mismatches),
    }


async def check_ledger(context: Any) -> dict[str, Any]:
    """The ledger against itself; each breach recorded as an anomaly and listed as a mismatch."""
    async with context.sessions() as session, session.begin():
        entries, balances = await ledger.ledger_totals(session)
        bad_balances = (await session.execute(_BALANCE_MISMATCH_SQL)).all()
        bad_holds = (await session.execute(_HOLD_MISMATCH_SQL)).all()
        ledger_ok = entries == 0 and balances == 0
        if not ledger_ok:
            await anomalies.record_anomaly(
                session,
                anomalies.LEDGER_UNBALANCED,
                "ledger",
                f"the ledger is out of balance: entries sum {entries}, balances sum {balances}",
                details={"entriesSumMsat": entries, "balancesSumMsat": balances},
                level=logging.ERROR,
            )
        for row in bad_balances:
            await anomalies.record_anomaly(
                session,
                anomalies.BALANCE_MISMATCH,
                f"account:{row.id}",
                f"account {row.id} ({row.kind}) has balance {row.balance_msat}, "
                f"its entries sum {row.entries}",
                account_id=row.id,
                details={"balanceMsat": int(row.balance_msat), "entriesMsat": int(row.entries)},
                level=logging.ERROR,
            )
        for row in bad_holds:
            await anomalies.record_anomaly(
                session,
                anomalies.HOLD_MISMATCH,
                f"account:{row.id}",
                f"account {row.id} ({row.kind}) holds {row.held_msat}, its active payments hold {row.active}",
                account_id=row.id,
                details={"heldMsat": int(row.held_msat), "activeHoldsMsat": int(row.active)},
                level=logging.ERROR,
            )
    mismatches = (
        [
            {
                "kind": anomalies.LEDGER_UNBALANCED,
                "message": "the ledger does not sum to zero",
                "entriesSumMsat": entries,
                "balancesSumMsat": balances,
            }
        ]
        if not ledger_ok
        else []
    )
    mismatches += [
        {
            "kind": anomalies.BALANCE_MISMATCH,
            "message": f"account {row.id} balance disagrees with its entries",
            "accountId": row.id,
            "balanceMsat": int(row.balance_msat),
            "entriesMsat": int(row.entries),
        }
        for row in bad_balances
    ]
    mismatches += [
        {
            "kind": anomalies.HOLD_MISMATCH,
            "message": f"account {row.id} holds what no active payment holds",
            "accountId": row.id,
            "heldMsat": int(row.held_msat),
            "activeHoldsMsat": int(row.active),
        }
        for row in bad_holds
    ]
    return {
        "ledger_ok": ledger_ok,
        "balance_mismatches": len(bad_balances),
        "hold_mismatches": len(bad_holds),
        "mismatches": mismatches,
    }


@retry_transient
async def purge_idempotency_keys(ctx: dict[str, Any]) -> dict[str, Any]:
    """Forget Idempotency-Keys older than IDEMPOTENCY_TTL_S, a batch at a time."""
    context = get_context(ctx)
    async with context.sessions() as session, session.begin():
        result = await session.execute(
            text(
                "DELETE FROM idempotency_keys WHERE (user_id, key) IN ("
                " SELECT user_id, key FROM idempotency_keys"
                "  WHERE created_at < now() - make_interval(secs => :ttl_s) LIMIT :limit)"
            ),
            {"ttl_s": context.settings.idempotency_ttl_s, "limit": BATCH_LIMIT * 10},
        )
    return {"purged": result.rowcount}
