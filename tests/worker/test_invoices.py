from __future__ import annotations

from arq import Retry

from lightning_worker.invoices import create_invoice
from shared.errors import LightningRequestError, LightningUnavailable
from tests.support.cases import wait_for
from tests.worker.helpers import WorkerCase, ago, expected_hash


async def received(pubsub, kind: str, about: str = "") -> dict:
    """The next pub/sub message of ``kind`` ("subscribe", "message") whose data mentions ``about``,
    within a generous deadline. Pub/sub channels are server-wide (not per Redis db): another checkout
    testing on the same server publishes on ``lw:events`` too, so messages about other rows are skipped."""

    async def next_one() -> dict | None:
        message = await pubsub.get_message(timeout=0.1)
        if not message or message["type"] != kind:
            return None
        data = message["data"]
        return message if about in (data.decode() if isinstance(data, bytes) else str(data)) else None

    return await wait_for(next_one, timeout_s=30, message=f"a {kind} message")


class CreateInvoiceTests(WorkerCase):
    async def test_opens_the_row_with_a_deterministic_hash(self) -> None:
        user = await self.user()
        invoice_id = await self.pending_invoice(user, 1500, memo="coffee", expiry_s=600)
        self.assertEqual(await create_invoice(self.ctx(), str(invoice_id)), {"state": "open"})
        row = await self.invoice(invoice_id)
        self.assertEqual(row.state, "open")
        self.assertEqual(row.payment_hash, expected_hash(self.settings, invoice_id))
        lnd = self.fake.invoices[row.payment_hash]
        self.assertEqual((lnd.value_msat, lnd.memo, lnd.expiry_s), (1_500_000, "coffee", 600))
        self.assertEqual(row.payment_request, lnd.payment_request)
        self.assertEqual(row.add_index, lnd.add_index)
        delta = (row.expires_at - row.created_at).total_seconds()
        self.assertTrue(598 <= delta <= 601, delta)

    async def test_description_hash_and_msat_amount_reach_the_node(self) -> None:
        description_hash = bytes(range(32))
        invoice_id = await self.pending_invoice(
            await self.user(), amount_msat=1_501, memo="tip", description_hash=description_hash
        )
        self.assertEqual(await create_invoice(self.ctx(), str(invoice_id)), {"state": "open"})
        lnd = self.fake.invoices[(await self.invoice(invoice_id)).payment_hash]
        self.assertEqual((lnd.value_msat, lnd.memo, lnd.description_hash), (1_501, "tip", description_hash))

    async def test_running_twice_makes_one_lnd_invoice(self) -> None:
        invoice_id = await self.pending_invoice(await self.user())
        await create_invoice(self.ctx(), str(invoice_id))
        first = await self.invoice(invoice_id)
        self.assertEqual(await create_invoice(self.ctx(), str(invoice_id)), {"state": "open"})
        self.assertEqual(len(self.fake.invoices), 1)
        self.assertEqual(self.fake.calls["add_invoice"], 1)  # the second run saw a non-pending row
        self.assertEqual((await self.invoice(invoice_id)).payment_request, first.payment_request)

    async def test_retry_after_lnd_created_it_refinds_the_same_invoice(self) -> None:
        invoice_id = await self.pending_invoice(await self.user())
        await create_invoice(self.ctx(), str(invoice_id))
        lnd_invoice = next(iter(self.fake.invoices.values()))
        # As if the first run crashed after AddInvoice, before its UPDATE committed.
        await self.set_row(
            "invoices", invoice_id, state="pending", payment_hash=None, payment_request=None, add_index=None
        )
        self.assertEqual(await create_invoice(self.ctx(2), str(invoice_id)), {"state": "open"})
        self.assertEqual(self.fake.calls["add_invoice"], 2)
        self.assertEqual(self.fake.calls["lookup_invoice"], 1)
        self.assertEqual(len(self.fake.invoices), 1)
        row = await self.invoice(invoice_id)
        self.assertEqual(
            (row.payment_hash, row.payment_request), (lnd_invoice.payment_hash, lnd_invoice.payment_request)
        )

    async def test_unavailable_node_retries_and_leaves_the_row_pending(self) -> None:
        invoice_id = await self.pending_invoice(await self.user())
        self.fake.fail_next["add_invoice"] = [LightningUnavailable("connection refused")] * 2
        with self.assertRaises(Retry) as first:
            await create_invoice(self.ctx(1), str(invoice_id))
        with self.assertRaises(Retry) as second:
            await create_invoice(self.ctx(4), str(invoice_id))
        self.assertGreater(second.exception.defer_score, first.exception.defer_score)  # backoff grows
        self.assertEqual((await self.invoice(invoice_id)).state, "pending")
        self.assertEqual(await create_invoice(self.ctx(3), str(invoice_id)), {"state": "open"})

    async def test_refused_request_fails_the_row_without_retry(self) -> None:
        invoice_id = await self.pending_invoice(await self.user())
        self.fake.fail_next["add_invoice"] = [LightningRequestError("memo too long")]
        self.assertEqual(await create_invoice(self.ctx(), str(invoice_id)), {"state": "failed"})
        row = await self.invoice(invoice_id)
        self.assertEqual((row.state, row.failure_reason), ("failed", "memo too long"))

    async def test_row_past_its_expiry_is_failed_not_created(self) -> None:
        invoice_id = await self.pending_invoice(await self.user(), expiry_s=60)
        await self.set_row("invoices", invoice_id, created_at=ago(120))
        self.assertEqual(await create_invoice(self.ctx(), str(invoice_id)), {"state": "failed"})
        self.assertEqual(self.fake.calls["add_invoice"], 0)

    async def test_publishes_an_event_after_commit(self) -> None:
        invoice_id = await self.pending_invoice(await self.user())
        pubsub = self.redis.pubsub()
        await pubsub.subscribe("lw:events")
        try:
            await received(pubsub, "subscribe")  # confirmed: nothing published from now on is missed
            await create_invoice(self.ctx(), str(invoice_id))
            message = await received(pubsub, "message", about=str(invoice_id))
        finally:
            await pubsub.aclose()
        self.assertIn(str(invoice_id), message["data"].decode())
        self.assertIn('"state": "open"', message["data"].decode())
