"""Both /metrics endpoints scraped from real processes over real HTTP, parsed with prometheus-client's
parser: the API alone, the API as two gunicorn processes (every process's samples from any of them),
and a lightning worker following lnd_simnet while the API creates, settles and pays invoices."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp

from tests.e2e.test_lightning_flow import Api, worker_env, worker_ready
from tests.support.cases import DbCase, wait_for
from tests.support.factories import auth_headers, create_user
from tests.support.metrics import Scrape
from tests.support.processes import ManagedProcess, api_process, managed_process
from tests.support.simnet import Simnet

REQUESTS = "lightning_wallet_http_requests_total"


class MetricsScraper:
    def __init__(self, case: DbCase, http: aiohttp.ClientSession) -> None:
        self.case = case
        self.http = http
        token = case.settings.metrics_token.get_secret_value()
        self.headers = {"Authorization": f"Bearer {token}"}

    async def get(self, url: str, *, authorized: bool = True) -> tuple[int, str]:
        headers = self.headers if authorized else {}
        async with self.http.get(url, headers=headers) as response:
            return response.status, await response.text()

    async def scrape(self, url: str) -> Scrape:
        status, text = await self.get(url)
        self.case.assertEqual(status, 200, text)
        return Scrape(text)


def metrics_port(worker: ManagedProcess) -> int | None:
    """The port the worker logged for its metrics endpoint (it asked for port 0)."""
    for line in worker.log_text().splitlines():
        if '"metrics_port"' in line:
            return int(json.loads(line)["metrics_port"])
    return None


def list_dir(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def counter_pids(metrics_dir: Path) -> set[str]:
    """The processes that wrote counters in prometheus-client's multiprocess directory."""
    return {re.match(r"counter_(\d+)\.db", p.name).group(1) for p in metrics_dir.glob("counter_*.db")}


class ApiProcessMetricsTest(DbCase):
    async def test_one_api_process_counts_its_requests_by_route_template(self):
        user_id = await create_user(self.sessions)
        headers = auth_headers(self.settings, user_id)
        async with api_process() as base_url, aiohttp.ClientSession() as http:
            scraper = MetricsScraper(self, http)
            status, body = await scraper.get(f"{base_url}/metrics", authorized=False)
            self.assertEqual(status, 401)
            self.assertNotIn("lightning_wallet_", body)
            for _ in range(4):
                async with http.get(f"{base_url}/api/v1/users/{user_id}", headers=headers) as response:
                    self.assertEqual(response.status, 200)
            scrape = await scraper.scrape(f"{base_url}/metrics")
        self.assertEqual(scrape.value(REQUESTS, method="GET", route="/api/v1/users/{id}", status="200"), 4)
        self.assertNotIn(f"/api/v1/users/{user_id}", scrape.label_values(REQUESTS, "route"))

    async def test_two_api_processes_serve_every_processes_samples(self):
        metrics_dir = self.temp_dir("lw-test-api-metrics-")
        stale = metrics_dir / "counter_999999.db"
        stale.write_bytes(b"a previous run's file, not even a valid one")
        env = {"API_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        async with api_process(env) as base_url:
            self.assertFalse(stale.exists())  # emptied at start
            await self.check_both_processes_served(base_url, lambda: metrics_dir)
        self.assertEqual(len(counter_pids(metrics_dir)), 2)  # the operator's folder stays

    async def test_without_a_folder_the_api_makes_one_for_the_run_and_removes_it(self):
        tmp = self.temp_dir("lw-test-tmp-")
        env = {"API_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": "", "TMPDIR": str(tmp)}
        async with api_process(env) as base_url:
            made = list_dir(tmp)
            self.assertEqual(len(made), 1, made)
            self.assertTrue(made[0].name.startswith("lw-api-metrics-"))
            await self.check_both_processes_served(base_url, lambda: made[0])
        self.assertEqual(list_dir(tmp), [])  # removed when the API stopped

    def temp_dir(self, prefix: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        return folder

    async def check_both_processes_served(self, base_url: str, metrics_dir) -> None:
        """Requests until both processes have counted some, then scrapes that each report them all."""
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection, any process, per request
        async with aiohttp.ClientSession(connector=connector) as http:
            sent = 0

            async def both_processes_counted() -> bool:
                nonlocal sent
                statuses = await asyncio.gather(
                    *(self._get_status(http, f"{base_url}/healthz") for _ in range(20))
                )
                self.assertEqual(set(statuses), {200})
                sent += len(statuses)
                return len(counter_pids(metrics_dir())) >= 2

            await wait_for(both_processes_counted, timeout_s=30, message="requests in both API processes")
            scraper = MetricsScraper(self, http)
            for scrapes in range(8):  # fresh connections: the scrapes land on either process
                scrape = await scraper.scrape(f"{base_url}/metrics")
                # /readyz probes of api_process add to other routes, never to this one
                self.assertEqual(scrape.value(REQUESTS, method="GET", route="/healthz", status="200"), sent)
                self.assertEqual(scrape.value(REQUESTS, route="/metrics", status="200"), scrapes)
                self.assertEqual(
                    scrape.value("lightning_wallet_http_request_duration_seconds_count", route="/healthz"),
                    sent,
                )

    @staticmethod
    async def _get_status(http: aiohttp.ClientSession, url: str) -> int:
        async with http.get(url) as response:
            await response.read()
            return response.status


class WorkerProcessMetricsTest(DbCase):
    async def test_worker_metrics_move_with_jobs_settlements_and_payments(self):
        user_id = await create_user(self.sessions)
        headers = auth_headers(self.settings, user_id)
        async with Simnet() as net:
            env = {**worker_env(self, net), "WORKER_METRICS_SAMPLE_S": "0.2"}
            async with (
                managed_process(
                    [sys.executable, "-m", "lightning_worker"], env, name="worker", ready=worker_ready(self)
                ) as worker,
                api_process() as base_url,
                aiohttp.ClientSession() as http,
            ):

                async def logged_port() -> int | None:
                    return metrics_port(worker)

                port = await wait_for(logged_port, message="the metrics port in the log")
                worker_url = f"http://127.0.0.1:{port}/metrics"
                scraper = MetricsScraper(self, http)
                status, body = await scraper.get(worker_url, authorized=False)
                self.assertEqual((status, "lightning_wallet_" in body), (401, False))
                api = Api(http, base_url)

                # receive 1000 sat: create_invoice job, Bob pays, the subscription credits it
                status, body = await api.call("POST", "/api/v1/invoices", headers, {"amountSat": 1000})
                self.assertIn(status, (201, 202), body)
                invoice = await api.wait_state(
                    f"/api/v1/invoices/{body['data']['id']}", headers, "state", {"open"}
                )
                paid = await net.cli("pay", "--node", "bob", invoice["paymentRequest"])
                self.assertEqual(paid["status"], "SUCCEEDED", paid)
                await api.wait_state(f"/api/v1/invoices/{invoice['id']}", headers, "state", {"settled"})

                # pay Bob 100 sat from that balance: pay_invoice job
                bob = await net.cli("invoice", "--node", "bob", "--amt", "100")
                status, body = await api.call(
                    "POST", "/api/v1/payments", headers, {"paymentRequest": bob["payment_request"]}
                )
                self.assertIn(status, (200, 202), body)
                payment = await api.wait_state(
                    f"/api/v1/payments/{body['data']['id']}", headers, "status", {"succeeded", "failed"}
                )
                self.assertEqual(payment["status"], "succeeded", payment)
                status, body = await api.call("GET", "/api/v1/wallet/balance", headers)
                balance_msat = body["data"]["balanceSat"] * 1000
                node = await net.client("alice").channel_balance()

                async def sampled() -> Scrape | None:
                    scrape = await scraper.scrape(worker_url)
                    current = (
                        scrape.value("lightning_wallet_liabilities_msat"),
                        scrape.value("lightning_wallet_node_local_balance_msat"),
                        scrape.value("lightning_wallet_payments_in_flight"),
                    )
                    return scrape if current == (balance_msat, node.local_msat, 0) else None

                scrape = await wait_for(sampled, timeout_s=15, message="the sampled gauges")
                api_scrape = await scraper.scrape(f"{base_url}/metrics")

        jobs = "lightning_wallet_jobs_total"
        self.assertEqual(scrape.value(jobs, function="create_invoice", outcome="success"), 1)
        self.assertEqual(scrape.value(jobs, function="pay_invoice", outcome="success"), 1)
        self.assertEqual(scrape.value(jobs, function="create_invoice", outcome="error"), 0)
        self.assertGreaterEqual(scrape.value(jobs, function="cron:requeue_stale_rows", outcome="success"), 1)
        self.assertEqual(
            scrape.value("lightning_wallet_job_duration_seconds_count", function="create_invoice"), 1
        )
        self.assertEqual(scrape.value("lightning_wallet_payments_total", outcome="succeeded"), 1)
        self.assertEqual(scrape.value("lightning_wallet_payments_total", outcome="failed"), 0)
        self.assertEqual(scrape.value("lightning_wallet_invoices_settled_total"), 1)
        self.assertEqual(scrape.value("lightning_wallet_settlement_lag_seconds_count"), 1)
        self.assertEqual(scrape.value("lightning_wallet_settlement_leader"), 1)
        self.assertEqual(scrape.value("lightning_wallet_oldest_in_flight_payment_seconds"), 0)
        self.assertGreater(node.local_msat, 0)

        created = api_scrape.value(REQUESTS, method="POST", route="/api/v1/invoices")
        self.assertEqual(created, 1)
        self.assertEqual(api_scrape.value(REQUESTS, method="POST", route="/api/v1/payments"), 1)
        self.assertGreaterEqual(api_scrape.value(REQUESTS, method="GET", route="/api/v1/invoices/{id}"), 2)
        self.assertNotIn(f"/api/v1/invoices/{invoice['id']}", api_scrape.label_values(REQUESTS, "route"))
