"""Crediting settled invoices: set-based SQL, one transaction per batch.

For a batch of SETTLED invoices from LND, one statement (a) moves each matching invoice row to
``settled`` with a conditional UPDATE (so a duplicate event, a replay after a restart or a second
lease holder changes nothing), (b) writes the two ledger legs of every invoice it actually moved
(external -paid, user +paid, kind ``invoice_settled``), (c) adds a webhook outbox row where the
invoice asked for one. In the same transaction the node's settle_index cursor moves forward
(GREATEST, never back). Events are published and webhooks enqueued only after the commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from lightning_worker import metrics
from lightning_worker.context import WorkerContext
from lightning_worker.webhooks import enqueue_deliveries
from shared.events import RowEvent
from shared.lightning.types import Invoice, InvoiceState

log = logging.getLogger(__name__)

INVOICE_SETTLED_EVENT = "invoice.settled"


def _payload_sql(alias: str) -> str:
    """The webhook body, built in SQL from an invoices row (``alias``) in its settled state."""
    return (
        f"jsonb_build_object('event', CAST(:event AS text), 'invoiceId', {alias}.id, "
        f"'paymentHash', encode({alias}.payment_hash, 'hex'), 'amountSat', {alias}.amount_msat / 1000, "
        f"'amountPaidSat', {alias}.amount_paid_msat / 1000, 'amountPaidMsat', {alias}.amount_paid_msat, "
        f"'memo', {alias}.memo, 'settledAt', "
        f"to_char({alias}.settled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))"
    )


# Only constant SQL fragments are formatted in (the payload expression); values are bound.
_SETTLE_SQL = text(
    f"""
    WITH batch AS (
        SELECT * FROM unnest(CAST(:hashes AS bytea[]), CAST(:settle_indexes AS bigint[]),
                             CAST(:paid_msat AS bigint[]), CAST(:settle_ts AS bigint[]))
               AS b(payment_hash, settle_index, amount_paid_msat, settle_ts)
    ),
    settled AS (
        UPDATE invoices i
           SET state = 'settled', settle_index = b.settle_index, amount_paid_msat = b.amount_paid_msat,
               settled_at = CASE WHEN b.settle_ts > 0 THEN to_timestamp(b.settle_ts) ELSE now() END,
               updated_at = now()
          FROM batch b
         WHERE i.payment_hash = b.payment_hash AND i.state IN ('open', 'expired', 'pending')
     RETURNING i.id, i.user_id, i.amount_msat, i.amount_paid_msat, i.payment_hash, i.webhook_url,
               i.settled_at, i.memo
    ),
    txns AS MATERIALIZED (
        SELECT s.*, gen_random_uuid() AS txn_id FROM settled s
    ),
    legs AS (
        INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind, invoice_id)
        SELECT t.txn_id, x.account_id, x.amount_msat, 'invoice_settled', t.id
          FROM txns t
          JOIN accounts a ON a.user_id = t.user_id AND a.kind = 'user'
         CROSS JOIN LATERAL (VALUES (a.id, t.amount_paid_msat),
                                    (CAST(:external AS bigint), -t.amount_paid_msat))
               AS x(account_id, amount_msat)
        RETURNING 1
    ),
    hooks AS (
        INSERT INTO webhook_deliveries (invoice_id, event, url, payload)
        SELECT t.id, :event, t.webhook_url,
               {_payload_sql("t")}
          FROM txns t
         WHERE t.webhook_url IS NOT NULL
        ON CONFLICT (invoice_id, event) DO NOTHING
        RETURNING id
    )
    SELECT 'invoice' AS what, t.id AS invoice_id, t.user_id, NULL::bigint AS hook_id,
           (SELECT count(*) FROM legs) AS legs, t.settled_at
      FROM txns t
    UNION ALL
    SELECT 'hook', NULL, NULL, h.id, NULL, NULL FROM hooks h
    """  # noqa: S608
)

# Same lock order as shared.ledger.lock_accounts (ascending id): see its docstring.
_LOCK_ACCOUNTS_SQL = text(
    """
    SELECT a.id FROM accounts a
     WHERE a.id = :external
        OR a.user_id IN (SELECT i.user_id FROM invoices i
                          WHERE i.payment_hash = ANY(CAST(:hashes AS bytea[])))
     ORDER BY a.id
       FOR UPDATE
    """
)

_HOOK_FOR_INVOICE_SQL = text(
    f"""
    INSERT INTO webhook_deliveries (invoice_id, event, url, payload)
    SELECT i.id, :event, i.webhook_url, {_payload_sql("i")}
      FROM invoices i
     WHERE i.id = :invoice_id AND i.webhook_url IS NOT NULL AND i.state = 'settled'
    ON CONFLICT (invoice_id, event) DO NOTHING
    RETURNING id
    """  # noqa: S608
)

_CURSOR_SQL = text(
    """
    INSERT INTO settlement_cursor (node, settle_index, updated_at) VALUES (:node, :settle_index, now())
    ON CONFLICT (node) DO UPDATE
       SET settle_index = GREATEST(settlement_cursor.settle_index, EXCLUDED.settle_index), updated_at = now()
    """
)


@dataclass(frozen=True, slots=True)
class SettledInvoice:
    invoice_id: uuid.UUID
    user_id: uuid.UUID
    settled_at: datetime | None = None  # the node's settle_date (metrics: settlement lag)


@dataclass(frozen=True, slots=True)
class BatchResult:
    credited: list[SettledInvoice]
    webhook_ids: list[int]
    max_settle_index: int


async def load_cursor(session: AsyncSession, node: str) -> int:
    value = await session.scalar(
        text("SELECT settle_index FROM settlement_cursor WHERE node = :node"), {"node": node}
    )
    return int(value or 0)


async def apply_settlements(
    session: AsyncSession, invoices: Sequence[Invoice], *, external_account_id: int, cursor_node: str | None
) -> BatchResult:
    """Credit the SETTLED invoices among ``invoices`` inside the caller's transaction."""
    latest: dict[bytes, Invoice] = {}
    max_index = 0
    for invoice in invoices:
        if invoice.state is not InvoiceState.SETTLED:
            continue
        max_index = max(max_index, invoice.settle_index)
        latest[invoice.payment_hash] = invoice  # duplicates in one batch: any copy will do
    credited: list[SettledInvoice] = []
    hooks: list[int] = []
    if latest:
        batch = list(latest.values())
        await session.execute(
            _LOCK_ACCOUNTS_SQL,
            {"hashes": [inv.payment_hash for inv in batch], "external": external_account_id},
        )
        rows = (
            await session.execute(
                _SETTLE_SQL,
                {
                    "hashes": [inv.payment_hash for inv in batch],
                    "settle_indexes": [inv.settle_index for inv in batch],
                    # LND always fills amt_paid for a settled invoice; never credit 0 for a paid one.
                    "paid_msat": [inv.amt_paid_msat or inv.value_msat for inv in batch],
                    "settle_ts": [inv.settle_date for inv in batch],
                    "external": external_account_id,
                    "event": INVOICE_SETTLED_EVENT,
                },
            )
        ).all()
        legs = 0
        for row in rows:
            if row.what == "invoice":
                credited.append(SettledInvoice(row.invoice_id, row.user_id, row.settled_at))
                legs = int(row.legs)
            else:
                hooks.append(int(row.hook_id))
        if legs != 2 * len(credited):  # a user without an account: refuse rather than lose money
            raise RuntimeError(f"settlement wrote {legs} ledger legs for {len(credited)} invoices")
    if cursor_node is not None and max_index > 0:
        await session.execute(_CURSOR_SQL, {"node": cursor_node, "settle_index": max_index})
    return BatchResult(credited, hooks, max_index)


async def add_settled_webhook(session: AsyncSession, invoice_id: uuid.UUID) -> int | None:
    """The outbox row announcing an invoice settled inside Postgres (internal payment), if wanted."""
    return await session.scalar(
        _HOOK_FOR_INVOICE_SQL, {"invoice_id": invoice_id, "event": INVOICE_SETTLED_EVENT}
    )


async def settle_invoices(
    context: WorkerContext, invoices: Sequence[Invoice], *, cursor_node: str | None
) -> BatchResult:
    """One transaction for the batch, then events and webhook jobs after the commit."""
    accounts = await context.system_accounts()
    async with context.sessions() as session, session.begin():
        result = await apply_settlements(
            session, invoices, external_account_id=accounts.external, cursor_node=cursor_node
        )
    if result.credited:
        metrics.count_settlements(result.credited)  # metrics (issue 13)
        log.info("credited %d settled invoice(s)", len(result.credited))
        await context.publish(
            RowEvent("invoice", s.invoice_id, "settled", s.user_id) for s in result.credited
        )
    await enqueue_deliveries(context, result.webhook_ids)
    return result
