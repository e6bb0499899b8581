"""Enqueueing from inside the worker with the contract's deterministic job ids."""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix

log = logging.getLogger(__name__)


async def ensure_enqueued(redis: ArqRedis, function: str, job_id: str, *args: Any, queue_name: str) -> str:
    """Make sure a job with this id will run: "enqueued", "queued" (already waiting or running:
    left alone) or "revived" (only an old result was in the way: deleted, then enqueued again).

    arq refuses an id while its job key or result key exists. A job key means the job is queued,
    deferred for a retry or in progress; a result alone means a previous run finished, and the
    row being still unfinished says that run gave up (e.g. max tries), so it must run again."""
    job = await redis.enqueue_job(function, *args, _job_id=job_id, _queue_name=queue_name)
    if job is not None:
        return "enqueued"
    if await redis.exists(job_key_prefix + job_id):
        return "queued"
    await redis.delete(result_key_prefix + job_id)
    job = await redis.enqueue_job(function, *args, _job_id=job_id, _queue_name=queue_name)
    return "revived" if job is not None else "queued"
