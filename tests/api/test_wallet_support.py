"""Helpers for the wallet API tests (no tests here): a fake worker, invoice rows, request shortcuts.

The fake worker plays the lightning_worker's part of the wallet contract without LND: it pops our jobs
from the arq queue, writes the outcome to the row (and the ledger) in one transaction, then publishes
the RowEvent, exactly in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from shared import events, jobs, ledger
from shared.db.models import Account, Invoice, Payment
from tests.support.bolt11_factory import make_payment_request

# The "alice" (our node) key for invoices that our worker would have created.
ALICE_PRIVKEY = "1f1b5a2f0f4e8ad4c1ab4b6bd6d4d0d3e3e6d9fa7c3b9a0a8d9b0c4e5f6a7b8c"


async def insert_open_invoice(
    case, user_id: uuid.UUID, *, amount_sat: int = 100, state: str = "open", expiry_s: int = 3600
) -> tuple[uuid.UUID, str, bytes]:
    """An incoming invoice row as the worker leaves it (open, with a real BOLT11 from our node)."""
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    pr, _ = make_payment_request(
        amount_msat=amount_sat * 1000, payment_hash=payment_hash, privkey_hex=ALICE_PRIVKEY, expiry_s=expiry_s
    )
    async with case.sessions() as session, session.begin():
        invoice_id = await session.scalar(
            insert(Invoice)
            .values(
                user_id=user_id,
                account_id=select(Account.id).where(Account.user_id == user_id).scalar_subquery(),
                state=state,
                amount_msat=amount_sat * 1000,
                memo="t",
                expiry_s=expiry_s,
                payment_request=pr,
                payment_hash=payment_hash,
                expires_at=datetime.now(UTC) + timedelta(seconds=expiry_s),
            )
            .returning(Invoice.id)
        )
    return invoice_id, pr, payment_hash


async def insert_payment(
    case,
    user_id: uuid.UUID,
    *,
    state: str = "succeeded",
    amount_msat: int = 5_500,
    fee_msat: int | None = None,
) -> tuple[uuid.UUID, bytes]:
    """A finished outgoing payment row (no hold left), as the worker leaves it: (id, payment hash)."""
    payment_hash = os.urandom(32)
    succeeded = state == "succeeded"
    async with case.sessions() as session, session.begin():
        payment_id = await session.scalar(
            insert(Payment)
            .values(
                user_id=user_id,
                account_id=await ledger.user_account_id(session, user_id),
                state=state,
                payment_hash=payment_hash,
                payment_request="lnbcrt1x",
                destination="02" * 33,
                amount_msat=amount_msat,
                fee_limit_msat=10_000,
                hold_msat=amount_msat + 10_000,
                fee_msat=fee_msat if succeeded else None,
                preimage=os.urandom(32) if succeeded else None,
            )
            .returning(Payment.id)
        )
    return payment_id, payment_hash


async def open_invoice(session, invoice_id: uuid.UUID) -> Invoice | None:
    invoice = await session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None or invoice.state != "pending":
        return None
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    pr, _ = make_payment_request(
        amount_msat=invoice.amount_msat,
        payment_hash=payment_hash,
        privkey_hex=ALICE_PRIVKEY,
        expiry_s=invoice.expiry_s,
    )
    await session.execute(
        update(Invoice)
        .where(Invoice.id == invoice_id)
        .values(
            state="open",
            payment_request=pr,
            payment_hash=payment_hash,
            updated_at=datetime.now(UTC),
            expires_at=datetime.now(UTC) + timedelta(seconds=invoice.expiry_s),
        )
    )
    return invoice


async def finish_payment(session, payment_id: uuid.UUID, outcome: str) -> Payment | None:
    payment = await session.get(Payment, payment_id, with_for_update=True)
    if payment is None or payment.state not in ("pending", "in_flight"):
        return None
    await ledger.release_hold(session, payment.account_id, payment.hold_msat)
    if outcome == "succeeded":
        fee_msat = min(1000, payment.fee_limit_msat)
        external = await ledger.system_account_id(session, "external")
        fees = await ledger.system_account_id(session, "fees")
        await ledger.post_transaction(
            session,
            [
                ledger.Leg(payment.account_id, -(payment.amount_msat + fee_msat)),
                ledger.Leg(external, payment.amount_msat),
                ledger.Leg(fees, fee_msat),
            ],
            kind="payment",
            payment_id=payment_id,
        )
        values = {"state": "succeeded", "fee_msat": fee_msat, "preimage": os.urandom(32)}
    else:
        values = {"state": "failed", "failure_reason": "no route"}
    await session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(completed_at=datetime.now(UTC), updated_at=datetime.now(UTC), **values)
    )
    return payment


async def fake_worker(
    case, stop: asyncio.Event, *, payment_outcome: str = "succeeded", delay_s: float = 0.0
) -> None:
    """Consume create_invoice / pay_invoice jobs from the arq queue until ``stop`` is set."""
    queue = case.settings.arq_queue_name
    while not stop.is_set():
        popped = await case.redis.zpopmin(queue, 20)
        for raw_id, _ in popped:
            name, _, row_id = raw_id.decode().partition(":")
            await asyncio.sleep(delay_s)
            async with case.sessions() as session, session.begin():
                if name == jobs.CREATE_INVOICE:
                    row = await open_invoice(session, uuid.UUID(row_id))
                    event = row and events.RowEvent("invoice", row.id, "open", row.user_id)
                elif name == jobs.PAY_INVOICE:
                    row = await finish_payment(session, uuid.UUID(row_id), payment_outcome)
                    event = row and events.RowEvent("payment", row.id, payment_outcome, row.user_id)
                else:
                    event = None
            if event:  # after commit, as the contract says
                await events.publish(case.redis, event)
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_fake_worker(case, **kwargs):
    stop = asyncio.Event()
    task = asyncio.create_task(fake_worker(case, stop, **kwargs))
    try:
        yield task
    finally:
        stop.set()
        await task


async def balance_msat(case, user_id: uuid.UUID) -> ledger.Balance:
    async with case.sessions() as session:
        return await ledger.get_balance(session, await ledger.user_account_id(session, user_id))


async def count_rows(case, model, **where) -> int:
    async with case.sessions() as session:
        statement = select(model)
        for name, value in where.items():
            statement = statement.where(getattr(model, name) == value)
        return len((await session.scalars(statement)).all())
