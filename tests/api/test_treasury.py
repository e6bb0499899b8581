"""The treasury as a guarded account, its deposits, and audited adjustments (admin API)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from shared import ledger
from shared.db.models import Account, Adjustment, Invoice, LedgerEntry, Payment
from tests.api.test_wallet_invoices import WalletCase
from tests.api.test_wallet_support import balance_msat, count_rows
from tests.support.bolt11_factory import make_payment_request

TREASURY = "/api/v1/admin/treasury"
DEPOSITS = "/api/v1/admin/treasury/deposits"
ADJUSTMENTS = "/api/v1/admin/adjustments"


class TreasuryCase(WalletCase):
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.admin_id, self.admin = await self.user(role="admin")

    async def treasury(self) -> dict:
        response = await self.client.get(TREASURY, headers=self.admin)
        self.assertEqual(response.status, 200)
        return (await response.json())["data"]

    async def deposit(self, amount_sat: int, reason: str = "operator funds on the node") -> dict:
        response = await self.client.post(
            DEPOSITS, json={"amountSat": amount_sat, "reason": reason}, headers=self.admin
        )
        body = await response.json()
        self.assertEqual(response.status, 201, body)
        return body["data"]

    async def adjust(self, user_id: uuid.UUID, amount_sat: int, direction: str, reason: str = "goodwill"):
        return await self.client.post(
            ADJUSTMENTS,
            json={"userId": str(user_id), "amountSat": amount_sat, "direction": direction, "reason": reason},
            headers=self.admin,
        )

    async def ledger_rows(self) -> int:
        return await count_rows(self, LedgerEntry)


class TreasuryViewTest(TreasuryCase):
    async def test_admins_only(self):
        _, user = await self.user()
        await self.assert_error(await self.client.get(TREASURY, headers=user), 403, "FORBIDDEN")
        await self.assert_error(await self.client.get(TREASURY), 401, "UNAUTHORIZED")
        await self.assert_error(
            await self.client.post(DEPOSITS, json={"amountSat": 1, "reason": "x"}, headers=user),
            403,
            "FORBIDDEN",
        )

    async def test_starts_empty_and_a_deposit_funds_it(self):
        self.assertEqual(
            await self.treasury(),
            {
                "balanceSat": 0,
                "heldSat": 0,
                "availableSat": 0,
                "balanceMsat": 0,
                "heldMsat": 0,
                "availableMsat": 0,
            },
        )
        data = await self.deposit(5000, "opening float")
        self.assertEqual(
            (data["direction"], data["amountSat"], data["reason"], data["createdBy"], data["userId"]),
            ("deposit", 5000, "opening float", str(self.admin_id), None),
        )
        treasury = await self.treasury()
        self.assertEqual((treasury["balanceSat"], treasury["availableMsat"]), (5000, 5_000_000))
        async with self.sessions() as session:
            equity = await session.scalar(select(Account.balance_msat).where(Account.kind == "equity"))
            entries = (
                await session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "treasury_deposit"))
            ).all()
        self.assertEqual(equity, -5_000_000)
        self.assertEqual({e.adjustment_id for e in entries}, {uuid.UUID(data["id"])})
        listed = await (await self.client.get(DEPOSITS, headers=self.admin)).json()
        self.assertEqual([d["id"] for d in listed["data"]], [data["id"]])

    async def test_bad_deposits_are_400_and_change_nothing(self):
        for body in (
            {"amountSat": 100},
            {"amountSat": 100, "reason": ""},
            {"amountSat": 100, "reason": "   "},
            {"amountSat": 100, "reason": "x" * 501},
            {"amountSat": 0, "reason": "x"},
            {"amountSat": -5, "reason": "x"},
            {"amountSat": "100", "reason": "x"},
            {"amountSat": 100, "reason": "x", "extra": 1},
        ):
            with self.subTest(body=body):
                await self.assert_error(
                    await self.client.post(DEPOSITS, json=body, headers=self.admin), 400, "VALIDATION_ERROR"
                )
        self.assertEqual(await count_rows(self, Adjustment), 0)
        self.assertEqual(await self.ledger_rows(), 0)


class TreasuryGuardTest(TreasuryCase):
    async def test_treasury_payment_that_does_not_fit_is_422_and_changes_nothing(self):
        pr, _ = make_payment_request(amount_msat=1_000_000)
        body = {"paymentRequest": pr, "fromTreasury": True}
        await self.assert_error(
            await self.client.post("/api/v1/payments", json=body, headers=self.admin),
            422,
            "INSUFFICIENT_BALANCE",
        )
        self.assertEqual(await count_rows(self, Payment), 0)
        self.assertEqual((await self.treasury())["heldMsat"], 0)
        await self.deposit(1010)  # amount + the default fee reserve of 10 sat
        response = await self.client.post("/api/v1/payments", json=body, headers=self.admin)
        self.assertEqual(response.status, 202, await response.json())
        self.assertEqual((await self.treasury())["availableMsat"], 0)

    async def test_the_database_refuses_a_treasury_below_zero(self):
        from sqlalchemy.exc import IntegrityError

        from shared.errors import InsufficientBalance

        async with self.sessions() as session:
            treasury = await ledger.system_account_id(session, "treasury")
            external = await ledger.system_account_id(session, "external")
        # Whoever writes the SQL, balance - held >= 0 holds for the treasury as for a user.
        with self.assertRaises(InsufficientBalance):
            async with self.sessions() as session, session.begin():
                await ledger.post_transaction(
                    session, [ledger.Leg(treasury, -1), ledger.Leg(external, 1)], kind="test"
                )
        with self.assertRaises(IntegrityError):
            async with self.sessions() as session, session.begin():
                await session.execute(
                    Account.__table__.update().where(Account.id == treasury).values(held_msat=1)
                )

    async def test_treasury_invoice_is_admin_only_and_credits_the_treasury_account(self):
        _, user = await self.user()
        await self.assert_error(
            await self.client.post(
                "/api/v1/invoices", json={"amountSat": 10, "forTreasury": True}, headers=user
            ),
            403,
            "FORBIDDEN",
        )
        self.assertEqual(await count_rows(self, Invoice), 0)
        response = await self.client.post(
            "/api/v1/invoices", json={"amountSat": 10, "forTreasury": True}, headers=self.admin
        )
        data = (await response.json())["data"]
        self.assertTrue(data["forTreasury"])
        async with self.sessions() as session:
            invoice = await session.get(Invoice, uuid.UUID(data["id"]))
            treasury = await ledger.system_account_id(session, "treasury")
            own = await ledger.user_account_id(session, self.admin_id)
        self.assertEqual((invoice.account_id, invoice.for_treasury), (treasury, True))
        plain = await self.client.post("/api/v1/invoices", json={"amountSat": 10}, headers=self.admin)
        async with self.sessions() as session:
            invoice = await session.get(Invoice, uuid.UUID((await plain.json())["data"]["id"]))
        self.assertEqual((invoice.account_id, invoice.for_treasury), (own, False))


class AdjustmentTest(TreasuryCase):
    async def test_credit_moves_treasury_to_user_and_debit_moves_it_back(self):
        user_id, user = await self.user()
        await self.deposit(1000)
        response = await self.adjust(user_id, 300, "credit", "refund of a failed order #12")
        body = await response.json()
        self.assertEqual(response.status, 201, body)
        credit = body["data"]
        self.assertEqual(
            (credit["direction"], credit["amountSat"], credit["userId"], credit["createdBy"]),
            ("credit", 300, str(user_id), str(self.admin_id)),
        )
        self.assertEqual((await balance_msat(self, user_id)).balance_msat, 300_000)
        self.assertEqual((await self.treasury())["balanceSat"], 700)
        response = await self.adjust(user_id, 100, "debit", "correction")
        self.assertEqual(response.status, 201)
        self.assertEqual((await balance_msat(self, user_id)).balance_msat, 200_000)
        self.assertEqual((await self.treasury())["balanceSat"], 800)
        async with self.sessions() as session:
            self.assertEqual(await ledger.ledger_totals(session), (0, 0))
        # Both show in the user's own activity: direction by sign, memo = the reason.
        activity = await (await self.client.get("/api/v1/invoices", headers=user)).json()
        rows = [(r["kind"], r["direction"], r["amountSat"], r["memo"], r["state"]) for r in activity["data"]]
        self.assertEqual(
            rows,
            [
                ("adjustment", "outgoing", 100, "correction", "succeeded"),
                ("adjustment", "incoming", 300, "refund of a failed order #12", "settled"),
            ],
        )
        self.assertEqual(activity["pagination"]["totalItems"], 2)
        incoming = await (await self.client.get("/api/v1/invoices?direction=incoming", headers=user)).json()
        self.assertEqual([r["memo"] for r in incoming["data"]], ["refund of a failed order #12"])
        succeeded = await (await self.client.get("/api/v1/invoices?state=succeeded", headers=user)).json()
        self.assertEqual([r["memo"] for r in succeeded["data"]], ["correction"])

    async def test_credit_beyond_the_treasury_and_debit_beyond_the_available_balance_are_422(self):
        user_id, _ = await self.user(balance_sat=500)
        await self.deposit(100)
        before = await self.ledger_rows()
        await self.assert_error(await self.adjust(user_id, 101, "credit"), 422, "INSUFFICIENT_BALANCE")
        await self.assert_error(await self.adjust(user_id, 501, "debit"), 422, "INSUFFICIENT_BALANCE")
        # Held funds are not available: a debit cannot take money a payment in progress holds.
        async with self.sessions() as session, session.begin():
            await ledger.place_hold(session, await ledger.user_account_id(session, user_id), 400_000)
        await self.assert_error(await self.adjust(user_id, 101, "debit"), 422, "INSUFFICIENT_BALANCE")
        self.assertEqual(await self.ledger_rows(), before)
        self.assertEqual(await count_rows(self, Adjustment, kind="credit"), 0)
        self.assertEqual(await count_rows(self, Adjustment, kind="debit"), 0)
        self.assertEqual((await self.adjust(user_id, 100, "debit")).status, 201)

    async def test_bad_adjustments_are_rejected(self):
        user_id, user = await self.user()
        await self.deposit(1000)
        await self.assert_error(await self.adjust(uuid.uuid4(), 1, "credit"), 404, "NOT_FOUND")
        for body in (
            {"userId": str(user_id), "amountSat": 1, "direction": "credit"},
            {"userId": str(user_id), "amountSat": 1, "direction": "credit", "reason": ""},
            {"userId": str(user_id), "amountSat": 1, "direction": "sideways", "reason": "x"},
            {"userId": "not-a-uuid", "amountSat": 1, "direction": "credit", "reason": "x"},
            {"userId": str(user_id), "amountSat": 0, "direction": "credit", "reason": "x"},
            {"userId": str(user_id), "amountSat": 1.5, "direction": "credit", "reason": "x"},
        ):
            with self.subTest(body=body):
                await self.assert_error(
                    await self.client.post(ADJUSTMENTS, json=body, headers=self.admin),
                    400,
                    "VALIDATION_ERROR",
                )
        response = await self.client.post(
            ADJUSTMENTS,
            json={"userId": str(user_id), "amountSat": 1, "direction": "credit", "reason": "x"},
            headers=user,
        )
        await self.assert_error(response, 403, "FORBIDDEN")
        self.assertEqual(await count_rows(self, Adjustment, kind="credit"), 0)

    async def test_list_shows_who_when_user_amount_direction_reason_paginated(self):
        alice, _ = await self.user()
        bob, _ = await self.user()
        await self.deposit(1000)
        for user_id, amount in ((alice, 1), (bob, 2), (alice, 3)):
            self.assertEqual((await self.adjust(user_id, amount, "credit", f"r{amount}")).status, 201)
        page = await (await self.client.get(f"{ADJUSTMENTS}?pageSize=2", headers=self.admin)).json()
        self.assertEqual([a["amountSat"] for a in page["data"]], [3, 2])
        self.assertEqual(page["pagination"], {"page": 1, "pageSize": 2, "totalItems": 3, "totalPages": 2})
        first = page["data"][0]
        self.assertEqual(
            set(first),
            {
                "id",
                "direction",
                "userId",
                "username",
                "amountSat",
                "amountMsat",
                "reason",
                "createdBy",
                "createdByUsername",
                "createdAt",
            },
        )
        self.assertIsNotNone(first["username"])
        self.assertIsNotNone(first["createdByUsername"])
        only_alice = await (await self.client.get(f"{ADJUSTMENTS}?userId={alice}", headers=self.admin)).json()
        self.assertEqual([a["reason"] for a in only_alice["data"]], ["r3", "r1"])
        await self.assert_error(
            await self.client.get(f"{ADJUSTMENTS}?direction=up", headers=self.admin), 400, "VALIDATION_ERROR"
        )

    async def test_idempotency_key_replays_and_refuses_another_body(self):
        user_id, _ = await self.user()
        await self.deposit(1000)
        headers = {**self.admin, "Idempotency-Key": "adj-1"}
        body = {"userId": str(user_id), "amountSat": 10, "direction": "credit", "reason": "once"}
        first = await self.client.post(ADJUSTMENTS, json=body, headers=headers)
        again = await self.client.post(ADJUSTMENTS, json=body, headers=headers)
        self.assertEqual((first.status, again.status), (201, 201))
        self.assertEqual((await first.json())["data"], (await again.json())["data"])
        self.assertEqual((await balance_msat(self, user_id)).balance_msat, 10_000)
        other = await self.client.post(ADJUSTMENTS, json={**body, "amountSat": 11}, headers=headers)
        await self.assert_error(other, 409, "IDEMPOTENCY_CONFLICT")
        self.assertEqual(await count_rows(self, Adjustment, kind="credit"), 1)
