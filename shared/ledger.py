"""Money rules: every movement of value is a balanced ledger transaction.

All functions take an open ``AsyncSession`` inside a transaction and never commit: the caller
groups a state change (invoice settled, payment final) and its ledger legs in one transaction.
The database enforces the invariants (see shared/db/models.py); these helpers only express them.

Accounts: one per user, plus the system accounts ``treasury`` (the operator's own money on the node),
``fees`` (routing fees paid to the network), ``external`` (the rest of the Lightning network: value
that entered or left through the node) and ``equity`` (the operator's side of treasury deposits: funds
of its own it records as already on the node). User accounts and the treasury are guarded: their
available balance (balance - held) never goes below zero, enforced by a CHECK in the database, so
nobody, admins included, can create balance that no sats back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.db.models import GUARDED_ACCOUNT_KINDS, Account, LedgerEntry
from shared.errors import InsufficientBalance

MSAT_PER_SAT = 1000


@dataclass(frozen=True, slots=True)
class Leg:
    account_id: int
    amount_msat: int


@dataclass(frozen=True, slots=True)
class Balance:
    balance_msat: int
    held_msat: int

    @property
    def available_msat(self) -> int:
        return self.balance_msat - self.held_msat


def fee_reserve_msat(amount_msat: int, *, ppm: int, min_sat: int) -> int:
    """The fee limit for a payment, which is also what we hold for fees: one number.

    Rounded up to whole sats, because LND's fee_limit_sat is in sats."""
    proportional_msat = -(-amount_msat * ppm // 1_000_000)
    reserve_msat = max(proportional_msat, min_sat * MSAT_PER_SAT)
    return -(-reserve_msat // MSAT_PER_SAT) * MSAT_PER_SAT


async def system_account_id(session: AsyncSession, kind: str) -> int:
    account_id = await session.scalar(
        select(Account.id).where(Account.kind == kind, Account.user_id.is_(None))
    )
    if account_id is None:
        raise LookupError(f"system account {kind!r} is missing: run the migrations")
    return account_id


async def create_user_account(session: AsyncSession, user_id: uuid.UUID) -> int:
    return await session.scalar(insert(Account).values(kind="user", user_id=user_id).returning(Account.id))


async def user_account_id(session: AsyncSession, user_id: uuid.UUID) -> int:
    account_id = await session.scalar(select(Account.id).where(Account.user_id == user_id))
    if account_id is None:
        raise LookupError(f"user {user_id} has no account")
    return account_id


async def lock_accounts(session: AsyncSession, account_ids: Iterable[int]) -> None:
    """Lock the accounts a money transaction will touch, in ascending id order.

    Every writer of balances takes its account locks through this first, so two transactions can
    never wait on each other in opposite order (an internal payment A->B against B->A, or a
    payment's success against a settlement batch that both touch the ``external`` account).
    Postgres applies FOR UPDATE after ORDER BY, so the locks are taken in id order."""
    ids = sorted(set(account_ids))
    if ids:
        await session.execute(
            select(Account.id).where(Account.id.in_(ids)).order_by(Account.id).with_for_update()
        )


async def get_balance(session: AsyncSession, account_id: int) -> Balance:
    row = (
        await session.execute(select(Account.balance_msat, Account.held_msat).where(Account.id == account_id))
    ).one()
    return Balance(balance_msat=row.balance_msat, held_msat=row.held_msat)


async def get_user_balance(session: AsyncSession | AsyncConnection, user_id: uuid.UUID) -> Balance:
    """The balance of a user's account, in one statement."""
    row = (
        await session.execute(
            select(Account.balance_msat, Account.held_msat).where(Account.user_id == user_id)
        )
    ).one_or_none()
    if row is None:
        raise LookupError(f"user {user_id} has no account")
    return Balance(balance_msat=row.balance_msat, held_msat=row.held_msat)


async def post_transaction(
    session: AsyncSession,
    legs: Sequence[Leg],
    *,
    kind: str,
    invoice_id: uuid.UUID | None = None,
    payment_id: uuid.UUID | None = None,
    adjustment_id: uuid.UUID | None = None,
    txn_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Write one balanced transaction. Raises InsufficientBalance if a guarded account would overdraw."""
    if sum(leg.amount_msat for leg in legs) != 0:
        raise ValueError("ledger legs must sum to zero")
    await lock_accounts(session, (leg.account_id for leg in legs))
    txn_id = txn_id or uuid.uuid4()
    rows = [
        {
            "txn_id": txn_id,
            "account_id": leg.account_id,
            "amount_msat": leg.amount_msat,
            "kind": kind,
            "invoice_id": invoice_id,
            "payment_id": payment_id,
            "adjustment_id": adjustment_id,
        }
        for leg in legs
        if leg.amount_msat != 0
    ]
    try:
        async with session.begin_nested():
            await session.execute(insert(LedgerEntry), rows)
    except IntegrityError as exc:
        if "accounts_available_non_negative" in str(exc.orig):
            raise InsufficientBalance() from None
        raise
    return txn_id


async def place_hold(session: AsyncSession, account_id: int, amount_msat: int) -> None:
    """Reserve ``amount_msat`` of the account's available balance for a payment in progress.

    For guarded accounts (users, the treasury) the guarded UPDATE and the CHECK constraint both
    refuse an overdraft; the row lock it takes serialises concurrent holds on one account."""
    if amount_msat <= 0:
        raise ValueError("a hold must be positive")
    statement = (
        update(Account)
        .where(Account.id == account_id)
        .where(
            Account.kind.not_in(GUARDED_ACCOUNT_KINDS)
            | (Account.balance_msat - Account.held_msat >= amount_msat)
        )
        .values(held_msat=Account.held_msat + amount_msat)
    )
    result = await session.execute(statement.returning(Account.id))
    if result.scalar_one_or_none() is None:
        raise InsufficientBalance()


async def release_hold(session: AsyncSession, account_id: int, amount_msat: int) -> None:
    """Give back a hold placed by :func:`place_hold` (the CHECK refuses a release of more than is held)."""
    await session.execute(
        update(Account).where(Account.id == account_id).values(held_msat=Account.held_msat - amount_msat)
    )


async def ledger_totals(session: AsyncSession) -> tuple[int, int]:
    """(sum of all entries, sum of all account balances): both are zero in a consistent ledger."""
    row = (
        await session.execute(
            text(
                "SELECT (SELECT coalesce(sum(amount_msat), 0) FROM ledger_entries) AS entries,"
                " (SELECT coalesce(sum(balance_msat), 0) FROM accounts) AS balances"
            )
        )
    ).one()
    return int(row.entries), int(row.balances)
