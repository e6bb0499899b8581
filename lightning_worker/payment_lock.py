"""One runner per payment: a Postgres advisory lock held across track -> send -> record.

Two runs of one ``pay_invoice`` job can overlap: Redis lost the job's in-progress key mid-run and the
stale-row cron enqueued the row again, or a frozen worker woke up after its job was taken over. Without
a lock one run could record a failure (and release the hold) while the other's send then succeeds at
the node. So every run first takes ``pg_try_advisory_lock`` on a connection of its own; a second run
does not wait for it but yields (the job is retried a little later and resolves by tracking).

Every write of the run goes through that same connection (:meth:`PaymentRun.session`). Should
Postgres drop it (a restart, ``pg_terminate_backend``), the lock is gone, but so is the connection:
the run's next write fails and the job is retried, instead of writing while another runner holds the
lock. A worker that dies releases its locks with its connections.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

log = logging.getLogger(__name__)

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


def lock_key(payment_id: uuid.UUID) -> int:
    """A signed 64-bit advisory lock key from the payment id (a collision only serialises two rows)."""
    return int.from_bytes(payment_id.bytes[:8], "big", signed=True)


class PaymentRun:
    """The lock holder's connection; sessions bound to it run the run's reads and writes."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    def session(self) -> AsyncSession:
        return AsyncSession(bind=self.connection, expire_on_commit=False)


@contextlib.asynccontextmanager
async def payment_run(engine: AsyncEngine, payment_id: uuid.UUID) -> AsyncIterator[PaymentRun | None]:
    """Hold the payment's lock for the block; yields None when another run holds it."""
    key = lock_key(payment_id)
    connection = await engine.connect()
    try:
        acquired = bool(await connection.scalar(_TRY_LOCK, {"key": key}))
        await connection.commit()  # the lock is session-level: it outlives this transaction
    except BaseException:
        await connection.close()
        raise
    if not acquired:
        await connection.close()
        yield None
        return
    try:
        yield PaymentRun(connection)
    finally:
        await _unlock(connection, key)


async def _unlock(connection: AsyncConnection, key: int) -> None:
    try:
        await connection.rollback()
        await connection.scalar(_UNLOCK, {"key": key})
        await connection.commit()
        await connection.close()
    except Exception:
        # The connection is broken (the lock went with it) or the unlock failed: never hand a
        # connection that may still hold the lock back to the pool.
        with contextlib.suppress(Exception):
            await connection.invalidate()
        with contextlib.suppress(Exception):
            await connection.close()
