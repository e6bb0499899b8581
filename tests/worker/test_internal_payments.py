from __future__ import annotations

from sqlalchemy import text

from lightning_worker.internal_payments import pay_internal
from lightning_worker.invoices import derive_preimage
from lightning_worker.payment_records import fail_in_session
from lightning_worker.payments import pay_invoice
from shared import jobs, ledger
from shared.errors import LightningRequestError, LightningUnavailable
from shared.lightning.types import InvoiceState
from tests.support import factories
from tests.worker.helpers import WorkerCase, ago


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


class InternalPaymentBranchTests(WorkerCase):
    """Every way an internal payment can end, each with its reason, its hold and its ledger checked.

    Written against surviving mutants of lightning_worker/internal_payments.py: the reasons, the
    "has it expired" comparison, the node-cancel outcomes and the treasury's accounts."""

    async def _payment_for(self, payer, invoice_id, payment_hash, amount_sat=400, **kw):
        return await self.pending_payment(
            payer, "lnbcrt4u1internal", payment_hash, amount_sat, internal_invoice_id=invoice_id, **kw
        )

    async def _setup(self, amount_sat: int = 400, **invoice_kw):
        payer = await self.user(balance_sat=2000)
        payee = await self.user()
        invoice = await self.open_invoice(payee, amount_sat, **invoice_kw)
        payment_id = await self._payment_for(payer, invoice.id, invoice.payment_hash, amount_sat)
        return payer, payee, invoice, payment_id

    async def _row(self, payment_id):
        return await self.payment(payment_id)

    async def assert_failed_cleanly(self, payment_id, payer, payee, reason: str) -> None:
        payment = await self.payment(payment_id)
        self.assertEqual((payment.state, payment.failure_reason), ("failed", reason))
        self.assertIsNotNone(payment.completed_at)
        self.assertEqual(await self.balance(payer), ledger.Balance(2_000_000, 0))
        self.assertEqual(await self.balance(payee), ledger.Balance(0, 0))
        self.assertEqual(
            await self.scalar("SELECT count(*) FROM ledger_entries WHERE payment_id = :p", p=payment_id), 0
        )
        await self.assert_ledger_consistent()

    async def test_an_invoice_row_without_a_hash_is_not_found(self) -> None:
        payer, payee = await self.user(balance_sat=2000), await self.user()
        pending = await self.pending_invoice(payee, 400)  # never created at the node: no hash yet
        payment_id = await self._payment_for(payer, pending, b"\x02" * 32)
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
        await self.assert_failed_cleanly(payment_id, payer, payee, "invoice not found")
        self.assertEqual(self.fake.calls["cancel_invoice"], 0)

    async def test_a_payment_without_its_invoice_is_not_found(self) -> None:
        payer, payee = await self.user(balance_sat=2000), await self.user()
        payment_id = await self._payment_for(payer, None, b"\x03" * 32)
        await self.set_row("payments", payment_id, internal=True)
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
        await self.assert_failed_cleanly(payment_id, payer, payee, "invoice not found")

    async def test_a_row_no_longer_open_names_its_state_and_leaves_the_node_alone(self) -> None:
        for state, reason in [("settled", "invoice already paid"), ("canceled", "invoice is canceled")]:
            with self.subTest(state=state):
                payer, payee, invoice, payment_id = await self._setup()
                await self.set_row("invoices", invoice.id, state=state)
                calls = self.fake.calls["cancel_invoice"]
                self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
                await self.assert_failed_cleanly(payment_id, payer, payee, reason)
                self.assertEqual(self.fake.calls["cancel_invoice"], calls)
                self.assertIs(self.fake.invoices[invoice.payment_hash].state, InvoiceState.OPEN)

    async def test_an_invoice_past_its_expiry_is_not_settled_even_while_its_row_is_open(self) -> None:
        payer, payee, invoice, payment_id = await self._setup()
        # The expiry cron has not run yet: the row still says open, its time is up.
        await self.set_row("invoices", invoice.id, expires_at=ago(1))
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
        await self.assert_failed_cleanly(payment_id, payer, payee, "invoice expired")
        self.assertEqual((await self.invoice(invoice.id)).state, "open")  # the cron's job, not ours

    async def test_an_invoice_without_an_expiry_time_is_paid(self) -> None:
        _payer, payee, invoice, payment_id = await self._setup()
        await self.set_row("invoices", invoice.id, expires_at=None)
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual((await self.balance(payee)).balance_msat, 400_000)

    async def test_the_row_changes_between_the_node_cancel_and_the_lock(self) -> None:
        for state, reason in [("settled", "invoice already paid"), ("canceled", "invoice is canceled")]:
            with self.subTest(state=state):
                payer, payee, invoice, payment_id = await self._setup()
                cancel = self.fake.cancel_invoice

                async def cancel_then_change(
                    payment_hash: bytes, state=state, cancel=cancel, invoice_id=invoice.id
                ) -> None:
                    await cancel(payment_hash)
                    await self.set_row("invoices", invoice_id, state=state)

                self.fake.cancel_invoice = cancel_then_change  # type: ignore[method-assign]
                try:
                    self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
                finally:
                    self.fake.cancel_invoice = cancel  # type: ignore[method-assign]
                await self.assert_failed_cleanly(payment_id, payer, payee, reason)

    async def test_a_node_without_the_invoice_cannot_be_paid_from_outside_so_we_pay(self) -> None:
        _payer, payee, invoice, payment_id = await self._setup()
        del self.fake.invoices[invoice.payment_hash]  # LightningNotFound from CancelInvoice
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual((await self.balance(payee)).balance_msat, 400_000)

    async def test_a_refused_cancel_of_an_invoice_already_canceled_at_the_node_still_pays(self) -> None:
        _payer, payee, invoice, payment_id = await self._setup()
        await self.fake.cancel_invoice(invoice.payment_hash)
        self.fake.fail_next["cancel_invoice"].append(
            LightningRequestError("invoice already canceled", grpc_code="UNKNOWN")
        )
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual(self.fake.calls["lookup_invoice"], 1)
        self.assertEqual((await self.balance(payee)).balance_msat, 400_000)

    async def test_a_refused_cancel_of_an_open_invoice_leaves_everything_for_a_retry(self) -> None:
        payer, payee, invoice, payment_id = await self._setup()
        self.fake.fail_next["cancel_invoice"].append(LightningRequestError("busy", grpc_code="UNKNOWN"))
        with self.assertRaises(LightningUnavailable) as caught:
            await pay_internal(self.context, await self._row(payment_id))
        self.assertEqual(str(caught.exception), "cancel refused (busy) for a open invoice")
        self.assertEqual((await self.payment(payment_id)).state, "pending")
        self.assertEqual(await self.balance(payer), ledger.Balance(2_000_000, 400_000))
        self.assertEqual((await self.balance(payee)).balance_msat, 0)
        self.assertEqual((await self.invoice(invoice.id)).state, "open")
        # The retry pays.
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})

    async def test_a_run_that_finds_its_payment_already_final_changes_nothing(self) -> None:
        payer, payee, invoice, payment_id = await self._setup()
        stale = await self._row(payment_id)  # read while pending
        async with self.sessions() as session, session.begin():
            await fail_in_session(session, stale, "finished elsewhere")
        # Another user's payment still active: the run must look for its own row, not any active one.
        other_payer, other_payee = await self.user(balance_sat=500), await self.user()
        other_invoice = await self.open_invoice(other_payee, 100)
        await self._payment_for(other_payer, other_invoice.id, other_invoice.payment_hash, 100)
        self.assertEqual(await pay_internal(self.context, stale), {"state": "failed"})
        self.assertEqual((await self.payment(payment_id)).failure_reason, "finished elsewhere")
        self.assertEqual((await self.invoice(invoice.id)).state, "open")
        self.assertEqual(await self.balance(payer), ledger.Balance(2_000_000, 0))
        self.assertEqual(await self.balance(payee), ledger.Balance(0, 0))
        self.assertEqual(
            await self.scalar("SELECT count(*) FROM ledger_entries WHERE invoice_id = :i", i=invoice.id), 0
        )

    async def test_success_writes_every_field_one_transaction_and_both_events(self) -> None:
        payer, payee, invoice, payment_id = await self._setup(400, webhook_url="http://127.0.0.1:9/hook")
        await self.set_row("payments", payment_id, webhook_url="http://127.0.0.1:9/payer")
        published = []
        self.context.publish = _recorder(published)  # type: ignore[method-assign]
        self.assertEqual(
            await pay_internal(self.context, await self._row(payment_id)), {"state": "succeeded"}
        )
        payment, row = await self.payment(payment_id), await self.invoice(invoice.id)
        self.assertEqual((payment.state, payment.fee_msat, payment.failure_reason), ("succeeded", 0, None))
        self.assertIsNotNone(payment.completed_at)
        self.assertGreaterEqual(payment.updated_at, payment.completed_at)
        self.assertEqual((row.state, row.amount_paid_msat), ("settled", 400_000))
        self.assertIsNotNone(row.settled_at)
        self.assertGreaterEqual(row.updated_at, row.settled_at)
        self.assertEqual(await self.balance(payer), ledger.Balance(1_600_000, 0))
        self.assertEqual(await self.balance(payee), ledger.Balance(400_000, 0))
        async with self.sessions() as session:
            entries = (
                await session.execute(
                    text(
                        "SELECT account_id, amount_msat, kind, invoice_id, payment_id, txn_id"
                        " FROM ledger_entries WHERE payment_id = :p ORDER BY amount_msat"
                    ),
                    {"p": payment_id},
                )
            ).all()
        self.assertEqual(
            [(e.account_id, e.amount_msat, e.kind, e.invoice_id) for e in entries],
            [
                (await self.account_of(payer), -400_000, "internal_payment", invoice.id),
                (await self.account_of(payee), 400_000, "internal_payment", invoice.id),
            ],
        )
        self.assertEqual(len({e.txn_id for e in entries}), 1)
        self.assertEqual(
            [(e.type, e.id, e.state, e.user_id) for e in published],
            [("payment", payment_id, "succeeded", payer), ("invoice", invoice.id, "settled", payee)],
        )
        deliveries = await self.scalar(
            "SELECT string_agg(event, ',' ORDER BY event) FROM webhook_deliveries"
            " WHERE invoice_id = :i OR payment_id = :p",
            i=invoice.id,
            p=payment_id,
        )
        self.assertEqual(deliveries, "invoice.settled,payment.succeeded")
        invoice_delivery = await self.scalar(
            "SELECT id FROM webhook_deliveries WHERE invoice_id = :i", i=invoice.id
        )
        queued = {job.job_id for job in await self.arq.queued_jobs(queue_name=self.settings.arq_queue_name)}
        self.assertIn(jobs.deliver_webhook_job_id(invoice_delivery), queued)

    async def test_a_failure_publishes_the_payment_event_once(self) -> None:
        payer, _payee, invoice, payment_id = await self._setup()
        await self.set_row("invoices", invoice.id, expires_at=ago(1))
        published = []
        self.context.publish = _recorder(published)  # type: ignore[method-assign]
        self.assertEqual(await pay_internal(self.context, await self._row(payment_id)), {"state": "failed"})
        self.assertEqual(
            [(e.type, e.id, e.state, e.user_id) for e in published],
            [("payment", payment_id, "failed", payer)],
        )
        self.assertEqual(await self.arq.queued_jobs(queue_name=self.settings.arq_queue_name), [])

    async def test_every_payment_write_goes_through_the_sessions_it_is_given(self) -> None:
        """pay_invoice passes the payment lock's sessions: a write through any other connection would
        happen outside the lock. Only the settlement of an invoice paid from outside is its own
        transaction (settle_invoices)."""
        await self.context.system_accounts()  # cached: the settlement below opens one session
        lock_sessions, context_sessions = self.sessions, self.context.sessions
        opened = []

        def counting():
            opened.append(1)
            return context_sessions()

        cases = [
            ("no hash", "invoice not found", 0),
            ("settled row", "invoice already paid", 0),
            ("expired", "invoice expired", 0),
            ("paid from outside", "invoice already paid", 1),
            ("open", None, 0),
        ]
        for case, reason, settlement_sessions in cases:
            with self.subTest(case=case):
                _payer, payee, invoice, payment_id = await self._setup()
                if case == "no hash":
                    pending = await self.pending_invoice(payee, 400)
                    await self.set_row("payments", payment_id, internal_invoice_id=pending)
                elif case == "settled row":
                    await self.set_row("invoices", invoice.id, state="settled")
                elif case == "expired":
                    await self.set_row("invoices", invoice.id, expires_at=ago(1))
                elif case == "paid from outside":
                    self.fake.settle(invoice.payment_hash)
                row = await self._row(payment_id)
                opened.clear()
                self.context.sessions = counting
                try:
                    result = await pay_internal(self.context, row, sessions=lock_sessions)
                finally:
                    self.context.sessions = context_sessions
                self.assertEqual(len(opened), settlement_sessions)
                payment = await self.payment(payment_id)
                self.assertEqual(
                    (result["state"], payment.failure_reason), ("failed" if reason else "succeeded", reason)
                )

    async def test_the_treasury_pays_a_users_invoice(self) -> None:
        async with self.sessions() as session, session.begin():
            await factories.fund_treasury(session, 1_000)
            treasury = await ledger.system_account_id(session, "treasury")
        admin, payee = await self.user(), await self.user()
        invoice = await self.open_invoice(payee, 300)
        payment_id = await self._payment_for(admin, invoice.id, invoice.payment_hash, 300, from_treasury=True)
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        async with self.sessions() as session:
            self.assertEqual(await ledger.get_balance(session, treasury), ledger.Balance(700_000, 0))
        self.assertEqual(await self.balance(admin), ledger.Balance(0, 0))  # the admin's own wallet untouched
        self.assertEqual(await self.balance(payee), ledger.Balance(300_000, 0))
        await self.assert_ledger_consistent()

    async def test_a_users_payment_of_a_treasury_invoice_credits_the_treasury(self) -> None:
        async with self.sessions() as session:
            treasury = await ledger.system_account_id(session, "treasury")
        payer, admin = await self.user(balance_sat=1000), await self.user()
        pending = await self.pending_invoice(admin, 250)
        await self.set_row("invoices", pending, account_id=treasury, for_treasury=True)
        from lightning_worker.invoices import create_invoice

        self.assertEqual(await create_invoice(self.ctx(), str(pending)), {"state": "open"})
        invoice = await self.invoice(pending)
        payment_id = await self._payment_for(payer, invoice.id, invoice.payment_hash, 250)
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        async with self.sessions() as session:
            self.assertEqual(await ledger.get_balance(session, treasury), ledger.Balance(250_000, 0))
        self.assertEqual(await self.balance(payer), ledger.Balance(750_000, 0))
        self.assertEqual(await self.balance(admin), ledger.Balance(0, 0))
        await self.assert_ledger_consistent()


def _recorder(into: list):
    async def publish(events) -> None:
        into.extend(events)

    return publish
