from tests.support.cases import ApiCase


class HealthTest(ApiCase):
    async def test_healthz_answers(self):
        response = await self.client.get("/healthz")
        self.assertEqual(response.status, 200)
        body = await response.json()
        self.assertTrue(body["success"])
        self.assertEqual(body["data"], {"status": "ok"})
        self.assertEqual(body["meta"]["requestId"], response.headers["X-Request-Id"])

    async def test_readyz_reports_both_dependencies(self):
        response = await self.client.get("/readyz")
        self.assertEqual(response.status, 200)
        self.assertEqual((await response.json())["data"], {"postgres": "ok", "redis": "ok"})

    async def test_request_id_is_echoed_when_well_formed(self):
        response = await self.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
        self.assertEqual(response.headers["X-Request-Id"], "abc-123")
        response = await self.client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
        self.assertNotEqual(response.headers["X-Request-Id"], "bad id\twith spaces")

    async def test_unknown_route_and_wrong_method_use_the_envelope(self):
        response = await self.client.get("/no/such/route")
        self.assertEqual(response.status, 404)
        self.assertEqual((await response.json())["error"]["code"], "NOT_FOUND")
        response = await self.client.post("/healthz")
        self.assertEqual(response.status, 405)
        self.assertEqual((await response.json())["error"]["code"], "METHOD_NOT_ALLOWED")
