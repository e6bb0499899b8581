"""The error middleware: every failure leaves in the envelope, none of bad input is a 500."""

import json

from aiohttp.test_utils import TestClient, TestServer

from api_service.app import create_app
from tests.support.cases import ApiCase, DbCase

REGISTER = "/api/v1/auth/register"


async def envelope_error(test, response, status=None, code=None):
    if status is not None:
        test.assertEqual(response.status, status, await response.text())
    test.assertLess(response.status, 500, await response.text())
    test.assertEqual(response.content_type, "application/json")
    body = await response.json()
    test.assertEqual(set(body), {"success", "error", "meta"})
    test.assertIs(body["success"], False)
    test.assertRegex(body["error"]["code"], r"^[A-Z_]+$")
    test.assertIsInstance(body["error"]["message"], str)
    test.assertEqual(set(body["meta"]), {"requestId", "timestamp"})
    if code is not None:
        test.assertEqual(body["error"]["code"], code)
    return body["error"]


class ErrorEnvelopeTest(ApiCase):
    async def test_unknown_route_and_wrong_method(self):
        await envelope_error(self, await self.client.get("/api/v1/nothing"), 404, "NOT_FOUND")
        response = await self.client.delete("/api/v1/auth/login")
        await envelope_error(self, response, 405, "METHOD_NOT_ALLOWED")
        self.assertIn("POST", response.headers["Allow"])

    async def test_two_megabyte_body_is_413_before_reading(self):
        body = b'{"username": "' + b"a" * (2 * 1024 * 1024) + b'", "password": "x"}'
        response = await self.client.post(REGISTER, data=body, headers={"Content-Type": "application/json"})
        error = await envelope_error(self, response, 413, "PAYLOAD_TOO_LARGE")
        self.assertEqual(error["details"], {"maxBytes": self.settings.max_body_bytes})

    async def test_chunked_body_over_the_limit_is_413(self):
        async def chunks():
            for _ in range(40):
                yield b"x" * 4096

        response = await self.client.post(
            REGISTER, data=chunks(), headers={"Content-Type": "application/json"}
        )
        self.assertNotIn("Content-Length", response.request_info.headers)
        await envelope_error(self, response, 413, "PAYLOAD_TOO_LARGE")

    async def test_body_just_under_the_limit_is_read(self):
        padding = "a" * (self.settings.max_body_bytes - 200)
        body = json.dumps({"username": "ok_user", "password": "correct horse", "adminKey": padding})
        response = await self.client.post(REGISTER, data=body, headers={"Content-Type": "application/json"})
        await envelope_error(self, response, 400, "VALIDATION_ERROR")  # adminKey too long, but parsed

    async def test_invalid_json_and_non_object_bodies(self):
        for raw in (b"{", b"{'a': 1}", b"\xff\xfe", b"nul", b"[]", b'"text"', b"1", b"null", b""):
            response = await self.client.post(
                REGISTER, data=raw, headers={"Content-Type": "application/json"}
            )
            await envelope_error(self, response, 400, "VALIDATION_ERROR")

    async def test_wrong_content_type_is_415(self):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            response = await self.client.post(
                REGISTER, data=b'{"username": "a"}', headers={"Content-Type": content_type}
            )
            await envelope_error(self, response, 415, "UNSUPPORTED_MEDIA_TYPE")
        response = await self.client.post(
            REGISTER,
            data=json.dumps({"username": "okname", "password": "correct horse"}),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        self.assertEqual(response.status, 201)

    async def test_deeply_nested_json_is_not_a_500(self):
        raw = b"[" * 100_000 + b"]" * 100_000
        response = await self.client.post(
            REGISTER, data=raw[:60_000], headers={"Content-Type": "application/json"}
        )
        await envelope_error(self, response, 400)


class UnexpectedErrorTest(DbCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        app = create_app(self.settings)

        async def boom(request):
            raise RuntimeError("secret internals: password=hunter2")

        app.router.add_get("/boom", boom)
        self.client = TestClient(TestServer(app))
        await self.client.start_server()

    async def asyncTearDown(self):
        await self.client.close()
        await super().asyncTearDown()

    async def test_500_has_an_error_id_that_is_logged_and_no_internals(self):
        with self.assertLogs("api", level="ERROR") as logs:
            response = await self.client.get("/boom")
        self.assertEqual(response.status, 500)
        text = await response.text()
        self.assertNotIn("hunter2", text)
        self.assertNotIn("RuntimeError", text)
        self.assertNotIn("Traceback", text)
        body = json.loads(text)
        self.assertEqual(body["error"]["code"], "INTERNAL_ERROR")
        error_id = body["error"]["details"]["errorId"]
        self.assertRegex(error_id, r"^[0-9a-f]{32}$")
        self.assertEqual(logs.records[0].error_id, error_id)
