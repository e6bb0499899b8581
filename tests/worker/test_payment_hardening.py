"""Money-path hardening of pay_invoice: a failed attempt leaves the invoice payable, one runner per
payment, and nothing LND reports is ever dropped (anomalies). Over the fake node; the same paths run
over real gRPC to lnd_simnet in tests/e2e/test_hardening_flow.py."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from arq import Retry
from sqlalchemy import text

from lightning_worker.payment_lock import lock_key, payment_run
from lightning_worker.payment_records import record_failure, record_success
from lightning_worker.payments import _mark_in_flight, _mark_sending, pay_invoice
from shared import anomalies
from shared.lightning.types import PaymentStatus, PaymentUpdate
from tests.support.pg_locks import advisory_lock_holders
from tests.worker.helpers import WorkerCase


class HardeningCase(WorkerCase):
    async def anomalies(self) -> list[tuple[str, uuid.UUID | None, int]]:
        async with self.sessions() as session:
            rows = (
                await session.execute(text("SELECT kind, payment_id, occurrences FROM anomalies ORDER BY id"))
            ).all()
        return [(row.kind, row.payment_id, row.occurrences) for row in rows]

    async def external_payment(self, amount_sat: int = 1000, balance_sat: int = 5000, **script):
        user = await self.user(balance_sat=balance_sat)
        request, payment_hash = self.fake.external_invoice(amount_sat * 1000, fee_msat=0, **script)
        payment_id = await self.pending_payment(user, request, payment_hash, amount_sat)
        return user, request, payment_hash, payment_id


class FailedAttemptTests(HardeningCase):
    async def test_a_new_row_sends_again_after_an_earlier_rows_failed_attempt(self) -> None:
        user, request, payment_hash, first = await self.external_payment(outcome="fail")
        self.assertEqual(await pay_invoice(self.ctx(), str(first)), {"state": "failed"})
        self.assertEqual((await self.balance(user)).balance_msat, 5_000_000)  # nothing charged
        old_attempt = self.fake.payments[payment_hash].created_ns
        # The route is back; the user pays the same invoice again: a new row, which must send.
        self.fake.external[payment_hash].outcome = "succeed"
        second = await self.pending_payment(user, request, payment_hash, 1000)
        self.assertEqual(await pay_invoice(self.ctx(), str(second)), {"state": "succeeded"})
        self.assertEqual(self.fake.sends, [payment_hash, payment_hash])
        row = await self.payment(second)
        self.assertIsNotNone(row.sent_at)
        self.assertEqual(row.superseded_attempt_ns, old_attempt)
        balance = await self.balance(user)
        self.assertEqual((balance.balance_msat, balance.held_msat), (4_000_000, 0))  # charged once
        await self.assert_ledger_consistent()

    async def test_a_retry_after_the_send_follows_this_rows_attempt_and_never_sends_again(self) -> None:
        user, request, payment_hash, first = await self.external_payment(outcome="fail")
        await pay_invoice(self.ctx(), str(first))
        old_attempt = self.fake.payments[payment_hash].created_ns
        self.fake.external[payment_hash].outcome = "hold"
        second = await self.pending_payment(user, request, payment_hash, 1000)
        with self.assertRaises(Retry):  # in flight after the follow window: looked at again later
            await self._run_briefly(second)
        row = await self.payment(second)
        self.assertEqual((row.state, row.superseded_attempt_ns), ("in_flight", old_attempt))
        # The worker crashed; the next run tracks: LND's attempt is this row's (a new creation time).
        self.fake.release(payment_hash, "succeed")
        self.assertEqual(await pay_invoice(self.ctx(2), str(second)), {"state": "succeeded"})
        self.assertEqual(self.fake.sends, [payment_hash, payment_hash])

    async def test_a_crash_between_marking_and_sending_sends_on_the_next_run(self) -> None:
        user, request, payment_hash, first = await self.external_payment(outcome="fail")
        await pay_invoice(self.ctx(), str(first))
        old_attempt = self.fake.payments[payment_hash].created_ns
        second = await self.pending_payment(user, request, payment_hash, 1000)
        # As left by a run that recorded "sending, superseding the old attempt" and died before the send.
        await self.set_row("payments", second, sent_at=datetime.now(UTC), superseded_attempt_ns=old_attempt)
        self.fake.external[payment_hash].outcome = "succeed"
        self.assertEqual(await pay_invoice(self.ctx(), str(second)), {"state": "succeeded"})
        self.assertEqual(self.fake.sends, [payment_hash, payment_hash])

    async def test_this_rows_own_failure_is_final_and_is_not_resent(self) -> None:
        user, request, payment_hash, first = await self.external_payment(outcome="fail")
        await pay_invoice(self.ctx(), str(first))
        second = await self.pending_payment(user, request, payment_hash, 1000)
        self.assertEqual(await pay_invoice(self.ctx(), str(second)), {"state": "failed"})
        # A retried job of the failed row changes nothing and sends nothing.
        self.assertEqual(await pay_invoice(self.ctx(2), str(second)), {"state": "failed"})
        self.assertEqual(self.fake.sends, [payment_hash, payment_hash])
        self.assertEqual((await self.balance(user)).held_msat, 0)

    async def _run_briefly(self, payment_id: uuid.UUID):
        # Follow windows are lnd_timeout_s long; keep this test quick.
        original = self.context.settings
        self.context.settings = original.model_copy(update={"lnd_timeout_s": 0.2})
        try:
            return await pay_invoice(self.ctx(), str(payment_id))
        finally:
            self.context.settings = original


class OneRunnerTests(HardeningCase):
    async def test_a_second_run_yields_while_another_holds_the_payment(self) -> None:
        _user, _request, payment_hash, payment_id = await self.external_payment()
        async with self.engine.connect() as other_runner:
            await other_runner.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(payment_id)})
            await other_runner.commit()
            with self.assertRaises(Retry):
                await pay_invoice(self.ctx(), str(payment_id))
            self.assertEqual((self.fake.calls["track_payment"], self.fake.sends), (0, []))
            self.assertEqual((await self.payment(payment_id)).state, "pending")
            await other_runner.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(payment_id)})
            await other_runner.commit()
        self.assertEqual(await pay_invoice(self.ctx(2), str(payment_id)), {"state": "succeeded"})
        self.assertEqual(self.fake.sends, [payment_hash])

    async def test_the_lock_is_released_after_a_run(self) -> None:
        _user, _request, _hash, payment_id = await self.external_payment()
        await pay_invoice(self.ctx(), str(payment_id))
        async with self.engine.connect() as probe:
            self.assertTrue(
                await probe.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(payment_id)})
            )

    async def test_a_run_whose_lock_connection_died_writes_nothing(self) -> None:
        """pg_terminate_backend on the lock's connection: the lock is gone, so the run must not go on
        writing (its writes use that connection and fail; the job is retried)."""
        _user, _request, _payment_hash, payment_id = await self.external_payment()
        original = self.fake.track_payment

        async def track_after_the_lock_connection_is_killed(h):
            async with self.engine.connect() as admin:
                for pid in await advisory_lock_holders(admin, lock_key(payment_id)):
                    await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await admin.commit()
            async for update in original(h):
                yield update

        self.fake.track_payment = track_after_the_lock_connection_is_killed  # type: ignore[method-assign]
        with self.assertRaises(Retry):
            await pay_invoice(self.ctx(), str(payment_id))
        self.assertEqual(self.fake.sends, [])  # marking "sending" failed: nothing was sent
        self.assertEqual((await self.payment(payment_id)).state, "pending")


class AnomalyTests(HardeningCase):
    def update(self, row, status: PaymentStatus, **kw) -> PaymentUpdate:
        values = {
            "payment_hash": row.payment_hash,
            "status": status,
            "value_msat": row.amount_msat,
            "fee_msat": 0,
            "preimage": None,
            "failure_reason": None,
            "payment_index": 7,
            **kw,
        }
        return PaymentUpdate(**values)

    async def test_a_success_for_a_failed_row_is_kept_logged_critical_and_counted(self) -> None:
        user, _request, payment_hash, payment_id = await self.external_payment()
        row = await self.payment(payment_id)
        counted: list[str] = []
        anomalies.add_observer(counted.append)
        await record_failure(self.context, row, "NO_ROUTE")
        preimage = self.fake.external[payment_hash].preimage
        with self.assertLogs("lightning_wallet.anomalies", logging.CRITICAL) as logs:
            result = await record_success(
                self.context, row, self.update(row, PaymentStatus.SUCCEEDED, preimage=preimage)
            )
        self.assertEqual(result, {"state": "failed"})  # the row is not rewritten behind anyone's back
        self.assertEqual(await self.anomalies(), [(anomalies.PAYMENT_SUCCESS_AFTER_FAILURE, payment_id, 1)])
        self.assertIn(str(payment_id), logs.output[0])
        self.assertIn(anomalies.PAYMENT_SUCCESS_AFTER_FAILURE, counted)
        self.assertEqual((await self.balance(user)).balance_msat, 5_000_000)
        # Seen again (a replayed report): counted on the same row, not a new one.
        await record_success(self.context, row, self.update(row, PaymentStatus.SUCCEEDED, preimage=preimage))
        self.assertEqual(await self.anomalies(), [(anomalies.PAYMENT_SUCCESS_AFTER_FAILURE, payment_id, 2)])

    async def test_a_failure_for_a_succeeded_row_is_an_anomaly(self) -> None:
        _user, _request, _hash, payment_id = await self.external_payment()
        await pay_invoice(self.ctx(), str(payment_id))
        row = await self.payment(payment_id)
        final = self.update(row, PaymentStatus.FAILED, failure_reason="NO_ROUTE")
        await record_failure(self.context, row, "NO_ROUTE", final=final)
        self.assertEqual((await self.payment(payment_id)).state, "succeeded")
        self.assertEqual(await self.anomalies(), [(anomalies.PAYMENT_FAILURE_AFTER_SUCCESS, payment_id, 1)])

    async def test_a_preimage_that_does_not_match_and_another_amount_are_anomalies(self) -> None:
        _user, _request, _hash, payment_id = await self.external_payment()
        row = await self.payment(payment_id)
        final = self.update(
            row, PaymentStatus.SUCCEEDED, preimage=b"\x01" * 32, value_msat=row.amount_msat + 1
        )
        await record_success(self.context, row, final)
        kinds = {kind for kind, _, _ in await self.anomalies()}
        self.assertEqual(kinds, {anomalies.PREIMAGE_MISMATCH, anomalies.AMOUNT_MISMATCH})
        self.assertEqual((await self.payment(payment_id)).state, "succeeded")  # the money did leave
        await self.assert_ledger_consistent()


class SendMarkerTests(HardeningCase):
    """_mark_sending / _mark_in_flight, the two writes a run makes before the outcome is known: each
    counted once, the first send time kept, nothing written to a row that is already final."""

    async def marker_columns(self, payment_id: uuid.UUID):
        async with self.sessions() as session:
            return (
                await session.execute(
                    text(
                        "SELECT state, attempts, sent_at, superseded_attempt_ns FROM payments WHERE id = :i"
                    ),
                    {"i": payment_id},
                )
            ).one()

    async def test_each_send_is_counted_and_the_first_send_time_is_kept(self) -> None:
        _user, _request, _hash, payment_id = await self.external_payment()
        *_, other_id = await self.external_payment()  # another active payment: never touched
        row = await self.payment(payment_id)
        self.assertEqual((row.attempts, row.sent_at), (0, None))
        async with payment_run(self.engine, payment_id) as run:
            await _mark_sending(run, row, None)
            first = await self.marker_columns(payment_id)
            self.assertGreater((await self.payment(payment_id)).updated_at, row.updated_at)
            self.assertEqual((first.state, first.attempts, first.superseded_attempt_ns), ("pending", 1, None))
            self.assertIsNotNone(first.sent_at)
            self.assertEqual((row.sent_at, row.superseded_attempt_ns), (first.sent_at, None))
            await self.set_row("payments", payment_id, state="in_flight")
            await _mark_sending(run, row, 1234)
            second = await self.marker_columns(payment_id)
        self.assertEqual((second.attempts, second.superseded_attempt_ns), (2, 1234))
        self.assertEqual(second.sent_at, first.sent_at)  # the first send's time, never moved
        self.assertEqual((row.sent_at, row.superseded_attempt_ns), (first.sent_at, 1234))
        other = await self.marker_columns(other_id)
        self.assertEqual((other.attempts, other.sent_at, other.superseded_attempt_ns), (0, None, None))

    async def test_a_final_row_is_not_marked_as_sending(self) -> None:
        _user, _request, _hash, payment_id = await self.external_payment()
        row = await self.payment(payment_id)
        await self.set_row("payments", payment_id, state="failed", failure_reason="elsewhere")
        async with payment_run(self.engine, payment_id) as run:
            await _mark_sending(run, row, 99)
        after = await self.marker_columns(payment_id)
        self.assertEqual((after.state, after.attempts, after.sent_at), ("failed", 0, None))
        self.assertIsNone(after.superseded_attempt_ns)

    async def test_in_flight_is_written_and_announced_once(self) -> None:
        user, _request, _hash, payment_id = await self.external_payment()
        published: list = []

        async def publish(events) -> None:
            published.extend((e.type, e.id, e.state, e.user_id) for e in events)

        self.context.publish = publish  # type: ignore[method-assign]
        row = await self.payment(payment_id)
        async with payment_run(self.engine, payment_id) as run:
            await _mark_in_flight(self.context, run, row)
            self.assertGreater((await self.payment(payment_id)).updated_at, row.updated_at)
            self.assertEqual(
                ((await self.marker_columns(payment_id)).state, row.state), ("in_flight", "in_flight")
            )
            await _mark_in_flight(self.context, run, row)  # a second in-flight update: nothing new
            # Another copy of the row, still saying pending: the conditional UPDATE changes nothing.
            stale = await self.payment(payment_id)
            stale.state = "pending"
            await _mark_in_flight(self.context, run, stale)
            self.assertEqual(stale.state, "in_flight")
        self.assertEqual(published, [("payment", payment_id, "in_flight", user)])

    async def test_a_row_already_final_is_never_moved_back_to_in_flight(self) -> None:
        _user, _request, _hash, payment_id = await self.external_payment()
        published: list = []

        async def publish(events) -> None:
            published.extend(events)

        self.context.publish = publish  # type: ignore[method-assign]
        row = await self.payment(payment_id)  # read while pending
        await self.set_row("payments", payment_id, state="failed", failure_reason="elsewhere")
        async with payment_run(self.engine, payment_id) as run:
            await _mark_in_flight(self.context, run, row)
        self.assertEqual((await self.marker_columns(payment_id)).state, "failed")
        self.assertEqual(published, [])
