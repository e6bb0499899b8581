"""GET /metrics on the API port: the HTTP counters move with real requests, labelled by route template."""

from __future__ import annotations

import uuid

from tests.support.cases import ApiCase
from tests.support.factories import auth_headers, create_user
from tests.support.metrics import Scrape

REQUESTS = "lightning_wallet_http_requests_total"
DURATION_COUNT = "lightning_wallet_http_request_duration_seconds_count"


class MetricsCase(ApiCase):
    def scrape_headers(self) -> dict[str, str]:
        token = self.settings.metrics_token
        return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}

    async def scrape(self) -> Scrape:
        response = await self.client.get("/metrics", headers=self.scrape_headers())
        self.assertEqual(response.status, 200, await response.text())
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain"))
        return Scrape(await response.text())


class HttpMetricsTest(MetricsCase):
    async def test_counters_move_with_requests_and_label_route_templates(self):
        user_id = await create_user(self.sessions)
        headers = auth_headers(self.settings, user_id)
        before = await self.scrape()
        ids = [uuid.uuid4() for _ in range(3)]
        for invoice_id in ids:  # three raw paths, one template
            self.assertEqual(
                (await self.client.get(f"/api/v1/invoices/{invoice_id}", headers=headers)).status, 404
            )
        self.assertEqual((await self.client.get("/api/v1/wallet/balance", headers=headers)).status, 200)
        self.assertEqual((await self.client.get("/api/v1/wallet/balance")).status, 401)
        self.assertEqual((await self.client.get(f"/no/such/{ids[0]}")).status, 404)
        self.assertEqual((await self.client.post("/healthz")).status, 405)
        self.assertEqual((await self.client.request("PROPFIND", "/healthz")).status, 405)

        after = await self.scrape()

        def delta(**labels: str) -> float:
            return after.value(REQUESTS, **labels) - before.value(REQUESTS, **labels)

        template = "/api/v1/invoices/{id}"
        self.assertEqual(delta(method="GET", route=template, status="404"), 3)
        self.assertEqual(after.value(DURATION_COUNT, method="GET", route=template), 3)
        self.assertEqual(delta(method="GET", route="/api/v1/wallet/balance", status="200"), 1)
        self.assertEqual(delta(method="GET", route="/api/v1/wallet/balance", status="401"), 1)
        self.assertEqual(delta(method="GET", route="unmatched", status="404"), 1)
        self.assertEqual(delta(method="POST", route="unmatched", status="405"), 1)
        self.assertEqual(delta(method="OTHER", route="unmatched", status="405"), 1)
        # the first scrape itself is counted by the time of the second
        self.assertEqual(delta(method="GET", route="/metrics", status="200"), 1)
        routes = after.label_values(REQUESTS, "route")
        self.assertIn(template, routes)
        for route in routes:  # never a raw path: no id, no hash
            self.assertTrue(route == "unmatched" or route.startswith("/"), route)
            self.assertNotIn(str(ids[0]), route)
        self.assertLessEqual(after.label_values(REQUESTS, "method"), {"GET", "POST", "HEAD", "OTHER"})
        buckets = after.matching(
            "lightning_wallet_http_request_duration_seconds_bucket", method="GET", route=template, le="+Inf"
        )
        self.assertEqual([b.value for b in buckets], [3])

    async def test_a_token_is_required_when_one_is_set(self):
        self.assertIsNotNone(self.settings.metrics_token)  # the test settings are outside development
        token = self.settings.metrics_token.get_secret_value()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}, {"X-Token": token}):
            response = await self.client.get("/metrics", headers=headers)
            self.assertEqual(response.status, 401, headers)
            body = await response.json()
            self.assertEqual(body["error"]["code"], "UNAUTHORIZED")
            self.assertNotIn("lightning_wallet_", await response.text())
        response = await self.client.get("/metrics", headers={"Authorization": f"bearer {token}"})
        self.assertEqual(response.status, 200)
        self.assertIn("lightning_wallet_http_requests_total", await response.text())

    async def test_each_app_counts_its_own_requests(self):
        scrape = await self.scrape()
        self.assertEqual(scrape.value(REQUESTS), 0)  # a fresh app: nothing counted before this scrape
        self.assertGreater(scrape.value("process_resident_memory_bytes"), 0)  # process collectors too


class OpenInDevelopmentTest(MetricsCase):
    settings_overrides = {"environment": "development", "metrics_token": None}

    async def test_metrics_are_open_without_a_token_in_development(self):
        self.assertIsNone(self.settings.metrics_token)
        await self.client.get("/healthz")
        scrape = await self.scrape()
        self.assertEqual(scrape.value(REQUESTS, method="GET", route="/healthz", status="200"), 1)
