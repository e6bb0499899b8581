"""Internal payments: one of our users pays an invoice issued by our node to another user.

LND cannot pay itself, so the money moves inside Postgres. First the payee's LND invoice is
cancelled, so nobody outside can pay it any more (if LND says it is already settled, someone
outside was first: this payment fails and the settlement subscription credits the payee). Then
one transaction locks the invoice row, settles it, marks the payment succeeded, releases the hold
and posts payer -amount / payee +amount.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from lightning_worker import metrics
from lightning_worker.context import WorkerContext
from lightning_worker.invoices import derive_preimage
from lightning_worker.payment_records import ACTIVE_STATES, Sessions, fail_in_session, record_failure
from lightning_worker.settlement import settle_invoices
from lightning_worker.webhook_outbox import add_invoice_event, add_payment_event
from lightning_worker.webhooks import enqueue_deliveries
from shared import ledger
from shared.db.models import Invoice, Payment
from shared.errors import LightningNotFound, LightningRequestError, LightningUnavailable
from shared.events import RowEvent
from shared.lightning.types import InvoiceState

log = logging.getLogger(__name__)


async def pay_internal(
    context: WorkerContext, row: Payment, *, sessions: Sessions | None = None
) -> dict[str, Any]:
    """``sessions``: the payment lock's (payment_lock.py), so every write happens under the lock."""
    sessions = sessions or context.sessions
    async with sessions() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.id == row.internal_invoice_id))
    if invoice is None or invoice.payment_hash is None:
        return await record_failure(context, row, "invoice not found", sessions=sessions)
    if invoice.state != "open":
        return await record_failure(context, row, _not_open_reason(invoice.state), sessions=sessions)

    if not await _cancel_at_node(context, invoice):
        return await record_failure(context, row, "invoice already paid", sessions=sessions)

    now = datetime.now(UTC)
    events: list[RowEvent] = []
    hook_id: int | None = None
    async with sessions() as session, session.begin():
        locked = await session.scalar(select(Invoice).where(Invoice.id == invoice.id).with_for_update())
        payment = await session.scalar(
            select(Payment).where(Payment.id == row.id, Payment.state.in_(ACTIVE_STATES)).with_for_update()
        )
        if payment is None:
            pass  # finished by an earlier run
        elif locked is None or locked.state != "open" or (locked.expires_at and locked.expires_at <= now):
            reason = (
                "invoice expired"
                if locked is not None and locked.state == "open"
                else _not_open_reason(locked.state if locked else "missing")
            )
            if await fail_in_session(session, row, reason):
                events.append(RowEvent("payment", row.id, "failed", row.user_id))
        else:
            await session.execute(
                update(Invoice)
                .where(Invoice.id == locked.id)
                .values(state="settled", settled_at=now, amount_paid_msat=row.amount_msat, updated_at=now)
            )
            await session.execute(
                update(Payment)
                .where(Payment.id == row.id)
                .values(
                    state="succeeded",
                    fee_msat=0,
                    completed_at=now,
                    updated_at=now,
                    preimage=derive_preimage(context.settings.preimage_key, locked.id),
                )
            )
            payee_account = locked.account_id  # the payee's own account, or the treasury's
            await ledger.lock_accounts(session, (row.account_id, payee_account))
            await ledger.release_hold(session, row.account_id, row.hold_msat)
            await ledger.post_transaction(
                session,
                [ledger.Leg(row.account_id, -row.amount_msat), ledger.Leg(payee_account, row.amount_msat)],
                kind="internal_payment",
                invoice_id=locked.id,
                payment_id=row.id,
            )
            hook_id = await add_invoice_event(session, locked.id)
            await add_payment_event(session, row.id)  # webhook outbox, same transaction (issue 10)
            events += [
                RowEvent("payment", row.id, "succeeded", row.user_id),
                RowEvent("invoice", locked.id, "settled", locked.user_id),
            ]
    await context.publish(events)
    metrics.count_row_events(events)  # metrics (issue 13)
    if hook_id is not None:
        await enqueue_deliveries(context, [hook_id])
    async with sessions() as session:
        return {"state": await session.scalar(select(Payment.state).where(Payment.id == row.id))}


async def _cancel_at_node(context: WorkerContext, invoice: Invoice) -> bool:
    """Cancel the payee's LND invoice. False if LND says it was already paid from outside."""
    assert invoice.payment_hash is not None
    try:
        await context.lightning.cancel_invoice(invoice.payment_hash)
        return True
    except LightningNotFound:
        return True  # the node has no such invoice: nobody outside can pay it
    except LightningRequestError as exc:
        # "invoice already settled" (or another refusal): ask the node what the invoice is.
        found = await context.lightning.lookup_invoice(invoice.payment_hash)
        if found.state is InvoiceState.SETTLED:
            # Credit the payee now (idempotent with the subscription, which would do it too).
            await settle_invoices(context, [found], cursor_node=None)
            return False
        if found.state is InvoiceState.CANCELED:
            return True
        raise LightningUnavailable(
            f"cancel refused ({exc.message}) for a {found.state.value} invoice"
        ) from exc


def _not_open_reason(state: str) -> str:
    if state == "settled":
        return "invoice already paid"
    return f"invoice is {state}"
