from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer
from arq import Retry
from sqlalchemy import text

from lightning_worker import webhooks
from lightning_worker.settlement import settle_invoices
from lightning_worker.webhooks import deliver_webhook
from tests.worker.helpers import WorkerCase


class WebhookTests(WorkerCase):
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.statuses: list[int] = []
        self.received: list[tuple[dict, dict]] = []

        async def hook(request: web.Request) -> web.Response:
            self.received.append((await request.json(), dict(request.headers)))
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 302:
                raise web.HTTPFound("/elsewhere")
            return web.Response(status=status)

        async def elsewhere(request: web.Request) -> web.Response:
            self.received.append(({"redirected": True}, {}))
            return web.Response()

        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_route("*", "/elsewhere", elsewhere)
        self.server = TestServer(app)
        await self.server.start_server()

    async def asyncTearDown(self) -> None:
        await self.server.close()
        await super().asyncTearDown()

    async def _delivery(self, url: str | None = None) -> int:
        user = await self.user()
        invoice = await self.open_invoice(
            user, 21, memo="tip", webhook_url=url or str(self.server.make_url("/hook"))
        )
        result = await settle_invoices(
            self.context, [self.fake.settle(invoice.payment_hash)], cursor_node="n"
        )
        self.assertEqual(len(result.webhook_ids), 1)
        self.invoice_id = invoice.id
        return result.webhook_ids[0]

    async def _row(self, delivery_id: int):
        async with self.sessions() as session:
            return (
                await session.execute(
                    text("SELECT * FROM webhook_deliveries WHERE id = :i"), {"i": delivery_id}
                )
            ).one()

    async def test_delivers_the_settlement_once(self) -> None:
        delivery_id = await self._delivery()
        self.assertEqual(
            await deliver_webhook(self.ctx(), str(delivery_id)), {"state": "delivered", "attempts": 1}
        )
        body, headers = self.received[0]
        self.assertEqual(body["event"], "invoice.settled")
        self.assertEqual(body["invoiceId"], str(self.invoice_id))
        self.assertEqual((body["amountSat"], body["amountPaidSat"], body["memo"]), (21, 21, "tip"))
        self.assertEqual(headers["X-Webhook-Id"], str(delivery_id))
        row = await self._row(delivery_id)
        self.assertEqual((row.state, row.attempts), ("delivered", 1))
        self.assertIsNotNone(row.delivered_at)
        self.assertEqual(await deliver_webhook(self.ctx(), str(delivery_id)), {"state": "delivered"})
        self.assertEqual(len(self.received), 1)

    async def test_failure_retries_with_backoff_then_succeeds(self) -> None:
        delivery_id = await self._delivery()
        self.statuses = [500, 503]
        with self.assertRaises(Retry):
            await deliver_webhook(self.ctx(1), str(delivery_id))
        row = await self._row(delivery_id)
        self.assertEqual((row.state, row.attempts, row.last_error), ("pending", 1, "HTTP 500"))
        with self.assertRaises(Retry):
            await deliver_webhook(self.ctx(2), str(delivery_id))
        self.assertGreater((await self._row(delivery_id)).next_attempt_at, row.next_attempt_at)
        self.assertEqual((await deliver_webhook(self.ctx(3), str(delivery_id)))["state"], "delivered")
        self.assertEqual(len(self.received), 3)

    async def test_gives_up_after_max_attempts(self) -> None:
        delivery_id = await self._delivery()
        self.statuses = [500] * 10
        for attempt in range(1, webhooks.MAX_ATTEMPTS):
            with self.assertRaises(Retry):
                await deliver_webhook(self.ctx(attempt), str(delivery_id))
        self.assertEqual((await deliver_webhook(self.ctx(), str(delivery_id)))["state"], "failed")
        self.assertEqual((await self._row(delivery_id)).attempts, webhooks.MAX_ATTEMPTS)

    async def test_redirects_are_not_followed(self) -> None:
        delivery_id = await self._delivery()
        self.statuses = [302]
        with self.assertRaises(Retry):
            await deliver_webhook(self.ctx(), str(delivery_id))
        self.assertEqual((await self._row(delivery_id)).last_error, "HTTP 302")
        self.assertFalse(any(body.get("redirected") for body, _ in self.received))

    async def test_only_http_urls(self) -> None:
        delivery_id = await self._delivery("file:///etc/passwd")
        self.assertEqual((await deliver_webhook(self.ctx(), str(delivery_id)))["state"], "failed")
        self.assertEqual(self.received, [])

    async def test_unreachable_receiver_is_a_failed_attempt(self) -> None:
        delivery_id = await self._delivery("http://127.0.0.1:9/hook")
        with self.assertRaises(Retry):
            await deliver_webhook(self.ctx(), str(delivery_id))
        self.assertIn("Error", (await self._row(delivery_id)).last_error)
