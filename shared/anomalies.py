"""Anomalies: what the money core observed and did not expect, kept instead of dropped.

A success reported for a payment already marked failed, a preimage that does not hash to the payment
hash, a settlement that no invoice row can take, a balance that disagrees with its entries: each is
logged (CRITICAL for money that moved against our records, ERROR for a reconciliation mismatch),
stored in the ``anomalies`` table (listed by the admin reconciliation view) and counted. Nothing is
corrected automatically: an operator decides, e.g. with an audited adjustment.

The same observation made again (a replayed stream, the next reconcile pass) has the same
``fingerprint`` and only bumps ``occurrences`` / ``last_seen_at``, so a cron cannot flood the table.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

log = logging.getLogger("lightning_wallet.anomalies")

# Kinds (stable strings: stored, listed, used as a metric label).
PAYMENT_SUCCESS_AFTER_FAILURE = "payment_success_after_failure"
PAYMENT_FAILURE_AFTER_SUCCESS = "payment_failure_after_success"
PREIMAGE_MISMATCH = "preimage_mismatch"
AMOUNT_MISMATCH = "amount_mismatch"
FEE_OVER_LIMIT = "fee_over_limit"
SETTLEMENT_UNKNOWN_INVOICE = "settlement_unknown_invoice"
SETTLEMENT_NOT_CREDITABLE = "settlement_not_creditable"
BALANCE_MISMATCH = "balance_mismatch"
HOLD_MISMATCH = "hold_mismatch"
LEDGER_UNBALANCED = "ledger_unbalanced"

# Called with the kind of every anomaly recorded (the worker's metrics counter registers here).
_observers: list[Callable[[str], None]] = []

_RECORD_SQL = text(
    """
    INSERT INTO anomalies (kind, fingerprint, payment_id, invoice_id, account_id, payment_hash, details)
    VALUES (:kind, :fingerprint, :payment_id, :invoice_id, :account_id, :payment_hash,
            CAST(:details AS jsonb))
    ON CONFLICT (fingerprint) DO UPDATE
       SET occurrences = anomalies.occurrences + 1, last_seen_at = now(), details = EXCLUDED.details
    RETURNING id, occurrences
    """
)


def add_observer(observer: Callable[[str], None]) -> None:
    """Register a callable run with the kind of each anomaly recorded (e.g. a metrics counter)."""
    if observer not in _observers:
        _observers.append(observer)


async def record_anomaly(
    session: AsyncSession | AsyncConnection,
    kind: str,
    subject: str,
    message: str,
    *,
    payment_id: uuid.UUID | None = None,
    invoice_id: uuid.UUID | None = None,
    account_id: int | None = None,
    payment_hash: bytes | None = None,
    details: dict[str, Any] | None = None,
    level: int = logging.CRITICAL,
) -> int:
    """Store (or count again) one anomaly inside the caller's transaction and log it.

    ``subject`` names what it is about (a payment id, a hash, an account): with ``kind`` it makes the
    fingerprint. ``message`` is for people; ``details`` holds the figures (JSON, no secrets)."""
    payload = {"message": message, **(details or {})}
    row = (
        await session.execute(
            _RECORD_SQL,
            {
                "kind": kind,
                "fingerprint": f"{kind}:{subject}",
                "payment_id": payment_id,
                "invoice_id": invoice_id,
                "account_id": account_id,
                "payment_hash": payment_hash,
                "details": json.dumps(payload, default=str, sort_keys=True),
            },
        )
    ).one()
    log.log(
        level,
        "ANOMALY %s: %s",
        kind,
        message,
        extra={"anomaly_id": row.id, "kind": kind, "subject": subject, "occurrences": row.occurrences},
    )
    if row.occurrences == 1:
        for observer in _observers:
            observer(kind)
    return int(row.id)
