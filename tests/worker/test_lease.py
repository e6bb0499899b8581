from __future__ import annotations

import asyncio
import os

from lightning_worker.lease import RedisLease, holder_pid
from lightning_worker.subscription import SettlementSubscription
from tests.support.cases import wait_for
from tests.worker.helpers import WorkerCase

KEY = "lw:test:lease"
# Long enough that no pause of a busy machine outlives it by accident; tests that need a lease to
# lapse make it lapse (PEXPIRE), after checking that it was set with its TTL.
TTL_S = 30


def count_results(lease: RedisLease, method: str) -> list:
    """Record the result of every call of ``lease.<method>`` (the subscription calls it itself)."""
    results: list = []
    real = getattr(lease, method)

    async def counted(*args):
        result = await real(*args)
        results.append(result)
        return result

    setattr(lease, method, counted)
    return results


class LeaseTests(WorkerCase):
    async def lapse(self, key: str) -> None:
        """The holder's TTL runs out now (as if it had stopped renewing that long ago)."""
        self.assertGreater(await self.redis.pttl(key), 0)  # it was set with a TTL
        await self.redis.pexpire(key, 1)

    async def test_only_one_contender_holds_it(self) -> None:
        first, second = RedisLease(self.redis, KEY, ttl_s=TTL_S), RedisLease(self.redis, KEY, ttl_s=TTL_S)
        self.assertTrue(await first.acquire())
        self.assertFalse(await second.acquire())
        self.assertTrue(await first.renew())
        self.assertFalse(await second.renew())  # compare-and-set: not the holder
        self.assertFalse(await second.release())
        self.assertEqual(await second.holder(), first.token)

    async def test_the_token_names_the_holding_process(self) -> None:
        # The soak freezes the holder (SIGSTOP) by reading its pid from the lease; a restarted worker
        # that gets the same pid again still has a token of its own.
        first, second = RedisLease(self.redis, KEY, ttl_s=TTL_S), RedisLease(self.redis, KEY, ttl_s=TTL_S)
        self.assertTrue(await first.acquire())
        self.assertEqual(holder_pid(await second.holder()), os.getpid())
        self.assertNotEqual(first.token, second.token)
        self.assertIsNone(holder_pid(None))
        self.assertIsNone(holder_pid("0123abcd"))  # a token of the old kind

    async def test_taken_over_after_the_holder_stops_renewing(self) -> None:
        dead, alive = RedisLease(self.redis, KEY, ttl_s=TTL_S), RedisLease(self.redis, KEY, ttl_s=TTL_S)
        self.assertTrue(await dead.acquire())
        self.assertLessEqual(await self.redis.pttl(KEY), TTL_S * 1000)
        self.assertFalse(await alive.acquire())  # not while the holder's lease is live
        await self.lapse(KEY)
        await wait_for(alive.acquire, timeout_s=30, message="takeover")
        self.assertFalse(await dead.renew())  # the old holder cannot come back
        self.assertFalse(await dead.release())
        self.assertEqual(await alive.holder(), alive.token)

    async def test_two_workers_one_subscription_and_takeover(self) -> None:
        # A 3 s lease renewed every second: a holder keeps it across several TTLs.
        a = SettlementSubscription(self.context, lease_ttl_s=3)
        b = SettlementSubscription(self.context, lease_ttl_s=3)
        renewed = {a: count_results(a.lease, "renew"), b: count_results(b.lease, "renew")}
        tasks = {a: asyncio.create_task(a.run_forever()), b: asyncio.create_task(b.run_forever())}
        try:
            await wait_for(self._any_holding(a, b), timeout_s=30, message="a holder")
            holder, other = (a, b) if a.holding.is_set() else (b, a)

            async def held_past_its_ttl() -> bool:  # 4 renewals a second apart span more than 3 s
                return renewed[holder].count(True) >= 4

            await wait_for(held_past_its_ttl, timeout_s=60, message="renewals")
            self.assertEqual(a.holding.is_set() + b.holding.is_set(), 1)
            self.assertEqual(renewed[holder].count(False), 0)
            self.assertEqual(self.fake.calls["subscribe_invoices"], 1)
            tasks[holder].cancel()  # the holder stops (and lets go of the lease)
            await asyncio.gather(tasks[holder], return_exceptions=True)
            await wait_for(self._holding(other), timeout_s=30, message="takeover")
            await wait_for(self._subscribed(2), timeout_s=30, message="second subscription")
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def test_a_dead_holder_is_replaced_once_its_ttl_runs_out(self) -> None:
        dead = RedisLease(self.redis, ttl_s=TTL_S)
        self.assertTrue(await dead.acquire())  # a worker that was SIGKILLed while holding it
        sub = SettlementSubscription(self.context, lease_ttl_s=3)
        attempts = count_results(sub.lease, "acquire")
        task = asyncio.create_task(sub.run_forever())
        try:

            async def tried() -> bool:
                return len(attempts) >= 1

            await wait_for(tried, timeout_s=30, message="an attempt")
            self.assertEqual(attempts[:1], [False])
            self.assertFalse(sub.holding.is_set())
            await self.lapse(dead.key)
            await wait_for(self._holding(sub), timeout_s=30, message="takeover")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.assertIsNone(await self.redis.get("lw:lease:settlement"))  # released on shutdown

    def _any_holding(self, *subs):
        async def check() -> bool:
            return any(s.holding.is_set() for s in subs)

        return check

    def _holding(self, sub):
        async def check() -> bool:
            return sub.holding.is_set()

        return check

    def _subscribed(self, n: int):
        async def check() -> bool:
            return self.fake.calls["subscribe_invoices"] >= n

        return check
