"""Reconciliation against the node: planted mismatches are found, a healthy system is ok."""

from __future__ import annotations

import time
from dataclasses import replace

from lightning_worker.payments import pay_invoice
from lightning_worker.reconciliation import reconcile_with_node
from lightning_worker.settlement import settle_invoices
from shared import ledger
from tests.support.fake_lightning import PUBKEY
from tests.worker.helpers import WorkerCase

OLD = 3600  # seconds: well past RECONCILE_GRACE_S


class ReconciliationTests(WorkerCase):
    def age(self, payment_hash: bytes) -> None:
        """Move the node's settle time of an invoice into the past (beyond the grace period)."""
        invoice = self.fake.invoices[payment_hash]
        self.fake.invoices[payment_hash] = replace(invoice, settle_date=int(time.time()) - OLD)

    async def healthy_activity(self) -> None:
        user = await self.user(balance_sat=5000)
        invoice = await self.open_invoice(user, 100)
        settled = self.fake.settle(invoice.payment_hash)
        await settle_invoices(self.context, [settled], cursor_node=PUBKEY)
        self.age(invoice.payment_hash)
        request, payment_hash = self.fake.external_invoice(1_000_000, fee_msat=0)
        payment_id = await self.pending_payment(user, request, payment_hash, 1000)
        await pay_invoice(self.ctx(), str(payment_id))

    async def test_a_healthy_system_is_ok_and_the_figures_add_up(self) -> None:
        await self.healthy_activity()
        result = await reconcile_with_node(self.context)
        self.assertEqual((result.status, result.mismatches), ("ok", []))
        self.assertEqual(result.liabilities_msat, 5_000_000 + 100_000 - 1_000_000)
        self.assertEqual(result.treasury_msat, 0)
        self.assertEqual(result.node_local_balance_msat, self.fake.local_balance_msat)
        self.assertEqual(result.surplus_msat, self.fake.local_balance_msat - result.liabilities_msat)

    async def test_a_settlement_at_the_node_with_no_credit_is_a_mismatch(self) -> None:
        await self.healthy_activity()
        user = await self.user()
        missed = await self.open_invoice(user, 42)
        self.fake.settle(missed.payment_hash, announce=False)  # neither the stream nor a sweep saw it
        self.age(missed.payment_hash)
        result = await reconcile_with_node(self.context)
        self.assertEqual(result.status, "mismatch")
        self.assertEqual(
            [(m["kind"], m["invoiceId"]) for m in result.mismatches],
            [("invoice_settled_at_node_not_credited", str(missed.id))],
        )

    async def test_a_fresh_settlement_is_still_moving_not_a_mismatch(self) -> None:
        user = await self.user()
        fresh = await self.open_invoice(user, 42)
        self.fake.settle(fresh.payment_hash, announce=False)
        self.assertEqual((await reconcile_with_node(self.context)).status, "ok")

    async def test_a_settlement_between_the_node_snapshot_and_the_database_read_is_not_a_mismatch(
        self,
    ) -> None:
        # Seen under the soak: the node was listed, then the invoice settled and was credited, then the
        # database was read: "credited, not settled at the node" for one pass, logged at ERROR.
        user = await self.user()
        invoice = await self.open_invoice(user, 42)
        real_list, passes = self.fake.list_invoices, []

        async def settled_right_after_the_first_snapshot(**kwargs):
            snapshot = await real_list(**kwargs)
            if not passes:
                passes.append(1)
                settled = self.fake.settle(invoice.payment_hash)
                await settle_invoices(self.context, [settled], cursor_node=PUBKEY)
            return snapshot

        self.fake.list_invoices = settled_right_after_the_first_snapshot
        result = await reconcile_with_node(self.context)
        self.assertEqual((result.status, result.mismatches), ("ok", []))
        self.assertEqual(passes, [1])

    async def test_a_ledger_surplus_over_the_node_is_a_solvency_mismatch(self) -> None:
        await self.healthy_activity()
        # Balance no sats back: more owed to users than the node holds on our side.
        user = await self.user()
        async with self.sessions() as session, session.begin():
            await ledger.post_transaction(
                session,
                [
                    ledger.Leg(await ledger.system_account_id(session, "external"), -6_000_000_000),
                    ledger.Leg(await ledger.user_account_id(session, user), 6_000_000_000),
                ],
                kind="planted",
            )
        result = await reconcile_with_node(self.context)
        self.assertEqual([m["kind"] for m in result.mismatches], ["node_balance_below_liabilities"])
        self.assertLess(result.surplus_msat, 0)

    async def test_a_payment_the_node_made_that_no_row_charged_is_a_mismatch(self) -> None:
        await self.healthy_activity()
        user = await self.user(balance_sat=5000)
        request, payment_hash = self.fake.external_invoice(2_000_000, fee_msat=0)
        payment_id = await self.pending_payment(user, request, payment_hash, 2000)
        await pay_invoice(self.ctx(), str(payment_id))
        # A bug marks the row failed and gives the hold back, while the node did pay.
        await self.set_row("payments", payment_id, state="failed", preimage=None)
        result = await reconcile_with_node(self.context)
        self.assertEqual(
            [(m["kind"], m["paymentIds"]) for m in result.mismatches],
            [("payment_succeeded_at_node_not_charged", [str(payment_id)])],
        )
