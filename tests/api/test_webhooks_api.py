"""/api/v1/webhooks/*, the admin deliveries view, and webhookUrl on POST /invoices and /payments."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from api_service import openapi
from api_service.keys import ARQ
from api_service.schemas.wallet import InvoiceOut, PaymentOut
from shared import ledger
from shared.db.models import Invoice, Payment, WebhookDelivery, WebhookSecret
from shared.webhook_events import invoice_data, payment_data
from tests.api.test_wallet_invoices import WalletCase
from tests.api.test_wallet_support import insert_open_invoice
from tests.support.factories import insert_webhook_delivery
from tests.unit.test_webhook_targets import LOOPBACK_SPELLINGS, MALFORMED, OTHER_REFUSED

HOOKS = "/api/v1/webhooks"


class RefusedWebhookUrlTest(WalletCase):
    async def assert_nothing_created(self, user_id: uuid.UUID) -> None:
        async with self.sessions() as session:
            self.assertEqual(
                await session.scalar(select(func.count()).select_from(Invoice)), 1
            )  # the payee's
            self.assertEqual(await session.scalar(select(func.count()).select_from(Payment)), 0)
            balance = await ledger.get_balance(session, await ledger.user_account_id(session, user_id))
        self.assertEqual(balance.held_msat, 0)
        self.assertEqual(await self.app[ARQ].queued_jobs(), [])

    async def test_every_refused_spelling_is_400_and_creates_nothing(self):
        user_id, headers = await self.user(balance_sat=5000)
        # A payable invoice of another user: without the URL check, paying it would create a payment.
        _, payment_request, _ = await insert_open_invoice(self, await self.user_id_only())
        for url in LOOPBACK_SPELLINGS + OTHER_REFUSED + MALFORMED:
            for path, body in (
                ("/api/v1/invoices", {"amountSat": 100, "webhookUrl": url}),
                ("/api/v1/payments", {"paymentRequest": payment_request, "webhookUrl": url}),
            ):
                with self.subTest(path=path, url=url):
                    response = await self.client.post(path, json=body, headers=headers)
                    payload = await response.json()
                    self.assertEqual(response.status, 400, payload)
                    self.assertIn(payload["error"]["code"], ("WEBHOOK_URL_NOT_ALLOWED", "VALIDATION_ERROR"))
                    self.assertEqual(payload["error"]["details"][0]["field"].lower(), "webhookurl")
        await self.assert_nothing_created(user_id)

    async def test_the_numeric_spellings_of_the_issue_get_the_webhook_code(self):
        _, headers = await self.user()
        for url in (
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://[::ffff:127.0.0.1]/",
        ):
            with self.subTest(url=url):
                response = await self.client.post(
                    "/api/v1/invoices", json={"amountSat": 1, "webhookUrl": url}, headers=headers
                )
                body = await self.assert_error(response, 400, "WEBHOOK_URL_NOT_ALLOWED")
                self.assertIn("not allowed", body["error"]["message"])

    async def user_id_only(self) -> uuid.UUID:
        return (await self.user())[0]


class AllowedNetworksTest(WalletCase):
    settings_overrides = {**WalletCase.settings_overrides, "webhook_allowed_networks": "127.0.0.0/8"}

    async def test_an_allowed_network_is_accepted_and_kept_on_the_row(self):
        _, headers = await self.user()
        url = "http://127.0.0.1:9999/hook"
        response = await self.client.post(
            "/api/v1/invoices", json={"amountSat": 5, "webhookUrl": url}, headers=headers
        )
        self.assertIn(response.status, (201, 202))
        self.assertEqual((await response.json())["data"]["webhookUrl"], url)
        response = await self.client.post(
            "/api/v1/invoices", json={"amountSat": 5, "webhookUrl": "http://10.0.0.1/"}, headers=headers
        )
        await self.assert_error(response, 400, "WEBHOOK_URL_NOT_ALLOWED")


class SecretTest(WalletCase):
    async def test_one_secret_per_user_stored_sealed_and_rotated(self):
        user_id, headers = await self.user()
        _, other = await self.user()
        response = await self.client.get(f"{HOOKS}/secret", headers=headers)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        secret = (await response.json())["data"]["secret"]
        self.assertTrue(secret.startswith("whsec_"))
        again = (await (await self.client.get(f"{HOOKS}/secret", headers=headers)).json())["data"]["secret"]
        self.assertEqual(again, secret)
        theirs = (await (await self.client.get(f"{HOOKS}/secret", headers=other)).json())["data"]["secret"]
        self.assertNotEqual(theirs, secret)
        async with self.sessions() as session:
            sealed = await session.scalar(
                select(WebhookSecret.sealed).where(WebhookSecret.user_id == user_id)
            )
        self.assertNotIn(secret.removeprefix("whsec_").encode(), sealed)

        response = await self.client.post(f"{HOOKS}/secret/rotate", headers=headers)
        self.assertEqual(response.status, 200)
        rotated = (await response.json())["data"]["secret"]
        self.assertNotEqual(rotated, secret)
        now = (await (await self.client.get(f"{HOOKS}/secret", headers=headers)).json())["data"]["secret"]
        self.assertEqual(now, rotated)
        async with self.sessions() as session:
            rows = (
                await session.execute(select(WebhookSecret).where(WebhookSecret.user_id == user_id))
            ).scalars()
            expiries = sorted((row.expires_at is None, row.expires_at) for row in rows)
        self.assertEqual(len(expiries), 2)
        old_expiry = expiries[0][1]
        self.assertAlmostEqual(
            old_expiry.timestamp(), (datetime.now(UTC) + timedelta(hours=24)).timestamp(), delta=60
        )

    async def test_secret_routes_need_a_user(self):
        for method, path in (("GET", f"{HOOKS}/secret"), ("POST", f"{HOOKS}/secret/rotate")):
            response = await self.client.request(method, path)
            await self.assert_error(response, 401, "UNAUTHORIZED")


class DeliveriesTest(WalletCase):
    async def delivery(self, user_id: uuid.UUID, *, state: str = "pending", minutes_ago: int = 0) -> int:
        invoice_id, _, _ = await insert_open_invoice(self, user_id)
        created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        return await insert_webhook_delivery(
            self.sessions, user_id, invoice_id, state=state, created_at=created
        )

    async def test_the_callers_deliveries_newest_first_paginated_and_filtered(self):
        user_id, headers = await self.user()
        other_id, _ = await self.user()
        old = await self.delivery(user_id, state="failed", minutes_ago=30)
        new = await self.delivery(user_id, minutes_ago=1)
        await self.delivery(other_id)
        response = await self.client.get(f"{HOOKS}/deliveries", headers=headers)
        body = await response.json()
        self.assertEqual(response.status, 200, body)
        self.assertEqual([item["id"] for item in body["data"]], [new, old])
        self.assertEqual(body["pagination"], {"page": 1, "pageSize": 20, "totalItems": 2, "totalPages": 1})
        failed = body["data"][1]
        self.assertEqual(
            {k: failed[k] for k in ("event", "url", "status", "attempts", "lastStatusCode", "lastError")},
            {
                "event": "invoice.settled",
                "url": "https://shop.example/hook",
                "status": "failed",
                "attempts": 8,
                "lastStatusCode": 500,
                "lastError": "HTTP 500",
            },
        )
        self.assertIsNone(failed["nextAttemptAt"])
        self.assertIsNotNone(body["data"][0]["nextAttemptAt"])
        self.assertTrue(failed["webhookId"].startswith("msg_"))
        self.assertIsNotNone(failed["invoiceId"])
        self.assertIsNone(failed["paymentId"])
        self.assertIn("createdAt", failed)

        page2 = await (await self.client.get(f"{HOOKS}/deliveries?pageSize=1&page=2", headers=headers)).json()
        self.assertEqual([item["id"] for item in page2["data"]], [old])
        self.assertEqual(page2["pagination"]["totalPages"], 2)
        only_failed = await (
            await self.client.get(f"{HOOKS}/deliveries?status=failed", headers=headers)
        ).json()
        self.assertEqual([item["id"] for item in only_failed["data"]], [old])
        beyond = await (await self.client.get(f"{HOOKS}/deliveries?page=9", headers=headers)).json()
        self.assertEqual((beyond["data"], beyond["pagination"]["totalItems"]), ([], 2))
        for bad in ("status=lost", "pageSize=0", "pageSize=101", "page=x"):
            response = await self.client.get(f"{HOOKS}/deliveries?{bad}", headers=headers)
            await self.assert_error(response, 400, "VALIDATION_ERROR")

    async def test_redeliver_makes_the_delivery_due_now_with_a_fresh_round(self):
        user_id, headers = await self.user()
        _, other = await self.user()
        failed = await self.delivery(user_id, state="failed")
        response = await self.client.post(f"{HOOKS}/deliveries/{failed}/redeliver", headers=headers)
        body = await response.json()
        self.assertEqual(response.status, 202, body)
        self.assertEqual(
            (body["data"]["id"], body["data"]["status"], body["data"]["attempts"]), (failed, "pending", 8)
        )
        async with self.sessions() as session:
            row = await session.get(WebhookDelivery, failed)
        self.assertEqual((row.state, row.attempts_in_round), ("pending", 0))
        self.assertLessEqual(row.next_attempt_at, datetime.now(UTC))
        for ident, who in ((failed, other), (999999, headers), ("abc", headers), ("-1", headers)):
            response = await self.client.post(f"{HOOKS}/deliveries/{ident}/redeliver", headers=who)
            await self.assert_error(response, 404, "NOT_FOUND")

    async def test_admins_see_every_users_failed_deliveries(self):
        user_id, headers = await self.user()
        other_id, _ = await self.user()
        _, admin = await self.user(role="admin")
        mine = await self.delivery(user_id, state="failed", minutes_ago=2)
        theirs = await self.delivery(other_id, state="failed", minutes_ago=1)
        await self.delivery(other_id)
        path = "/api/v1/admin/webhooks/deliveries"
        body = await (await self.client.get(f"{path}?status=failed", headers=admin)).json()
        self.assertEqual([item["id"] for item in body["data"]], [theirs, mine])
        self.assertEqual({item["userId"] for item in body["data"]}, {str(user_id), str(other_id)})
        response = await self.client.get(path, headers=headers)
        await self.assert_error(response, 403, "FORBIDDEN")

    async def test_admins_redeliver_any_users_delivery_and_users_cannot(self):
        user_id, headers = await self.user()
        _, admin = await self.user(role="admin")
        failed = await self.delivery(user_id, state="failed")
        path = f"/api/v1/admin/webhooks/deliveries/{failed}/redeliver"
        await self.assert_error(await self.client.post(path, headers=headers), 403, "FORBIDDEN")
        await self.assert_error(await self.client.post(path), 401, "UNAUTHORIZED")
        async with self.sessions() as session:
            self.assertEqual((await session.get(WebhookDelivery, failed)).state, "failed")

        with self.assertLogs("api.webhooks", "INFO") as logs:
            response = await self.client.post(path, headers=admin)
        body = await response.json()
        self.assertEqual(response.status, 202, body)
        self.assertEqual(
            (body["data"]["id"], body["data"]["status"], body["data"]["userId"]),
            (failed, "pending", str(user_id)),
        )
        async with self.sessions() as session:
            row = await session.get(WebhookDelivery, failed)
        self.assertEqual((row.state, row.attempts, row.attempts_in_round), ("pending", 8, 0))
        self.assertLessEqual(row.next_attempt_at, datetime.now(UTC))
        [record] = logs.records
        self.assertEqual((record.delivery_id, record.user_id), (failed, str(user_id)))
        for ident in (999999, "abc", "-1", "0"):
            response = await self.client.post(
                f"/api/v1/admin/webhooks/deliveries/{ident}/redeliver", headers=admin
            )
            await self.assert_error(response, 404, "NOT_FOUND")


class WebhookDataMatchesTheApiTest(WalletCase):
    """The worker builds event data without the API; it must be the API's object, key for key."""

    async def test_invoice_data_is_the_api_invoice(self):
        user_id, headers = await self.user()
        invoice_id, _, _ = await self.insert_settled_invoice(user_id)
        response = await self.client.get(f"/api/v1/invoices/{invoice_id}", headers=headers)
        api = (await response.json())["data"]
        async with self.sessions() as session:
            row = await session.get(Invoice, invoice_id)
        self.assertEqual(set(invoice_data(row)), {field.alias for field in InvoiceOut.model_fields.values()})
        self.assertEqual(invoice_data(row), api)

    async def test_payment_data_is_the_api_payment_in_each_final_state(self):
        user_id, headers = await self.user(balance_sat=10)
        for state, extra in (
            ("succeeded", {"fee_msat": 1500, "preimage": os.urandom(32), "completed_at": datetime.now(UTC)}),
            ("failed", {"failure_reason": "NO_ROUTE", "completed_at": datetime.now(UTC)}),
        ):
            payment_id = await self.insert_payment(user_id, state, **extra)
            api = (await (await self.client.get(f"/api/v1/payments/{payment_id}", headers=headers)).json())[
                "data"
            ]
            async with self.sessions() as session:
                row = await session.get(Payment, payment_id)
            with self.subTest(state=state):
                self.assertEqual(
                    set(payment_data(row)), {field.alias for field in PaymentOut.model_fields.values()}
                )
                self.assertEqual(payment_data(row), api)

    async def insert_settled_invoice(self, user_id):
        invoice_id, pr, payment_hash = await insert_open_invoice(self, user_id, amount_sat=21)
        async with self.sessions() as session, session.begin():
            row = await session.get(Invoice, invoice_id)
            row.state, row.amount_paid_msat, row.settled_at = "settled", 21_500, datetime.now(UTC)
            row.webhook_url, row.memo = "https://shop.example/h", "tip \u2615"
        return invoice_id, pr, payment_hash

    async def insert_payment(self, user_id, state, **extra) -> uuid.UUID:
        async with self.sessions() as session, session.begin():
            account_id = await ledger.user_account_id(session, user_id)
            payment = Payment(
                user_id=user_id,
                account_id=account_id,
                state=state,
                payment_hash=hashlib.sha256(os.urandom(8)).digest(),
                payment_request="lnbcrt1fake",
                destination="02" + "00" * 32,
                amount_msat=7_777,
                fee_limit_msat=10_000,
                hold_msat=17_777,
                webhook_url="https://shop.example/p",
                **extra,
            )
            session.add(payment)
        return payment.id


class OpenApiWebhookRoutesTest(WalletCase):
    async def test_every_webhook_route_is_documented(self):
        registered = {(op.method, op.path) for op in openapi.operations()}
        for method, path in (
            ("GET", f"{HOOKS}/secret"),
            ("POST", f"{HOOKS}/secret/rotate"),
            ("GET", f"{HOOKS}/deliveries"),
            ("POST", f"{HOOKS}/deliveries/{{id}}/redeliver"),
            ("GET", "/api/v1/admin/webhooks/deliveries"),
        ):
            self.assertIn((method, path), registered)
        doc = await (await self.client.get("/api/v1/openapi.json")).json()
        properties = doc["components"]["schemas"]["CreatePaymentBody"]["properties"]
        self.assertIn("webhookUrl", properties)
