"""Writing webhook events into the outbox (webhook_deliveries), inside the caller's transaction.

Each function is called in the transaction that makes its event true (an invoice settled, a payment
succeeded or failed), so the event and its outbox row commit or roll back together: no event is
announced that did not happen, none that happened is lost. The body is built from the row as it is
at that moment (shared/webhook_events.py) and is never rebuilt. One row per subject and event (a
unique index), so running the same settlement or final-state write twice adds nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Invoice, Payment, WebhookDelivery
from shared.webhook_events import INVOICE_SETTLED, PAYMENT_EVENTS, event_body, invoice_data, payment_data

_INVOICES = Invoice.__table__
_PAYMENTS = Payment.__table__


async def add_invoice_events(session: AsyncSession, invoice_ids: Sequence[uuid.UUID]) -> list[int]:
    """``invoice.settled`` rows for those of these settled invoices that have a webhook URL."""
    if not invoice_ids:
        return []
    invoices = (
        await session.execute(
            select(_INVOICES).where(
                _INVOICES.c.id.in_(invoice_ids),
                _INVOICES.c.webhook_url.is_not(None),
                _INVOICES.c.state == "settled",
            )
        )
    ).all()
    rows = [
        _row(invoice.user_id, invoice.webhook_url, INVOICE_SETTLED, invoice.settled_at, invoice_data(invoice))
        | {"invoice_id": invoice.id}
        for invoice in invoices
    ]
    return await _insert(session, rows, conflict=("invoice_id", "event"))


async def add_invoice_event(session: AsyncSession, invoice_id: uuid.UUID) -> int | None:
    ids = await add_invoice_events(session, [invoice_id])
    return ids[0] if ids else None


async def add_payment_event(session: AsyncSession, payment_id: uuid.UUID) -> int | None:
    """``payment.succeeded`` / ``payment.failed`` for a payment that has just reached that state in
    this transaction, if it has a webhook URL. Reads the row afresh: the caller's object may be a
    snapshot from before the final state was written."""
    payment = (await session.execute(select(_PAYMENTS).where(_PAYMENTS.c.id == payment_id))).one_or_none()
    if payment is None or payment.webhook_url is None or payment.state not in PAYMENT_EVENTS:
        return None
    event = PAYMENT_EVENTS[payment.state]
    row = _row(payment.user_id, payment.webhook_url, event, payment.completed_at, payment_data(payment))
    ids = await _insert(session, [row | {"payment_id": payment.id}], conflict=("payment_id", "event"))
    return ids[0] if ids else None


def _row(user_id: uuid.UUID, url: str, event: str, happened_at: Any, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "event": event,
        "url": url,
        "payload": event_body(event, happened_at, data),
    }


async def _insert(
    session: AsyncSession, rows: list[dict[str, Any]], *, conflict: tuple[str, ...]
) -> list[int]:
    if not rows:
        return []
    statement = (
        insert(WebhookDelivery)
        .values(rows)
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(WebhookDelivery.id)
    )
    return list((await session.scalars(statement)).all())
