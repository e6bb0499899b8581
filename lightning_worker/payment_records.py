"""Final states of a payment row: one transaction for the state change and its ledger legs."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lightning_worker import metrics
from lightning_worker.context import WorkerContext
from shared import ledger
from shared.db.models import Payment
from shared.events import RowEvent
from shared.lightning.types import PaymentUpdate

log = logging.getLogger(__name__)

FINAL_STATES = ("succeeded", "failed")
ACTIVE_STATES = ("pending", "in_flight")


async def record_success(context: WorkerContext, row: Payment, final: PaymentUpdate) -> dict[str, Any]:
    """succeeded + hold released + legs payer -(amount+fee), external +amount, fees +fee."""
    if final.preimage is None or hashlib.sha256(final.preimage).digest() != row.payment_hash:
        log.error("payment %s: LND reported success with a preimage that does not match", row.id)
    if final.value_msat and final.value_msat != row.amount_msat:
        log.error("payment %s: LND sent %d msat, the row says %d", row.id, final.value_msat, row.amount_msat)
    fee_msat = final.fee_msat
    accounts = await context.system_accounts()
    now = datetime.now(UTC)
    async with context.sessions() as session, session.begin():
        result = await session.execute(
            update(Payment)
            .where(Payment.id == row.id, Payment.state.in_(ACTIVE_STATES))
            .values(
                state="succeeded",
                fee_msat=fee_msat,
                preimage=final.preimage,
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
    return await _finish(context, row, changed)


async def record_failure(context: WorkerContext, row: Payment, reason: str) -> dict[str, Any]:
    """failed + hold released; no ledger legs (nothing left the node)."""
    async with context.sessions() as session, session.begin():
        changed = await fail_in_session(session, row, reason)
    return await _finish(context, row, changed)


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
    return True


async def _finish(context: WorkerContext, row: Payment, changed: bool) -> dict[str, Any]:
    async with context.sessions() as session:
        state = await session.scalar(select(Payment.state).where(Payment.id == row.id))
    if changed:
        metrics.count_payment(state)  # metrics (issue 13)
        log.info("payment %s %s", row.id, state)
        await context.publish([RowEvent("payment", row.id, state, row.user_id)])
    return {"state": state}
