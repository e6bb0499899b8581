"""Money-path hardening end to end: real API and worker processes, real gRPC (TLS + macaroon) to
lnd_simnet, real Postgres and Redis.

- A payment that failed at the node (alice configured ``--fail no_route``) leaves the invoice payable:
  the same invoice paid again is a new row that succeeds, charged once.
- While a payment is held at the node, the worker's run holds the payment's lock: a second run yields.
  arq's keys (queued, in progress, results) decode as JSON.
- A worker connected to another node than the database's refuses to run, naming both pubkeys;
  LND_ALLOW_NODE_CHANGE=1 records the new one.
- A half-open connection to the node (a proxy that stops forwarding) is detected by gRPC keepalive,
  and the settlement stream reconnects and credits what was settled meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import aiohttp
from arq import Retry
from sqlalchemy import text

from lightning_worker.context import CTX_KEY, create_context
from lightning_worker.payment_lock import lock_key
from lightning_worker.payments import pay_invoice
from shared.ledger import ledger_totals
from tests.e2e.test_lightning_flow import Api, wallet_stack, worker_env, worker_ready
from tests.support.cases import DbCase, wait_for
from tests.support.factories import auth_headers, create_user
from tests.support.pg_locks import advisory_lock_holders
from tests.support.processes import managed_process
from tests.support.simnet import Simnet
from tests.support.tcp_proxy import TcpProxy


async def pay(api: Api, headers: dict, payment_request: str) -> dict:
    status, body = await api.call("POST", "/api/v1/payments", headers, {"paymentRequest": payment_request})
    assert status in (200, 202), body
    payment = body["data"]
    if status == 202:
        payment = await api.wait_state(
            f"/api/v1/payments/{payment['id']}", headers, "status", {"succeeded", "failed"}
        )
    return payment


class FailedThenPaidTest(DbCase):
    async def test_a_failed_payment_leaves_the_invoice_payable_and_charges_once(self):
        user_id = await create_user(self.sessions, balance_sat=10_000)
        headers = auth_headers(self.settings, user_id)
        async with wallet_stack(self) as (net, base_url), aiohttp.ClientSession() as http:
            api = Api(http, base_url)
            bob = await net.cli("invoice", "--node", "bob", "--amt", "1000", "--memo", "twice")
            await net.cli("configure", "--node", "alice", "--fail", "no_route")
            first = await pay(api, headers, bob["payment_request"])
            self.assertEqual((first["status"], first["failureReason"]), ("failed", "NO_ROUTE"), first)
            _, balance = await api.call("GET", "/api/v1/wallet/balance", headers)
            self.assertEqual((balance["data"]["balanceSat"], balance["data"]["heldSat"]), (10_000, 0))

            await net.cli("configure", "--node", "alice")  # the knob cleared: a route again
            second = await pay(api, headers, bob["payment_request"])
            self.assertNotEqual(second["id"], first["id"])
            self.assertEqual(second["status"], "succeeded", second)
            _, balance = await api.call("GET", "/api/v1/wallet/balance", headers)
            fee_sat = second["feeMsat"] // 1000
            self.assertEqual(balance["data"]["balanceMsat"], 10_000_000 - 1_000_000 - second["feeMsat"])
            self.assertEqual(balance["data"]["heldSat"], 0, fee_sat)
            payments = await net.client("alice").list_payments()
            self.assertEqual([p.status.value for p in payments], ["succeeded"])  # one per hash at the node
        async with self.sessions() as session:
            self.assertEqual(await ledger_totals(session), (0, 0))


class OneRunnerAndJsonJobsTest(DbCase):
    async def test_a_second_run_yields_while_the_worker_follows_a_held_payment(self):
        user_id = await create_user(self.sessions, balance_sat=10_000)
        headers = auth_headers(self.settings, user_id)
        # The payment stays held: the POST answers 202 at once instead of waiting PAYMENT_WAIT_S for it.
        async with (
            wallet_stack(self, api_env={"PAYMENT_WAIT_S": "0"}) as (net, base_url),
            aiohttp.ClientSession() as http,
        ):
            api = Api(http, base_url)
            bob = await net.cli("invoice", "--node", "bob", "--amt", "500", "--memo", "simnet:hold")
            status, body = await api.call(
                "POST", "/api/v1/payments", headers, {"paymentRequest": bob["payment_request"]}
            )
            self.assertEqual(status, 202, body)
            payment_id = body["data"]["id"]
            job_id = f"pay_invoice:{payment_id}"
            await api.wait_state(f"/api/v1/payments/{payment_id}", headers, "status", {"in_flight"})

            # A dashboard reading arq's keys with a JSON decoder sees the job and its run.
            raw_job = await self.redis.get(f"arq:job:{job_id}")
            self.assertEqual(json.loads(raw_job)["a"], [payment_id])

            async def worker_holds_the_lock() -> bool:
                return bool(await self.redis.exists(f"arq:in-progress:{job_id}")) and bool(
                    await self.payment_lock_count(payment_id)
                )

            await wait_for(worker_holds_the_lock, timeout_s=20, message="the worker's run on the lock")
            context = create_context(self.settings, self.redis, net.client("alice"))
            try:
                with self.assertRaises(Retry):
                    await pay_invoice({CTX_KEY: context, "job_try": 1}, payment_id)
            finally:
                await context.engine.dispose()

            await net.cli("release", "--node", "alice", bob["r_hash"], "--outcome", "succeed")
            done = await api.wait_state(f"/api/v1/payments/{payment_id}", headers, "status", {"succeeded"})
            self.assertEqual(done["status"], "succeeded")

            async def result_decodes() -> dict | None:
                raw = await self.redis.get(f"arq:result:{job_id}")
                return json.loads(raw) if raw else None

            result = await wait_for(result_decodes, timeout_s=20, message="the job's result")
            self.assertEqual(
                (result["f"], result["s"], result["r"]), ("pay_invoice", True, {"state": "succeeded"})
            )
            self.assertEqual(len(await net.client("alice").list_payments()), 1)

    async def payment_lock_count(self, payment_id: str) -> int:
        """Granted advisory locks on this payment's key in this database."""
        async with self.sessions() as session:
            return len(await advisory_lock_holders(session, lock_key(uuid.UUID(payment_id))))


class NodeIdentityTest(DbCase):
    async def run_worker(self, net: Simnet, **overrides: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lightning_worker",
            env=worker_env(self, net, overrides),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 60)
        except TimeoutError:
            process.kill()
            out, _ = await process.communicate()
        return process.returncode, out.decode(errors="replace")

    async def test_a_worker_on_another_node_refuses_to_run(self):
        async with Simnet() as net:
            alice = net.node("alice")["pubkey"]
            other = "03" + uuid.uuid4().hex * 2
            async with self.sessions() as session, session.begin():
                await session.execute(
                    text(
                        "INSERT INTO node_identity (id, identity_pubkey, network) VALUES (1, :p, 'regtest')"
                    ),
                    {"p": other},
                )
            code, output = await self.run_worker(net)
            self.assertEqual(code, 3, output)
            self.assertIn(other, output)
            self.assertIn(alice, output)
            self.assertIn("LND_ALLOW_NODE_CHANGE", output)

            async with managed_process(
                [sys.executable, "-m", "lightning_worker"],
                worker_env(self, net, {"LND_ALLOW_NODE_CHANGE": "1"}),
                name="worker",
                ready=worker_ready(self),
            ):

                async def recorded() -> bool:
                    async with self.sessions() as session:
                        return (
                            await session.scalar(text("SELECT identity_pubkey FROM node_identity")) == alice
                        )

                await wait_for(recorded, timeout_s=30, message="the new node recorded")


class HalfOpenConnectionTest(DbCase):
    async def test_keepalive_detects_a_silent_connection_and_the_stream_catches_up(self):
        user_id = await create_user(self.sessions)
        headers = auth_headers(self.settings, user_id)
        async with Simnet() as net, TcpProxy(net.node("alice")["port"]) as proxy:
            overrides = {
                "LND_GRPC_HOST": f"127.0.0.1:{proxy.port}",
                "LND_KEEPALIVE_TIME_S": "6",
                "LND_KEEPALIVE_TIMEOUT_S": "2",
                # Only keepalive may notice: no idle probe and no sweep within this test.
                "SETTLEMENT_IDLE_PROBE_S": "3600",
                "SETTLEMENT_SWEEP_S": "3600",
            }
            async with managed_process(
                [sys.executable, "-m", "lightning_worker"],
                worker_env(self, net, overrides),
                name="worker",
                ready=worker_ready(self),
            ) as worker:
                from tests.support.processes import api_process

                async with api_process() as base_url, aiohttp.ClientSession() as http:
                    api = Api(http, base_url)
                    first = await self.invoice(api, headers, 10)
                    paid = await net.cli("pay", "--node", "bob", first["paymentRequest"])
                    self.assertEqual(paid["status"], "SUCCEEDED")
                    await api.wait_state(f"/api/v1/invoices/{first['id']}", headers, "state", {"settled"})
                    second = await self.invoice(api, headers, 20)

                    proxy.freeze()  # every connection the worker has goes silent, half-open
                    paid = await net.cli("pay", "--node", "bob", second["paymentRequest"])
                    self.assertEqual(paid["status"], "SUCCEEDED")
                    # Keepalive (6 s + 2 s) notices within seconds; gRPC's own default ping timeout
                    # would take a minute, and the idle probe and the sweep are off: under 40 s is ours.
                    settled = await api.wait_state(
                        f"/api/v1/invoices/{second['id']}", headers, "state", {"settled"}, timeout_s=40
                    )
                    self.assertEqual(settled["amountPaidSat"], 20)
                    self.assertIn("settlement stream", worker.log_text())
                    self.assertGreater(proxy.connections, 1)  # it came back on a new connection

    async def invoice(self, api: Api, headers: dict, amount_sat: int) -> dict:
        status, body = await api.call("POST", "/api/v1/invoices", headers, {"amountSat": amount_sat})
        assert status in (201, 202), body
        invoice = body["data"]
        if status == 202:
            invoice = await api.wait_state(f"/api/v1/invoices/{invoice['id']}", headers, "state", {"open"})
        return invoice
