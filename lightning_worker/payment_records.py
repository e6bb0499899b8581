"""Final states of a payment row: one transaction for the state change and its ledger legs.

What LND reports is never dropped. A success for a row that is already ``failed`` (its hold given back,
nothing charged) or a failure for one that ``succeeded``, a preimage that does not hash to the payment
hash, a paid amount other than the row's or a fee above its limit: each is recorded as an anomaly
(shared/anomalies.py) in the same transaction that records what could be recorded.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lightning_worker import metrics
from lightning_worker.context import WorkerContext
from lightning_worker.webhook_outbox import add_payment_event
from shared import anomalies, ledger
from shared.db.models import Payment
from shared.events import RowEvent
from shared.lightning.types import PaymentUpdate

log = logging.getLogger(__name__)

FINAL_STATES = ("succeeded", "failed")
ACTIVE_STATES = ("pending", "in_flight")
Sessions = Callable[[], AsyncSession]


async def record_success(
    context: WorkerContext, row: Payment, final: PaymentUpdate, *, sessions: Sessions | None = None
) -> dict[str, Any]:
    """succeeded + hold released + legs payer -(amount+fee), external +amount, fees +fee."""
    fee_msat = final.fee_msat
    if fee_msat > row.fee_limit_msat:  # LND honours the limit; if it ever did not, charge no more than held
        fee_msat = row.fee_limit_msat
    accounts = await context.system_accounts()
    now = datetime.now(UTC)
    async with (sessions or context.sessions)() as session, session.begin():
        result = await session.execute(
            update(Payment)
            .where(Payment.id == row.id, Payment.state.in_(ACTIVE_STATES))
            .values(
                state="succeeded",
                fee_msat=fee_msat,
                # Never None for a SUCCEEDED payment at LND; if it were, the anomaly below says so.
                preimage=final.preimage or b"",
                completed_at=now,
                updated_at=now,
            )
            .returning(Payment.id)
        )
        changed = result.scalar_one_or_none() is not None
        if changed:
            await ledger.lock_accounts(session, (row.account_id, accounts.external, accounts.fees))
            await ledger.release_hold(session, row.account_id, row.hold_msat)
            await ledger.post_transaction(
                session,
                [
                    ledger.Leg(row.account_id, -(row.amount_msat + fee_msat)),
                    ledger.Leg(accounts.external, row.amount_msat),
                    ledger.Leg(accounts.fees, fee_msat),
                ],
                kind="payment",
                payment_id=row.id,
            )
            await add_payment_event(session, row.id)  # webhook outbox, same transaction (issue 10)
        else:
            await _late_success(session, row, final)
        await _check_success_details(session, row, final)
    return await _finish(context, row, changed, sessions)


async def _late_success(session: AsyncSession, row: Payment, final: PaymentUpdate) -> None:
    """LND says SUCCEEDED for a row that is already final: money left the node. Keep it."""
    state = await session.scalar(select(Payment.state).where(Payment.id == row.id))
    if state == "failed":
        await anomalies.record_anomaly(
            session,
            anomalies.PAYMENT_SUCCESS_AFTER_FAILURE,
            str(row.id),
            f"payment {row.id} succeeded at the node after it was recorded as failed (hold released, "
            f"nothing charged)",
            payment_id=row.id,
            account_id=row.account_id,
            payment_hash=row.payment_hash,
            details=_figures(row, final),
        )


async def _check_success_details(session: AsyncSession, row: Payment, final: PaymentUpdate) -> None:
    figures = _figures(row, final)
    if final.preimage is None or hashlib.sha256(final.preimage).digest() != row.payment_hash:
        await anomalies.record_anomaly(
            session,
            anomalies.PREIMAGE_MISMATCH,
            str(row.id),
            f"payment {row.id}: the node reported success with a preimage that does not hash to its hash",
            payment_id=row.id,
            payment_hash=row.payment_hash,
            details=figures,
        )
    if final.value_msat and final.value_msat != row.amount_msat:
        await anomalies.record_anomaly(
            session,
            anomalies.AMOUNT_MISMATCH,
            str(row.id),
            f"payment {row.id}: the node paid {final.value_msat} msat, the row says {row.amount_msat}",
            payment_id=row.id,
            payment_hash=row.payment_hash,
            details=figures,
        )
    if final.fee_msat > row.fee_limit_msat:
        await anomalies.record_anomaly(
            session,
            anomalies.FEE_OVER_LIMIT,
            str(row.id),
            f"payment {row.id}: the node paid a fee of {final.fee_msat} msat over the limit "
            f"{row.fee_limit_msat}; the limit was charged",
            payment_id=row.id,
            payment_hash=row.payment_hash,
            details=figures,
        )


def _figures(row: Payment, final: PaymentUpdate) -> dict[str, Any]:
    return {
        "paymentHash": row.payment_hash.hex(),
        "rowAmountMsat": row.amount_msat,
        "nodeValueMsat": final.value_msat,
        "nodeFeeMsat": final.fee_msat,
        "feeLimitMsat": row.fee_limit_msat,
        "nodeStatus": final.status.value,
        "nodePaymentIndex": final.payment_index,
        "nodeFailureReason": final.failure_reason,
    }


async def record_failure(
    context: WorkerContext,
    row: Payment,
    reason: str,
    *,
    final: PaymentUpdate | None = None,
    sessions: Sessions | None = None,
) -> dict[str, Any]:
    """failed + hold released; no ledger legs (nothing left the node)."""
    async with (sessions or context.sessions)() as session, session.begin():
        changed = await fail_in_session(session, row, reason)
        if not changed and final is not None:
            state = await session.scalar(select(Payment.state).where(Payment.id == row.id))
            if state == "succeeded":
                await anomalies.record_anomaly(
                    session,
                    anomalies.PAYMENT_FAILURE_AFTER_SUCCESS,
                    str(row.id),
                    f"payment {row.id}: the node reported {reason} after it was recorded as succeeded",
                    payment_id=row.id,
                    payment_hash=row.payment_hash,
                    details=_figures(row, final),
                )
    return await _finish(context, row, changed, sessions)


async def fail_in_session(session: AsyncSession, row: Payment, reason: str) -> bool:
    now = datetime.now(UTC)
    result = await session.execute(
        update(Payment)
        .where(Payment.id == row.id, Payment.state.in_(ACTIVE_STATES))
        .values(state="failed", failure_reason=reason[:500], completed_at=now, updated_at=now)
        .returning(Payment.id)
    )
    if result.scalar_one_or_none() is None:
        return False
    await ledger.release_hold(session, row.account_id, row.hold_msat)
    await add_payment_event(session, row.id)  # webhook outbox, same transaction (issue 10)
    return True


async def _finish(
    context: WorkerContext, row: Payment, changed: bool, sessions: Sessions | None
) -> dict[str, Any]:
    async with (sessions or context.sessions)() as session:
        state = await session.scalar(select(Payment.state).where(Payment.id == row.id))
    if changed:
        metrics.count_payment(state)  # metrics (issue 13)
        log.info("payment %s %s", row.id, state)
        await context.publish([RowEvent("payment", row.id, state, row.user_id)])
    return {"state": state}
