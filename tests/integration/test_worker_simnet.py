"""The worker against real processes: worker(s) over gRPC to lnd_simnet, real Postgres and Redis.

Rows are inserted and jobs enqueued exactly as the API does it (wallet_contract.md); the faults are
real: SIGKILL of a worker with a payment in flight, FLUSHDB of Redis, a worker down while payments
arrive, a node restart under a live subscription.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from arq.connections import ArqRedis, RedisSettings, create_pool

from shared import jobs
from shared.lightning.protos import lightning_pb2 as ln
from tests.support.cases import wait_for
from tests.support.processes import managed_process, service_env
from tests.support.simnet import Simnet
from tests.worker.helpers import WorkerCase

FEE_LIMIT_SAT = 50


class WorkerSimnetTests(WorkerCase):
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.net = Simnet(serve_args=("--delay-ms", "0"))
        await self.net.start()
        self.pool: ArqRedis = await create_pool(
            RedisSettings.from_dsn(self.settings.redis_url), **jobs.SERIALIZERS
        )

    async def asyncTearDown(self) -> None:
        await self.pool.aclose()
        await self.net.stop()
        import shutil

        shutil.rmtree(self.net.data_dir, ignore_errors=True)
        await super().asyncTearDown()

    # ---- helpers ------------------------------------------------------------------------------
    def worker(self, name: str = "worker"):
        alice = self.net.node("alice")
        env = service_env(
            {
                "LND_GRPC_HOST": alice["rpcserver"],
                "LND_TLS_CERT_PATH": alice["tls_cert"],
                "LND_MACAROON_PATH": alice["admin_macaroon"],
                "LND_TIMEOUT_S": "1",
                "STALE_ROW_AFTER_S": "1",
            }
        )
        health_key = self.settings.arq_queue_name + ":health-check"

        async def healthy() -> bool:
            return bool(await self.redis.exists(health_key))

        return managed_process([sys.executable, "-m", "lightning_worker"], env, name=name, ready=healthy)

    async def enqueue_invoice(self, user: uuid.UUID, amount_sat: int, memo: str = "") -> uuid.UUID:
        invoice_id = await self.pending_invoice(user, amount_sat, memo=memo)
        await self.pool.enqueue_job(
            jobs.CREATE_INVOICE, str(invoice_id), _job_id=jobs.create_invoice_job_id(invoice_id)
        )
        return invoice_id

    async def wait_state(self, table: str, row_id: uuid.UUID, state: str, timeout_s: float = 60) -> None:
        async def check() -> bool:
            sql = f"SELECT state FROM {table} WHERE id = :i"  # noqa: S608 - test code, fixed names
            return await self.scalar(sql, i=row_id) == state

        await wait_for(check, timeout_s=timeout_s, message=f"{table} {row_id} {state}")

    async def bob_pays(self, payment_request: str) -> str:
        final = None
        async for update in self.net.client("bob").send_payment(
            payment_request=payment_request, fee_limit_msat=10_000_000, timeout_s=30
        ):
            final = update
        return final.status.name

    async def bob_local_msat(self) -> int:
        return (await self.net.client("bob").channel_balance()).local_msat

    async def open_invoices(
        self, users: list[uuid.UUID], count: int
    ) -> dict[uuid.UUID, tuple[uuid.UUID, int]]:
        made = {}
        for i in range(count):
            user = users[i % len(users)]
            amount_sat = 100 + i
            made[await self.enqueue_invoice(user, amount_sat)] = (user, amount_sat)
        for invoice_id in made:
            await self.wait_state("invoices", invoice_id, "open")
        return made

    async def assert_all_credited(self, made: dict, users: list[uuid.UUID]) -> None:
        async def all_settled() -> bool:
            return await self.scalar("SELECT count(*) FROM invoices WHERE state = 'settled'") == len(made)

        await wait_for(all_settled, timeout_s=60, message="every invoice settled")
        for user in users:
            expected = sum(amount * 1000 for owner, amount in made.values() if owner == user)
            self.assertEqual((await self.balance(user)).balance_msat, expected)
        self.assertEqual(
            await self.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'invoice_settled'"),
            2 * len(made),
        )
        await self.assert_ledger_consistent()

    async def pay_all(self, made: dict) -> None:
        requests = [
            await self.scalar("SELECT payment_request FROM invoices WHERE id = :i", i=i) for i in made
        ]
        statuses = await asyncio.gather(*(self.bob_pays(r) for r in requests))
        self.assertEqual(set(statuses), {"SUCCEEDED"})

    # ---- (a) ------------------------------------------------------------------------------------
    async def test_worker_killed_with_a_payment_in_flight_pays_once(self) -> None:
        user = await self.user(balance_sat=50_000)
        bob_invoice = await self.net.client("bob").add_invoice(
            value_msat=20_000_000, memo="simnet:hold", expiry_s=3600, preimage=uuid.uuid4().bytes * 2
        )
        bob_before = await self.bob_local_msat()
        payment_id = await self.pending_payment(
            user, bob_invoice.payment_request, bob_invoice.payment_hash, 20_000, fee_limit_sat=FEE_LIMIT_SAT
        )
        async with self.worker("worker-1") as first:
            await self.pool.enqueue_job(
                jobs.PAY_INVOICE, str(payment_id), _job_id=jobs.pay_invoice_job_id(payment_id)
            )
            await self.wait_state("payments", payment_id, "in_flight")
            first.process.kill()  # SIGKILL: no cleanup at all
            await first.process.wait()
        async with self.worker("worker-2"):
            release = await self.net.cli(
                "release", "--node", "alice", bob_invoice.payment_hash.hex(), "--outcome", "succeed"
            )
            self.assertNotIn("error", release)
            await self.wait_state("payments", payment_id, "succeeded", timeout_s=60)
        payment = await self.payment(payment_id)
        self.assertEqual(payment.attempts, 1)  # sent once; the second worker only tracked it
        alice = self.net.client("alice")
        listed = await alice.lightning_stub.ListPayments(
            ln.ListPaymentsRequest(include_incomplete=True), metadata=alice.call_metadata
        )
        ours = [p for p in listed.payments if p.payment_hash == bob_invoice.payment_hash.hex()]
        self.assertEqual(len(ours), 1)
        self.assertEqual(await self.bob_local_msat() - bob_before, 20_000_000)
        balance = await self.balance(user)
        self.assertEqual(
            (balance.balance_msat, balance.held_msat), (50_000_000 - 20_000_000 - payment.fee_msat, 0)
        )
        self.assertEqual(payment.fee_msat, ours[0].fee_msat)
        await self.assert_ledger_consistent()

    # ---- (b) ------------------------------------------------------------------------------------
    async def test_jobs_lost_in_a_redis_flush_are_enqueued_again(self) -> None:
        user = await self.user(balance_sat=10_000)
        invoice_id = await self.enqueue_invoice(user, 1234)
        bob_invoice = await self.net.client("bob").add_invoice(
            value_msat=1_000_000, memo="", expiry_s=3600, preimage=uuid.uuid4().bytes * 2
        )
        payment_id = await self.pending_payment(
            user, bob_invoice.payment_request, bob_invoice.payment_hash, 1000, fee_limit_sat=FEE_LIMIT_SAT
        )
        await self.pool.enqueue_job(
            jobs.PAY_INVOICE, str(payment_id), _job_id=jobs.pay_invoice_job_id(payment_id)
        )
        await self.redis.flushdb()  # before any worker saw them
        self.assertEqual(await self.pool.zcard(self.settings.arq_queue_name), 0)
        async with self.worker():
            await self.wait_state("invoices", invoice_id, "open", timeout_s=60)
            await self.wait_state("payments", payment_id, "succeeded", timeout_s=60)
        self.assertEqual((await self.balance(user)).held_msat, 0)
        await self.assert_ledger_consistent()

    # ---- (c) ------------------------------------------------------------------------------------
    async def test_settlements_while_the_worker_is_down_are_credited_exactly_once(self) -> None:
        users = [await self.user() for _ in range(3)]
        async with self.worker("worker-1") as first:
            made = await self.open_invoices(users, 24)
            early = dict(list(made.items())[:6])
            await self.pay_all(early)  # live, while the worker follows: the cursor moves past 0
            await wait_for(lambda: self._settled_at_least(6), timeout_s=60, message="live settlements")
            first.process.kill()
            await first.process.wait()
        await self.pay_all(dict(list(made.items())[6:]))  # nobody is listening
        async with self.worker("worker-2"):
            await self.assert_all_credited(made, users)
        cursor = await self.scalar("SELECT max(settle_index) FROM settlement_cursor")
        self.assertEqual(cursor, 24)

    # ---- (d) ------------------------------------------------------------------------------------
    async def test_node_restart_under_a_live_subscription_misses_nothing(self) -> None:
        users = [await self.user() for _ in range(2)]
        async with self.worker() as worker:
            made = await self.open_invoices(users, 10)
            items = list(made.items())
            await self.pay_all(dict(items[:4]))
            await wait_for(lambda: self._settled_at_least(4), timeout_s=60, message="before restart")
            await self.net.restart()
            await self.pay_all(dict(items[4:]))
            await self.assert_all_credited(made, users)
            # Credited by the resumed stream (the cursor was past 0, so no reconcile pass did it).
            self.assertGreaterEqual(worker.log_text().count("settlement stream from settle_index="), 2)

    async def _settled_at_least(self, n: int) -> bool:
        return await self.scalar("SELECT count(*) FROM invoices WHERE state = 'settled'") >= n
