"""Lightning Addresses (LNURL-pay) over the aiohttp test client, with the fake worker of the wallet tests."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select, update

from shared.db.models import Invoice, User
from tests.api.test_wallet_support import running_fake_worker
from tests.support.cases import ApiCase
from tests.support.factories import auth_headers, create_user


class LnurlCase(ApiCase):
    settings_overrides = {"invoice_wait_s": 2.0, "public_url": "https://pay.example.com/"}

    async def get(self, path: str, params: dict | None = None) -> tuple[int, dict]:
        response = await self.client.get(path, params=params)
        self.assertEqual(response.content_type, "application/json")
        return response.status, await response.json()

    def assert_error(self, status: int, body: dict, http_status: int) -> None:
        self.assertEqual(status, http_status, body)
        self.assertEqual(set(body), {"status", "reason"}, body)
        self.assertEqual(body["status"], "ERROR")
        self.assertTrue(body["reason"])


class PayRequestTest(LnurlCase):
    async def test_pay_request_of_a_user(self):
        user_id = await create_user(self.sessions, username="Carol")
        status, body = await self.get("/.well-known/lnurlp/carol")
        self.assertEqual(status, 200, body)
        self.assertEqual(
            body,
            {
                "tag": "payRequest",
                "callback": "https://pay.example.com/lnurlp/carol/callback",
                "minSendable": 1000,
                "maxSendable": self.settings.max_invoice_sat * 1000,
                "metadata": body["metadata"],
                "commentAllowed": 255,
            },
        )
        self.assertEqual(
            json.loads(body["metadata"]),
            [
                ["text/plain", "Payment to carol@pay.example.com"],
                ["text/identifier", "carol@pay.example.com"],
            ],
        )
        # the user sees the same address
        response = await self.client.get("/api/v1/users/me", headers=auth_headers(self.settings, user_id))
        self.assertEqual((await response.json())["data"]["lightningAddress"], "carol@pay.example.com")

    async def test_unknown_and_inactive_users_look_alike(self):
        user_id = await create_user(self.sessions, username="dave")
        async with self.sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == user_id).values(is_active=False))
        for name in ("dave", "nobody", "no%20such", "x" * 80):
            with self.subTest(name=name):
                status, body = await self.get(f"/.well-known/lnurlp/{name}")
                self.assert_error(status, body, 404)
        status, body = await self.get("/lnurlp/dave/callback", {"amount": "5000"})
        self.assert_error(status, body, 404)


class CallbackTest(LnurlCase):
    async def test_invoice_of_exactly_the_amount_committing_to_the_metadata(self):
        user_id = await create_user(self.sessions, username="carol")
        _status, pay_request = await self.get("/.well-known/lnurlp/carol")
        async with running_fake_worker(self):
            status, body = await self.get("/lnurlp/carol/callback", {"amount": "1500", "comment": "thanks!"})
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body), {"pr", "routes"})
        self.assertEqual(body["routes"], [])
        async with self.sessions() as session:
            row = await session.scalar(select(Invoice).where(Invoice.payment_request == body["pr"]))
        self.assertEqual(
            (row.user_id, row.amount_msat, row.memo, row.state), (user_id, 1500, "thanks!", "open")
        )
        self.assertEqual(row.description_hash, hashlib.sha256(pay_request["metadata"].encode()).digest())

    async def test_bad_amounts_and_comments(self):
        await create_user(self.sessions, username="carol")
        max_msat = self.settings.max_invoice_sat * 1000
        for params in (
            {},
            {"amount": "abc"},
            {"amount": "1.5"},
            {"amount": "-1000"},
            {"amount": "999"},
            {"amount": str(max_msat + 1)},
            {"amount": "9" * 40},
            {"amount": "5000", "comment": "x" * 256},
            {"amount": "5000", "comment": "nul\x00"},
        ):
            with self.subTest(params=str(params)[:60]):
                status, body = await self.get("/lnurlp/carol/callback", params)
                self.assert_error(status, body, 400)
        async with self.sessions() as session:
            self.assertEqual((await session.scalars(select(Invoice))).all(), [])
        status, body = await self.get("/lnurlp/carol/nope")
        self.assert_error(status, body, 404)

    async def test_without_a_worker_the_wallet_is_told_to_retry(self):
        await create_user(self.sessions, username="carol")
        status, body = await self.get("/lnurlp/carol/callback", {"amount": "1000"})
        self.assert_error(status, body, 503)


class CallbackRateLimitTest(LnurlCase):
    settings_overrides = {**LnurlCase.settings_overrides, "rate_limit_lnurl_per_ip": 2}

    async def test_callbacks_are_rate_limited_per_client(self):
        await create_user(self.sessions, username="carol")
        for _ in range(2):
            status, _body = await self.get("/lnurlp/carol/callback", {"amount": "1"})
            self.assertEqual(status, 400)
        status, body = await self.get("/lnurlp/carol/callback", {"amount": "1000"})
        self.assert_error(status, body, 429)
