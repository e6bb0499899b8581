"""Webhook event bodies: ``{"type", "timestamp", "data"}``, where ``data`` is the invoice or payment
exactly as the API shows it (the same camelCase keys and JSON values as ``InvoiceOut`` /
``PaymentOut``; tests/unit/test_webhook_events.py holds the two in step).

The worker writes these bodies into the outbox inside the transaction that makes the event true, and
the worker must not import the API, so the data is built here from the row itself. ``timestamp`` is
when the event happened (the settle or completion time), not when an attempt is made: it is part of
the body, which is the same bytes on every attempt and redelivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic.alias_generators import to_camel
from pydantic_core import to_jsonable_python

from shared.ledger import MSAT_PER_SAT

INVOICE_SETTLED = "invoice.settled"
PAYMENT_SUCCEEDED = "payment.succeeded"
PAYMENT_FAILED = "payment.failed"
EVENT_TYPES = (INVOICE_SETTLED, PAYMENT_SUCCEEDED, PAYMENT_FAILED)
PAYMENT_EVENTS = {"succeeded": PAYMENT_SUCCEEDED, "failed": PAYMENT_FAILED}


def _sat(msat: int | None) -> int | None:
    return None if msat is None else msat // MSAT_PER_SAT


def _hex(value: bytes | None) -> str | None:
    return value.hex() if value else None


def _json(fields: dict[str, Any]) -> dict[str, Any]:
    return {to_camel(name): to_jsonable_python(value) for name, value in fields.items()}


def invoice_data(invoice: Any) -> dict[str, Any]:
    """An invoices row (model or Row) as the API's invoice object."""
    return _json(
        {
            "id": invoice.id,
            "kind": "invoice",
            "direction": "incoming",
            "user_id": invoice.user_id,
            "state": invoice.state,
            "amount_sat": _sat(invoice.amount_msat),
            "amount_msat": invoice.amount_msat,
            "fee_sat": None,
            "fee_msat": None,
            "memo": invoice.memo,
            "payment_hash": _hex(invoice.payment_hash),
            "payment_request": invoice.payment_request,
            "created_at": invoice.created_at,
            "settled_at": invoice.settled_at,
            "completed_at": None,
            "expires_at": invoice.expires_at,
            "expiry_seconds": invoice.expiry_s,
            "amount_paid_sat": _sat(invoice.amount_paid_msat),
            "amount_paid_msat": invoice.amount_paid_msat,
            "failure_reason": invoice.failure_reason,
            "webhook_url": invoice.webhook_url,
            "for_treasury": invoice.for_treasury,
        }
    )


def payment_data(payment: Any) -> dict[str, Any]:
    """A payments row (model or Row) as the API's payment object."""
    succeeded = payment.state == "succeeded"
    return _json(
        {
            "id": payment.id,
            "direction": "outgoing",
            "user_id": payment.user_id,
            "status": payment.state,
            "amount_sat": _sat(payment.amount_msat),
            "amount_msat": payment.amount_msat,
            "fee_sat": _sat(payment.fee_msat),
            "fee_msat": payment.fee_msat,
            "fee_limit_sat": _sat(payment.fee_limit_msat),
            "preimage": _hex(payment.preimage) if succeeded else None,
            "failure_reason": payment.failure_reason,
            "payment_hash": payment.payment_hash.hex(),
            "payment_request": payment.payment_request,
            "destination": payment.destination,
            "memo": payment.memo,
            "internal": payment.internal,
            "from_treasury": payment.from_treasury,
            "created_at": payment.created_at,
            "completed_at": payment.completed_at,
            "webhook_url": payment.webhook_url,
        }
    )


def event_body(event_type: str, happened_at: datetime | None, data: dict[str, Any]) -> dict[str, Any]:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event {event_type!r}")
    return {
        "type": event_type,
        "timestamp": to_jsonable_python(happened_at or datetime.now(UTC)),
        "data": data,
    }
