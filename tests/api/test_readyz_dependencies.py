"""/readyz tells which dependency is down, with a real Redis that is stopped while the API runs."""

import asyncio
import shutil
import tempfile
import uuid

from aiohttp.test_utils import TestClient, TestServer

from api_service.app import create_app
from devtools.netutil import free_port
from devtools.private_postgres import start_private_postgres
from devtools.private_redis import start_private_redis
from tests.support import factories
from tests.support.cases import DbCase


class ReadyzDependenciesTest(DbCase):
    async def serve(self, settings) -> TestClient:
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        return client

    async def test_stopped_redis_is_reported_as_503(self):
        run_dir = tempfile.mkdtemp(prefix="lw-readyz-")
        url, stop = await asyncio.to_thread(start_private_redis, run_dir)
        try:
            client = await self.serve(self.make_settings(redis_url=url))
            try:
                response = await client.get("/readyz")
                self.assertEqual(response.status, 200)
                await asyncio.to_thread(stop)
                response = await client.get("/readyz")
                body = await response.json()
                self.assertEqual(response.status, 503)
                self.assertEqual(body["error"]["code"], "UNAVAILABLE")
                self.assertEqual(body["error"]["details"], {"postgres": "ok", "redis": "unavailable"})
                self.assertIn("redis", body["error"]["message"])
                # Liveness is not readiness: the process still answers.
                self.assertEqual((await client.get("/healthz")).status, 200)
            finally:
                await client.close()
        finally:
            await asyncio.to_thread(stop)
            shutil.rmtree(run_dir, ignore_errors=True)

    async def test_unreachable_postgres_is_reported_as_503(self):
        dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
        client = await self.serve(self.make_settings(database_url=dead))
        try:
            response = await client.get("/readyz")
            body = await response.json()
            self.assertEqual(response.status, 503)
            self.assertEqual(body["error"]["details"], {"postgres": "unavailable", "redis": "ok"})
        finally:
            await client.close()

    async def test_postgres_lost_under_a_running_api_gives_503_not_500(self):
        run_dir = tempfile.mkdtemp(prefix="lw-pg-outage-")
        url, stop = await asyncio.to_thread(start_private_postgres, run_dir)
        try:
            settings = self.make_settings(database_url=url)
            client = await self.serve(settings)
            try:
                # Warm the pool, then take the server away under it.
                self.assertEqual((await client.get("/readyz")).status, 200)
                await asyncio.to_thread(stop)
                headers = factories.auth_headers(settings, uuid.uuid4())
                for path in ("/api/v1/users/me", "/api/v1/wallet/balance"):
                    response = await client.get(path, headers=headers)
                    body = await response.json()
                    self.assertEqual(response.status, 503, body)
                    self.assertEqual(body["error"]["code"], "UNAVAILABLE")
                    self.assertEqual(response.headers["Retry-After"], "1")
            finally:
                await client.close()
        finally:
            await asyncio.to_thread(stop)
            shutil.rmtree(run_dir, ignore_errors=True)
