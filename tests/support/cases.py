"""Base test cases: aiounittest AsyncTestCases with async set-up and tear-down.

aiounittest runs each ``async def test_*`` in a fresh event loop but has no async setUp, so
:class:`AsyncCase` runs ``asyncSetUp``/``asyncTearDown`` inside the same loop as the test.

- :class:`DbCase`: clean test database and Redis db per test; ``self.settings``, ``self.engine``,
  ``self.sessions``, ``self.redis``.
- :class:`ApiCase`: plus an aiohttp test client over ``create_app(self.settings)``: ``self.client``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiounittest
from aiohttp.test_utils import TestClient, TestServer
from aiounittest.helpers import async_test
from redis.asyncio import Redis

from shared.config import Settings
from shared.db.engine import create_engine, create_sessionmaker
from tests.support import env


class AsyncCase(aiounittest.AsyncTestCase):
    async def asyncSetUp(self) -> None:
        pass

    async def asyncTearDown(self) -> None:
        pass

    def __getattribute__(self, name: str) -> Any:
        attr = object.__getattribute__(self, name)
        if name.startswith("test_") and asyncio.iscoroutinefunction(attr):

            @functools.wraps(attr)
            async def run(*args: Any, **kwargs: Any) -> Any:
                await self.asyncSetUp()
                try:
                    return await attr(*args, **kwargs)
                finally:
                    await self.asyncTearDown()

            return async_test(run, loop=self.get_event_loop())
        return attr


class DbCase(AsyncCase):
    settings_overrides: dict[str, Any] = {}

    def make_settings(self, **overrides: Any) -> Settings:
        return env.make_settings(**{**self.settings_overrides, **overrides})

    async def asyncSetUp(self) -> None:
        self.settings = self.make_settings()
        await env.ensure_schema(self.settings.database_url)
        await env.reset_database(self.settings.database_url)
        self.redis = Redis.from_url(self.settings.redis_url)
        await self.redis.flushdb()
        self.engine = create_engine(self.settings, pool_size=5)
        self.sessions = create_sessionmaker(self.engine)

    async def asyncTearDown(self) -> None:
        await self.engine.dispose()
        await self.redis.aclose()


class ApiCase(DbCase):
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        from api_service.app import create_app

        self.app = create_app(self.settings)
        self.client = TestClient(TestServer(self.app))
        await self.client.start_server()

    async def asyncTearDown(self) -> None:
        await self.client.close()
        await super().asyncTearDown()


async def wait_for(
    condition: Callable[[], Awaitable[Any]],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        await asyncio.sleep(interval_s)
