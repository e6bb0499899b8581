"""Engine and session factories. Called by entry points and tests, never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.config import Settings


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    size = pool_size or settings.db_pool_size
    return create_async_engine(
        settings.database_url,
        # Kept connections cover the usual concurrency: an overflow connection is closed when it is
        # returned, so a load above pool_size opens and closes a Postgres backend per checkout (at
        # c=16 on a pool of 10 that halved the read rate). The overflow is for bursts only.
        pool_size=size,
        max_overflow=size // 2,
        # No pre-ping: it costs a round trip on every checkout (half the cost of a simple request).
        # A connection that died with its server fails its statement instead; SQLAlchemy then
        # drops the stale pool and the API answers 503 (see api_service.middleware) until it is back.
        pool_pre_ping=False,
        pool_recycle=600,
        connect_args={"server_settings": {"application_name": "lightning-wallet"}},
    )


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same pool in autocommit mode, for requests that read with ONE statement.

    No BEGIN/ROLLBACK round trips (about 1 ms less per request); a single statement is its own
    consistent snapshot. Anything that writes, or reads twice and relies on both, uses a session."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# What says the connection under a statement is gone (its server restarted, the socket closed).
_LOST_CONNECTION = (asyncpg.PostgresConnectionError, asyncpg.ConnectionDoesNotExistError, OSError)


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection under one of the pool's, for a hot read done with asyncpg itself.

    asyncpg prepares each statement once per connection and hands back its records as they come,
    without SQLAlchemy's statement and result machinery (about a third of a poll's CPU). Same pool,
    same limits; with ``read_engine`` no transaction is opened. A connection that turns out dead is
    invalidated, so the pool does not hand it out again, and the failure leaves as asyncpg's
    ConnectionDoesNotExistError (the API answers 503 for it, as for SQLAlchemy's own)."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        try:
            yield driver
        except Exception as exc:
            if not (isinstance(exc, _LOST_CONNECTION) or driver.is_closed()):
                raise
            await connection.invalidate()
            if isinstance(exc, _LOST_CONNECTION):
                raise
            raise asyncpg.ConnectionDoesNotExistError(str(exc)) from exc
