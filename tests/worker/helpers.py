"""Shared set-up for worker tests: a clean DB/Redis (DbCase), a FakeLightning, a WorkerContext, and
rows inserted the way the API does it (wallet_contract.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy import insert, select, text

from lightning_worker.context import CTX_KEY, WorkerContext
from lightning_worker.invoices import derive_preimage, payment_hash_of
from shared import jobs, ledger
from shared.db.models import Invoice, Payment
from tests.support import factories
from tests.support.cases import DbCase
from tests.support.fake_lightning import FakeLightning


class WorkerCase(DbCase):
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.fake = FakeLightning()
        self.arq: ArqRedis = await create_pool(
            RedisSettings.from_dsn(self.settings.redis_url), **jobs.SERIALIZERS
        )
        self.context = WorkerContext(
            settings=self.settings,
            engine=self.engine,
            sessions=self.sessions,
            lightning=self.fake,
            redis=self.arq,
        )

    async def asyncTearDown(self) -> None:
        for task in self.context.background:
            task.cancel()
        await self.arq.aclose()
        await super().asyncTearDown()

    def ctx(self, job_try: int = 1) -> dict[str, Any]:
        return {CTX_KEY: self.context, "job_try": job_try, "redis": self.arq}

    # ---- rows, as the API writes them -------------------------------------------------------------
    async def user(self, balance_sat: int = 0) -> uuid.UUID:
        return await factories.create_user(self.sessions, balance_sat=balance_sat)

    async def account_of(self, user_id: uuid.UUID) -> int:
        async with self.sessions() as session:
            return await ledger.user_account_id(session, user_id)

    async def pending_invoice(
        self,
        user_id: uuid.UUID,
        amount_sat: int = 1000,
        *,
        memo: str = "",
        expiry_s: int = 3600,
        webhook_url: str | None = None,
        amount_msat: int | None = None,
        description_hash: bytes | None = None,
    ) -> uuid.UUID:
        async with self.sessions() as session, session.begin():
            return await session.scalar(
                insert(Invoice)
                .values(
                    user_id=user_id,
                    account_id=await ledger.user_account_id(session, user_id),
                    amount_msat=amount_sat * 1000 if amount_msat is None else amount_msat,
                    memo=memo,
                    expiry_s=expiry_s,
                    webhook_url=webhook_url,
                    description_hash=description_hash,
                )
                .returning(Invoice.id)
            )

    async def open_invoice(self, user_id: uuid.UUID, amount_sat: int = 1000, **kw: Any) -> Invoice:
        """A pending row turned open by the real create_invoice job over the fake node."""
        from lightning_worker.invoices import create_invoice

        invoice_id = await self.pending_invoice(user_id, amount_sat, **kw)
        result = await create_invoice(self.ctx(), str(invoice_id))
        assert result == {"state": "open"}, result
        return await self.invoice(invoice_id)

    async def pending_payment(
        self,
        user_id: uuid.UUID,
        payment_request: str,
        payment_hash: bytes,
        amount_sat: int,
        *,
        fee_limit_sat: int = 10,
        internal_invoice_id: uuid.UUID | None = None,
        from_treasury: bool = False,
        webhook_url: str | None = None,
    ) -> uuid.UUID:
        amount_msat = amount_sat * 1000
        fee_limit_msat = 0 if internal_invoice_id else fee_limit_sat * 1000
        async with self.sessions() as session, session.begin():
            if from_treasury:
                account_id = await ledger.system_account_id(session, "treasury")
            else:
                account_id = await ledger.user_account_id(session, user_id)
            await ledger.place_hold(session, account_id, amount_msat + fee_limit_msat)
            return await session.scalar(
                insert(Payment)
                .values(
                    user_id=user_id,
                    account_id=account_id,
                    from_treasury=from_treasury,
                    internal=internal_invoice_id is not None,
                    payment_hash=payment_hash,
                    payment_request=payment_request,
                    destination="02" + "00" * 32,
                    amount_msat=amount_msat,
                    fee_limit_msat=fee_limit_msat,
                    hold_msat=amount_msat + fee_limit_msat,
                    internal_invoice_id=internal_invoice_id,
                    webhook_url=webhook_url,
                )
                .returning(Payment.id)
            )

    # ---- reads ------------------------------------------------------------------------------------
    async def invoice(self, invoice_id: uuid.UUID) -> Invoice:
        async with self.sessions() as session:
            return await session.scalar(select(Invoice).where(Invoice.id == invoice_id))

    async def payment(self, payment_id: uuid.UUID) -> Payment:
        async with self.sessions() as session:
            return await session.scalar(select(Payment).where(Payment.id == payment_id))

    async def balance(self, user_id: uuid.UUID) -> ledger.Balance:
        async with self.sessions() as session:
            return await ledger.get_balance(session, await ledger.user_account_id(session, user_id))

    async def system_balance(self, kind: str) -> int:
        async with self.sessions() as session:
            account_id = await ledger.system_account_id(session, kind)
            return (await ledger.get_balance(session, account_id)).balance_msat

    async def assert_ledger_consistent(self) -> None:
        async with self.sessions() as session:
            self.assertEqual(await ledger.ledger_totals(session), (0, 0))

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.sessions() as session:
            return await session.scalar(text(sql), params)

    async def set_row(self, table: str, row_id: Any, **values: Any) -> None:
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        async with self.sessions() as session, session.begin():
            sql = f"UPDATE {table} SET {assignments} WHERE id = :id"  # noqa: S608 - test code, fixed names
            await session.execute(text(sql), {**values, "id": row_id})


def expected_hash(settings: Any, invoice_id: uuid.UUID) -> bytes:
    return payment_hash_of(derive_preimage(settings.preimage_key, invoice_id))


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
