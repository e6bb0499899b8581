"""Concurrency end to end (API + worker + lnd_simnet processes): money never appears, disappears or
overdraws under parallel requests."""

from __future__ import annotations

import asyncio
import os

import aiohttp
from sqlalchemy import select

from shared import ledger
from shared.db.models import Payment
from tests.e2e.test_lightning_flow import Api, wallet_stack
from tests.support.cases import DbCase
from tests.support.factories import auth_headers, create_user

FINAL = {"succeeded", "failed"}


class WalletConcurrencyTest(DbCase):
    async def test_ten_users_paying_each_other_internally_in_parallel(self):
        users = [await create_user(self.sessions, balance_sat=1_000) for _ in range(10)]
        headers = [auth_headers(self.settings, user_id) for user_id in users]
        async with wallet_stack(self) as (_net, base_url), aiohttp.ClientSession() as http:
            api = Api(http, base_url)
            # user i asks for 100 + i sat
            created = await asyncio.gather(
                *(api.call("POST", "/api/v1/invoices", headers[i], {"amountSat": 100 + i}) for i in range(10))
            )
            invoices = []
            for i, (status, body) in enumerate(created):
                self.assertIn(status, (201, 202), body)
                data = body["data"]
                if data["state"] != "open":
                    data = await api.wait_state(
                        f"/api/v1/invoices/{data['id']}", headers[i], "state", {"open"}
                    )
                invoices.append(data)
            # user i pays user i+1, all at once
            paid = await asyncio.gather(
                *(
                    api.call(
                        "POST",
                        "/api/v1/payments",
                        headers[i],
                        {"paymentRequest": invoices[(i + 1) % 10]["paymentRequest"]},
                    )
                    for i in range(10)
                )
            )
            payments = []
            for i, (status, body) in enumerate(paid):
                self.assertIn(status, (200, 202), body)
                self.assertTrue(body["data"]["internal"])
                payments.append(
                    await api.wait_state(
                        f"/api/v1/payments/{body['data']['id']}", headers[i], "status", FINAL
                    )
                )
            self.assertEqual({p["status"] for p in payments}, {"succeeded"}, payments)
            self.assertEqual({p["feeMsat"] for p in payments}, {0})
            for i in range(10):
                status, body = await api.call("GET", "/api/v1/wallet/balance", headers[i])
                # received 100 + i, paid 100 + (i + 1) % 10
                expected = 1_000 + (100 + i) - (100 + (i + 1) % 10)
                self.assertEqual((body["data"]["balanceSat"], body["data"]["heldSat"]), (expected, 0))
                status, body = await api.call("GET", f"/api/v1/invoices/{invoices[i]['id']}", headers[i])
                self.assertEqual(body["data"]["state"], "settled")
        async with self.sessions() as session:
            self.assertEqual(await ledger.ledger_totals(session), (0, 0))

    async def test_twenty_parallel_external_payments_exceeding_the_balance(self):
        user_id = await create_user(self.sessions, balance_sat=10_000)
        headers = auth_headers(self.settings, user_id)
        async with wallet_stack(self) as (net, base_url), aiohttp.ClientSession() as http:
            api = Api(http, base_url)
            # Over Bob's gRPC, not 20 CLI processes at once: they would only compete for the CPU.
            bob = net.client("bob")
            bob_invoices = [
                await bob.add_invoice(value_msat=1_000_000, memo="", expiry_s=3600, preimage=os.urandom(32))
                for _ in range(20)
            ]
            # each holds 1000 + max(1%, 10 sat) = 1010 sat: 9 fit in 10 000, the 10th does not
            results = await asyncio.gather(
                *(
                    api.call("POST", "/api/v1/payments", headers, {"paymentRequest": inv.payment_request})
                    for inv in bob_invoices
                )
            )
            accepted = [body["data"] for status, body in results if status in (200, 202)]
            refused = [body["error"]["code"] for status, body in results if status not in (200, 202)]
            self.assertEqual(len(accepted), 9, results)
            self.assertEqual(set(refused), {"INSUFFICIENT_BALANCE"})
            final = [
                await api.wait_state(f"/api/v1/payments/{p['id']}", headers, "status", FINAL)
                for p in accepted
            ]
            succeeded = [p for p in final if p["status"] == "succeeded"]
            self.assertEqual(len(succeeded), 9, final)
            spent_msat = sum(p["amountMsat"] + p["feeMsat"] for p in succeeded)
            self.assertLessEqual(spent_msat, 10_000_000)
            status, body = await api.call("GET", "/api/v1/wallet/balance", headers)
            self.assertEqual(status, 200, body)
            self.assertEqual(body["data"]["heldMsat"], 0)
            self.assertEqual(body["data"]["balanceMsat"], 10_000_000 - spent_msat)
            self.assertGreaterEqual(body["data"]["availableMsat"], 0)
        async with self.sessions() as session:
            self.assertEqual(await ledger.ledger_totals(session), (0, 0))
            self.assertEqual(len((await session.scalars(select(Payment))).all()), 9)
