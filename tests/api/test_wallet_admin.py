"""GET /api/v1/admin/jobs, /api/v1/admin/node, /api/v1/admin/payments/in-flight, and the SSE stream."""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

from arq.worker import Worker, func
from sqlalchemy import update

from api_service.app import redis_settings
from api_service.handlers import admin
from api_service.keys import ARQ
from shared import events, jobs
from shared.db.models import Payment, User
from tests.api.test_wallet_invoices import WalletCase
from tests.api.test_wallet_support import insert_payment

NODE = {
    "identity_pubkey": "02" + "ab" * 32,
    "alias": "alice",
    "network": "regtest",
    "block_height": 101,
    "version": "0.18.0-simnet",
    "synced_to_chain": True,
    "num_active_channels": 1,
    "channel_balance": {"local_msat": 5_000_999, "remote_msat": 7_000},
}


async def node_info(ctx):
    return NODE


async def create_invoice(ctx, invoice_id):
    return {"state": "open"}


async def pay_invoice(ctx, payment_id):
    raise ValueError("boom <script>")


@contextlib.asynccontextmanager
async def arq_worker(case, burst: bool = False):
    worker = Worker(
        functions=[
            func(node_info, name=jobs.NODE_INFO),
            func(create_invoice, name=jobs.CREATE_INVOICE),
            func(pay_invoice, name=jobs.PAY_INVOICE, max_tries=1),
        ],
        redis_settings=redis_settings(case.settings),
        queue_name=case.settings.arq_queue_name,
        poll_delay=0.01,
        handle_signals=False,
        burst=burst,
        health_check_interval=1,
        keep_result=3600,
        **jobs.SERIALIZERS,
    )
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker, task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await worker.close()


class AdminJobsTest(WalletCase):
    async def test_jobs_json_shape(self):
        _, admin_headers = await self.user(role="admin")
        arq = self.app[ARQ]
        done_id, failed_id = uuid.uuid4(), uuid.uuid4()
        await arq.enqueue_job(jobs.CREATE_INVOICE, str(done_id), _job_id=jobs.create_invoice_job_id(done_id))
        await arq.enqueue_job(jobs.PAY_INVOICE, str(failed_id), _job_id=jobs.pay_invoice_job_id(failed_id))
        async with arq_worker(self, burst=True) as (_, task):
            await asyncio.wait_for(task, 30)
        queued_id = uuid.uuid4()
        await arq.enqueue_job(
            jobs.CREATE_INVOICE, str(queued_id), _job_id=jobs.create_invoice_job_id(queued_id)
        )
        await arq.set("arq:in-progress:" + jobs.pay_invoice_job_id(uuid.uuid4()), b"1", px=10_000)
        # arq keeps a finished cron run's in-progress key (its lock for that slot): not in progress.
        await arq.set("arq:in-progress:" + jobs.create_invoice_job_id(done_id), b"1", px=10_000)
        await arq.set("arq:in-progress:cron:reconcile:1796165235123", b"1", px=10_000)
        await arq.set(self.settings.arq_queue_name + ":health-check", b"j_complete=2", px=10_000)

        response = await self.client.get("/api/v1/admin/jobs", headers=admin_headers)
        body = await response.json()
        self.assertEqual(response.status, 200, body)
        data = body["data"]
        self.assertEqual(data["queueName"], self.settings.arq_queue_name)
        self.assertEqual(data["queuedTotal"], 1)
        self.assertEqual(
            (data["queued"][0]["id"], data["queued"][0]["function"], data["queued"][0]["args"]),
            (jobs.create_invoice_job_id(queued_id), "create_invoice", [str(queued_id)]),
        )
        self.assertEqual(
            sorted(item["function"] for item in data["inProgress"]), ["cron:reconcile", "pay_invoice"]
        )
        results = {item["id"]: item for item in data["recentResults"]}
        self.assertTrue(results[jobs.create_invoice_job_id(done_id)]["success"])
        self.assertIn("open", results[jobs.create_invoice_job_id(done_id)]["result"])
        failed = results[jobs.pay_invoice_job_id(failed_id)]
        self.assertFalse(failed["success"])
        self.assertIn("ValueError", failed["result"])
        self.assertIsNotNone(failed["finishTime"])
        self.assertEqual(
            data["counts"]["create_invoice"], {"queued": 1, "inProgress": 0, "succeeded": 1, "failed": 0}
        )
        self.assertEqual(
            data["counts"]["pay_invoice"], {"queued": 0, "inProgress": 1, "succeeded": 0, "failed": 1}
        )
        self.assertEqual(data["counts"]["cron:reconcile"]["inProgress"], 1)
        self.assertTrue(data["workerHealth"]["alive"])
        self.assertEqual(data["workerHealth"]["value"], "j_complete=2")
        self.assertGreater(data["workerHealth"]["ttlMs"], 0)

    async def test_admin_only(self):
        _, headers = await self.user()
        for path in ("/api/v1/admin/jobs", "/api/v1/admin/node", "/api/v1/admin/payments/in-flight"):
            with self.subTest(path=path):
                await self.assert_error(await self.client.get(path, headers=headers), 403, "FORBIDDEN")
                await self.assert_error(await self.client.get(path), 401, "UNAUTHORIZED")


class PaymentsInFlightTest(WalletCase):
    async def payment(self, user_id: uuid.UUID, state: str, minutes_ago: int) -> uuid.UUID:
        payment_id, _ = await insert_payment(self, user_id, state=state)
        created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Payment)
                .where(Payment.id == payment_id)
                .values(created_at=created, updated_at=created, attempts=int(state == "in_flight"))
            )
        return payment_id

    async def test_every_users_unfinished_payments_oldest_first(self):
        alice_id, _ = await self.user()
        bob_id, _ = await self.user()
        _, admin = await self.user(role="admin")
        newest = await self.payment(alice_id, "pending", 1)
        oldest = await self.payment(bob_id, "in_flight", 90)
        middle = await self.payment(alice_id, "in_flight", 30)
        for state in ("succeeded", "failed"):
            await self.payment(bob_id, state, 120)  # final: never listed

        response = await self.client.get("/api/v1/admin/payments/in-flight", headers=admin)
        body = await response.json()
        self.assertEqual(response.status, 200, body)
        self.assertEqual([p["id"] for p in body["data"]], [str(oldest), str(middle), str(newest)])
        self.assertEqual(body["pagination"]["totalItems"], 3)
        first = body["data"][0]
        async with self.sessions() as session:
            bob = await session.get(User, bob_id)
        self.assertEqual(
            (first["status"], first["userId"], first["username"], first["attempts"]),
            ("in_flight", str(bob_id), bob.username, 1),
        )
        self.assertAlmostEqual(first["ageS"], 90 * 60, delta=60)
        self.assertEqual((first["amountMsat"], first["feeLimitSat"], first["preimage"]), (5_500, 10, None))
        self.assertIn("sentAt", first)
        self.assertIn("updatedAt", first)

        page = await self.client.get(
            "/api/v1/admin/payments/in-flight", params={"pageSize": "2", "page": "2"}, headers=admin
        )
        body = await page.json()
        self.assertEqual([p["id"] for p in body["data"]], [str(newest)])
        self.assertEqual(body["pagination"]["totalPages"], 2)
        beyond = await (
            await self.client.get("/api/v1/admin/payments/in-flight?page=9", headers=admin)
        ).json()
        self.assertEqual((beyond["data"], beyond["pagination"]["totalItems"]), ([], 3))
        for bad in ("pageSize=0", "page=x", "state=pending"):
            response = await self.client.get(f"/api/v1/admin/payments/in-flight?{bad}", headers=admin)
            await self.assert_error(response, 400, "VALIDATION_ERROR")


class AdminNodeTest(WalletCase):
    async def test_node_info_through_a_worker_job(self):
        _, admin_headers = await self.user(role="admin")
        with mock.patch.object(admin, "NODE_WAIT_S", 60):  # the worker answers long before
            async with arq_worker(self):
                response = await self.client.get("/api/v1/admin/node", headers=admin_headers)
        body = await response.json()
        self.assertEqual(response.status, 200, body)
        self.assertEqual(
            body["data"],
            {
                "identityPubkey": NODE["identity_pubkey"],
                "alias": "alice",
                "network": "regtest",
                "blockHeight": 101,
                "version": "0.18.0-simnet",
                "syncedToChain": True,
                "numActiveChannels": 1,
                "channelBalance": {"localSat": 5000, "remoteSat": 7},
            },
        )

    async def test_503_when_no_worker_answers(self):
        _, admin_headers = await self.user(role="admin")
        original, admin.NODE_WAIT_S = admin.NODE_WAIT_S, 0.2
        try:
            response = await self.client.get("/api/v1/admin/node", headers=admin_headers)
        finally:
            admin.NODE_WAIT_S = original
        await self.assert_error(response, 503, "UNAVAILABLE")


class StreamTest(WalletCase):
    async def test_sse_delivers_the_callers_events_only(self):
        user_id, headers = await self.user()
        other_id, _ = await self.user()
        response = await self.client.get("/api/v1/stream", headers=headers)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["Content-Type"], "text/event-stream")
        self.assertEqual(await response.content.readline(), b": connected\n")
        await response.content.readline()
        mine, theirs = uuid.uuid4(), uuid.uuid4()
        await events.publish(self.redis, events.RowEvent("invoice", theirs, "settled", other_id))
        await events.publish(self.redis, events.RowEvent("invoice", mine, "settled", user_id))
        await events.publish(self.redis, events.RowEvent("payment", mine, "failed", user_id))
        lines = []
        async with asyncio.timeout(30):
            while len(lines) < 6:
                lines.append((await response.content.readline()).decode())
        self.assertEqual(lines[0], "event: invoice.settled\n")
        self.assertIn(str(mine), lines[1])
        self.assertEqual(lines[3], "event: payment.failed\n")
        self.assertNotIn(str(theirs), "".join(lines))
        response.close()

    async def test_stream_requires_auth(self):
        await self.assert_error(await self.client.get("/api/v1/stream"), 401, "UNAUTHORIZED")

    async def test_streams_end_on_shutdown(self):
        _user_id, headers = await self.user()
        response = await self.client.get("/api/v1/stream", headers=headers)
        await response.content.readline()
        from api_service.events_hub import EVENTS_HUB

        self.app[EVENTS_HUB].close_streams()
        async with asyncio.timeout(30):
            await response.content.read()
        self.assertTrue(response.content.at_eof())


class EventsHubTest(WalletCase):
    # A 60 s wait, re-read every 50 ms: within the tests' 30 s deadline only a re-read can end it.
    settings_overrides = {"invoice_wait_s": 60, "payment_wait_s": 60, "wait_recheck_s": 0.05}

    async def test_hub_without_redis_starts_and_stops_cleanly(self):
        from api_service.events_hub import EventsHub

        hub = EventsHub("redis://127.0.0.1:1/0")
        await hub.start(ready_timeout_s=0.2)
        self.assertFalse(hub.connected)
        await hub.stop()

    async def test_lost_events_fall_back_to_re_reading_the_row(self):
        from api_service.events_hub import EVENTS_HUB
        from tests.api.test_wallet_support import running_fake_worker

        hub = self.app[EVENTS_HUB]
        hub._task.cancel()  # no subscriber: every event is lost
        with contextlib.suppress(asyncio.CancelledError):
            await hub._task
        _, headers = await self.user()
        async with running_fake_worker(self):
            response = await asyncio.wait_for(
                self.client.post("/api/v1/invoices", json={"amountSat": 5}, headers=headers), timeout=30
            )
        self.assertEqual(response.status, 201)
        self.assertEqual((await response.json())["data"]["state"], "open")
