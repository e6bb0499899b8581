from __future__ import annotations

import asyncio

from lightning_worker.settlement import settle_invoices
from lightning_worker.subscription import SettlementSubscription
from tests.support.cases import wait_for
from tests.support.fake_lightning import PUBKEY
from tests.worker.helpers import WorkerCase


class SettlementTests(WorkerCase):
    async def _cursor(self) -> int:
        return int(await self.scalar("SELECT coalesce(max(settle_index), 0) FROM settlement_cursor") or 0)

    async def test_a_settlement_credits_once_and_moves_the_cursor(self) -> None:
        user = await self.user()
        invoice = await self.open_invoice(user, 1200, webhook_url="https://example.invalid/hook")
        settled = self.fake.settle(invoice.payment_hash, amt_paid_msat=1_250_000)  # overpaid: credit paid
        result = await settle_invoices(self.context, [settled, settled], cursor_node=PUBKEY)
        self.assertEqual(len(result.credited), 1)
        self.assertEqual(len(result.webhook_ids), 1)
        again = await settle_invoices(self.context, [settled], cursor_node=PUBKEY)  # duplicate: no-op
        self.assertEqual((again.credited, again.webhook_ids), ([], []))
        self.assertEqual((await self.balance(user)).balance_msat, 1_250_000)
        row = await self.invoice(invoice.id)
        self.assertEqual((row.state, row.settle_index, row.amount_paid_msat), ("settled", 1, 1_250_000))
        self.assertEqual(await self._cursor(), 1)
        await self.assert_ledger_consistent()

    async def test_state_ledger_and_cursor_commit_together_or_not_at_all(self) -> None:
        from sqlalchemy.exc import IntegrityError

        good_user, bad_user = await self.user(), await self.user()
        good = await self.open_invoice(good_user, 100)
        bad = await self.open_invoice(bad_user, 50)
        settled_bad = self.fake.settle(bad.payment_hash)
        await settle_invoices(self.context, [settled_bad], cursor_node=None)
        # An application bug puts the credited invoice back to open: crediting it again must be
        # refused by the database (one credit per invoice), and the whole batch, including the good
        # invoice and the cursor, rolls back with it.
        await self.set_row("invoices", bad.id, state="open")
        batch = [self.fake.settle(good.payment_hash), settled_bad]
        with self.assertRaises(IntegrityError) as raised:
            await settle_invoices(self.context, batch, cursor_node=PUBKEY)
        self.assertIn("ledger_entries_invoice_credited_once", str(raised.exception))
        self.assertEqual((await self.invoice(good.id)).state, "open")
        self.assertEqual((await self.balance(good_user)).balance_msat, 0)
        self.assertEqual((await self.balance(bad_user)).balance_msat, 50_000)
        self.assertEqual(await self._cursor(), 0)
        await self.assert_ledger_consistent()

    async def test_subscription_credits_live_settlements_and_resumes_from_the_cursor(self) -> None:
        user = await self.user()
        invoices = [await self.open_invoice(user, 100 + i) for i in range(5)]
        sub = SettlementSubscription(self.context)
        task = asyncio.create_task(sub.follow())
        try:
            await wait_for(lambda: self._true(sub.stats.connects == 1), message="subscribed")
            for inv in invoices[:3]:
                self.fake.settle(inv.payment_hash)
            await wait_for(lambda: self._true(sub.stats.credited == 3), message="3 credited")
            self.assertEqual(await self._cursor(), 3)
            # The node restarts: settlements while the stream is down must arrive on resubscribe.
            self.fake.break_subscriptions()
            self.fake.settle(invoices[3].payment_hash)
            self.fake.settle(invoices[4].payment_hash)
            await wait_for(lambda: self._true(sub.stats.credited == 5), message="5 credited")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.assertGreaterEqual(sub.stats.connects, 2)
        self.assertEqual((await self.balance(user)).balance_msat, sum(100_000 + i * 1000 for i in range(5)))
        self.assertEqual(await self._cursor(), 5)
        await self.assert_ledger_consistent()

    async def test_a_new_holder_resumes_from_the_stored_cursor_without_double_credit(self) -> None:
        user = await self.user()
        invoices = [await self.open_invoice(user, 10) for _ in range(4)]
        for inv in invoices[:2]:
            await settle_invoices(self.context, [self.fake.settle(inv.payment_hash)], cursor_node=PUBKEY)
        for inv in invoices[2:]:
            self.fake.settle(inv.payment_hash)  # settled while no worker was following
        sub = SettlementSubscription(self.context)
        task = asyncio.create_task(sub.follow())
        try:
            await wait_for(lambda: self._true(sub.stats.credited == 2), message="backlog credited")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.assertEqual(sub.stats.settled_events, 2)  # replay started after the cursor (2)
        self.assertEqual((await self.balance(user)).balance_msat, 40_000)
        await self.assert_ledger_consistent()

    async def test_cursor_zero_reconciles_open_invoices_first(self) -> None:
        user = await self.user()
        first, second = await self.open_invoice(user, 10), await self.open_invoice(user, 20)
        self.fake.settle(second.payment_hash)  # settled before any worker followed the node
        sub = SettlementSubscription(self.context)
        task = asyncio.create_task(sub.follow())
        try:
            await wait_for(lambda: self._balance_is(user, 20_000), message="reconciled")
            # Settle once the stream is registered at the node, so it is the stream (which moves the
            # cursor) that delivers it; before that, the start-up re-check would credit it instead.
            await wait_for(lambda: self._true(self.fake.subscriber_count == 1), message="stream registered")
            self.fake.settle(first.payment_hash)
            await wait_for(lambda: self._balance_is(user, 30_000), message="live")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.assertEqual(await self._cursor(), 2)
        await self.assert_ledger_consistent()

    async def test_cursor_zero_settlement_missed_by_the_stream_is_still_credited(self) -> None:
        # add_index 1 cannot be replayed (0 means "no replay") and a settlement landing before the
        # stream is registered is never streamed: the subscription must look again by itself.
        user = await self.user()
        invoice = await self.open_invoice(user, 10)
        sub = SettlementSubscription(self.context)
        task = asyncio.create_task(sub.follow())
        try:
            await wait_for(lambda: self._true(sub.stats.connects == 1), message="subscribed")
            self.fake.settle(invoice.payment_hash, announce=False)
            await wait_for(lambda: self._balance_is(user, 10_000), message="credited by the re-check")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.assertEqual((await self.invoice(invoice.id)).state, "settled")
        await self.assert_ledger_consistent()

    async def test_batches_of_settlements_credit_every_invoice_once(self) -> None:
        """Set-based batches credit each invoice exactly once (speed is measured in bench/, not here)."""
        user = await self.user()
        n = 1000
        async with self.sessions() as session, session.begin():
            from sqlalchemy import text

            await session.execute(
                text(
                    "INSERT INTO invoices"
                    " (user_id, account_id, state, amount_msat, expiry_s, payment_hash, payment_request)"
                    " SELECT :u, (SELECT id FROM accounts WHERE user_id = :u), 'open', 1000, 3600,"
                    " sha256(int4send(g)), 'x' FROM generate_series(1, :n) g"
                ),
                {"u": user, "n": n},
            )
        import hashlib
        import time

        from shared.lightning.types import Invoice, InvoiceState

        events = [
            Invoice(
                hashlib.sha256(g.to_bytes(4, "big")).digest(),
                "x",
                "",
                1000,
                1000,
                InvoiceState.SETTLED,
                g,
                g,
                0,
                int(time.time()),
                3600,
                None,
            )
            for g in range(1, n + 1)
        ]
        for i in range(0, n, 200):
            await settle_invoices(self.context, events[i : i + 200], cursor_node=PUBKEY)
        # Replaying a batch that overlaps the ones already applied credits nothing twice.
        await settle_invoices(self.context, events[100:300], cursor_node=PUBKEY)
        self.assertEqual((await self.balance(user)).balance_msat, n * 1000)
        self.assertEqual(await self._cursor(), n)
        await self.assert_ledger_consistent()

    async def _balance_is(self, user, msat: int) -> bool:
        return (await self.balance(user)).balance_msat == msat

    @staticmethod
    async def _true(value: bool) -> bool:
        return value
