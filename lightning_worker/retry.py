"""Which failures are transient, and how long to wait before the next try.

A transient failure (node unreachable, Postgres or Redis blip) leaves the row where it was and
raises ``arq.Retry`` with a growing delay; the job runs again with the same id. Money is never
marked failed because of a transient error: for a payment it means "outcome unknown".
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from shared.errors import LightningError, LightningRequestError

log = logging.getLogger(__name__)

BASE_DELAY_S = 0.5
MAX_DELAY_S = 30.0
T = TypeVar("T")


_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def backoff_s(job_try: int, *, base_s: float = BASE_DELAY_S, cap_s: float = MAX_DELAY_S) -> float:
    """Exponential delay with +-20% jitter (so many retried jobs do not wake together)."""
    delay = min(cap_s, base_s * (2 ** max(0, job_try - 1)))
    return round(delay * random.uniform(0.8, 1.2), 3)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, LightningRequestError):
        return False
    if isinstance(exc, LightningError):  # unavailable, auth (config being fixed), unexpected replies
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True  # the database rolled the transaction back; running it again is safe
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError))


def retry_transient(job: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn transient failures raised by ``job(ctx, ...)`` into ``arq.Retry(defer=backoff)``."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        try:
            return await job(ctx, *args, **kwargs)
        except Retry:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            job_try = int(ctx.get("job_try") or 1)
            delay = backoff_s(job_try)
            log.warning(
                "%s%r: transient %s (%s); retry %d in %.2fs",
                job.__name__,
                args,
                type(exc).__name__,
                exc,
                job_try,
                delay,
            )
            raise Retry(defer=delay) from exc

    return run
