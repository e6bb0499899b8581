"""arq's Worker, made to outlive a Redis restart and never to run one job twice at once.

Two things arq 0.28 does not do, both found by the soak (``make soak``):

- **Redis goes away.** arq's poll loop lets a connection error escape, and the worker process ends
  with it (a SIGTERM'd-looking exit, while its jobs were still running). Here a poll iteration that
  fails on the connection pauses the loop: it logs one warning, waits with a growing delay (capped at
  ``REDIS_WAIT_MAX_S``) until Redis answers a PING, logs that it is back, and polls again. Jobs
  already running go on meanwhile; they retry their own Redis writes (``retry_transient``).
- **Redis comes back empty** (nothing is kept on disk): the in-progress keys of this worker's
  running jobs are gone, the stale-row cron enqueues a row whose job is still running here with the
  same job id, and arq, which only looks at the in-progress key, would start a second run of it. The
  per-payment advisory lock (``payment_lock``) keeps money safe either way; this keeps the duplicate
  from being started at all: a job id with a live task in this worker is skipped (it stays queued,
  and the running task removes it from the queue when it finishes).

And one found by the tests: **a SIGTERM that lands outside a job's own function** (while arq reads
the job, records its result in the shielded ``finish_job``, or runs a job hook) leaves that task
ending in CancelledError, which arq's ``close()`` re-raises from its ``gather``: the process exited 1
and skipped the rest of the shutdown (the health-check key stayed, ``on_shutdown`` never ran, so the
settlement lease and the node channel were not released). Here ``close()`` first waits for the
cancelled jobs with their exceptions collected, then runs arq's own close. A cancelled job is
retried by arq as before (its in-progress key lapses), and every job is idempotent.
"""

from __future__ import annotations

import asyncio
import logging

from arq.worker import Worker
from redis.exceptions import BusyLoadingError, WatchError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

REDIS_WAIT_FIRST_S = 0.2
REDIS_WAIT_MAX_S = 5.0
# What a lost or restarting Redis raises (BusyLoadingError is a ConnectionError subclass in redis-py,
# named for clarity); OSError covers a refused socket before redis-py wraps it.
REDIS_OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)
# arq catches the WatchError of a job taken by another worker itself; one that reaches the poll loop is
# redis-py's "A ConnectionError occurred on while watching one or more keys" (seen under the soak).
POLL_OUTAGE_ERRORS = (*REDIS_OUTAGE_ERRORS, WatchError)


class ResilientWorker(Worker):
    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except POLL_OUTAGE_ERRORS as exc:
            await self._wait_for_redis(exc)

    async def _wait_for_redis(self, exc: BaseException) -> None:
        log.warning("Redis unreachable (%s: %s); polling paused until it answers", type(exc).__name__, exc)
        delay_s = REDIS_WAIT_FIRST_S
        while True:
            await asyncio.sleep(delay_s)
            try:
                await self.pool.ping()
            except REDIS_OUTAGE_ERRORS:
                delay_s = min(REDIS_WAIT_MAX_S, delay_s * 2)
                continue
            log.warning("Redis answers again; polling resumed")
            return

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        fresh = [job_id for job_id in job_ids if not self._running_here(job_id.decode())]
        if len(fresh) < len(job_ids):
            log.debug("skipped %d job(s) already running in this worker", len(job_ids) - len(fresh))
        await super().start_jobs(fresh)

    def _running_here(self, job_id: str) -> bool:
        task = self.tasks.get(job_id)
        return task is not None and not task.done()

    async def close(self) -> None:
        if self.tasks:
            if not self._handle_signals:
                for task in self.tasks.values():
                    task.cancel()  # what arq's close() does through handle_sig() in this mode
            outcomes = await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                    log.error("a job task ended in %s during shutdown: %s", type(outcome).__name__, outcome)
            self.tasks.clear()
        await super().close()
