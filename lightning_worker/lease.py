"""A Redis lease: at most one holder at a time, taken over soon after its holder dies.

``SET key token NX PX ttl`` acquires; renewal and release are compare-and-set Lua scripts, so a
holder that lost the lease (expired while it was paused) can neither extend nor delete the new
holder's lease. The lease only saves work: everything done under it is idempotent, so a brief
overlap of two holders (a paused process waking up) cannot credit anything twice.

The token is ``<pid>:<random>``: an operator (or the soak, which freezes the holder on purpose) can
tell which process holds the lease, and a restarted worker, which may be given the same pid again,
still gets a token of its own.
"""

from __future__ import annotations

import os
import secrets

from redis.asyncio import Redis

SETTLEMENT_LEASE_KEY = "lw:lease:settlement"

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease:
    def __init__(self, redis: Redis, key: str = SETTLEMENT_LEASE_KEY, *, ttl_s: float = 5.0) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = max(100, int(ttl_s * 1000))
        self.token = f"{os.getpid()}:{secrets.token_hex(12)}"

    @property
    def renew_interval_s(self) -> float:
        return self.ttl_ms / 3000

    async def acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        return bool(await self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    async def release(self) -> bool:
        return bool(await self.redis.eval(_RELEASE, 1, self.key, self.token))

    async def holder(self) -> str | None:
        value = await self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


def holder_pid(token: str | None) -> int | None:
    """The process id in a lease token (``<pid>:<random>``), or None for no or another kind of token."""
    pid, sep, _ = (token or "").partition(":")
    return int(pid) if sep and pid.isdigit() else None
