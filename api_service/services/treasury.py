"""The treasury (the operator's own money on the node) and audited adjustments, for admins.

The treasury is a guarded ledger account: funded by deposits (the operator records funds of its own
already on the node, against ``equity``) and by treasury invoices; spent by treasury payments and by
credits to users. A credit or payment that does not fit is 422 INSUFFICIENT_BALANCE, refused by the
database itself. Deposits and adjustments honour Idempotency-Key like the wallet's POSTs.
"""

from __future__ import annotations

import uuid
from typing import Any

from api_service.schemas.treasury import (
    AdjustmentBody,
    AdjustmentListQuery,
    AdjustmentOut,
    DepositBody,
    TreasuryOut,
)
from api_service.security import CurrentUser
from api_service.services import idempotency
from api_service.services.submission import KeyTaken, Outcome, WalletDeps, existing_key
from api_service.validation import dump
from api_service.wire import sat
from shared import adjustments, ledger
from shared.db.models import IdempotencyKey
from shared.db.queries import adjustments as queries
from shared.db.queries import users as user_queries
from shared.errors import NotFound
from shared.ledger import MSAT_PER_SAT


def adjustment_out(row: Any) -> dict[str, Any]:
    return dump(
        AdjustmentOut(
            id=row.id,
            direction=row.kind,
            user_id=row.user_id,
            username=row.username,
            amount_sat=sat(row.amount_msat),
            amount_msat=row.amount_msat,
            reason=row.reason,
            created_by=row.created_by,
            created_by_username=row.created_by_username,
            created_at=row.created_at,
        )
    )


async def get_treasury(deps: WalletDeps) -> dict[str, Any]:
    async with deps.sessions() as session:
        balance = await ledger.get_balance(session, await ledger.system_account_id(session, "treasury"))
    return dump(
        TreasuryOut(
            balance_sat=sat(balance.balance_msat),
            held_sat=sat(balance.held_msat),
            available_sat=sat(balance.available_msat),
            balance_msat=balance.balance_msat,
            held_msat=balance.held_msat,
            available_msat=balance.available_msat,
        )
    )


async def create_deposit(
    deps: WalletDeps, admin: CurrentUser, body: DepositBody, idem: idempotency.IdempotencyRequest | None
) -> Outcome:
    async def write(session, adjustment_id: uuid.UUID) -> None:
        await adjustments.record_deposit(
            session,
            amount_msat=body.amount_sat * MSAT_PER_SAT,
            reason=body.reason,
            created_by=admin.id,
            adjustment_id=adjustment_id,
        )

    return await _create(deps, admin, idem, write)


async def create_adjustment(
    deps: WalletDeps, admin: CurrentUser, body: AdjustmentBody, idem: idempotency.IdempotencyRequest | None
) -> Outcome:
    async def write(session, adjustment_id: uuid.UUID) -> None:
        if await user_queries.get_user(session, body.user_id) is None:
            raise NotFound("User not found")
        await adjustments.record_adjustment(
            session,
            user_id=body.user_id,
            direction=body.direction,
            amount_msat=body.amount_sat * MSAT_PER_SAT,
            reason=body.reason,
            created_by=admin.id,
            adjustment_id=adjustment_id,
        )

    return await _create(deps, admin, idem, write)


async def _create(deps: WalletDeps, admin: CurrentUser, idem, write) -> Outcome:
    """One transaction: the Idempotency-Key row (if any), the adjustment and its ledger legs."""
    if idem is not None and (previous := await idempotency.find(deps.sessions, admin.id, idem)) is not None:
        return await _replay(deps, previous)
    adjustment_id = uuid.uuid4()
    try:
        async with deps.sessions() as session, session.begin():
            if idem is not None and not await idempotency.claim(session, admin.id, idem, adjustment_id):
                raise KeyTaken()
            await write(session, adjustment_id)
    except KeyTaken:
        return await _replay(deps, await existing_key(deps, admin, idem))
    outcome = await _outcome(deps, adjustment_id)
    await idempotency.remember(deps.sessions, admin.id, idem, outcome.status, outcome.data)
    return outcome


async def _outcome(deps: WalletDeps, adjustment_id: uuid.UUID) -> Outcome:
    async with deps.reads.connect() as connection:
        row = await queries.get_adjustment(connection, adjustment_id)
    return Outcome(201, adjustment_out(row))


async def _replay(deps: WalletDeps, previous: IdempotencyKey) -> Outcome:
    if previous.response_status is not None:
        return Outcome(previous.response_status, previous.response_body)
    return await _outcome(deps, previous.resource_id)


async def list_adjustments(deps: WalletDeps, query: AdjustmentListQuery) -> tuple[list[dict], int]:
    kinds = (query.direction,) if query.direction else ("credit", "debit")
    async with deps.reads.connect() as connection:
        rows, total = await queries.list_adjustments(
            connection, kinds=kinds, user_id=query.user_id, limit=query.page_size, offset=query.offset
        )
    return [adjustment_out(row) for row in rows], total


async def list_deposits(deps: WalletDeps, query: AdjustmentListQuery) -> tuple[list[dict], int]:
    async with deps.reads.connect() as connection:
        rows, total = await queries.list_adjustments(
            connection, kinds=("deposit",), user_id=None, limit=query.page_size, offset=query.offset
        )
    return [adjustment_out(row) for row in rows], total
