from __future__ import annotations

import asyncio

from lightning_worker.lease import RedisLease
from lightning_worker.subscription import SettlementSubscription
from tests.support.cases import wait_for
from tests.worker.helpers import WorkerCase


class LeaseTests(WorkerCase):
    async def test_only_one_contender_holds_it(self) -> None:
        first, second = (
            RedisLease(self.redis, "lw:test:lease", ttl_s=1),
            RedisLease(self.redis, "lw:test:lease", ttl_s=1),
        )
        self.assertTrue(await first.acquire())
        self.assertFalse(await second.acquire())
        self.assertTrue(await first.renew())
        self.assertFalse(await second.renew())  # compare-and-set: not the holder
        self.assertFalse(await second.release())
        self.assertEqual(await second.holder(), first.token)

    async def test_taken_over_after_the_holder_stops_renewing(self) -> None:
        dead, alive = (
            RedisLease(self.redis, "lw:test:lease", ttl_s=0.3),
            RedisLease(self.redis, "lw:test:lease", ttl_s=0.3),
        )
        self.assertTrue(await dead.acquire())
        self.assertFalse(await alive.acquire())  # not while the holder's lease is live
        await wait_for(alive.acquire, timeout_s=3, interval_s=0.02, message="takeover")
        self.assertFalse(await dead.renew())  # the old holder cannot come back
        self.assertFalse(await dead.release())
        self.assertEqual(await alive.holder(), alive.token)

    async def test_two_workers_one_subscription_and_takeover(self) -> None:
        a = SettlementSubscription(self.context, lease_ttl_s=0.3)
        b = SettlementSubscription(self.context, lease_ttl_s=0.3)
        tasks = {a: asyncio.create_task(a.run_forever()), b: asyncio.create_task(b.run_forever())}
        try:
            await wait_for(self._any_holding(a, b), timeout_s=3, message="a holder")
            await asyncio.sleep(0.5)  # longer than the TTL: renewals keep it with one holder
            self.assertEqual(a.holding.is_set() + b.holding.is_set(), 1)
            self.assertEqual(self.fake.calls["subscribe_invoices"], 1)
            holder, other = (a, b) if a.holding.is_set() else (b, a)
            tasks[holder].cancel()  # the holder stops
            await asyncio.gather(tasks[holder], return_exceptions=True)
            await wait_for(self._holding(other), timeout_s=3, message="takeover")
            await wait_for(self._subscribed(2), timeout_s=3, message="second subscription")
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def test_a_dead_holder_is_replaced_within_its_ttl(self) -> None:
        dead = RedisLease(self.redis, ttl_s=0.4)
        self.assertTrue(await dead.acquire())  # a worker that was SIGKILLed while holding it
        sub = SettlementSubscription(self.context, lease_ttl_s=0.4)
        task = asyncio.create_task(sub.run_forever())
        try:
            await asyncio.sleep(0.1)
            self.assertFalse(sub.holding.is_set())
            await wait_for(self._holding(sub), timeout_s=3, message="takeover")
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
