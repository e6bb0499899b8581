"""Crediting settled invoices: set-based SQL, one transaction per batch.

For a batch of SETTLED invoices from LND, one statement (a) moves each matching invoice row to
``settled`` with a conditional UPDATE (so a duplicate event, a replay after a restart or a second
lease holder changes nothing), (b) writes the two ledger legs of every invoice it actually moved
(external -paid, +paid to the invoice's account: its user's, or the treasury's for a treasury
invoice; kind ``invoice_settled``). In the same transaction (c) an ``invoice.settled`` webhook outbox
row is added where the invoice asked for one (webhook_outbox.py), the node's settle_index cursor moves
forward (GREATEST, never back), and every settlement that no row could take (an unknown hash, a row
``failed`` or ``canceled``) is recorded as an anomaly rather than skipped. Events are published and
webhooks enqueued only after the commit.
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
from lightning_worker.webhook_outbox import add_invoice_events
from lightning_worker.webhooks import enqueue_deliveries
from shared import anomalies
from shared.events import RowEvent
from shared.lightning.types import Invoice, InvoiceState

log = logging.getLogger(__name__)

_SETTLE_SQL = text(
    """
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
     RETURNING i.id, i.user_id, i.account_id, i.amount_msat, i.amount_paid_msat, i.payment_hash,
               i.webhook_url, i.settled_at, i.memo
    ),
    txns AS MATERIALIZED (
        SELECT s.*, gen_random_uuid() AS txn_id FROM settled s
    ),
    legs AS (
        INSERT INTO ledger_entries (txn_id, account_id, amount_msat, kind, invoice_id)
        SELECT t.txn_id, x.account_id, x.amount_msat, 'invoice_settled', t.id
          FROM txns t
         CROSS JOIN LATERAL (VALUES (t.account_id, t.amount_paid_msat),
                                    (CAST(:external AS bigint), -t.amount_paid_msat))
               AS x(account_id, amount_msat)
        RETURNING 1
    )
    SELECT t.id AS invoice_id, t.user_id, (SELECT count(*) FROM legs) AS legs, t.settled_at
      FROM txns t
    """
)

# Same lock order as shared.ledger.lock_accounts (ascending id): see its docstring.
_LOCK_ACCOUNTS_SQL = text(
    """
    SELECT a.id FROM accounts a
     WHERE a.id = :external
        OR a.id IN (SELECT i.account_id FROM invoices i
                     WHERE i.payment_hash = ANY(CAST(:hashes AS bytea[])))
     ORDER BY a.id
       FOR UPDATE
    """
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
                },
            )
        ).all()
        legs = 0
        for row in rows:
            credited.append(SettledInvoice(row.invoice_id, row.user_id, row.settled_at))
            legs = int(row.legs)
        if legs != 2 * len(credited):  # cannot happen (account_id is a NOT NULL foreign key)
            raise RuntimeError(f"settlement wrote {legs} ledger legs for {len(credited)} invoices")
        hooks = await add_invoice_events(session, [s.invoice_id for s in credited])  # webhooks (issue 10)
        if len(credited) < len(batch):
            await _record_uncreditable(session, batch)
    if cursor_node is not None and max_index > 0:
        await session.execute(_CURSOR_SQL, {"node": cursor_node, "settle_index": max_index})
    return BatchResult(credited, hooks, max_index)


_STATES_SQL = text(
    "SELECT payment_hash, id, state FROM invoices WHERE payment_hash = ANY(CAST(:hashes AS bytea[]))"
)


async def _record_uncreditable(session: AsyncSession, batch: Sequence[Invoice]) -> None:
    """Settlements the conditional UPDATE did not credit: a replay of one already credited is fine;
    one for a hash we have no row for, or for a row failed or canceled, is money at the node that no
    user was credited for: an anomaly, recorded in the same transaction."""
    rows = (await session.execute(_STATES_SQL, {"hashes": [inv.payment_hash for inv in batch]})).all()
    known = {bytes(row.payment_hash): row for row in rows}
    for invoice in batch:
        row = known.get(invoice.payment_hash)
        if row is not None and row.state == "settled":
            continue
        details = {
            "paymentHash": invoice.payment_hash.hex(),
            "amountPaidMsat": invoice.amt_paid_msat or invoice.value_msat,
            "settleIndex": invoice.settle_index,
            "rowState": row.state if row is not None else None,
        }
        if row is None:
            await anomalies.record_anomaly(
                session,
                anomalies.SETTLEMENT_UNKNOWN_INVOICE,
                invoice.payment_hash.hex(),
                f"the node settled invoice {invoice.payment_hash.hex()} that has no row here",
                payment_hash=invoice.payment_hash,
                details=details,
                level=logging.ERROR,  # surplus at the node, not a loss: an operator should look
            )
        else:
            await anomalies.record_anomaly(
                session,
                anomalies.SETTLEMENT_NOT_CREDITABLE,
                str(row.id),
                f"the node settled invoice {row.id}, whose row is {row.state}: nobody was credited",
                invoice_id=row.id,
                payment_hash=invoice.payment_hash,
                details=details,
                level=logging.ERROR,
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
