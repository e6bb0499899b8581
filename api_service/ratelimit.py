"""Fixed-window rate limits in Redis, shared by every API replica.

Usage (any handler or service)::

    from api_service import ratelimit
    await ratelimit.hit(redis, f"payments:user:{user_id}", limit=settings.rate_limit_payments_per_user,
                        window_s=60)

:func:`hit` counts one event under ``key`` and raises :class:`shared.errors.RateLimited` (429
``RATE_LIMITED``; the error middleware sets ``Retry-After`` to the seconds left in the window) when
the event is over ``limit`` for the current window. A Redis failure raises ServiceUnavailable (503):
for a service guarding money, a limiter that cannot count refuses rather than lets everything through.

The counter and its expiry are set by one Lua script, so they are atomic: a crash between INCR and
EXPIRE cannot leave a counter that never expires, and concurrent callers on any replica share it.
Keys live under ``ratelimit:``.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import RateLimited, ServiceUnavailable

PREFIX = "ratelimit:"

# KEYS[1] counter; ARGV[1] window in ms. Returns {count, ms left in the window}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


async def hit(redis: Redis, key: str, limit: int, window_s: int) -> None:
    """Count one event for ``key``; raise RateLimited if more than ``limit`` happened in the window."""
    if limit < 1 or window_s < 1:
        raise ValueError("limit and window_s must be positive")
    try:
        count, ttl_ms = await redis.eval(_HIT, 1, PREFIX + key, window_s * 1000)
    except RedisError:
        raise ServiceUnavailable("Rate limiter unavailable") from None
    if int(count) > limit:
        retry_after_s = -(-int(ttl_ms) // 1000)
        raise RateLimited(retry_after_s=retry_after_s, details={"limit": limit, "windowS": window_s})


async def reset(redis: Redis, key: str) -> None:
    """Forget the count of ``key`` (tests, or an operator lifting a limit)."""
    await redis.delete(PREFIX + key)
