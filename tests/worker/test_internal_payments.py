from __future__ import annotations

from lightning_worker.invoices import derive_preimage
from lightning_worker.payments import pay_invoice
from shared.lightning.types import InvoiceState
from tests.worker.helpers import WorkerCase


class InternalPaymentTests(WorkerCase):
    async def _setup(self, amount_sat: int = 700, **invoice_kw):
        payer = await self.user(balance_sat=2000)
        payee = await self.user()
        invoice = await self.open_invoice(payee, amount_sat, **invoice_kw)
        payment_id = await self.pending_payment(
            payer, invoice.payment_request, invoice.payment_hash, amount_sat, internal_invoice_id=invoice.id
        )
        return payer, payee, invoice, payment_id

    async def test_moves_money_inside_postgres(self) -> None:
        payer, payee, invoice, payment_id = await self._setup(700, webhook_url="http://127.0.0.1:9/hook")
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        payment = await self.payment(payment_id)
        self.assertEqual((payment.state, payment.fee_msat), ("succeeded", 0))
        self.assertEqual(payment.preimage, derive_preimage(self.settings.preimage_key, invoice.id))
        row = await self.invoice(invoice.id)
        self.assertEqual((row.state, row.amount_paid_msat), ("settled", 700_000))
        payer_balance, payee_balance = await self.balance(payer), await self.balance(payee)
        self.assertEqual((payer_balance.balance_msat, payer_balance.held_msat), (1_300_000, 0))
        self.assertEqual(payee_balance.balance_msat, 700_000)
        self.assertIs(self.fake.invoices[invoice.payment_hash].state, InvoiceState.CANCELED)
        self.assertEqual(self.fake.sends, [])
        await self.assert_ledger_consistent()
        self.assertEqual(
            await self.scalar("SELECT count(*) FROM webhook_deliveries WHERE invoice_id = :i", i=invoice.id),
            1,
        )
        # Idempotent.
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual((await self.balance(payee)).balance_msat, 700_000)

    async def test_invoice_no_longer_open_fails_cleanly(self) -> None:
        payer, payee, invoice, payment_id = await self._setup()
        await self.set_row("invoices", invoice.id, state="expired")
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
        self.assertEqual((await self.payment(payment_id)).failure_reason, "invoice is expired")
        self.assertEqual(await self.balance(payer), (await self.balance(payer)).__class__(2_000_000, 0))
        self.assertEqual((await self.balance(payee)).balance_msat, 0)
        await self.assert_ledger_consistent()

    async def test_invoice_paid_from_outside_first(self) -> None:
        payer, payee, invoice, payment_id = await self._setup(500)
        self.fake.settle(invoice.payment_hash)  # bob paid it over Lightning just before
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
        self.assertEqual((await self.payment(payment_id)).failure_reason, "invoice already paid")
        self.assertEqual((await self.balance(payer)).balance_msat, 2_000_000)
        self.assertEqual((await self.balance(payer)).held_msat, 0)
        self.assertEqual((await self.balance(payee)).balance_msat, 500_000)  # credited once, from outside
        self.assertEqual((await self.invoice(invoice.id)).state, "settled")
        await self.assert_ledger_consistent()

    async def test_a_second_payment_of_a_settled_invoice_fails(self) -> None:
        _payer, payee, invoice, first = await self._setup(300)
        self.assertEqual(await pay_invoice(self.ctx(), str(first)), {"state": "succeeded"})
        # Another row for the same invoice (the API's unique index would stop one with the same hash;
        # the worker must not rely on it).
        other = await self.user(balance_sat=1000)
        second = await self.pending_payment(
            other, invoice.payment_request, b"\x01" * 32, 300, internal_invoice_id=invoice.id
        )
        self.assertEqual(await pay_invoice(self.ctx(), str(second)), {"state": "failed"})
        self.assertEqual((await self.payment(second)).failure_reason, "invoice already paid")
        self.assertEqual((await self.balance(payee)).balance_msat, 300_000)
        other_balance = await self.balance(other)
        self.assertEqual((other_balance.balance_msat, other_balance.held_msat), (1_000_000, 0))
        await self.assert_ledger_consistent()


class OppositeDirectionTests(WorkerCase):
    async def test_opposite_payments_and_settlements_at_once_never_deadlock(self) -> None:
        """A->B, B->A and settlements crediting both, all at once: account locks are taken in id
        order, so no transaction waits on another in the opposite order. Called below the job's
        retry wrapper, so a deadlock would fail this test instead of being retried."""
        import asyncio

        from sqlalchemy import select

        from lightning_worker.internal_payments import pay_internal
        from lightning_worker.settlement import settle_invoices
        from shared.db.models import Payment

        a, b = await self.user(balance_sat=10_000), await self.user(balance_sat=10_000)
        payments = []
        for payer, payee in [(a, b), (b, a)] * 8:
            invoice = await self.open_invoice(payee, 100)
            payments.append(
                await self.pending_payment(
                    payer, invoice.payment_request, invoice.payment_hash, 100, internal_invoice_id=invoice.id
                )
            )
        outside = [await self.open_invoice(user, 7) for user in (a, b) * 4]
        async with self.sessions() as session:
            rows = (await session.scalars(select(Payment).where(Payment.id.in_(payments)))).all()
        settled = [self.fake.settle(inv.payment_hash) for inv in outside]
        results = await asyncio.gather(
            *(pay_internal(self.context, row) for row in rows),
            *(settle_invoices(self.context, [inv], cursor_node=None) for inv in settled),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        self.assertEqual(errors, [])
        self.assertEqual(
            await self.scalar("SELECT count(*) FROM payments WHERE state = 'succeeded'"), len(payments)
        )
        # Each paid 8 x 100 and received 8 x 100 inside, and 4 x 7 from outside.
        for user in (a, b):
            balance = await self.balance(user)
            self.assertEqual((balance.balance_msat, balance.held_msat), (10_028_000, 0))
        await self.assert_ledger_consistent()
