"""The worker's metrics move with the jobs, payments and settlements it makes, and its gauges say
what Postgres and the node say. In-process over the fake node; the metrics are the process's own,
so every check reads a delta. (tests/e2e/test_metrics_processes.py scrapes a real worker process.)"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time

import aiohttp
from arq import Retry
from arq.worker import Worker, func, get_kwargs

from lightning_worker import metrics, metrics_endpoint
from lightning_worker.payments import pay_invoice
from lightning_worker.settlement import settle_invoices
from lightning_worker.subscription import SettlementSubscription
from lightning_worker.worker import build_worker_settings
from shared import jobs, ledger
from shared.errors import LightningUnavailable
from tests.support.cases import wait_for
from tests.support.fake_lightning import PUBKEY
from tests.support.metrics import Scrape
from tests.worker.helpers import WorkerCase, ago

REGISTRY = metrics.REGISTRY


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Deltas:
    """Sample values now vs at construction, for the names and labels asked."""

    def __init__(self, *keys: tuple[str, dict[str, str]]) -> None:
        self.before = {(name, tuple(sorted(labels.items()))): value(name, **labels) for name, labels in keys}

    def __call__(self, name: str, **labels: str) -> float:
        return value(name, **labels) - self.before[(name, tuple(sorted(labels.items())))]


def job(function: str, outcome: str) -> tuple[str, dict[str, str]]:
    return "lightning_wallet_jobs_total", {"function": function, "outcome": outcome}


class JobMetricsTests(WorkerCase):
    async def test_every_outcome_of_a_wrapped_job_is_counted_and_timed(self) -> None:
        async def ok(ctx):
            return "ok"

        async def retry(ctx):
            raise Retry(defer=1)

        async def boom(ctx):
            raise ValueError("boom")

        async def hang(ctx):
            await asyncio.Event().wait()

        attrs = {"functions": [func(f, name=f"t_{f.__name__}") for f in (ok, retry, boom, hang)]}
        wrapped = {f.name: f.coroutine for f in metrics.instrument_jobs(attrs)["functions"]}
        keys = [job("t_ok", "success"), job("t_retry", "retry"), job("t_boom", "error")]
        keys += [
            job("t_hang", "cancelled"),
            ("lightning_wallet_job_duration_seconds_count", {"function": "t_ok"}),
        ]
        delta = Deltas(*keys)
        self.assertEqual(await wrapped["t_ok"]({}), "ok")
        with self.assertRaises(Retry):
            await wrapped["t_retry"]({})
        with self.assertRaises(ValueError):
            await wrapped["t_boom"]({})
        with self.assertRaises(TimeoutError):  # arq's job timeout cancels the run
            await asyncio.wait_for(wrapped["t_hang"]({}), 0.05)
        for name, labels in keys:
            self.assertEqual(delta(name, **labels), 1, (name, labels))
        self.assertEqual(wrapped["t_ok"].__qualname__, ok.__qualname__)  # cron names come from it

    async def test_a_burst_worker_counts_its_jobs_and_crons_by_name(self) -> None:
        user = await self.user()
        invoice_id = await self.pending_invoice(user, 500)
        await self.arq.enqueue_job(
            jobs.CREATE_INVOICE, str(invoice_id), _job_id=jobs.create_invoice_job_id(invoice_id)
        )
        created, cron = job(jobs.CREATE_INVOICE, "success"), job("cron:expire_invoices", "success")
        timed = ("lightning_wallet_job_duration_seconds_count", {"function": jobs.CREATE_INVOICE})
        delta = Deltas(created, cron, timed)
        settings_cls = build_worker_settings(self.settings, lightning_factory=lambda _: self.fake)
        worker = Worker(**get_kwargs(settings_cls), burst=True, handle_signals=False)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        self.assertEqual((await self.invoice(invoice_id)).state, "open")
        self.assertEqual(delta(created[0], **created[1]), 1)
        self.assertEqual(delta(timed[0], **timed[1]), 1)
        # run at start-up, and again should a 5 s boundary fall inside the burst
        self.assertGreaterEqual(delta(cron[0], **cron[1]), 1)
        for function in jobs.ALL_FUNCTIONS:  # every job shows from the start, even at 0
            self.assertIsNotNone(REGISTRY.get_sample_value(*job(function, "error")), function)


class MoneyMetricsTests(WorkerCase):
    PAYMENTS = "lightning_wallet_payments_total"
    SETTLED = "lightning_wallet_invoices_settled_total"
    LAG_COUNT = "lightning_wallet_settlement_lag_seconds_count"
    LAG_SUM = "lightning_wallet_settlement_lag_seconds_sum"

    def deltas(self) -> Deltas:
        return Deltas(
            (self.PAYMENTS, {"outcome": "succeeded"}),
            (self.PAYMENTS, {"outcome": "failed"}),
            (self.SETTLED, {}),
            (self.LAG_COUNT, {}),
            (self.LAG_SUM, {}),
        )

    async def test_payments_are_counted_once_by_outcome(self) -> None:
        user = await self.user(balance_sat=5000)
        good_request, good_hash = self.fake.external_invoice(1_000_000)
        bad_request, bad_hash = self.fake.external_invoice(
            1_000_000, outcome="fail", failure_reason="NO_ROUTE"
        )
        good = await self.pending_payment(user, good_request, good_hash, 1000)
        bad = await self.pending_payment(user, bad_request, bad_hash, 1000)
        delta = self.deltas()
        for payment_id in (good, bad, good, bad):  # the second runs change nothing: not counted
            await pay_invoice(self.ctx(), str(payment_id))
        self.assertEqual(delta(self.PAYMENTS, outcome="succeeded"), 1)
        self.assertEqual(delta(self.PAYMENTS, outcome="failed"), 1)

    async def test_an_internal_payment_counts_a_payment_and_a_settlement_without_lag(self) -> None:
        payer, payee = await self.user(balance_sat=2000), await self.user()
        invoice = await self.open_invoice(payee, 700)
        payment_id = await self.pending_payment(
            payer, invoice.payment_request, invoice.payment_hash, 700, internal_invoice_id=invoice.id
        )
        delta = self.deltas()
        for _ in range(2):
            self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual(delta(self.PAYMENTS, outcome="succeeded"), 1)
        self.assertEqual(delta(self.SETTLED), 1)
        self.assertEqual(delta(self.LAG_COUNT), 0)

    async def test_settlements_are_counted_with_their_lag_from_the_node_settle_date(self) -> None:
        user = await self.user()
        first, second = await self.open_invoice(user, 100), await self.open_invoice(user, 200)
        settled_30s_ago = dataclasses.replace(
            self.fake.settle(first.payment_hash), settle_date=int(time.time()) - 30
        )
        delta = self.deltas()
        result = await settle_invoices(
            self.context, [settled_30s_ago, self.fake.settle(second.payment_hash)], cursor_node=PUBKEY
        )
        self.assertEqual(len(result.credited), 2)
        await settle_invoices(self.context, [settled_30s_ago], cursor_node=PUBKEY)  # a replay: nothing
        self.assertEqual(delta(self.SETTLED), 2)
        self.assertEqual(delta(self.LAG_COUNT), 2)
        self.assertGreaterEqual(delta(self.LAG_SUM), 29)  # settle_date has whole seconds
        self.assertLess(delta(self.LAG_SUM), 60)


class SampledGaugeTests(WorkerCase):
    async def test_the_sample_reads_liabilities_treasury_in_flight_and_the_node(self) -> None:
        alice = await self.user(balance_sat=1500)
        await self.user(balance_sat=250)
        request, payment_hash = self.fake.external_invoice(100_000)
        payment_id = await self.pending_payment(alice, request, payment_hash, 100)
        await self.set_row("payments", payment_id, created_at=ago(42))
        async with self.sessions() as session, session.begin():  # the operator tops the treasury up
            treasury = await ledger.system_account_id(session, "treasury")
            external = await ledger.system_account_id(session, "external")
            legs = [ledger.Leg(treasury, 7_000_000), ledger.Leg(external, -7_000_000)]
            await ledger.post_transaction(session, legs, kind="test_funding")
        treasury_msat = await self.system_balance("treasury")
        self.assertNotEqual(treasury_msat, 0)
        self.assertEqual(await metrics_endpoint.sample(self.context), ())
        self.assertEqual(value("lightning_wallet_liabilities_msat"), 1_750_000)
        self.assertEqual(value("lightning_wallet_treasury_msat"), treasury_msat)
        self.assertEqual(value("lightning_wallet_payments_in_flight"), 1)
        self.assertGreaterEqual(value("lightning_wallet_oldest_in_flight_payment_seconds"), 42)
        self.assertEqual(value("lightning_wallet_node_local_balance_msat"), 5_000_000_000)

        await pay_invoice(self.ctx(), str(payment_id))
        self.fake.fail_next["channel_balance"].append(LightningUnavailable("node down"))
        self.assertEqual(await metrics_endpoint.sample(self.context), ("the node",))
        self.assertEqual(value("lightning_wallet_payments_in_flight"), 0)
        self.assertEqual(value("lightning_wallet_oldest_in_flight_payment_seconds"), 0)
        self.assertTrue(math.isnan(value("lightning_wallet_node_local_balance_msat")))  # unknown, not 0

    async def test_the_leader_gauge_follows_the_settlement_lease(self) -> None:
        sub = SettlementSubscription(self.context, lease_ttl_s=1)
        metrics.watch_leader(sub.holding)
        self.assertEqual(value("lightning_wallet_settlement_leader"), 0)
        task = asyncio.create_task(sub.run_forever())
        try:

            async def leading() -> bool:
                return value("lightning_wallet_settlement_leader") == 1

            await wait_for(leading, message="the lease held")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.assertEqual(value("lightning_wallet_settlement_leader"), 0)


class EndpointTests(WorkerCase):
    async def test_the_endpoint_binds_a_free_port_logs_it_and_asks_for_the_token(self) -> None:
        self.assertEqual(self.settings.worker_metrics_port, 0)
        with self.assertLogs("lightning_worker.metrics_endpoint", "INFO") as logs:
            await metrics_endpoint.start(self.context)
        port = next(r.metrics_port for r in logs.records if hasattr(r, "metrics_port"))
        self.assertGreater(port, 0)
        url = f"http://127.0.0.1:{port}/metrics"
        token = self.settings.metrics_token.get_secret_value()
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer nope"}):
                async with http.get(url, headers=headers) as response:
                    self.assertEqual(response.status, 401)
                    self.assertNotIn("lightning_wallet_", await response.text())
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                self.assertEqual(response.status, 200)
                scrape = Scrape(await response.text())
            names = set(scrape.families)
            for name in (
                "lightning_wallet_jobs",
                "lightning_wallet_job_duration_seconds",
                "lightning_wallet_payments",
                "lightning_wallet_invoices_settled",
                "lightning_wallet_settlement_lag_seconds",
                "lightning_wallet_settlement_leader",
                "lightning_wallet_payments_in_flight",
                "lightning_wallet_oldest_in_flight_payment_seconds",
                "lightning_wallet_liabilities_msat",
                "lightning_wallet_treasury_msat",
                "lightning_wallet_node_local_balance_msat",
                "lightning_wallet_reconciliation_mismatches",
                "lightning_wallet_anomalies",
                "lightning_wallet_webhook_deliveries",
            ):
                self.assertIn(name, names)

            async def node_balance() -> float:  # the sampler starts with the endpoint
                async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                    sampled = Scrape(await response.text()).value("lightning_wallet_node_local_balance_msat")
                return sampled == 5_000_000_000

            await wait_for(node_balance, message="the first sample")

            for task in self.context.background:  # shutdown closes the endpoint
                task.cancel()
            await asyncio.gather(*self.context.background, return_exceptions=True)
            with self.assertRaises(aiohttp.ClientConnectionError):
                async with http.get(url):
                    pass

    async def test_a_port_in_use_stops_the_start(self) -> None:
        with self.assertLogs("lightning_worker.metrics_endpoint", "INFO") as logs:
            await metrics_endpoint.start(self.context)
        port = next(r.metrics_port for r in logs.records if hasattr(r, "metrics_port"))
        taken = dataclasses.replace(self.context, settings=self.make_settings(worker_metrics_port=port))
        taken.background = []
        with self.assertRaises(OSError):
            await metrics_endpoint.start(taken)
        self.assertEqual(taken.background, [])

    async def test_helpers_for_later_callers_move_their_metrics(self) -> None:
        delta = Deltas(
            ("lightning_wallet_anomalies_total", {"kind": "preimage_mismatch"}),
            ("lightning_wallet_webhook_deliveries_total", {"outcome": "delivered"}),
            ("lightning_wallet_payments_total", {"outcome": "refunded"}),
        )
        metrics.count_anomaly("preimage_mismatch")
        metrics.count_webhook_delivery("delivered")
        metrics.set_reconciliation_mismatches(3)
        self.assertEqual(delta("lightning_wallet_anomalies_total", kind="preimage_mismatch"), 1)
        self.assertEqual(delta("lightning_wallet_webhook_deliveries_total", outcome="delivered"), 1)
        self.assertEqual(value("lightning_wallet_reconciliation_mismatches"), 3)
        metrics.set_reconciliation_mismatches(0)
        metrics.count_payment("refunded")  # a state added later is counted, never a failed job
        self.assertEqual(delta("lightning_wallet_payments_total", outcome="refunded"), 1)
