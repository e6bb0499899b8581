"""POST/GET /api/v1/payments: validation, holds, double-pay protection, internal payments, idempotency."""

import asyncio
import uuid
from unittest import mock

from coincurve import PrivateKey
from sqlalchemy import select, text, update

from api_service.keys import ARQ
from api_service.services import idempotency
from shared import jobs, ledger
from shared.db.models import Account, Invoice, Payment
from tests.api.test_wallet_invoices import WORKER_WAITS, WalletCase
from tests.api.test_wallet_support import (
    ALICE_PRIVKEY,
    balance_msat,
    count_rows,
    finish_payment,
    insert_open_invoice,
    running_fake_worker,
)
from tests.support import factories
from tests.support.bolt11_factory import BOB_PRIVKEY, expired_payment_request, make_payment_request

URL = "/api/v1/payments"


class PaymentValidationTest(WalletCase):
    async def test_bad_requests_are_4xx_and_change_nothing(self):
        user_id, headers = await self.user(balance_sat=100_000)
        pr, _ = make_payment_request(amount_msat=10_000)
        zero_pr, _ = make_payment_request(amount_msat=None)
        mainnet, _ = make_payment_request(currency="bc")
        testnet, _ = make_payment_request(currency="tb")
        huge, _ = make_payment_request(amount_msat=10_000_001_000)
        expired, _ = expired_payment_request()
        cases = [
            ({"paymentRequest": "lnbcrt1garbage"}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": ""}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": pr[:-3] + "qqq"}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": "x" * 8000}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": 12}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": mainnet}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": testnet}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": expired}, 422, "INVOICE_EXPIRED"),
            ({"paymentRequest": pr, "amountSat": 10}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": zero_pr}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": zero_pr, "amountSat": 0}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": zero_pr, "amountSat": -1}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": zero_pr, "amountSat": 10_000_001}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": zero_pr, "amountSat": 1.5}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": zero_pr, "amountSat": "10"}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": zero_pr, "amountSat": 2**80}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": huge}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": pr, "feeLimitSat": -1}, 400, "VALIDATION_ERROR"),
            (
                {"paymentRequest": pr, "feeLimitSat": 102},
                400,
                "VALIDATION_ERROR",
            ),  # max = ceil(10% of 10) + 100
            ({"paymentRequest": pr, "feeLimitSat": 1.0}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": pr, "fromTreasury": "yes"}, 400, "VALIDATION_ERROR"),
            ({"paymentRequest": pr, "fromTreasury": True}, 403, "FORBIDDEN"),
            ({"paymentRequest": pr, "bogus": 1}, 400, "VALIDATION_ERROR"),
            ({}, 400, "VALIDATION_ERROR"),
        ]
        for payload, status, code in cases:
            with self.subTest(payload=str(payload)[:80]):
                await self.assert_error(
                    await self.client.post(URL, json=payload, headers=headers), status, code
                )
        self.assertEqual(await count_rows(self, Payment), 0)
        self.assertEqual((await balance_msat(self, user_id)).held_msat, 0)

    async def test_simnet_invoice_refused_on_regtest(self):
        _user_id, headers = await self.user(balance_sat=1000)
        pr, _ = make_payment_request(currency="sb")
        body = await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": pr}, headers=headers), 400, "VALIDATION_ERROR"
        )
        self.assertIn("simnet", body["error"]["message"])


class PaymentHoldTest(WalletCase):
    async def test_hold_is_amount_plus_fee_reserve_and_job_is_queued(self):
        user_id, headers = await self.user(balance_sat=10_000)
        pr, payment_hash = make_payment_request(
            amount_msat=2_000_000
        )  # 2000 sat → reserve max(1%, 10) = 20 sat
        response = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        body = await response.json()
        self.assertEqual(response.status, 202, body)
        data = body["data"]
        self.assertEqual(
            (data["status"], data["amountSat"], data["feeLimitSat"], data["internal"], data["preimage"]),
            ("pending", 2000, 20, False, None),
        )
        self.assertEqual(data["paymentHash"], payment_hash.hex())
        self.assertEqual(response.headers["Location"], f"{URL}/{data['id']}")
        balance = await balance_msat(self, user_id)
        self.assertEqual((balance.balance_msat, balance.held_msat), (10_000_000, 2_020_000))
        wallet = await (await self.client.get("/api/v1/wallet/balance", headers=headers)).json()
        self.assertEqual((wallet["data"]["heldSat"], wallet["data"]["availableSat"]), (2020, 7980))
        queued = await self.app[ARQ].queued_jobs()
        self.assertEqual(
            [(j.job_id, j.args) for j in queued], [(jobs.pay_invoice_job_id(data["id"]), [data["id"]])]
        )
        async with self.sessions() as session:
            payment = await session.get(Payment, uuid.UUID(data["id"]))
        self.assertEqual(
            (payment.hold_msat, payment.fee_limit_msat, payment.destination[:2]), (2_020_000, 20_000, "03")
        )

    async def test_fee_limit_and_sub_sat_amounts(self):
        user_id, headers = await self.user(balance_sat=10_000)
        zero_pr, _ = make_payment_request(amount_msat=None)
        response = await self.client.post(
            URL, json={"paymentRequest": zero_pr, "amountSat": 500, "feeLimitSat": 0}, headers=headers
        )
        self.assertEqual(response.status, 202)
        sub_sat, _ = make_payment_request(amount_msat=1_500)
        response = await self.client.post(
            URL, json={"paymentRequest": sub_sat, "feeLimitSat": 5}, headers=headers
        )
        data = (await response.json())["data"]
        self.assertEqual(
            (response.status, data["amountMsat"], data["amountSat"], data["feeLimitSat"]), (202, 1_500, 1, 5)
        )
        self.assertEqual((await balance_msat(self, user_id)).held_msat, 500_000 + 1_500 + 5_000)

    async def test_insufficient_balance_is_422_without_row_or_hold(self):
        user_id, headers = await self.user(balance_sat=1_000)
        pr, _ = make_payment_request(amount_msat=995_000)  # 995 + 10 reserve > 1000
        await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": pr}, headers=headers),
            422,
            "INSUFFICIENT_BALANCE",
        )
        self.assertEqual(await count_rows(self, Payment), 0)
        self.assertEqual((await balance_msat(self, user_id)).held_msat, 0)

    async def test_twenty_parallel_payments_of_one_invoice_make_one_row_and_one_hold(self):
        user_id, headers = await self.user(balance_sat=100_000)
        pr, payment_hash = make_payment_request(amount_msat=1_000_000)
        responses = await asyncio.gather(
            *(self.client.post(URL, json={"paymentRequest": pr}, headers=headers) for _ in range(20))
        )
        statuses = sorted(r.status for r in responses)
        self.assertEqual(statuses, [202] + [409] * 19)
        codes = {(await r.json())["error"]["code"] for r in responses if r.status == 409}
        self.assertEqual(codes, {"CONFLICT"})
        self.assertEqual(await count_rows(self, Payment, payment_hash=payment_hash), 1)
        self.assertEqual((await balance_msat(self, user_id)).held_msat, 1_000_000 + 10_000)

    async def test_same_invoice_from_several_users_in_parallel(self):
        users = [await self.user(balance_sat=10_000) for _ in range(5)]
        pr, _payment_hash = make_payment_request(amount_msat=1_000_000)
        responses = await asyncio.gather(
            *(self.client.post(URL, json={"paymentRequest": pr}, headers=h) for _, h in users)
        )
        self.assertEqual(sorted(r.status for r in responses), [202, 409, 409, 409, 409])
        held = [(await balance_msat(self, user_id)).held_msat for user_id, _ in users]
        self.assertEqual(sorted(held), [0, 0, 0, 0, 1_010_000])

    async def test_twenty_parallel_payments_exceeding_the_balance_never_overdraw(self):
        user_id, headers = await self.user(balance_sat=10_000)
        requests = [
            make_payment_request(amount_msat=1_490_000)[0] for _ in range(20)
        ]  # 1490 + 15 reserve each
        responses = await asyncio.gather(
            *(self.client.post(URL, json={"paymentRequest": pr}, headers=headers) for pr in requests)
        )
        accepted = [r for r in responses if r.status == 202]
        refused = [r for r in responses if r.status != 202]
        self.assertEqual(len(accepted), 6)  # 6 x 1505 = 9030 ≤ 10000 < 7 x 1505
        self.assertEqual({(await r.json())["error"]["code"] for r in refused}, {"INSUFFICIENT_BALANCE"})
        balance = await balance_msat(self, user_id)
        self.assertEqual(balance.held_msat, 6 * 1_505_000)
        self.assertGreaterEqual(balance.available_msat, 0)
        async with self.sessions() as session:
            holds = (await session.scalars(select(Payment.hold_msat))).all()
        self.assertEqual(sum(holds), balance.held_msat)

    async def test_already_paid_and_in_progress(self):
        _user_id, headers = await self.user(balance_sat=10_000)
        pr, _payment_hash = make_payment_request(amount_msat=100_000)
        first = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        self.assertEqual(first.status, 202)
        await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": pr}, headers=headers), 409, "CONFLICT"
        )
        async with self.sessions() as session, session.begin():
            await session.execute(update(Payment).values(state="succeeded", preimage=b"x" * 32, fee_msat=0))
        await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": pr}, headers=headers), 409, "ALREADY_PAID"
        )
        async with self.sessions() as session, session.begin():  # a failed attempt may be retried
            await session.execute(update(Payment).values(state="failed", preimage=None, fee_msat=None))
        self.assertEqual(
            (await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)).status, 202
        )


class PaymentOutcomeTest(WalletCase):
    async def test_200_with_preimage_when_the_worker_finishes_in_time(self):
        await self.restart_app(**WORKER_WAITS)
        user_id, headers = await self.user(balance_sat=10_000)
        pr, _ = make_payment_request(amount_msat=1_000_000)
        async with running_fake_worker(self, payment_outcome="succeeded"):
            response = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        body = await response.json()
        self.assertEqual(response.status, 200, body)
        data = body["data"]
        self.assertEqual((data["status"], data["feeSat"], len(data["preimage"])), ("succeeded", 1, 64))
        self.assertIsNotNone(data["completedAt"])
        balance = await balance_msat(self, user_id)
        self.assertEqual((balance.balance_msat, balance.held_msat), (10_000_000 - 1_001_000, 0))
        again = await (await self.client.get(f"{URL}/{data['id']}", headers=headers)).json()
        self.assertEqual(again["data"], data)

    async def test_failed_payment_releases_the_hold(self):
        await self.restart_app(**WORKER_WAITS)
        user_id, headers = await self.user(balance_sat=10_000)
        pr, _ = make_payment_request(amount_msat=1_000_000)
        async with running_fake_worker(self, payment_outcome="failed"):
            response = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        data = (await response.json())["data"]
        self.assertEqual(
            (response.status, data["status"], data["failureReason"], data["preimage"]),
            (200, "failed", "no route", None),
        )
        balance = await balance_msat(self, user_id)
        self.assertEqual((balance.balance_msat, balance.held_msat), (10_000_000, 0))

    async def test_get_payment_is_own_only_admin_sees_all(self):
        _user_id, headers = await self.user(balance_sat=10_000)
        _, other_headers = await self.user()
        _, admin_headers = await self.user(role="admin")
        pr, _ = make_payment_request(amount_msat=1_000)
        payment_id = (
            await (await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)).json()
        )["data"]["id"]
        self.assertEqual((await self.client.get(f"{URL}/{payment_id}", headers=headers)).status, 200)
        self.assertEqual((await self.client.get(f"{URL}/{payment_id}", headers=admin_headers)).status, 200)
        for ident in (payment_id, str(uuid.uuid4()), "nope", "1;DROP"):
            with self.subTest(ident=ident):
                await self.assert_error(
                    await self.client.get(f"{URL}/{ident}", headers=other_headers), 404, "NOT_FOUND"
                )


class InternalAndTreasuryTest(WalletCase):
    async def test_paying_another_users_invoice_is_internal_without_fee(self):
        payer_id, headers = await self.user(balance_sat=1_000)
        payee_id, _ = await self.user()
        invoice_id, pr, _payment_hash = await insert_open_invoice(self, payee_id, amount_sat=300)
        response = await self.client.post(
            URL, json={"paymentRequest": pr, "feeLimitSat": 50}, headers=headers
        )
        data = (await response.json())["data"]
        self.assertEqual((response.status, data["internal"], data["feeLimitSat"]), (202, True, 0))
        async with self.sessions() as session:
            payment = await session.get(Payment, uuid.UUID(data["id"]))
        self.assertEqual(
            (payment.internal_invoice_id, payment.hold_msat, payment.fee_limit_msat), (invoice_id, 300_000, 0)
        )
        self.assertEqual((await balance_msat(self, payer_id)).held_msat, 300_000)

    async def test_own_invoice_is_409_and_settled_or_expired_ones_are_refused(self):
        user_id, headers = await self.user(balance_sat=1_000)
        other_id, _ = await self.user()
        _, own_pr, _ = await insert_open_invoice(self, user_id)
        body = await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": own_pr}, headers=headers), 409, "CONFLICT"
        )
        self.assertIn("own invoice", body["error"]["message"])
        _, settled_pr, _ = await insert_open_invoice(self, other_id, state="settled")
        await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": settled_pr}, headers=headers),
            409,
            "ALREADY_PAID",
        )
        _, expired_pr, _ = await insert_open_invoice(self, other_id, state="expired")
        await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": expired_pr}, headers=headers),
            422,
            "INVOICE_EXPIRED",
        )
        # our invoice's hash inside a request signed by someone else
        _, _, open_hash = await insert_open_invoice(self, other_id)
        forged, _ = make_payment_request(amount_msat=100_000, payment_hash=open_hash)
        await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": forged}, headers=headers),
            422,
            "UNPROCESSABLE",
        )
        self.assertEqual(await count_rows(self, Payment), 0)

    async def test_treasury_payment_by_admin_holds_on_the_treasury(self):
        admin_id, admin_headers = await self.user(role="admin")  # no balance of its own
        async with self.sessions() as session, session.begin():
            await factories.fund_treasury(session, 2000)
        pr, _ = make_payment_request(amount_msat=1_000_000)
        response = await self.client.post(
            URL, json={"paymentRequest": pr, "fromTreasury": True}, headers=admin_headers
        )
        data = (await response.json())["data"]
        self.assertEqual((response.status, data["fromTreasury"], data["userId"]), (202, True, str(admin_id)))
        async with self.sessions() as session:
            treasury = await session.scalar(select(Account).where(Account.kind == "treasury"))
            payment = await session.get(Payment, uuid.UUID(data["id"]))
        self.assertEqual(payment.account_id, treasury.id)
        self.assertEqual(treasury.held_msat, 1_010_000)
        self.assertEqual((await balance_msat(self, admin_id)).held_msat, 0)
        # without fromTreasury the admin pays from its own (empty) account
        pr2, _ = make_payment_request(amount_msat=1_000)
        await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": pr2}, headers=admin_headers),
            422,
            "INSUFFICIENT_BALANCE",
        )


class PaymentIdempotencyTest(WalletCase):
    async def test_same_key_same_body_one_row_one_hold(self):
        user_id, headers = await self.user(balance_sat=10_000)
        headers = {**headers, "Idempotency-Key": "pay-1"}
        pr, _ = make_payment_request(amount_msat=1_000_000)
        responses = await asyncio.gather(
            *(self.client.post(URL, json={"paymentRequest": pr}, headers=headers) for _ in range(10))
        )
        self.assertEqual({r.status for r in responses}, {202})
        self.assertEqual(len({(await r.json())["data"]["id"] for r in responses}), 1)
        self.assertEqual(await count_rows(self, Payment), 1)
        self.assertEqual((await balance_msat(self, user_id)).held_msat, 1_010_000)

    async def test_the_same_invoice_spelled_another_way_is_the_same_request(self):
        """A lightning: prefix or upper case means the same payment request: a replay, not 409."""
        _user_id, headers = await self.user(balance_sat=10_000)
        headers = {**headers, "Idempotency-Key": "pay-spelling"}
        pr, _ = make_payment_request(amount_msat=1_000_000)
        first = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        for spelling in (f"lightning:{pr}", pr.upper(), f"LIGHTNING:{pr.upper()}", f"  {pr} "):
            with self.subTest(spelling=spelling[:20]):
                again = await self.client.post(URL, json={"paymentRequest": spelling}, headers=headers)
                self.assertEqual(again.status, first.status, await again.text())
                self.assertEqual((await again.json())["data"]["id"], (await first.json())["data"]["id"])
        self.assertEqual(await count_rows(self, Payment), 1)

    async def test_a_stored_202_is_replayed_with_the_rows_current_state(self):
        _user_id, headers = await self.user(balance_sat=10_000)
        headers = {**headers, "Idempotency-Key": "pay-later"}
        pr, _ = make_payment_request(amount_msat=1_000_000)
        first = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        self.assertEqual(first.status, 202)
        payment_id = uuid.UUID((await first.json())["data"]["id"])
        async with self.sessions() as session, session.begin():
            await finish_payment(session, payment_id, "succeeded")
        again = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        body = await again.json()
        self.assertEqual((again.status, body["data"]["status"]), (200, "succeeded"), body)
        self.assertIsNone(again.headers.get("Location"))

    async def test_key_committed_between_lookup_and_hash_check_is_replayed_not_refused(self):
        # The second request's key lookup runs just before the first request commits; its
        # already-paid check then finds the first request's payment. It must replay, not 409.
        _user_id, headers = await self.user(balance_sat=10_000)
        headers = {**headers, "Idempotency-Key": "pay-race"}
        pr, _ = make_payment_request(amount_msat=1_000_000)
        first = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        real_find, calls = idempotency.find, []

        async def find_missing_once(*args, **kwargs):
            calls.append(1)
            return None if len(calls) == 1 else await real_find(*args, **kwargs)

        with mock.patch.object(idempotency, "find", find_missing_once):
            second = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        self.assertEqual((first.status, second.status), (202, 202), await second.text())
        self.assertEqual((await first.json())["data"]["id"], (await second.json())["data"]["id"])
        self.assertEqual(len(calls), 2)
        self.assertEqual(await count_rows(self, Payment), 1)

    async def test_replay_after_success_returns_the_first_200_not_already_paid(self):
        await self.restart_app(**WORKER_WAITS)
        _user_id, headers = await self.user(balance_sat=10_000)
        headers = {**headers, "Idempotency-Key": "pay-2"}
        pr, _ = make_payment_request(amount_msat=1_000_000)
        async with running_fake_worker(self):
            first = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        second = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        self.assertEqual((first.status, second.status), (200, 200))
        self.assertEqual((await first.json())["data"], (await second.json())["data"])
        other = await self.client.post(URL, json={"paymentRequest": pr, "feeLimitSat": 3}, headers=headers)
        await self.assert_error(other, 409, "IDEMPOTENCY_CONFLICT")
        self.assertEqual(await count_rows(self, Payment), 1)

    async def test_a_connection_terminated_while_storing_the_answer_is_a_warning_not_an_error(self):
        # Seen under the soak: pg_terminate_backend hit the connection that stores the answer. The
        # payment and its key row are committed, so nothing is lost: a warning, and a repeat replays.
        _user_id, headers = await self.user(balance_sat=10_000)
        headers = {**headers, "Idempotency-Key": "pay-terminated"}
        pr, _ = make_payment_request(amount_msat=1_000_000)

        async def terminated(session, **kwargs):
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

        with (
            mock.patch.object(idempotency.queries, "store_idempotent_response", terminated),
            self.assertLogs("api.idempotency", "WARNING") as logs,
        ):
            first = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        self.assertEqual(first.status, 202, await first.text())
        self.assertEqual([record.levelname for record in logs.records], ["WARNING"])
        self.assertIn("could not store the idempotent response", logs.output[0])
        again = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        self.assertEqual(again.status, 202, await again.text())
        self.assertEqual((await again.json())["data"]["id"], (await first.json())["data"]["id"])
        self.assertEqual(await count_rows(self, Payment), 1)

    async def test_error_responses_are_not_stored(self):
        user_id, headers = await self.user(balance_sat=0)
        headers = {**headers, "Idempotency-Key": "retry-me"}
        pr, _ = make_payment_request(amount_msat=1_000_000)
        await self.assert_error(
            await self.client.post(URL, json={"paymentRequest": pr}, headers=headers),
            422,
            "INSUFFICIENT_BALANCE",
        )
        async with self.sessions() as session, session.begin():
            await factories.fund_account(session, await ledger.user_account_id(session, user_id), 2000)
        self.assertEqual(
            (await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)).status, 202
        )


class PaymentRateLimitTest(WalletCase):
    settings_overrides = {**WalletCase.settings_overrides, "rate_limit_payments_per_user": 3}

    async def test_payments_are_rate_limited_per_user(self):
        _user_id, headers = await self.user(balance_sat=10_000)
        _, other_headers = await self.user(balance_sat=10_000)
        statuses = []
        for _ in range(4):
            pr, _ = make_payment_request(amount_msat=1_000)
            statuses.append(
                (await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)).status
            )
        self.assertEqual(statuses, [202, 202, 202, 429])
        pr, _ = make_payment_request(amount_msat=1_000)
        response = await self.client.post(URL, json={"paymentRequest": pr}, headers=headers)
        await self.assert_error(response, 429, "RATE_LIMITED")
        self.assertIn("Retry-After", response.headers)
        self.assertEqual(
            (await self.client.post(URL, json={"paymentRequest": pr}, headers=other_headers)).status, 202
        )


class PaymentRowTest(WalletCase):
    """What create_payment writes and holds, field by field, and the internal-target rules at their
    edges (mutants of services/payments.py survived the tests above)."""

    async def post(self, headers, **body):
        return await self.client.post(URL, json=body, headers=headers)

    async def test_an_external_payment_row_is_written_as_decoded(self):
        user_id, headers = await self.user(balance_sat=10_000)
        pr, payment_hash = make_payment_request(amount_msat=3_000_000, description="tea\x00 for two")
        response = await self.post(headers, paymentRequest=pr.upper(), webhookUrl="https://example.com/h")
        self.assertEqual(response.status, 202, await response.text())
        async with self.sessions() as session:
            payment = await session.get(Payment, uuid.UUID((await response.json())["data"]["id"]))
            account_id = await ledger.user_account_id(session, user_id)
        self.assertEqual(
            (
                payment.user_id,
                payment.account_id,
                payment.state,
                payment.internal,
                payment.from_treasury,
                payment.internal_invoice_id,
                payment.payment_hash,
                payment.payment_request,
                payment.memo,
                payment.webhook_url,
            ),
            (
                user_id,
                account_id,
                "pending",
                False,
                False,
                None,
                payment_hash,
                pr,
                "tea for two",
                "https://example.com/h",
            ),
        )
        self.assertEqual(payment.destination, PrivateKey.from_hex(BOB_PRIVKEY).public_key.format().hex())
        # 3000 sat at the default 1 % (10 sat minimum): a 30 sat reserve.
        self.assertEqual(
            (payment.amount_msat, payment.fee_limit_msat, payment.hold_msat), (3_000_000, 30_000, 3_030_000)
        )

    async def test_the_default_reserve_follows_the_settings(self):
        for ppm, min_sat, expected_sat in [(50_000, 1, 100), (1_000, 77, 77)]:
            with self.subTest(ppm=ppm, min_sat=min_sat):
                await self.restart_app(fee_reserve_ppm=ppm, fee_reserve_min_sat=min_sat)
                user_id, headers = await self.user(balance_sat=10_000)
                pr, _ = make_payment_request(amount_msat=2_000_000)
                data = (await (await self.post(headers, paymentRequest=pr)).json())["data"]
                self.assertEqual(data["feeLimitSat"], expected_sat)
                self.assertEqual(
                    (await balance_msat(self, user_id)).held_msat, 2_000_000 + expected_sat * 1000
                )

    async def test_a_zero_fee_limit_is_honoured_for_an_external_payment(self):
        user_id, headers = await self.user(balance_sat=10_000)
        pr, _ = make_payment_request(amount_msat=2_000_000)
        data = (await (await self.post(headers, paymentRequest=pr, feeLimitSat=0)).json())["data"]
        self.assertEqual(data["feeLimitSat"], 0)
        self.assertEqual((await balance_msat(self, user_id)).held_msat, 2_000_000)

    async def test_an_invoice_that_failed_at_creation_cannot_be_paid(self):
        _payer, headers = await self.user(balance_sat=1_000)
        payee, _ = await self.user()
        _, failed_pr, _ = await insert_open_invoice(self, payee, state="failed")
        body = await self.assert_error(
            await self.post(headers, paymentRequest=failed_pr), 422, "UNPROCESSABLE"
        )
        self.assertEqual(body["error"]["message"], "This invoice cannot be paid")
        _, canceled_pr, _ = await insert_open_invoice(self, payee, state="canceled")
        await self.assert_error(await self.post(headers, paymentRequest=canceled_pr), 422, "INVOICE_EXPIRED")
        self.assertEqual(await count_rows(self, Payment), 0)

    async def test_our_hash_with_another_amount_is_refused(self):
        _payer, headers = await self.user(balance_sat=1_000)
        payee, _ = await self.user()
        invoice_id, _pr, payment_hash = await insert_open_invoice(self, payee, amount_sat=100)
        # Signed by our own node key, same hash, another amount: not the request we issued.
        other, _ = make_payment_request(
            amount_msat=90_000, payment_hash=payment_hash, privkey_hex=ALICE_PRIVKEY
        )
        await self.assert_error(await self.post(headers, paymentRequest=other), 422, "UNPROCESSABLE")
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Invoice).where(Invoice.id == invoice_id).values(payment_request=None)
            )
        same, _ = make_payment_request(
            amount_msat=100_000, payment_hash=payment_hash, privkey_hex=ALICE_PRIVKEY
        )
        # A row without its request (never the case once open) matches nothing either.
        await self.assert_error(await self.post(headers, paymentRequest=same), 422, "UNPROCESSABLE")
        self.assertEqual(await count_rows(self, Payment), 0)

    async def test_an_admin_may_pay_its_own_invoice_from_the_treasury(self):
        admin_id, admin_headers = await self.user(role="admin")
        async with self.sessions() as session, session.begin():
            await factories.fund_treasury(session, 1_000)
        invoice_id, pr, _ = await insert_open_invoice(self, admin_id, amount_sat=200)
        await self.assert_error(await self.post(admin_headers, paymentRequest=pr), 409, "CONFLICT")
        response = await self.post(admin_headers, paymentRequest=pr, fromTreasury=True)
        data = (await response.json())["data"]
        self.assertEqual((response.status, data["internal"], data["fromTreasury"]), (202, True, True))
        async with self.sessions() as session:
            payment = await session.get(Payment, uuid.UUID(data["id"]))
            treasury = await ledger.system_account_id(session, "treasury")
        self.assertEqual(
            (payment.account_id, payment.internal_invoice_id, payment.hold_msat),
            (treasury, invoice_id, 200_000),
        )
