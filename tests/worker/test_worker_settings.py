from __future__ import annotations

from arq.worker import Worker, get_kwargs

from lightning_worker import worker as worker_module
from lightning_worker.worker import build_worker_settings
from shared import jobs
from tests.worker.helpers import WorkerCase


class WorkerSettingsTests(WorkerCase):
    def _settings_cls(self):
        return build_worker_settings(
            self.settings, lightning_factory=lambda _settings: self.fake, lease_ttl_s=30
        )

    async def test_settings_come_from_the_one_settings_object(self) -> None:
        cls = self._settings_cls()
        self.assertEqual(cls.queue_name, self.settings.arq_queue_name)
        self.assertEqual(cls.poll_delay, self.settings.worker_poll_delay_s)
        self.assertEqual(cls.max_jobs, self.settings.worker_max_jobs)
        self.assertEqual(cls.keep_result, self.settings.job_result_retention_s)
        self.assertTrue(cls.retry_jobs)
        self.assertLessEqual(cls.health_check_interval, 5)
        names = {f.name for f in cls.functions}
        self.assertEqual(names, set(jobs.ALL_FUNCTIONS))
        self.assertEqual(
            {c.name for c in cls.cron_jobs},
            {
                "cron:requeue_stale_rows",
                "cron:expire_invoices",
                "cron:enqueue_due_webhooks",
                "cron:reconcile",
                "cron:purge_idempotency_keys",
            },
        )

    async def test_module_builds_worker_settings_only_on_access(self) -> None:
        self.assertIsNone(worker_module._settings_cls)  # nothing built at import time
        with self.assertRaises(AttributeError):
            worker_module.NoSuchThing  # noqa: B018

    async def test_burst_worker_runs_the_jobs_enqueued_as_the_contract_says(self) -> None:
        user = await self.user(balance_sat=3000)
        invoice_id = await self.pending_invoice(user, 500)
        request, payment_hash = self.fake.external_invoice(1_000_000, fee_msat=1500)
        payment_id = await self.pending_payment(user, request, payment_hash, 1000)
        await self.arq.enqueue_job(
            jobs.CREATE_INVOICE, str(invoice_id), _job_id=jobs.create_invoice_job_id(invoice_id)
        )
        await self.arq.enqueue_job(
            jobs.PAY_INVOICE, str(payment_id), _job_id=jobs.pay_invoice_job_id(payment_id)
        )
        # A duplicate enqueue of the same row is refused by arq: one job per row.
        self.assertIsNone(
            await self.arq.enqueue_job(
                jobs.CREATE_INVOICE, str(invoice_id), _job_id=jobs.create_invoice_job_id(invoice_id)
            )
        )
        node_job = await self.arq.enqueue_job(jobs.NODE_INFO)

        worker = Worker(**get_kwargs(self._settings_cls()), burst=True, handle_signals=False)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        self.assertEqual(worker.jobs_failed, 0)
        self.assertEqual((await self.invoice(invoice_id)).state, "open")
        self.assertEqual((await self.payment(payment_id)).state, "succeeded")
        self.assertEqual((await self.balance(user)).balance_msat, 3_000_000 - 1_001_500)
        info = await node_job.result(timeout=30)
        self.assertEqual(info["identity_pubkey"], "02" + "ab" * 32)
        self.assertEqual(info["channel_balance"]["local_msat"], 5_000_000_000)
        from arq.jobs import Job

        result = await Job(
            jobs.create_invoice_job_id(invoice_id), self.arq, _deserializer=jobs.deserialize
        ).result(timeout=30)
        self.assertEqual(result, {"state": "open"})
        self.assertTrue(self.fake.closed)  # on_shutdown closed the client
        await self.assert_ledger_consistent()
