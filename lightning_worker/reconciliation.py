"""Reconciliation against the node: does LND agree with the ledger, and does it hold what we owe?

Every ``RECONCILE_EVERY_S`` one worker compares, for invoices and payments created in the last
``RECONCILE_WINDOW_S``:

- invoices settled at the node (ListInvoices) with the rows credited by a settlement: a node
  settlement of ours that no credit reflects, one for a hash we have no row for, and a credit whose
  node invoice is not settled are mismatches;
- payments succeeded at the node (ListPayments) with the external payment rows that succeeded: a
  success at the node that no row charged, and a charged row the node does not show as succeeded;
- solvency: the node's channel balance on our side (local + unsettled local: an HTLC in flight is
  still ours until it resolves) must cover liabilities (the sum of user balances) + the treasury.

What is still moving is not a mismatch: a settlement younger than ``RECONCILE_GRACE_S`` (the stream
or the sweep is about to credit it), a payment whose row is still pending or in flight. And the node
and the database are read one after the other, never at one instant: an invoice settled (or a
payment completed) between the node's snapshot and the database read looks credited-but-not-settled
(or charged-but-not-paid, or a node short of liabilities) for that one pass. So a pass that finds
mismatches looks again ``CONFIRM_AFTER_S`` later, and only what both passes found is reported (the
soak found this: an ERROR line for an invoice credited a moment after the node was listed). The ledger's
own checks (crons.reconcile) run in the same pass. The result is stored in ``reconciliation_runs``
(the admin reconciliation view shows the latest); a mismatch is logged at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from lightning_worker.context import WorkerContext
from shared.lightning.types import Invoice, InvoiceState, PaymentStatus, PaymentUpdate

log = logging.getLogger(__name__)

PAGE = 1000
CONFIRM_AFTER_S = 1.0
MAX_PAGES = 100  # at most 100k items of each kind per pass: a bound, not a target


@dataclass
class ReconciliationResult:
    liabilities_msat: int = 0
    treasury_msat: int = 0
    node_local_balance_msat: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def surplus_msat(self) -> int:
        return self.node_local_balance_msat - self.liabilities_msat - self.treasury_msat

    @property
    def status(self) -> str:
        return "mismatch" if self.mismatches else "ok"


async def _pages(fetch: Callable[[int], Awaitable[list[Any]]], index_of: Callable[[Any], int]) -> list[Any]:
    items: list[Any] = []
    offset = 0
    for _ in range(MAX_PAGES):
        page = await fetch(offset)
        items += page
        if len(page) < PAGE:
            break
        offset = index_of(page[-1])
    return items


_OUR_INVOICES_SQL = text(
    """
    SELECT i.id, i.payment_hash, i.state, i.settled_at,
           EXISTS (SELECT 1 FROM ledger_entries e WHERE e.invoice_id = i.id
                       AND e.kind = 'invoice_settled' AND e.amount_msat > 0) AS credited
      FROM invoices i
     WHERE i.payment_hash = ANY(CAST(:hashes AS bytea[]))
        OR (i.created_at >= now() - make_interval(secs => :window_s)
            AND EXISTS (SELECT 1 FROM ledger_entries e
                         WHERE e.invoice_id = i.id AND e.kind = 'invoice_settled' AND e.amount_msat > 0))
    """
)
_OUR_PAYMENTS_SQL = text(
    """
    SELECT id, payment_hash, state
      FROM payments
     WHERE NOT internal
       AND (payment_hash = ANY(CAST(:hashes AS bytea[]))
            OR (state = 'succeeded' AND created_at >= now() - make_interval(secs => :window_s)))
    """
)
_MONEY_SQL = text(
    """
    SELECT coalesce(sum(balance_msat) FILTER (WHERE kind = 'user'), 0) AS liabilities,
           coalesce(sum(balance_msat) FILTER (WHERE kind = 'treasury'), 0) AS treasury
      FROM accounts
    """
)


async def reconcile_with_node(context: WorkerContext) -> ReconciliationResult:
    """Compare the node with the ledger; a mismatch counts only if a second look confirms it."""
    first = await _compare_once(context)
    if not first.mismatches:
        return first
    await asyncio.sleep(CONFIRM_AFTER_S)
    second = await _compare_once(context)
    seen = {_mismatch_key(m) for m in first.mismatches}
    second.mismatches = [m for m in second.mismatches if _mismatch_key(m) in seen]
    return second


def _mismatch_key(mismatch: dict[str, Any]) -> tuple[str, str | None]:
    return mismatch["kind"], mismatch.get("paymentHash")


async def _compare_once(context: WorkerContext) -> ReconciliationResult:
    settings = context.settings
    lightning = context.lightning
    since_s = int(time.time()) - settings.reconcile_window_s
    result = ReconciliationResult()
    node_invoices: list[Invoice] = await _pages(
        lambda offset: lightning.list_invoices(
            index_offset=offset, max_invoices=PAGE, creation_date_start=since_s
        ),
        lambda invoice: invoice.add_index,
    )
    node_payments: list[PaymentUpdate] = await _pages(
        lambda offset: lightning.list_payments(
            index_offset=offset, max_payments=PAGE, include_incomplete=False, creation_date_start=since_s
        ),
        lambda payment: payment.payment_index,
    )
    balance = await lightning.channel_balance()
    result.node_local_balance_msat = balance.local_msat + balance.unsettled_local_msat
    async with context.sessions() as session:
        settled_at_node = {i.payment_hash: i for i in node_invoices if i.state is InvoiceState.SETTLED}
        rows = (
            await session.execute(
                _OUR_INVOICES_SQL,
                {"hashes": [i.payment_hash for i in node_invoices], "window_s": settings.reconcile_window_s},
            )
        ).all()
        payments = (
            await session.execute(
                _OUR_PAYMENTS_SQL,
                {"hashes": [p.payment_hash for p in node_payments], "window_s": settings.reconcile_window_s},
            )
        ).all()
        money = (await session.execute(_MONEY_SQL)).one()
    result.liabilities_msat, result.treasury_msat = int(money.liabilities), int(money.treasury)
    result.mismatches += _invoice_mismatches(settled_at_node, node_invoices, rows, settings.reconcile_grace_s)
    result.mismatches += _payment_mismatches(node_payments, payments)
    if result.surplus_msat < 0:
        result.mismatches.append(
            {
                "kind": "node_balance_below_liabilities",
                "message": f"the node holds {result.node_local_balance_msat} msat on our side, "
                f"users are owed {result.liabilities_msat} and the treasury {result.treasury_msat}",
                "surplusMsat": result.surplus_msat,
            }
        )
    return result


def _invoice_mismatches(
    settled_at_node: dict[bytes, Invoice], node_invoices: list[Invoice], rows: list[Any], grace_s: int
) -> list[dict[str, Any]]:
    mismatches = []
    ours = {bytes(row.payment_hash): row for row in rows if row.payment_hash is not None}
    node_states = {i.payment_hash: i.state for i in node_invoices}
    now = time.time()
    for payment_hash, invoice in settled_at_node.items():
        row = ours.get(payment_hash)
        if row is not None and row.credited:
            continue
        if now - invoice.settle_date < grace_s:
            continue  # just settled: the stream or the sweep is crediting it
        mismatches.append(
            {
                "kind": "invoice_settled_at_node_not_credited"
                if row
                else "invoice_settled_at_node_without_row",
                "message": f"the node settled invoice {payment_hash.hex()} for {invoice.amt_paid_msat} msat; "
                + (
                    f"its row {row.id} is {row.state} and was not credited"
                    if row
                    else "we have no row for it"
                ),
                "paymentHash": payment_hash.hex(),
                "invoiceId": str(row.id) if row else None,
                "amountPaidMsat": invoice.amt_paid_msat,
            }
        )
    for payment_hash, row in ours.items():
        # A credit for an invoice the node listed, but not as settled (an invoice created before the
        # window is not listed: nothing can be said of it here).
        if (
            row.credited
            and payment_hash in node_states
            and node_states[payment_hash] is not InvoiceState.SETTLED
        ):
            mismatches.append(
                {
                    "kind": "invoice_credited_not_settled_at_node",
                    "message": f"invoice {row.id} was credited; "
                    f"the node says {node_states[payment_hash].value}",
                    "paymentHash": payment_hash.hex(),
                    "invoiceId": str(row.id),
                }
            )
    return mismatches


def _payment_mismatches(node_payments: list[PaymentUpdate], rows: list[Any]) -> list[dict[str, Any]]:
    mismatches = []
    succeeded_at_node = {p.payment_hash: p for p in node_payments if p.status is PaymentStatus.SUCCEEDED}
    by_hash: dict[bytes, list[Any]] = {}
    for row in rows:
        by_hash.setdefault(bytes(row.payment_hash), []).append(row)
    for payment_hash, payment in succeeded_at_node.items():
        states = {row.state for row in by_hash.get(payment_hash, [])}
        if "succeeded" in states or states & {"pending", "in_flight"}:
            continue  # charged, or still being recorded
        mismatches.append(
            {
                "kind": "payment_succeeded_at_node_not_charged",
                "message": f"the node paid {payment_hash.hex()} ({payment.value_msat} msat + fee "
                f"{payment.fee_msat}); no payment row of ours succeeded",
                "paymentHash": payment_hash.hex(),
                "paymentIds": [str(row.id) for row in by_hash.get(payment_hash, [])],
                "valueMsat": payment.value_msat,
            }
        )
    for payment_hash, hash_rows in by_hash.items():
        for row in hash_rows:
            if row.state == "succeeded" and payment_hash not in succeeded_at_node:
                mismatches.append(
                    {
                        "kind": "payment_charged_not_succeeded_at_node",
                        "message": f"payment {row.id} was charged; the node does not list it as succeeded",
                        "paymentHash": payment_hash.hex(),
                        "paymentIds": [str(row.id)],
                    }
                )
    return mismatches


_DUE_SQL = text(
    "SELECT coalesce(max(checked_at) < now() - make_interval(secs => :every_s), true)"
    " FROM reconciliation_runs"
)


async def is_due(context: WorkerContext) -> bool:
    async with context.sessions() as session:
        return bool(await session.scalar(_DUE_SQL, {"every_s": context.settings.reconcile_every_s}))


_STORE_SQL = text(
    """
    INSERT INTO reconciliation_runs (status, liabilities_msat, treasury_msat, node_local_balance_msat,
                                     surplus_msat, window_s, mismatches, duration_ms)
    VALUES (:status, :liabilities, :treasury, :node, :surplus, :window_s, CAST(:mismatches AS jsonb),
            :duration_ms)
    """
)


async def store_result(context: WorkerContext, result: ReconciliationResult, *, duration_ms: int) -> None:
    async with context.sessions() as session, session.begin():
        await session.execute(
            _STORE_SQL,
            {
                "status": result.status,
                "liabilities": result.liabilities_msat,
                "treasury": result.treasury_msat,
                "node": result.node_local_balance_msat,
                "surplus": result.surplus_msat,
                "window_s": context.settings.reconcile_window_s,
                "mismatches": json.dumps(result.mismatches),
                "duration_ms": duration_ms,
            },
        )
        # Keep a week of history (at the default interval, about ten thousand rows).
        await session.execute(
            text("DELETE FROM reconciliation_runs WHERE checked_at < now() - interval '7 days'")
        )
    for mismatch in result.mismatches:
        log.error("RECONCILIATION MISMATCH %s: %s", mismatch["kind"], mismatch["message"])
