from __future__ import annotations

from arq import Retry

from lightning_worker.payments import invoice_has_amount, pay_invoice
from shared.errors import LightningNotFound, LightningRequestError, LightningUnavailable
from tests.support import factories
from tests.worker.helpers import WorkerCase


class InvoiceAmountTests(WorkerCase):
    async def test_reads_the_amount_from_the_human_readable_part(self) -> None:
        self.assertTrue(invoice_has_amount("lnbcrt10u1pjxyz..."))
        self.assertTrue(invoice_has_amount("lnbc2500u1pvjluez"))
        self.assertTrue(invoice_has_amount("LNTB1m1abc"))
        self.assertFalse(invoice_has_amount("lnbcrt1pjxyzqq"))
        self.assertFalse(invoice_has_amount("lnbc1pvjluezpp5qqq"))


class ExternalPaymentTests(WorkerCase):
    async def _payment(
        self, amount_sat: int = 1000, fee_limit_sat: int = 10, balance_sat: int = 5000, **script
    ):
        user = await self.user(balance_sat=balance_sat)
        request, payment_hash = self.fake.external_invoice(amount_sat * 1000, **script)
        payment_id = await self.pending_payment(
            user, request, payment_hash, amount_sat, fee_limit_sat=fee_limit_sat
        )
        return user, payment_id, payment_hash

    async def test_success_settles_the_ledger_exactly(self) -> None:
        user, payment_id, payment_hash = await self._payment(1000, fee_limit_sat=10, fee_msat=2345)
        external_before = await self.system_balance("external")
        self.assertEqual((await self.balance(user)).held_msat, 1_010_000)
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        row = await self.payment(payment_id)
        self.assertEqual((row.state, row.fee_msat), ("succeeded", 2345))
        self.assertEqual(row.preimage, self.fake.external[payment_hash].preimage)
        self.assertIsNotNone(row.completed_at)
        balance = await self.balance(user)
        self.assertEqual((balance.balance_msat, balance.held_msat), (5_000_000 - 1_000_000 - 2345, 0))
        self.assertEqual(await self.system_balance("fees"), 2345)
        self.assertEqual(await self.system_balance("external") - external_before, 1_000_000)
        await self.assert_ledger_consistent()
        # Running it again changes nothing and sends nothing.
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual(self.fake.sends, [payment_hash])
        self.assertEqual((await self.balance(user)).balance_msat, 5_000_000 - 1_002_345)

    async def test_failure_releases_the_hold(self) -> None:
        user, payment_id, _ = await self._payment(1000, outcome="fail", failure_reason="NO_ROUTE")
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
        row = await self.payment(payment_id)
        self.assertEqual((row.state, row.failure_reason), ("failed", "NO_ROUTE"))
        balance = await self.balance(user)
        self.assertEqual((balance.balance_msat, balance.held_msat), (5_000_000, 0))
        await self.assert_ledger_consistent()

    async def test_refusal_before_any_htlc_fails_the_payment(self) -> None:
        user = await self.user(balance_sat=5000)
        # An invoice the node refuses outright (the fake: unknown to the network).
        payment_id = await self.pending_payment(
            user, "lnbcrt10000p1fake" + "11" * 32, bytes.fromhex("11" * 32), 1
        )
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
        self.assertIn("network", (await self.payment(payment_id)).failure_reason)
        self.assertEqual((await self.balance(user)).held_msat, 0)

    async def test_a_refusal_is_final_only_once_the_node_confirms_it_never_started(self) -> None:
        user, payment_id, _ = await self._payment(1000, fee_msat=1000)
        # The node has in fact paid this hash, yet the first track missed it and the send is
        # refused with an error text: the hold must not be released on the text's word.
        async for _ in self.fake.send_payment(
            payment_request=(await self.payment(payment_id)).payment_request,
            fee_limit_msat=10_000,
            timeout_s=5,
        ):
            pass
        self.fake.fail_next["track_payment"] = [
            LightningNotFound("payment isn't initiated", grpc_code="NOT_FOUND")
        ]
        self.fake.fail_next["send_payment"] = [
            LightningRequestError("unexpected refusal", grpc_code="UNKNOWN")
        ]
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual((await self.balance(user)).balance_msat, 5_000_000 - 1_001_000)
        self.assertEqual((await self.balance(user)).held_msat, 0)
        await self.assert_ledger_consistent()

    async def test_unknown_outcome_retries_and_the_retry_tracks_without_sending_again(self) -> None:
        user, payment_id, payment_hash = await self._payment(1000, fee_msat=1000)
        self.fake.break_send_after_first = True  # the stream dies after IN_FLIGHT; LND goes on paying
        with self.assertRaises(Retry):
            await pay_invoice(self.ctx(1), str(payment_id))
        row = await self.payment(payment_id)
        self.assertEqual(row.state, "in_flight")  # unknown is never failed
        self.assertEqual((await self.balance(user)).held_msat, 1_010_000)
        self.fake.break_send_after_first = False
        self.assertEqual(await pay_invoice(self.ctx(2), str(payment_id)), {"state": "succeeded"})
        self.assertEqual(self.fake.sends, [payment_hash])  # exactly one send
        self.assertEqual(self.fake.calls["track_payment"], 2)
        balance = await self.balance(user)
        self.assertEqual((balance.balance_msat, balance.held_msat), (5_000_000 - 1_001_000, 0))
        await self.assert_ledger_consistent()

    async def test_node_unreachable_before_sending_retries_with_the_row_pending(self) -> None:
        _, payment_id, _ = await self._payment(1000)
        self.fake.fail_next["track_payment"] = [LightningUnavailable("connection refused")]
        with self.assertRaises(Retry):
            await pay_invoice(self.ctx(), str(payment_id))
        self.assertEqual((await self.payment(payment_id)).state, "pending")
        self.assertEqual(self.fake.sends, [])
        self.assertEqual(await pay_invoice(self.ctx(2), str(payment_id)), {"state": "succeeded"})

    async def test_held_payment_stays_in_flight_until_the_node_resolves_it(self) -> None:
        self.settings = self.make_settings(lnd_timeout_s=0.2)  # short follow window per run
        self.context.settings = self.settings
        user, payment_id, payment_hash = await self._payment(1000, outcome="hold", fee_msat=500)
        with self.assertRaises(Retry):
            await pay_invoice(self.ctx(1), str(payment_id))
        with self.assertRaises(Retry):
            await pay_invoice(self.ctx(2), str(payment_id))
        self.assertEqual((await self.payment(payment_id)).state, "in_flight")
        self.fake.release(payment_hash, "succeed")
        self.assertEqual(await pay_invoice(self.ctx(3), str(payment_id)), {"state": "succeeded"})
        self.assertEqual(self.fake.sends, [payment_hash])
        self.assertEqual((await self.balance(user)).balance_msat, 5_000_000 - 1_000_500)

    async def test_send_racing_an_earlier_send_goes_back_to_tracking(self) -> None:
        _, payment_id, payment_hash = await self._payment(1000, outcome="hold")
        # LND already has the payment in flight but the first track (stale) said NOT_FOUND.
        sends = [
            s
            async for s in self._first(
                self.fake.send_payment(
                    payment_request=(await self.payment(payment_id)).payment_request,
                    fee_limit_msat=10_000,
                    timeout_s=5,
                )
            )
        ]
        self.assertEqual(len(sends), 1)
        from shared.errors import LightningNotFound

        self.fake.fail_next["track_payment"] = [LightningNotFound("payment isn't initiated")]
        self.fake.release(payment_hash, "succeed")
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual(self.fake.sends, [payment_hash])  # the worker's send got ALREADY_EXISTS

    async def test_treasury_payment_debits_the_treasury(self) -> None:
        admin = await self.user()
        async with self.sessions() as session, session.begin():
            await factories.fund_treasury(session, 5000)
        request, payment_hash = self.fake.external_invoice(2_000_000, fee_msat=0)
        treasury_before = await self.system_balance("treasury")
        payment_id = await self.pending_payment(admin, request, payment_hash, 2000, from_treasury=True)
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        self.assertEqual(await self.system_balance("treasury"), treasury_before - 2_000_000)
        self.assertEqual(await self.scalar("SELECT held_msat FROM accounts WHERE kind = 'treasury'"), 0)
        await self.assert_ledger_consistent()

    @staticmethod
    async def _first(stream):
        async for item in stream:
            yield item
            return
