"""A read-only view of the arq queue for operators: queued, in progress, recent results, worker health.

Everything is bounded: at most ``limit`` jobs per list, and at most ``SCAN_MAX`` keys scanned for the
in-progress and result lists and the per-function counts (the counts say ``truncated`` when the cap was
hit). Job arguments are row ids only (wallet contract), so they are shown as they are. Results are small
dicts; failures show the exception type and a truncated message.

Uses arq's own pieces (key prefixes, ``Job.info()``-style deserialisers, ``JobStatus``) but not
``queued_jobs()`` / ``all_job_results()``, which read every key without bound.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis
from arq.constants import health_check_key_suffix, in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import Job, deserialize_job, deserialize_result
from redis.exceptions import RedisError

from shared import jobs
from shared.errors import ServiceUnavailable

SCAN_MAX = 5000
SUMMARY_MAX_CHARS = 200
NODE_INFO_EXPIRES_S = 30  # a node_info job nobody picked up by then is dropped, not run late


def _function_of(job_id: str) -> str:
    # Our job ids are "<function>:<row id>" (deterministic ids of shared.jobs), arq's cron runs are
    # "cron:<name>:<ms>" (function "cron:<name>"); others are "other".
    if job_id.startswith("cron:") and job_id.count(":") >= 2:
        return job_id.rsplit(":", 1)[0]
    prefix = job_id.split(":", 1)[0]
    return prefix if prefix in jobs.ALL_FUNCTIONS else "other"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _summary(value: Any) -> str:
    if isinstance(value, BaseException):
        text = f"{type(value).__name__}: {value}"
    else:
        text = repr(value)
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 1] + "…"


async def _scan(arq: ArqRedis, pattern: str) -> tuple[list[str], bool]:
    keys: list[str] = []
    async for key in arq.scan_iter(match=pattern, count=500):
        keys.append(key.decode() if isinstance(key, bytes) else key)
        if len(keys) >= SCAN_MAX:
            return keys, True
    return keys, False


async def _queued(arq: ArqRedis, queue_name: str, limit: int) -> tuple[list[dict], int, dict[str, int]]:
    total = await arq.zcard(queue_name)
    ids_scores = await arq.zrange(queue_name, 0, SCAN_MAX - 1, withscores=True)
    counts: dict[str, int] = {}
    for job_id, _ in ids_scores:
        name = _function_of(job_id.decode())
        counts[name] = counts.get(name, 0) + 1
    shown = ids_scores[:limit]
    raw = await arq.mget([job_key_prefix + job_id.decode() for job_id, _ in shown]) if shown else []
    items = []
    for (job_id, score), value in zip(shown, raw, strict=True):
        item: dict[str, Any] = {
            "id": job_id.decode(),
            "function": _function_of(job_id.decode()),
            "score": int(score),
        }
        if value is not None:
            try:
                definition = deserialize_job(value, deserializer=arq.job_deserializer)
                item.update(
                    function=definition.function,
                    args=list(definition.args),
                    jobTry=definition.job_try,
                    enqueueTime=_iso(definition.enqueue_time),
                )
            except Exception:
                item["error"] = "undecodable job"
        items.append(item)
    return items, total, counts


async def _in_progress(arq: ArqRedis, queue_name: str, limit: int) -> tuple[list[dict], dict[str, int], bool]:
    keys, truncated = await _scan(arq, in_progress_key_prefix + "*")
    job_ids = [key[len(in_progress_key_prefix) :] for key in keys]
    # arq keeps a cron run's in-progress key after the run (the lock that stops the same slot from
    # running twice): a job with a result has finished, whatever its in-progress key says.
    async with arq.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(result_key_prefix + job_id)
        finished = await pipe.execute() if job_ids else []
    job_ids = [job_id for job_id, done in zip(job_ids, finished, strict=True) if not done]
    counts: dict[str, int] = {}
    for job_id in job_ids:
        counts[_function_of(job_id)] = counts.get(_function_of(job_id), 0) + 1
    items = []
    for job_id in job_ids[:limit]:
        item: dict[str, Any] = {"id": job_id, "function": _function_of(job_id)}
        try:
            info = await Job(job_id, arq, _queue_name=queue_name, _deserializer=arq.job_deserializer).info()
        except Exception:
            info = None
        if info is not None:
            item.update(
                function=info.function,
                args=list(info.args),
                jobTry=info.job_try,
                enqueueTime=_iso(info.enqueue_time),
            )
        items.append(item)
    return items, counts, truncated


async def _results(
    arq: ArqRedis, queue_name: str, limit: int
) -> tuple[list[dict], dict[str, dict[str, int]], bool]:
    keys, truncated = await _scan(arq, result_key_prefix + "*")
    values = await arq.mget(keys) if keys else []
    results = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue
        job_id = key[len(result_key_prefix) :]
        try:
            result = deserialize_result(value, deserializer=arq.job_deserializer)
        except Exception:  # e.g. an exception class the API cannot import
            results.append(
                {
                    "id": job_id,
                    "function": _function_of(job_id),
                    "success": False,
                    "result": "undecodable result",
                    "startTime": None,
                    "finishTime": None,
                    "_ft": 0.0,
                }
            )
            continue
        if result.queue_name not in (queue_name, "<unknown>"):
            continue
        results.append(
            {
                "id": job_id,
                "function": result.function,
                "args": list(result.args),
                "success": result.success,
                "jobTry": result.job_try,
                "enqueueTime": _iso(result.enqueue_time),
                "startTime": _iso(result.start_time),
                "finishTime": _iso(result.finish_time),
                "result": _summary(result.result),
                "_ft": result.finish_time.timestamp(),
            }
        )
    counts: dict[str, dict[str, int]] = {}
    for item in results:
        bucket = counts.setdefault(item["function"], {})
        outcome = "succeeded" if item["success"] else "failed"
        bucket[outcome] = bucket.get(outcome, 0) + 1
    results.sort(key=lambda item: item["_ft"], reverse=True)
    for item in results:
        item.pop("_ft")
    return results[:limit], counts, truncated


async def _health(arq: ArqRedis, queue_name: str) -> dict[str, Any]:
    key = queue_name + health_check_key_suffix
    value, ttl_ms = await asyncio.gather(arq.get(key), arq.pttl(key))
    return {
        "key": key,
        "value": value.decode(errors="replace") if value is not None else None,
        "ttlMs": int(ttl_ms) if ttl_ms and ttl_ms > 0 else None,
        "alive": value is not None,
    }


async def jobs_overview(arq: ArqRedis, queue_name: str, *, limit: int = 100) -> dict[str, Any]:
    """Queue, in-progress jobs, recent results and worker health; 503 when Redis cannot be read."""
    try:
        queued, queued_total, queued_counts = await _queued(arq, queue_name, limit)
        in_progress, progress_counts, progress_truncated = await _in_progress(arq, queue_name, limit)
        results, result_counts, results_truncated = await _results(arq, queue_name, limit)
        health = await _health(arq, queue_name)
    except (TimeoutError, RedisError, OSError) as exc:
        raise ServiceUnavailable("Redis is unavailable") from exc
    functions = sorted(
        set(jobs.ALL_FUNCTIONS) | set(queued_counts) | set(progress_counts) | set(result_counts)
    )
    counts = {
        name: {
            "queued": queued_counts.get(name, 0),
            "inProgress": progress_counts.get(name, 0),
            "succeeded": result_counts.get(name, {}).get("succeeded", 0),
            "failed": result_counts.get(name, {}).get("failed", 0),
        }
        for name in functions
    }
    return {
        "queueName": queue_name,
        "queued": queued,
        "queuedTotal": queued_total,
        "inProgress": in_progress,
        "recentResults": results,
        "counts": counts,
        "countsTruncated": progress_truncated or results_truncated,
        "workerHealth": health,
    }


async def node_info(arq: ArqRedis, *, timeout_s: float) -> dict[str, Any]:
    """Run the worker's node_info job and return its result dict; 503 if no result within ``timeout_s``."""
    try:
        job = await arq.enqueue_job(
            jobs.NODE_INFO, _job_id=f"{jobs.NODE_INFO}:{uuid.uuid4().hex}", _expires=NODE_INFO_EXPIRES_S
        )
        if job is None:
            raise ServiceUnavailable("Could not enqueue the node_info job")
        result = await job.result(timeout=timeout_s, poll_delay=0.01)
    except ServiceUnavailable:
        raise
    except TimeoutError:
        raise ServiceUnavailable("The Lightning worker did not answer in time") from None
    except Exception as exc:  # the job failed (LND down, ...) or Redis is unavailable
        raise ServiceUnavailable(f"Node information unavailable ({type(exc).__name__})") from None
    if not isinstance(result, dict):
        raise ServiceUnavailable("The Lightning worker returned an unexpected node_info result")
    return result


def _pick(data: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if name in data and data[name] is not None:
            return data[name]
    return default


def _sat_of(balance: dict[str, Any], side: str) -> int:
    """A channel balance side in sat (floor): from ``<side>_msat`` if present, else ``<side>_sat``."""
    msat = _pick(balance, f"{side}_msat")
    if msat is not None:
        return int(msat) // 1000
    return int(_pick(balance, f"{side}_sat", default=0))


def node_out(result: dict[str, Any]) -> dict[str, Any]:
    """The worker's node_info result (lightning_worker/node.py: snake_case keys, channel balance in
    msat) as the API shows it."""
    balance = _pick(result, "channel_balance", default={}) or {}
    return {
        "identityPubkey": str(_pick(result, "identity_pubkey", default="")),
        "alias": str(_pick(result, "alias", default="")),
        "network": str(_pick(result, "network", default="")),
        "blockHeight": int(_pick(result, "block_height", default=0)),
        "version": str(_pick(result, "version", default="")),
        "syncedToChain": bool(_pick(result, "synced_to_chain", default=False)),
        "numActiveChannels": int(_pick(result, "num_active_channels", default=0)),
        "channelBalance": {"localSat": _sat_of(balance, "local"), "remoteSat": _sat_of(balance, "remote")},
    }
