"""Payment and invoice events reach the outbox in the transaction that makes them true."""

from __future__ import annotations

from sqlalchemy import select

from lightning_worker.payment_records import fail_in_session
from lightning_worker.payments import pay_invoice
from shared.db.models import Payment, WebhookDelivery
from shared.webhook_events import invoice_data, payment_data
from tests.worker.helpers import WorkerCase

HOOK = "https://shop.example/hook"


class PaymentEventTests(WorkerCase):
    async def deliveries(self) -> list[WebhookDelivery]:
        async with self.sessions() as session:
            return list((await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())

    async def external_payment(self, webhook_url: str | None = HOOK, **script):
        user = await self.user(balance_sat=5000)
        request, payment_hash = self.fake.external_invoice(1_000_000, **script)
        payment_id = await self.pending_payment(user, request, payment_hash, 1000, webhook_url=webhook_url)
        return user, payment_id

    async def test_a_succeeded_payment_announces_itself_with_its_final_row(self) -> None:
        user, payment_id = await self.external_payment(fee_msat=1234)
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        [delivery] = await self.deliveries()
        row = await self.payment(payment_id)
        self.assertEqual(
            (delivery.event, delivery.payment_id, delivery.user_id), ("payment.succeeded", payment_id, user)
        )
        self.assertIsNone(delivery.invoice_id)
        self.assertEqual(delivery.url, HOOK)
        self.assertEqual(delivery.payload["type"], "payment.succeeded")
        self.assertEqual(delivery.payload["data"], payment_data(row))
        self.assertEqual(delivery.payload["data"]["status"], "succeeded")
        self.assertEqual(delivery.payload["data"]["feeMsat"], 1234)
        self.assertEqual(delivery.payload["data"]["preimage"], row.preimage.hex())
        # Running the job again adds nothing.
        await pay_invoice(self.ctx(), str(payment_id))
        self.assertEqual(len(await self.deliveries()), 1)

    async def test_a_failed_payment_announces_payment_failed(self) -> None:
        _, payment_id = await self.external_payment(outcome="fail", failure_reason="NO_ROUTE")
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "failed"})
        [delivery] = await self.deliveries()
        self.assertEqual(delivery.event, "payment.failed")
        self.assertEqual(delivery.payload["data"]["failureReason"], "NO_ROUTE")
        self.assertIsNone(delivery.payload["data"]["preimage"])

    async def test_no_webhook_url_no_event(self) -> None:
        _, payment_id = await self.external_payment(webhook_url=None)
        await pay_invoice(self.ctx(), str(payment_id))
        self.assertEqual(await self.deliveries(), [])

    async def test_the_event_rolls_back_with_the_final_state(self) -> None:
        _, payment_id = await self.external_payment()
        row = await self.payment(payment_id)
        async with self.sessions() as session:
            async with session.begin():
                self.assertTrue(await fail_in_session(session, row, "boom"))
                self.assertEqual(len((await session.scalars(select(WebhookDelivery))).all()), 1)
                await session.rollback()
        self.assertEqual(await self.deliveries(), [])
        self.assertEqual((await self.payment(payment_id)).state, "pending")
        async with self.sessions() as session, session.begin():
            self.assertTrue(await fail_in_session(session, row, "boom"))
        [delivery] = await self.deliveries()
        self.assertEqual(delivery.payload["data"]["status"], "failed")

    async def test_an_internal_payment_announces_both_sides(self) -> None:
        payer = await self.user(balance_sat=2000)
        payee = await self.user()
        invoice = await self.open_invoice(payee, 700, webhook_url="https://payee.example/h")
        payment_id = await self.pending_payment(
            payer,
            invoice.payment_request,
            invoice.payment_hash,
            700,
            internal_invoice_id=invoice.id,
            webhook_url="https://payer.example/h",
        )
        self.assertEqual(await pay_invoice(self.ctx(), str(payment_id)), {"state": "succeeded"})
        settled, succeeded = sorted(await self.deliveries(), key=lambda d: d.event)
        self.assertEqual(
            (settled.event, settled.user_id, settled.url),
            ("invoice.settled", payee, "https://payee.example/h"),
        )
        self.assertEqual(settled.payload["data"], invoice_data(await self.invoice(invoice.id)))
        self.assertEqual((succeeded.event, succeeded.user_id), ("payment.succeeded", payer))
        async with self.sessions() as session:
            final = await session.scalar(select(Payment).where(Payment.id == payment_id))
        self.assertEqual(succeeded.payload["data"], payment_data(final))
        self.assertNotEqual(settled.webhook_id, succeeded.webhook_id)
