"""The queue ceiling: a bare arq enqueue -> worker -> result round trip, nothing else.

    python -m bench.arq_ceiling --redis-url URL --queue Q      # the worker (its own process)

The worker is tuned like ours (``poll_delay`` and ``max_jobs`` from our Settings defaults) and runs a
job that returns its argument; the bench process enqueues and polls the result every
``RESULT_POLL_S``. This is what any request through our queue pays before our own code runs.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from arq import Worker, create_pool
from arq.connections import ArqRedis, RedisSettings

from bench.loadgen import Op, OpError

RESULT_POLL_S = 0.005
QUEUE = "bench:ceiling"


async def echo(ctx: dict[str, Any], value: int) -> int:
    return value


async def open_pool(redis_url: str) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=QUEUE)


def roundtrip_op(pool: ArqRedis) -> Op:
    async def op(seq: int) -> None:
        job = await pool.enqueue_job("echo", seq, _queue_name=QUEUE)
        if job is None:
            raise OpError("duplicate job")
        if await job.result(timeout=10, poll_delay=RESULT_POLL_S) != seq:
            raise OpError("wrong result")

    return op


def main() -> None:
    from shared.config import Settings

    parser = argparse.ArgumentParser(prog="python -m bench.arq_ceiling")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", default=QUEUE)
    args = parser.parse_args()
    defaults = Settings.model_fields
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    worker = Worker(
        functions=[echo],
        queue_name=args.queue,
        redis_settings=RedisSettings.from_dsn(args.redis_url),
        poll_delay=defaults["worker_poll_delay_s"].default,
        max_jobs=defaults["worker_max_jobs"].default,
        keep_result=60,
        handle_signals=True,
    )
    worker.run()


if __name__ == "__main__":
    main()
