"""Which exceptions mean a lost or refused connection to Postgres or Redis (an outage, not a bug).

The error middleware answers them with a 503 instead of a 500; code that may fail after its answer is
already safe (storing an idempotent response) logs them as a warning, not an error.
"""

from __future__ import annotations

import asyncpg
import redis.exceptions
import sqlalchemy.exc

_OUTAGE_ERRORS = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,  # pg_terminate_backend, a server shutting down
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def is_dependency_outage(exc: BaseException) -> bool:
    """A lost or refused connection to Postgres or Redis: the request may be retried, it is not a bug."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    return isinstance(exc, _OUTAGE_ERRORS) or isinstance(exc.__cause__, _OUTAGE_ERRORS)
