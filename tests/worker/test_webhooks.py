"""The deliver_webhook job against real HTTP receivers on 127.0.0.1 (WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8).

Names are resolved by stub resolvers, never the network; nothing but loopback is ever contacted.
"""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import UTC, datetime, timedelta
from unittest import mock

from sqlalchemy import text
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from lightning_worker import webhook_http
from lightning_worker.settlement import settle_invoices
from lightning_worker.webhooks import deliver_webhook
from shared import jobs
from shared.db.queries.webhooks import request_redelivery
from shared.webhook_events import invoice_data
from shared.webhook_secrets import SecretBox, current_secret, rotate_secret
from tests.support.cases import wait_for
from tests.support.webhook_receiver import WebhookReceiver
from tests.worker.helpers import WorkerCase

LOOPBACK = "127.0.0.0/8"


class StubResolver:
    """Answers from a table and counts lookups; a name not in the table does not resolve."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int):
        self.lookups.append(host)
        if host not in self.answers:
            raise OSError(f"stub: {host} does not resolve")
        replies = self.answers[host]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        return [ipaddress.ip_address(address) for address in reply]


class WebhookCase(WorkerCase):
    settings_overrides = {"webhook_allowed_networks": LOOPBACK}

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.receiver = await WebhookReceiver().start()
        self.box = SecretBox.from_settings(self.settings)

    async def asyncTearDown(self) -> None:
        await self.receiver.close()
        await super().asyncTearDown()

    async def settled_delivery(self, url: str | None = None, user=None) -> tuple[int, object]:
        user = user or await self.user()
        invoice = await self.open_invoice(user, 21, memo="tip", webhook_url=url or self.receiver.url())
        result = await settle_invoices(
            self.context, [self.fake.settle(invoice.payment_hash)], cursor_node="n"
        )
        self.assertEqual(len(result.webhook_ids), 1)
        return result.webhook_ids[0], await self.invoice(invoice.id)

    async def row(self, delivery_id: int):
        async with self.sessions() as session:
            return (
                await session.execute(
                    text("SELECT * FROM webhook_deliveries WHERE id = :i"), {"i": delivery_id}
                )
            ).one()

    async def make_due(self, delivery_id: int) -> None:
        await self.set_row(
            "webhook_deliveries", delivery_id, next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)
        )

    async def secret_of(self, user_id) -> str:
        async with self.sessions() as session, session.begin():
            return await current_secret(session, self.box, user_id)

    async def deliver(self, delivery_id: int) -> dict:
        return await deliver_webhook(self.ctx(), str(delivery_id))


class DeliveryTests(WebhookCase):
    async def test_a_settlement_is_delivered_once_signed_with_the_api_shape(self) -> None:
        delivery_id, invoice = await self.settled_delivery()
        self.assertEqual((await self.deliver(delivery_id))["state"], "delivered")
        [request] = self.receiver.received
        row = await self.row(delivery_id)
        self.assertEqual(
            (row.state, row.attempts, row.last_status_code, row.last_error), ("delivered", 1, 200, None)
        )
        self.assertIsNotNone(row.delivered_at)

        body = Webhook(await self.secret_of(invoice.user_id)).verify(request.body, request.headers)
        self.assertEqual(body["type"], "invoice.settled")
        self.assertEqual(body["data"], invoice_data(invoice))
        self.assertEqual((body["data"]["amountPaidSat"], body["data"]["memo"]), (21, "tip"))
        self.assertEqual(request.headers["webhook-id"], row.webhook_id)
        self.assertTrue(row.webhook_id.startswith("msg_"))
        self.assertEqual(request.headers["Content-Type"], "application/json")
        with self.assertRaises(WebhookVerificationError):
            Webhook(await self.secret_of(invoice.user_id)).verify(
                request.body.replace(b"21", b"99"), request.headers
            )
        with self.assertRaises(WebhookVerificationError):
            Webhook(await self.secret_of(await self.user())).verify(request.body, request.headers)

        # Done is done: another run makes no attempt.
        self.assertEqual(await self.deliver(delivery_id), {"state": "not_due"})
        self.assertEqual(len(self.receiver.received), 1)

    async def test_a_failed_attempt_is_retried_on_schedule_with_the_same_webhook_id(self) -> None:
        delivery_id, _ = await self.settled_delivery()
        self.receiver.behaviours = [500]
        before = datetime.now(UTC)
        self.assertEqual((await self.deliver(delivery_id))["state"], "pending")
        row = await self.row(delivery_id)
        self.assertEqual((row.attempts, row.last_status_code, row.last_error), (1, 500, "HTTP 500"))
        # First retry 5 s later, +-10 % jitter.
        self.assertGreaterEqual(row.next_attempt_at, before + timedelta(seconds=4.5))
        self.assertLessEqual(row.next_attempt_at, datetime.now(UTC) + timedelta(seconds=5.5))
        # Not due yet: a run now makes no attempt.
        self.assertEqual(await self.deliver(delivery_id), {"state": "not_due"})
        await self.make_due(delivery_id)
        self.assertEqual((await self.deliver(delivery_id))["state"], "delivered")
        first, second = self.receiver.received
        self.assertEqual(first.headers["webhook-id"], second.headers["webhook-id"])
        self.assertEqual(first.body, second.body)
        self.assertEqual((await self.row(delivery_id)).attempts, 2)

    async def test_after_the_last_attempt_the_delivery_fails(self) -> None:
        self.context.settings = self.make_settings(webhook_retry_schedule_s="0,0")
        delivery_id, _ = await self.settled_delivery()
        self.receiver.default = 503
        self.assertEqual((await self.deliver(delivery_id))["state"], "pending")
        self.assertEqual((await self.deliver(delivery_id))["state"], "pending")
        self.assertEqual((await self.deliver(delivery_id))["state"], "failed")
        self.assertEqual(await self.deliver(delivery_id), {"state": "not_due"})
        row = await self.row(delivery_id)
        self.assertEqual((row.state, row.attempts, row.last_status_code), ("failed", 3, 503))
        self.assertEqual(len(self.receiver.received), 3)

    async def test_the_first_attempt_comes_from_the_cron_when_the_enqueue_was_lost(self) -> None:
        from lightning_worker import crons

        delivery_id, _ = await self.settled_delivery()
        await self.arq.flushdb()  # Redis lost the job; the row is the truth
        self.assertEqual(await crons.enqueue_due_webhooks(self.ctx()), {"due": 1, "enqueued": 1})
        queued = {job.job_id for job in await self.arq.queued_jobs()}
        self.assertEqual(queued, {jobs.deliver_webhook_job_id(delivery_id)})

    async def test_rotation_signs_with_both_secrets_for_a_day(self) -> None:
        user = await self.user()
        old = await self.secret_of(user)
        async with self.sessions() as session, session.begin():
            new = await rotate_secret(session, self.box, user)
        self.assertNotEqual(old, new)
        self.assertTrue(new.startswith("whsec_"))
        delivery_id, _ = await self.settled_delivery(user=user)
        await self.deliver(delivery_id)
        [request] = self.receiver.received
        self.assertEqual(len(request.headers["webhook-signature"].split(" ")), 2)
        Webhook(new).verify(request.body, request.headers)
        Webhook(old).verify(request.body, request.headers)
        # A day later only the new secret signs.
        await self.set_row_where_user(
            "webhook_secrets", user, expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        await self.make_due(delivery_id)
        await self.set_row("webhook_deliveries", delivery_id, state="pending")
        await self.deliver(delivery_id)
        latest = self.receiver.received[-1]
        self.assertEqual(len(latest.headers["webhook-signature"].split(" ")), 1)
        Webhook(new).verify(latest.body, latest.headers)
        with self.assertRaises(WebhookVerificationError):
            Webhook(old).verify(latest.body, latest.headers)

    async def set_row_where_user(self, table: str, user_id, **values) -> None:
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        sql = f"UPDATE {table} SET {assignments} WHERE user_id = :u AND expires_at IS NOT NULL"  # noqa: S608
        async with self.sessions() as session, session.begin():
            await session.execute(text(sql), {**values, "u": user_id})

    async def test_a_redelivery_during_an_attempt_voids_it_and_asks_for_a_new_one(self) -> None:
        delivery_id, invoice = await self.settled_delivery()
        self.receiver.behaviours = ["hang"]
        running = asyncio.create_task(self.deliver(delivery_id))
        await wait_for(lambda: _true(self.receiver.received), message="the first POST")
        async with self.sessions() as session, session.begin():
            self.assertIsNotNone(await request_redelivery(session, delivery_id, invoice.user_id))
        self.receiver._release.set()  # the hung attempt now answers 200, too late to count
        self.assertEqual((await running)["state"], "superseded")
        self.assertEqual((await self.row(delivery_id)).state, "pending")
        self.assertEqual((await self.deliver(delivery_id))["state"], "delivered")
        self.assertEqual(len(self.receiver.received), 2)


async def _true(value) -> bool:
    return bool(value)


class MisbehavingReceiverTests(WebhookCase):
    async def test_redirects_are_not_followed(self) -> None:
        delivery_id, _ = await self.settled_delivery()
        self.receiver.behaviours = [("redirect", self.receiver.url("/steal"))]
        self.assertEqual((await self.deliver(delivery_id))["state"], "pending")
        row = await self.row(delivery_id)
        self.assertEqual(
            (row.last_status_code, row.last_error), (302, "HTTP 302 (redirects are not followed)")
        )
        self.assertEqual([r.path for r in self.receiver.received], ["/hook"])

    async def test_a_hanging_receiver_costs_one_bounded_attempt_and_stalls_nothing_else(self) -> None:
        hanging = await WebhookReceiver(default="hang").start()
        try:
            stuck_id, _ = await self.settled_delivery(hanging.url())
            fine_id, _ = await self.settled_delivery()
            with mock.patch.object(webhook_http, "TOTAL_TIMEOUT_S", 1.0):
                stuck = asyncio.create_task(self.deliver(stuck_id))
                await wait_for(lambda: _true(hanging.received), message="the hanging POST")
                self.assertEqual((await self.deliver(fine_id))["state"], "delivered")
                self.assertFalse(stuck.done())
                self.assertEqual((await stuck)["state"], "pending")
            self.assertEqual((await self.row(stuck_id)).last_error, "no answer within 1 s")
        finally:
            await hanging.close()

    async def test_a_huge_answer_is_read_at_most_64_kib(self) -> None:
        self.receiver.default = "big"
        result = await webhook_http.post(
            self.receiver.url(),
            b"{}",
            {},
            allowed=self.settings.webhook_networks,
            resolver=webhook_http.system_resolver,
        )
        self.assertTrue(result.delivered)
        self.assertEqual(result.status_code, 200)
        self.assertLessEqual(result.bytes_read, webhook_http.MAX_RESPONSE_BYTES)
        self.assertGreater(result.bytes_read, 0)
        delivery_id, _ = await self.settled_delivery()
        self.assertEqual((await self.deliver(delivery_id))["state"], "delivered")

    async def test_an_unreachable_receiver_is_a_failed_attempt(self) -> None:
        delivery_id, _ = await self.settled_delivery("http://127.0.0.1:9/hook")
        self.assertEqual((await self.deliver(delivery_id))["state"], "pending")
        row = await self.row(delivery_id)
        self.assertIsNone(row.last_status_code)
        self.assertIn("ClientConnectorError", row.last_error)


class DeliveryTimeRefusalTests(WebhookCase):
    async def test_a_name_resolving_to_a_refused_address_is_refused_before_any_connection(self) -> None:
        stub = StubResolver({"hooks.shop.example": [["93.184.216.34", "10.0.0.7"]]})
        self.context.webhook_resolver = stub
        delivery_id, _ = await self.settled_delivery("http://hooks.shop.example/hook")
        self.assertEqual((await self.deliver(delivery_id))["state"], "failed")
        row = await self.row(delivery_id)
        self.assertEqual(row.last_error, "refused: the host's address is not public (private)")
        self.assertNotIn("10.0.0.7", row.last_error)
        self.assertEqual(stub.lookups, ["hooks.shop.example"])

    async def test_a_name_resolving_to_loopback_is_refused_unless_allowed(self) -> None:
        self.context.webhook_resolver = StubResolver({"hooks.shop.example": [["127.0.0.1"]]})
        self.context.settings = self.make_settings(webhook_allowed_networks="")
        delivery_id, _ = await self.settled_delivery(
            self.receiver.url().replace("127.0.0.1", "hooks.shop.example")
        )
        self.assertEqual((await self.deliver(delivery_id))["state"], "failed")
        self.assertEqual(self.receiver.received, [])

    async def test_the_connection_goes_to_the_checked_address_with_the_name_kept(self) -> None:
        # DNS rebinding: the first answer is loopback (allowed here), a second lookup would say 10.0.0.7.
        stub = StubResolver({"hooks.shop.example": [["127.0.0.1"], ["10.0.0.7"]]})
        self.context.webhook_resolver = stub
        url = self.receiver.url().replace("127.0.0.1", "hooks.shop.example")
        delivery_id, _ = await self.settled_delivery(url)
        self.assertEqual((await self.deliver(delivery_id))["state"], "delivered")
        self.assertEqual(stub.lookups, ["hooks.shop.example"])  # one lookup, no second one
        self.assertTrue(self.receiver.received[0].headers["Host"].startswith("hooks.shop.example:"))

    async def test_a_name_that_does_not_resolve_is_retried(self) -> None:
        self.context.webhook_resolver = StubResolver({})
        delivery_id, _ = await self.settled_delivery("https://nowhere.shop.example/hook")
        self.assertEqual((await self.deliver(delivery_id))["state"], "pending")
        self.assertIn("did not resolve", (await self.row(delivery_id)).last_error)

    async def test_a_literal_refused_at_delivery_time_fails_without_a_connection(self) -> None:
        delivery_id, _ = await self.settled_delivery()
        self.context.settings = self.make_settings(webhook_allowed_networks="")  # the operator closed it
        self.assertEqual((await self.deliver(delivery_id))["state"], "failed")
        self.assertEqual(self.receiver.received, [])
        self.assertIn("loopback", (await self.row(delivery_id)).last_error)
