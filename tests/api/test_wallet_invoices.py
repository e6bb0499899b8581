"""POST/GET /api/v1/invoices and GET /api/v1/wallet/balance."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from api_service.app import create_app
from api_service.keys import ARQ
from shared import jobs
from shared.db.models import IdempotencyKey, Invoice, Payment
from tests.api.test_wallet_support import count_rows, insert_open_invoice, insert_payment, running_fake_worker
from tests.support.cases import ApiCase
from tests.support.factories import auth_headers, create_user

URL = "/api/v1/invoices"


# A running (fake) worker's answer ends a wait long before this, even on a busy 2-core machine.
WORKER_WAITS = {"invoice_wait_s": 30.0, "payment_wait_s": 30.0}


class WalletCase(ApiCase):
    # No worker runs unless a test starts one: answer 202 at once rather than wait for nobody.
    settings_overrides = {"invoice_wait_s": 0, "payment_wait_s": 0}

    async def restart_app(self, **overrides) -> None:
        """Rebuild the app with other settings (an app keeps the settings it was built with)."""
        await self.client.close()
        self.settings = self.make_settings(**overrides)
        self.app = create_app(self.settings)
        self.client = TestClient(TestServer(self.app))
        await self.client.start_server()

    async def user(self, balance_sat: int = 0, role: str = "user") -> tuple[uuid.UUID, dict]:
        user_id = await create_user(self.sessions, balance_sat=balance_sat, role=role)
        return user_id, auth_headers(self.settings, user_id, role)

    async def assert_error(self, response, status: int, code: str) -> dict:
        body = await response.json()
        self.assertEqual(response.status, status, body)
        self.assertFalse(body["success"])
        self.assertEqual(body["error"]["code"], code, body)
        return body


class BalanceTest(WalletCase):
    async def test_balance_in_sat_and_msat(self):
        _user_id, headers = await self.user(balance_sat=1234)
        response = await self.client.get("/api/v1/wallet/balance", headers=headers)
        self.assertEqual(response.status, 200)
        data = (await response.json())["data"]
        self.assertEqual(
            data,
            {
                "balanceSat": 1234,
                "heldSat": 0,
                "availableSat": 1234,
                "balanceMsat": 1234000,
                "heldMsat": 0,
                "availableMsat": 1234000,
            },
        )

    async def test_balance_requires_auth(self):
        response = await self.client.get("/api/v1/wallet/balance")
        await self.assert_error(response, 401, "UNAUTHORIZED")


class CreateInvoiceTest(WalletCase):
    async def test_202_when_no_worker_answers(self):
        _user_id, headers = await self.user()
        response = await self.client.post(URL, json={"amountSat": 100, "memo": "coffee"}, headers=headers)
        body = await response.json()
        self.assertEqual(response.status, 202, body)
        data = body["data"]
        self.assertEqual(data["state"], "pending")
        self.assertEqual(data["amountSat"], 100)
        self.assertEqual(data["direction"], "incoming")
        self.assertEqual(response.headers["Location"], f"{URL}/{data['id']}")
        # the row is committed and the job is queued under its deterministic id, args = row id only
        async with self.sessions() as session:
            invoice = await session.get(Invoice, uuid.UUID(data["id"]))
        self.assertEqual(
            (invoice.state, invoice.amount_msat, invoice.memo, invoice.expiry_s),
            ("pending", 100_000, "coffee", 3600),
        )
        queued = await self.app[ARQ].queued_jobs()
        self.assertEqual(
            [(j.job_id, j.function, j.args) for j in queued],
            [(jobs.create_invoice_job_id(invoice.id), "create_invoice", [str(invoice.id)])],
        )

    async def test_201_when_the_worker_answers_in_time(self):
        await self.restart_app(**WORKER_WAITS)
        _user_id, headers = await self.user()
        async with running_fake_worker(self):
            response = await self.client.post(
                URL,
                json={"amountSat": 2500, "expirySeconds": 600, "webhookUrl": "https://example.com/hook"},
                headers=headers,
            )
        body = await response.json()
        self.assertEqual(response.status, 201, body)
        data = body["data"]
        self.assertEqual(data["state"], "open")
        self.assertTrue(data["paymentRequest"].startswith("lnbcrt25u1"))
        self.assertEqual(len(data["paymentHash"]), 64)
        self.assertIsNotNone(data["expiresAt"])
        self.assertEqual(data["expirySeconds"], 600)
        self.assertEqual(data["webhookUrl"], "https://example.com/hook")
        self.assertNotIn("Location", response.headers)

    async def test_the_outcome_event_wakes_the_waiting_request(self):
        # The wait (60 s) and the re-read interval (600 s) are both far beyond the 30 s deadline:
        # only the worker's event can end the request within it.
        await self.restart_app(invoice_wait_s=60, wait_recheck_s=600)
        _user_id, headers = await self.user()
        async with running_fake_worker(self):
            response = await asyncio.wait_for(
                self.client.post(URL, json={"amountSat": 1}, headers=headers), timeout=30
            )
        self.assertEqual(response.status, 201)

    async def test_enqueue_failure_still_answers_202(self):
        _user_id, headers = await self.user()

        async def broken(*args, **kwargs):
            raise ConnectionError("redis down")

        self.app[ARQ].enqueue_job = broken
        response = await self.client.post(URL, json={"amountSat": 100}, headers=headers)
        self.assertEqual(response.status, 202)
        self.assertEqual(await count_rows(self, Invoice, state="pending"), 1)

    async def test_bad_input_is_400(self):
        _user_id, headers = await self.user()
        too_long_memo = "é" * 320  # 640 bytes in UTF-8, 320 characters
        cases = [
            {},
            {"amountSat": 0},
            {"amountSat": -5},
            {"amountSat": 10_000_001},
            {"amountSat": 10.5},
            {"amountSat": 10.0},
            {"amountSat": "100"},
            {"amountSat": True},
            {"amountSat": None},
            {"amountSat": 2**70},
            {"amountSat": 100, "memo": too_long_memo},
            {"amountSat": 100, "memo": "a\x00b"},
            {"amountSat": 100, "memo": 5},
            {"amountSat": 100, "expirySeconds": 59},
            {"amountSat": 100, "expirySeconds": 31536001},
            {"amountSat": 100, "expirySeconds": "3600"},
            {"amountSat": 100, "webhookUrl": "ftp://example.com/x"},
            {"amountSat": 100, "webhookUrl": "https://example.com/" + "a" * 2048},
            {"amountSat": 100, "webhookUrl": "javascript:alert(1)"},
            {"amountSat": 100, "webhookUrl": "https://"},
            {"amountSat": 100, "webhookUrl": "http://user:pw@example.com/"},
            {"amountSat": 100, "extra": 1},
        ]
        for payload in cases:
            with self.subTest(payload=str(payload)[:60]):
                await self.assert_error(
                    await self.client.post(URL, json=payload, headers=headers), 400, "VALIDATION_ERROR"
                )
        response = await self.client.post(
            URL, data="not json", headers={**headers, "Content-Type": "application/json"}
        )
        await self.assert_error(response, 400, "VALIDATION_ERROR")
        response = await self.client.post(URL, json=[1, 2], headers=headers)
        await self.assert_error(response, 400, "VALIDATION_ERROR")
        self.assertEqual(await count_rows(self, Invoice), 0)

    async def test_memo_of_exactly_639_bytes_is_accepted(self):
        _user_id, headers = await self.user()
        response = await self.client.post(
            URL, json={"amountSat": 1, "memo": "é" * 319 + "a"}, headers=headers
        )
        self.assertEqual(response.status, 202)

    async def test_max_invoice_setting_is_enforced(self):
        await self.restart_app(max_invoice_sat=50)
        _user_id, headers = await self.user()
        await self.assert_error(
            await self.client.post(URL, json={"amountSat": 51}, headers=headers), 400, "VALIDATION_ERROR"
        )
        self.assertEqual((await self.client.post(URL, json={"amountSat": 50}, headers=headers)).status, 202)


class IdempotencyTest(WalletCase):
    async def test_same_key_same_body_returns_the_first_response_and_one_row(self):
        _user_id, headers = await self.user()
        headers = {**headers, "Idempotency-Key": "inv-1"}
        first = await self.client.post(URL, json={"amountSat": 100}, headers=headers)
        second = await self.client.post(URL, json={"amountSat": 100}, headers=headers)
        self.assertEqual((first.status, second.status), (202, 202))
        self.assertEqual((await first.json())["data"], (await second.json())["data"])
        self.assertEqual(first.headers["Location"], second.headers["Location"])
        self.assertEqual(await count_rows(self, Invoice), 1)
        self.assertEqual(len(await self.app[ARQ].queued_jobs()), 1)

    async def test_concurrent_repeats_create_one_row(self):
        _user_id, headers = await self.user()
        headers = {**headers, "Idempotency-Key": "same"}
        responses = await asyncio.gather(
            *(self.client.post(URL, json={"amountSat": 7}, headers=headers) for _ in range(10))
        )
        bodies = [await r.json() for r in responses]
        self.assertEqual({r.status for r in responses}, {202}, bodies)
        ids = {body["data"]["id"] for body in bodies}
        self.assertEqual(len(ids), 1)
        self.assertEqual(await count_rows(self, Invoice), 1)

    async def test_same_key_different_body_is_409(self):
        _user_id, headers = await self.user()
        headers = {**headers, "Idempotency-Key": "k"}
        self.assertEqual((await self.client.post(URL, json={"amountSat": 100}, headers=headers)).status, 202)
        response = await self.client.post(URL, json={"amountSat": 101}, headers=headers)
        await self.assert_error(response, 409, "IDEMPOTENCY_CONFLICT")
        self.assertEqual(await count_rows(self, Invoice), 1)

    async def test_keys_are_per_user(self):
        _, headers_a = await self.user()
        _, headers_b = await self.user()
        for headers in (headers_a, headers_b):
            response = await self.client.post(
                URL, json={"amountSat": 5}, headers={**headers, "Idempotency-Key": "x"}
            )
            self.assertEqual(response.status, 202)
        self.assertEqual(await count_rows(self, Invoice), 2)

    async def test_replay_after_completion_returns_the_stored_201(self):
        await self.restart_app(**WORKER_WAITS)
        _user_id, headers = await self.user()
        headers = {**headers, "Idempotency-Key": "done"}
        async with running_fake_worker(self):
            first = await self.client.post(URL, json={"amountSat": 100}, headers=headers)
        self.assertEqual(first.status, 201)
        second = await self.client.post(URL, json={"amountSat": 100}, headers=headers)
        self.assertEqual(second.status, 201)
        self.assertEqual((await first.json())["data"], (await second.json())["data"])
        async with self.sessions() as session:
            key = await session.scalar(select(IdempotencyKey))
        self.assertEqual((key.response_status, key.endpoint), (201, "POST /api/v1/invoices"))

    async def test_bad_keys_are_400(self):
        _user_id, headers = await self.user()
        for key in ("a" * 256, "tab\there", "ünïcode"):
            with self.subTest(key=key[:10]):
                response = await self.client.post(
                    URL, json={"amountSat": 1}, headers={**headers, "Idempotency-Key": key}
                )
                await self.assert_error(response, 400, "VALIDATION_ERROR")
        self.assertEqual(await count_rows(self, Invoice), 0)


class ListAndGetTest(WalletCase):
    async def _seed(self, user_id):
        """3 invoices and 2 payments with distinct creation times (oldest first)."""
        base = datetime(2024, 1, 1, tzinfo=UTC)
        ids = []
        for i in range(3):
            invoice_id, _, _ = await insert_open_invoice(self, user_id, amount_sat=100 + i)
            ids.append(invoice_id)
        for i in range(2):
            payment_id, _ = await insert_payment(
                self, user_id, state="failed" if i else "succeeded", amount_msat=5_500 + i, fee_msat=1_234
            )
            ids.append(payment_id)
        async with self.sessions() as session, session.begin():
            for n, row_id in enumerate(ids):
                when = base + timedelta(hours=n)
                await session.execute(update(Invoice).where(Invoice.id == row_id).values(created_at=when))
                await session.execute(update(Payment).where(Payment.id == row_id).values(created_at=when))
        return ids

    async def test_list_both_directions_newest_first_with_pagination(self):
        user_id, headers = await self.user()
        other_id, _ = await self.user()
        await insert_open_invoice(self, other_id)
        ids = await self._seed(user_id)
        response = await self.client.get(URL, headers=headers)
        body = await response.json()
        self.assertEqual(response.status, 200, body)
        self.assertEqual([item["id"] for item in body["data"]], [str(i) for i in reversed(ids)])
        self.assertEqual(body["pagination"], {"page": 1, "pageSize": 20, "totalItems": 5, "totalPages": 1})
        outgoing = body["data"][1]
        self.assertEqual(
            (
                outgoing["direction"],
                outgoing["amountSat"],
                outgoing["amountMsat"],
                outgoing["feeSat"],
                outgoing["feeMsat"],
                outgoing["state"],
            ),
            ("outgoing", 5, 5_500, 1, 1_234, "succeeded"),
        )
        incoming = body["data"][2]
        self.assertEqual(
            (incoming["direction"], incoming["amountSat"], incoming["feeSat"]), ("incoming", 102, None)
        )
        page2 = await (await self.client.get(URL, params={"page": 2, "pageSize": 2}, headers=headers)).json()
        self.assertEqual([item["id"] for item in page2["data"]], [str(ids[2]), str(ids[1])])
        self.assertEqual(page2["pagination"]["totalPages"], 3)

    async def test_filters(self):
        user_id, headers = await self.user()
        ids = await self._seed(user_id)

        async def listed(**params):
            response = await self.client.get(URL, params=params, headers=headers)
            body = await response.json()
            self.assertEqual(response.status, 200, body)
            return [item["id"] for item in body["data"]]

        self.assertEqual(await listed(direction="incoming"), [str(i) for i in reversed(ids[:3])])
        self.assertEqual(await listed(direction="outgoing"), [str(ids[4]), str(ids[3])])
        self.assertEqual(await listed(state="succeeded"), [str(ids[3])])
        self.assertEqual(await listed(state="open", direction="outgoing"), [])
        self.assertEqual(
            await listed(**{"from": "2024-01-01T01:00:00Z", "to": "2024-01-01T03:00:00+00:00"}),
            [str(ids[2]), str(ids[1])],
        )
        self.assertEqual(await listed(**{"from": "2024-01-01T04:00:00"}), [str(ids[4])])

    async def test_all_is_admin_only(self):
        user_id, headers = await self.user()
        admin_id, admin_headers = await self.user(role="admin")
        await insert_open_invoice(self, user_id)
        await insert_open_invoice(self, admin_id)
        await self.assert_error(
            await self.client.get(URL, params={"all": "true"}, headers=headers), 403, "FORBIDDEN"
        )
        body = await (await self.client.get(URL, params={"all": "true"}, headers=admin_headers)).json()
        self.assertEqual(body["pagination"]["totalItems"], 2)
        body = await (await self.client.get(URL, headers=admin_headers)).json()
        self.assertEqual(body["pagination"]["totalItems"], 1)

    async def test_bad_query_is_400(self):
        _user_id, headers = await self.user()
        for params in (
            {"direction": "sideways"},
            {"state": "bogus"},
            {"pageSize": "101"},
            {"page": "0"},
            {"from": "yesterday"},
            {"from": "2024-02-01", "to": "2024-01-01"},
            {"from": "0001-01-01T00:00:00+14:00"},  # before year 1 in UTC
            {"to": "9999-12-31T23:59:59-14:00"},  # after year 9999 in UTC
            {"all": "maybe"},
            {"page": "1e3"},
            {"unknown": "1"},
        ):
            with self.subTest(params=params):
                await self.assert_error(
                    await self.client.get(URL, params=params, headers=headers), 400, "VALIDATION_ERROR"
                )

    async def test_get_by_id_and_by_hash(self):
        user_id, headers = await self.user()
        invoice_id, pr, payment_hash = await insert_open_invoice(self, user_id, amount_sat=321)
        for ident in (str(invoice_id), payment_hash.hex(), payment_hash.hex().upper()):
            with self.subTest(ident=ident):
                response = await self.client.get(f"{URL}/{ident}", headers=headers)
                body = await response.json()
                self.assertEqual(response.status, 200, body)
                self.assertEqual(
                    (body["data"]["id"], body["data"]["amountSat"], body["data"]["paymentRequest"]),
                    (str(invoice_id), 321, pr),
                )

    async def test_get_payment_through_invoices(self):
        user_id, headers = await self.user()
        ids = await self._seed(user_id)
        body = await (await self.client.get(f"{URL}/{ids[3]}", headers=headers)).json()
        self.assertEqual((body["data"]["direction"], body["data"]["state"]), ("outgoing", "succeeded"))

    async def test_other_users_rows_unknown_and_malformed_ids_are_404(self):
        owner_id, _ = await self.user()
        _, headers = await self.user()
        _, admin_headers = await self.user(role="admin")
        invoice_id, _, payment_hash = await insert_open_invoice(self, owner_id)
        for ident in (
            str(invoice_id),
            payment_hash.hex(),
            str(uuid.uuid4()),
            "0" * 64,
            "not-an-id",
            "1",
            "'; DROP TABLE invoices;--",
            "a" * 63,
            str(invoice_id).replace("-", ""),
        ):
            with self.subTest(ident=ident):
                await self.assert_error(
                    await self.client.get(f"{URL}/{ident}", headers=headers), 404, "NOT_FOUND"
                )
        response = await self.client.get(f"{URL}/{invoice_id}", headers=admin_headers)
        self.assertEqual(response.status, 200)
