"""GET /api/v1/admin/reconciliation and the anomalies an operator resolves."""

from __future__ import annotations

import json

from sqlalchemy import text

from shared import anomalies
from tests.api.test_wallet_invoices import WalletCase

URL = "/api/v1/admin/reconciliation"
ANOMALIES = "/api/v1/admin/anomalies"


class ReconciliationApiTest(WalletCase):
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.admin_id, self.admin = await self.user(role="admin")

    async def plant_run(self, status: str, mismatches: list[dict]) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO reconciliation_runs (status, liabilities_msat, treasury_msat,"
                    " node_local_balance_msat, surplus_msat, window_s, mismatches, duration_ms)"
                    " VALUES (:status, 1500, 2000, 9999, 6499, 86400, CAST(:m AS jsonb), 12)"
                ),
                {"status": status, "m": json.dumps(mismatches)},
            )

    async def plant_anomaly(self, subject: str) -> int:
        async with self.sessions() as session, session.begin():
            return await anomalies.record_anomaly(
                session, anomalies.SETTLEMENT_UNKNOWN_INVOICE, subject, f"planted {subject}", details={"n": 1}
            )

    async def test_admins_only_and_404_before_the_first_run(self):
        _, user = await self.user()
        await self.assert_error(await self.client.get(URL, headers=user), 403, "FORBIDDEN")
        await self.assert_error(await self.client.get(URL, headers=self.admin), 404, "NOT_FOUND")

    async def test_the_latest_run_and_the_open_anomalies(self):
        await self.plant_run("ok", [])
        mismatch = {"kind": "invoice_settled_at_node_not_credited", "message": "m", "paymentHash": "ab"}
        await self.plant_run("mismatch", [mismatch])
        anomaly_id = await self.plant_anomaly("x")
        body = await (await self.client.get(URL, headers=self.admin)).json()
        data = body["data"]
        self.assertEqual(
            (data["status"], data["liabilitiesSat"], data["treasurySat"], data["nodeLocalBalanceSat"]),
            ("mismatch", 1, 2, 9),
        )
        self.assertEqual((data["surplusSat"], data["surplusMsat"]), (6, 6499))
        self.assertEqual(data["mismatches"], [mismatch])
        self.assertEqual(
            [(a["id"], a["message"], a["details"]) for a in data["anomalies"]],
            [(anomaly_id, "planted x", {"n": 1})],
        )
        self.assertIn("checkedAt", data)

    async def test_resolving_an_anomaly_keeps_who_and_why(self):
        first = await self.plant_anomaly("a")
        await self.plant_anomaly("b")
        url = f"{ANOMALIES}/{first}/resolve"
        await self.assert_error(
            await self.client.post(url, json={}, headers=self.admin), 400, "VALIDATION_ERROR"
        )
        response = await self.client.post(
            url, json={"resolution": "operator invoice on the node"}, headers=self.admin
        )
        data = (await response.json())["data"]
        self.assertEqual(response.status, 200)
        self.assertEqual(
            (data["resolvedBy"], data["resolution"]), (str(self.admin_id), "operator invoice on the node")
        )
        await self.assert_error(
            await self.client.post(url, json={"resolution": "again"}, headers=self.admin), 404, "NOT_FOUND"
        )
        for bad in ("0", "-1", "abc", "99999999999999999999"):
            await self.assert_error(
                await self.client.post(
                    f"{ANOMALIES}/{bad}/resolve", json={"resolution": "x"}, headers=self.admin
                ),
                404,
                "NOT_FOUND",
            )
        open_ = await (await self.client.get(ANOMALIES, headers=self.admin)).json()
        resolved = await (await self.client.get(f"{ANOMALIES}?status=resolved", headers=self.admin)).json()
        everything = await (await self.client.get(f"{ANOMALIES}?status=all", headers=self.admin)).json()
        self.assertEqual([a["message"] for a in open_["data"]], ["planted b"])
        self.assertEqual([a["id"] for a in resolved["data"]], [first])
        self.assertEqual(everything["pagination"]["totalItems"], 2)
        await self.assert_error(
            await self.client.get(f"{ANOMALIES}?status=closed", headers=self.admin), 400, "VALIDATION_ERROR"
        )
