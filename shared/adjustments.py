"""Audited movements of value by the operator: treasury deposits and adjustments of a user's balance.

- A **deposit** records funds of the operator's own that are already on the node: equity -> treasury.
  It is how the treasury is funded (besides treasury invoices), so the treasury never holds value
  that no sats back.
- A **credit** moves treasury -> user, a **debit** user -> treasury. The database refuses either when
  it does not fit (the treasury's, or the user's, available balance would go below zero).

Each is one ``adjustments`` row (who, when, why) and one balanced ledger transaction whose legs carry
the row's id, written in the caller's transaction. Nothing here commits.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared import ledger
from shared.db.models import Adjustment

Direction = Literal["credit", "debit"]
REASON_MAX_CHARS = 500


async def record_deposit(
    session: AsyncSession,
    *,
    amount_msat: int,
    reason: str,
    created_by: uuid.UUID | None,
    adjustment_id: uuid.UUID | None = None,
) -> Adjustment:
    """equity -> treasury, with its reason (``created_by`` None: recorded by the system)."""
    treasury = await ledger.system_account_id(session, "treasury")
    equity = await ledger.system_account_id(session, "equity")
    return await _record(
        session,
        kind="deposit",
        user_id=None,
        legs=[ledger.Leg(equity, -amount_msat), ledger.Leg(treasury, amount_msat)],
        entry_kind="treasury_deposit",
        amount_msat=amount_msat,
        reason=reason,
        created_by=created_by,
        adjustment_id=adjustment_id,
    )


async def record_adjustment(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    direction: Direction,
    amount_msat: int,
    reason: str,
    created_by: uuid.UUID,
    adjustment_id: uuid.UUID | None = None,
) -> Adjustment:
    """credit: treasury -> user; debit: user -> treasury. Raises InsufficientBalance when the side
    that pays does not have that much available."""
    treasury = await ledger.system_account_id(session, "treasury")
    account = await ledger.user_account_id(session, user_id)
    sign = 1 if direction == "credit" else -1
    return await _record(
        session,
        kind=direction,
        user_id=user_id,
        legs=[ledger.Leg(treasury, -sign * amount_msat), ledger.Leg(account, sign * amount_msat)],
        entry_kind="adjustment",
        amount_msat=amount_msat,
        reason=reason,
        created_by=created_by,
        adjustment_id=adjustment_id,
    )


async def _record(
    session: AsyncSession,
    *,
    kind: str,
    user_id: uuid.UUID | None,
    legs: list[ledger.Leg],
    entry_kind: str,
    amount_msat: int,
    reason: str,
    created_by: uuid.UUID | None,
    adjustment_id: uuid.UUID | None,
) -> Adjustment:
    if amount_msat <= 0:
        raise ValueError("an adjustment must be positive")
    if not 1 <= len(reason) <= REASON_MAX_CHARS:
        raise ValueError(f"a reason of 1 to {REASON_MAX_CHARS} characters is required")
    txn_id = uuid.uuid4()
    adjustment = (
        await session.scalars(
            insert(Adjustment)
            .values(
                id=adjustment_id or uuid.uuid4(),
                kind=kind,
                user_id=user_id,
                amount_msat=amount_msat,
                reason=reason,
                created_by=created_by,
                txn_id=txn_id,
            )
            .returning(Adjustment)
        )
    ).one()
    await ledger.post_transaction(session, legs, kind=entry_kind, adjustment_id=adjustment.id, txn_id=txn_id)
    return adjustment
