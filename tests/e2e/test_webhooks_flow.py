"""Webhooks end to end: the API, a real worker process and lnd_simnet, receivers on 127.0.0.1.

WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 for both services (the receivers are local); the retry schedule
is the production default, so the second attempt after a 500 is the real 5 s retry.
"""

from __future__ import annotations

import json

import aiohttp
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.e2e.test_lightning_flow import Api, wallet_stack
from tests.support.cases import DbCase, wait_for
from tests.support.factories import auth_headers, create_user
from tests.support.webhook_receiver import WebhookReceiver

FIRST_RETRY_DEADLINE_S = 12  # 5 s +- 10 % jitter, plus the 2 s cron tick and the attempt itself


def received(receiver: WebhookReceiver, path: str, count: int):
    async def enough():
        found = receiver.bodies_of(path)
        return found if len(found) >= count else None

    return enough


class WebhookFlowTest(DbCase):
    settings_overrides = {"webhook_allowed_networks": "127.0.0.0/8"}

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.receiver = await WebhookReceiver(behaviours=[500]).start()

    async def asyncTearDown(self) -> None:
        await self.receiver.close()
        await super().asyncTearDown()

    async def invoice_paid_by_bob(self, api: Api, net, headers: dict, amount_sat: int, url: str) -> dict:
        status, body = await api.call(
            "POST", "/api/v1/invoices", headers, {"amountSat": amount_sat, "webhookUrl": url}
        )
        self.assertIn(status, (201, 202), body)
        invoice = body["data"]
        if status == 202:
            invoice = await api.wait_state(f"/api/v1/invoices/{invoice['id']}", headers, "state", {"open"})
        paid = await net.cli("pay", "--node", "bob", invoice["paymentRequest"])
        self.assertEqual(paid["status"], "SUCCEEDED", paid)
        return invoice

    async def test_signed_retried_listed_redelivered_and_payment_events(self):
        user_id = await create_user(self.sessions)
        user = auth_headers(self.settings, user_id)
        async with wallet_stack(self) as (net, base_url), aiohttp.ClientSession() as http:
            api = Api(http, base_url)
            status, body = await api.call("GET", "/api/v1/webhooks/secret", user)
            self.assertEqual(status, 200, body)
            secret = body["data"]["secret"]

            # invoice.settled: 500 once, then 200 -> two POSTs with one webhook-id
            invoice = await self.invoice_paid_by_bob(api, net, user, 100, self.receiver.url("/invoice"))
            [first] = await wait_for(
                received(self.receiver, "/invoice", 1), timeout_s=30, message="first POST"
            )
            first, second = await wait_for(
                received(self.receiver, "/invoice", 2),
                timeout_s=FIRST_RETRY_DEADLINE_S,
                message="the 5 s retry",
            )
            self.assertEqual(first.headers["webhook-id"], second.headers["webhook-id"])
            event = Webhook(secret).verify(second.body, second.headers)
            self.assertEqual(event["type"], "invoice.settled")
            _, current = await api.call("GET", f"/api/v1/invoices/{invoice['id']}", user)
            self.assertEqual(event["data"], current["data"])
            self.assertEqual(event["data"]["amountPaidSat"], 100)
            with self.assertRaises(WebhookVerificationError):
                Webhook(secret).verify(
                    second.body.replace(b'"amountPaidSat":100', b'"amountPaidSat":900'), second.headers
                )

            status, body = await api.call("GET", "/api/v1/webhooks/deliveries", user)
            self.assertEqual(status, 200, body)
            [delivery] = body["data"]
            self.assertEqual(
                (delivery["status"], delivery["attempts"], delivery["lastStatusCode"], delivery["invoiceId"]),
                ("delivered", 2, 200, invoice["id"]),
            )
            self.assertEqual(delivery["webhookId"], first.headers["webhook-id"])

            # redeliver -> a third POST, same webhook-id
            status, body = await api.call(
                "POST", f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver", user
            )
            self.assertEqual(status, 202, body)
            third = (await wait_for(received(self.receiver, "/invoice", 3), message="redelivery"))[2]
            self.assertEqual(third.headers["webhook-id"], first.headers["webhook-id"])
            Webhook(secret).verify(third.body, third.headers)

            # payment.succeeded for a paid Bob invoice
            bob = await net.cli("invoice", "--node", "bob", "--amt", "50", "--memo", "webhook e2e")
            status, body = await api.call(
                "POST",
                "/api/v1/payments",
                user,
                {"paymentRequest": bob["payment_request"], "webhookUrl": self.receiver.url("/payment")},
            )
            self.assertIn(status, (200, 202), body)
            payment_id = body["data"]["id"]
            [paid] = await wait_for(
                received(self.receiver, "/payment", 1), timeout_s=30, message="payment event"
            )
            event = Webhook(secret).verify(paid.body, paid.headers)
            self.assertEqual(event["type"], "payment.succeeded")
            _, current = await api.call("GET", f"/api/v1/payments/{payment_id}", user)
            self.assertEqual(current["data"]["status"], "succeeded")
            self.assertEqual(event["data"], current["data"])
            self.assertEqual(event["data"]["paymentHash"], bob["r_hash"])

            # after a rotation the new secret verifies (and the old one, for a day)
            status, body = await api.call("POST", "/api/v1/webhooks/secret/rotate", user)
            new_secret = body["data"]["secret"]
            self.assertNotEqual(new_secret, secret)
            _, body = await api.call("GET", "/api/v1/webhooks/deliveries", user, params={"pageSize": "1"})
            [payment_delivery] = body["data"]
            self.assertEqual(payment_delivery["paymentId"], payment_id)
            await api.call("POST", f"/api/v1/webhooks/deliveries/{payment_delivery['id']}/redeliver", user)
            again = (
                await wait_for(received(self.receiver, "/payment", 2), message="redelivery after rotation")
            )[1]
            self.assertEqual(json.loads(again.body), json.loads(paid.body))
            Webhook(new_secret).verify(again.body, again.headers)
            Webhook(secret).verify(again.body, again.headers)

    async def test_hanging_huge_and_redirecting_receivers_cannot_stall_or_misuse_the_worker(self):
        user_id = await create_user(self.sessions)
        user = auth_headers(self.settings, user_id)
        self.receiver.behaviours = []
        hanging = await WebhookReceiver(default="hang").start()
        big = await WebhookReceiver(default="big").start()
        redirecting = await WebhookReceiver(default=("redirect", self.receiver.url("/steal"))).start()
        try:
            async with wallet_stack(self) as (net, base_url), aiohttp.ClientSession() as http:
                api = Api(http, base_url)
                await self.invoice_paid_by_bob(api, net, user, 10, hanging.url())
                await wait_for(received(hanging, "/hook", 1), timeout_s=30, message="the hanging POST")
                await self.invoice_paid_by_bob(api, net, user, 11, big.url())
                await self.invoice_paid_by_bob(api, net, user, 12, redirecting.url())
                await self.invoice_paid_by_bob(api, net, user, 13, self.receiver.url("/fine"))

                async def states():
                    _, body = await api.call("GET", "/api/v1/webhooks/deliveries", user)
                    return {item["url"]: item for item in body["data"]}

                async def settled_down():
                    found = await states()
                    done = (
                        found.get(big.url(), {}).get("status") == "delivered"
                        and found.get(self.receiver.url("/fine"), {}).get("status") == "delivered"
                        and found.get(redirecting.url(), {}).get("lastStatusCode") == 302
                    )
                    return found if done else None

                # Delivered while the hanging receiver still holds its attempt open.
                found = await wait_for(settled_down, timeout_s=30, interval_s=0.1, message="other deliveries")
                self.assertEqual(found[hanging.url()]["status"], "pending")
                self.assertEqual(found[big.url()]["lastStatusCode"], 200)
                self.assertEqual(
                    found[redirecting.url()]["lastError"], "HTTP 302 (redirects are not followed)"
                )
                self.assertEqual(self.receiver.bodies_of("/steal"), [])  # the redirect was not followed

                async def hang_timed_out():
                    item = (await states())[hanging.url()]
                    return item if item["lastError"] else None

                item = await wait_for(
                    hang_timed_out, timeout_s=30, interval_s=0.2, message="the hang to time out"
                )
                self.assertEqual((item["status"], item["lastError"]), ("pending", "no answer within 10 s"))
                self.assertLess(big.bytes_sent, 10 * 1024 * 1024)  # the worker hung up long before 10 MB
        finally:
            for receiver in (hanging, big, redirecting):
                await receiver.close()
