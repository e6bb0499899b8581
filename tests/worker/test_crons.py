from __future__ import annotations

from arq.constants import job_key_prefix, result_key_prefix

from lightning_worker import crons
from shared import jobs
from tests.worker.helpers import WorkerCase, ago


class CronTests(WorkerCase):
    async def _queued(self) -> set[str]:
        return {m.decode() for m in await self.arq.zrange(self.settings.arq_queue_name, 0, -1)}

    async def test_stale_rows_are_enqueued_again_after_redis_lost_them(self) -> None:
        user = await self.user(balance_sat=5000)
        stale_invoice = await self.pending_invoice(user)
        fresh_invoice = await self.pending_invoice(user)
        request, payment_hash = self.fake.external_invoice(1_000_000)
        stale_payment = await self.pending_payment(user, request, payment_hash, 1000)
        await self.set_row("invoices", stale_invoice, updated_at=ago(600))
        await self.set_row("payments", stale_payment, updated_at=ago(600), state="in_flight")
        await self.arq.enqueue_job(
            jobs.CREATE_INVOICE, str(stale_invoice), _job_id=jobs.create_invoice_job_id(stale_invoice)
        )
        await self.redis.flushdb()  # Redis lost every job
        result = await crons.requeue_stale_rows(self.ctx())
        self.assertEqual(result, {"enqueued": 2, "revived": 0, "queued": 0})
        self.assertEqual(
            await self._queued(),
            {jobs.create_invoice_job_id(stale_invoice), jobs.pay_invoice_job_id(stale_payment)},
        )
        self.assertNotIn(jobs.create_invoice_job_id(fresh_invoice), await self._queued())
        # Still queued: left alone, not duplicated.
        self.assertEqual(
            await crons.requeue_stale_rows(self.ctx()), {"enqueued": 0, "revived": 0, "queued": 2}
        )

    async def test_a_kept_result_does_not_block_the_retry(self) -> None:
        user = await self.user()
        invoice_id = await self.pending_invoice(user)
        await self.set_row("invoices", invoice_id, updated_at=ago(600))
        job_id = jobs.create_invoice_job_id(invoice_id)
        await self.redis.set(result_key_prefix + job_id, b"old result of a run that gave up")
        self.assertEqual(
            await crons.requeue_stale_rows(self.ctx()), {"enqueued": 0, "revived": 1, "queued": 0}
        )
        self.assertTrue(await self.redis.exists(job_key_prefix + job_id))

    async def test_open_invoices_past_expiry_are_marked_expired(self) -> None:
        user = await self.user()
        old = await self.open_invoice(user, 10)
        current = await self.open_invoice(user, 10)
        await self.set_row("invoices", old.id, expires_at=ago(1))
        self.assertEqual(await crons.expire_invoices(self.ctx()), {"expired": 1})
        self.assertEqual((await self.invoice(old.id)).state, "expired")
        self.assertEqual((await self.invoice(current.id)).state, "open")
        # A late settlement of an expired invoice is still credited (the node decides).
        from lightning_worker.settlement import settle_invoices

        await settle_invoices(self.context, [self.fake.settle(old.payment_hash)], cursor_node="n")
        self.assertEqual((await self.balance(user)).balance_msat, 10_000)

    async def test_due_webhooks_are_enqueued(self) -> None:
        user = await self.user()
        invoice = await self.open_invoice(user, 10, webhook_url="http://127.0.0.1:9/x")
        from sqlalchemy import text

        async with self.sessions() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO webhook_deliveries (user_id, invoice_id, event, url, payload)"
                    " VALUES (:u, :i, 'invoice.settled', 'http://127.0.0.1:9/x', '{}')"
                ),
                {"u": user, "i": invoice.id},
            )
        self.assertEqual(await crons.enqueue_due_webhooks(self.ctx()), {"due": 1, "enqueued": 1})
        self.assertEqual(await self._queued(), {jobs.deliver_webhook_job_id(1)})

    async def test_reconcile_runs_when_due_and_stores_its_result(self) -> None:
        await self.user(balance_sat=10)
        result = await crons.reconcile(self.ctx())
        self.assertEqual((result["ledger_ok"], result["status"]), (True, "ok"))
        self.assertEqual(await self.scalar("SELECT count(*) FROM reconciliation_runs"), 1)
        # Within RECONCILE_EVERY_S the next tick does nothing; the run's hold check sees the planted breach
        # once a pass is due again.
        self.assertEqual(await crons.reconcile(self.ctx()), {"due": False})
        async with self.sessions() as session, session.begin():
            from sqlalchemy import text

            await session.execute(text("UPDATE accounts SET held_msat = 5 WHERE kind = 'user'"))
            await session.execute(
                text("UPDATE reconciliation_runs SET checked_at = now() - interval '1 hour'")
            )
        result = await crons.reconcile(self.ctx())
        self.assertEqual((result["hold_mismatches"], result["status"]), (1, "mismatch"))
