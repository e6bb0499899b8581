"""lightning_worker.arq_worker.ResilientWorker: found by the soak, each case fails on arq's plain Worker.

- A Redis restart must pause the poll loop, not end the worker (a private redis-server of its own,
  stopped and started on the same port: the machine's shared Redis is never restarted).
- Redis coming back empty must not start a second run of a job that is still running in this worker.
- A SIGTERM that lands while arq finishes a job (outside the job's function) must still shut the
  worker down cleanly: arq's close() re-raised that task's CancelledError (the process exited 1, the
  health key stayed and on_shutdown never ran; seen in `make test` as a worker exiting 1 on SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from unittest import mock

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, func
from redis.exceptions import WatchError

from devtools.services import start_private_redis
from lightning_worker.arq_worker import ResilientWorker
from shared import jobs
from tests.support import env
from tests.support.cases import AsyncCase, DbCase, wait_for

QUEUE = "lw:test:resilient"


async def echo(ctx: dict, value: str) -> str:
    return value


@contextlib.asynccontextmanager
async def running(worker: ResilientWorker) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(worker.main())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()


def new_worker(redis_url: str, functions: list, **kwargs) -> ResilientWorker:
    return ResilientWorker(
        functions=functions,
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=QUEUE,
        poll_delay=0.05,
        handle_signals=False,
        **jobs.SERIALIZERS,
        **kwargs,
    )


async def pool_for(redis_url: str) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=QUEUE, **jobs.SERIALIZERS)


class RedisRestartTest(AsyncCase):
    async def test_the_poll_loop_waits_for_redis_and_resumes(self) -> None:
        run_dir = tempfile.mkdtemp(prefix="redis-restart-", dir=env.TEST_RUN_DIR.parent)
        url, stop = start_private_redis(run_dir)
        try:
            worker = new_worker(url, [func(echo, name="echo")])
            async with running(worker) as task:
                pool = await pool_for(url)
                job = await pool.enqueue_job("echo", "before")
                self.assertEqual(await job.result(timeout=30, poll_delay=0.05), "before")
                await pool.aclose()

                with self.assertLogs("lightning_worker.arq_worker", "WARNING") as logs:
                    stop()

                    async def paused() -> bool:
                        return any("polling paused" in line for line in logs.output)

                    await wait_for(paused, timeout_s=30, message="the worker to notice")
                    self.assertFalse(task.done(), task.done() and task.exception())
                    again, _ = start_private_redis(run_dir)
                    self.assertEqual(again, url)  # the same port: the worker's pool reconnects

                    async def resumed() -> bool:
                        return any("polling resumed" in line for line in logs.output)

                    await wait_for(resumed, timeout_s=30, message="the worker to resume")
                pool = await pool_for(url)
                job = await pool.enqueue_job("echo", "after")
                self.assertEqual(await job.result(timeout=30, poll_delay=0.05), "after")
                await pool.aclose()
                self.assertFalse(task.done())
        finally:
            stop()
            shutil.rmtree(run_dir, ignore_errors=True)


class DuplicateRunTest(DbCase):
    async def test_a_job_running_here_is_not_started_again_after_redis_lost_its_keys(self) -> None:
        runs: list[int] = []
        release = asyncio.Event()

        async def slow(ctx: dict) -> int:
            runs.append(1)
            await release.wait()
            return len(runs)

        worker = new_worker(self.settings.redis_url, [func(slow, name="slow")])
        offered: list[list[bytes]] = []
        real_start_jobs = ResilientWorker.start_jobs

        async def spy(self_, job_ids: list[bytes]) -> None:
            offered.append(list(job_ids))
            await real_start_jobs(self_, job_ids)

        worker.start_jobs = spy.__get__(worker)
        pool = await pool_for(self.settings.redis_url)
        try:
            async with running(worker):
                await pool.enqueue_job("slow", _job_id="pay:dup")

                async def started() -> bool:
                    return len(runs) == 1

                await wait_for(started, timeout_s=30, message="the first run")
                # Redis restarted empty (nothing kept on disk); the stale-row cron enqueues it again.
                await self.redis.flushdb()
                await pool.enqueue_job("slow", _job_id="pay:dup")
                seen_before = len(offered)

                async def offered_again() -> bool:
                    return sum(b"pay:dup" in ids for ids in offered[seen_before:]) >= 5

                await wait_for(offered_again, timeout_s=30, message="polls that see the job again")
                self.assertEqual(runs, [1])  # arq's Worker would have started a second run
                release.set()

                async def finished() -> bool:
                    return await self.redis.zcard(QUEUE) == 0

                await wait_for(finished, timeout_s=30, message="the run to finish and leave the queue")
            self.assertEqual(runs, [1])
        finally:
            await pool.aclose()

    async def test_a_watch_error_of_a_dropped_connection_pauses_the_loop_too(self) -> None:
        # Seen under the soak: Redis restarted while arq watched an in-progress key; redis-py raises
        # WatchError("A ConnectionError occurred on while watching ..."), which arq lets escape.
        worker = new_worker(self.settings.redis_url, [func(echo, name="echo")])
        worker._pool = await pool_for(self.settings.redis_url)
        dropped = WatchError("A ConnectionError occurred on while watching one or more keys")
        try:
            with (
                mock.patch.object(Worker, "_poll_iteration", side_effect=dropped),
                self.assertLogs("lightning_worker.arq_worker", "WARNING") as logs,
            ):
                await worker._poll_iteration()  # returns: the loop goes on
            self.assertIn("polling paused", logs.output[0])
            self.assertIn("polling resumed", logs.output[-1])
        finally:
            await worker._pool.aclose()


class ShutdownTest(DbCase):
    async def test_a_sigterm_while_a_job_is_being_finished_still_runs_the_whole_shutdown(self) -> None:
        in_hook = asyncio.Event()
        shut_down: list[bool] = []

        async def on_job_end(ctx: dict) -> None:
            in_hook.set()
            await asyncio.Event().wait()  # the signal lands here, after the job's own function

        async def on_shutdown(ctx: dict) -> None:
            shut_down.append(True)

        worker = new_worker(
            self.settings.redis_url, [func(echo, name="echo")], on_job_end=on_job_end, on_shutdown=on_shutdown
        )
        pool = await pool_for(self.settings.redis_url)
        try:
            main = asyncio.create_task(worker.main())
            await pool.enqueue_job("echo", "x", _job_id="job:finishing")
            await asyncio.wait_for(in_hook.wait(), 30)
            self.assertTrue(await self.redis.exists(worker.health_check_key))
            # The signal handler cancels the poll loop and the jobs; worker.run() then calls close().
            # The loop is stopped first here so that it cannot reap the cancelled task itself (in
            # the process it usually is in a sleep or a Redis call when the signal comes).
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
            worker.handle_sig(signal.SIGTERM)
            await worker.close()  # arq's own close() raised the job task's CancelledError here
            self.assertEqual(shut_down, [True])
            self.assertFalse(await self.redis.exists(worker.health_check_key))
            self.assertEqual(worker.tasks, {})
        finally:
            await pool.aclose()
