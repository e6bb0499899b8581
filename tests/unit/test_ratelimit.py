"""The Redis fixed-window limiter: counting, the window, atomicity under concurrency, Redis down."""

import asyncio

import aiounittest
from redis.asyncio import Redis

from api_service import ratelimit
from shared.errors import RateLimited, ServiceUnavailable
from tests.support import env
from tests.support.cases import wait_for


class RateLimitTest(aiounittest.AsyncTestCase):
    async def redis(self):
        client = Redis.from_url(env.make_settings().redis_url)
        await client.flushdb()
        return client

    async def test_limit_then_429_with_retry_after(self):
        redis = await self.redis()
        try:
            for _ in range(3):
                await ratelimit.hit(redis, "t:a", limit=3, window_s=60)
            with self.assertRaises(RateLimited) as caught:
                await ratelimit.hit(redis, "t:a", limit=3, window_s=60)
            self.assertTrue(1 <= caught.exception.retry_after_s <= 60)
            self.assertEqual(caught.exception.status, 429)
            self.assertEqual(caught.exception.code, "RATE_LIMITED")
            ttl = await redis.pttl(ratelimit.PREFIX + "t:a")
            self.assertTrue(0 < ttl <= 60_000)
            # Another key has its own count.
            await ratelimit.hit(redis, "t:b", limit=3, window_s=60)
        finally:
            await redis.aclose()

    async def test_the_window_expires(self):
        redis = await self.redis()
        try:
            # A window no pause of a busy machine outlives; then it runs out on purpose.
            await ratelimit.hit(redis, "t:w", limit=1, window_s=30)
            with self.assertRaises(RateLimited) as caught:
                await ratelimit.hit(redis, "t:w", limit=1, window_s=30)
            self.assertEqual(caught.exception.retry_after_s, 30)
            self.assertGreater(await redis.pttl(ratelimit.PREFIX + "t:w"), 0)
            await redis.pexpire(ratelimit.PREFIX + "t:w", 1)

            async def expired():
                return not await redis.exists(ratelimit.PREFIX + "t:w")

            await wait_for(expired, timeout_s=30, message="the window to run out")
            await ratelimit.hit(redis, "t:w", limit=1, window_s=30)
        finally:
            await redis.aclose()

    async def test_a_counter_without_expiry_gets_one(self):
        redis = await self.redis()
        try:
            await redis.set(ratelimit.PREFIX + "t:stuck", 100)  # e.g. left by an older, non-atomic limiter
            with self.assertRaises(RateLimited):
                await ratelimit.hit(redis, "t:stuck", limit=5, window_s=30)
            self.assertGreater(await redis.pttl(ratelimit.PREFIX + "t:stuck"), 0)
        finally:
            await redis.aclose()

    async def test_concurrent_hits_are_counted_exactly(self):
        redis = await self.redis()
        try:
            results = await asyncio.gather(
                *(ratelimit.hit(redis, "t:c", limit=10, window_s=60) for _ in range(50)),
                return_exceptions=True,
            )
            self.assertEqual(sum(r is None for r in results), 10)
            self.assertEqual(sum(isinstance(r, RateLimited) for r in results), 40)
        finally:
            await redis.aclose()

    async def test_reset(self):
        redis = await self.redis()
        try:
            await ratelimit.hit(redis, "t:r", limit=1, window_s=60)
            await ratelimit.reset(redis, "t:r")
            await ratelimit.hit(redis, "t:r", limit=1, window_s=60)
        finally:
            await redis.aclose()

    async def test_redis_down_refuses_with_503(self):
        from devtools.netutil import free_port

        redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
        try:
            with self.assertRaises(ServiceUnavailable):
                await ratelimit.hit(redis, "t:down", limit=1, window_s=60)
        finally:
            await redis.aclose()

    async def test_bad_arguments(self):
        redis = await self.redis()
        try:
            for limit, window in ((0, 60), (1, 0)):
                with self.assertRaises(ValueError):
                    await ratelimit.hit(redis, "t:x", limit=limit, window_s=window)
        finally:
            await redis.aclose()
