"""Who holds an advisory lock: the backends holding a granted advisory lock on a bigint key (such as
``lightning_worker.payment_lock.lock_key``) in this database only. pg_locks lists the locks of every
database on the server, and another test process's must not count. A bigint key shows as classid
(high 32 bits) and objid (low 32 bits); the low half is matched."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

_HOLDERS = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = (:k & 4294967295)::oid"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def advisory_lock_holders(db: AsyncConnection | AsyncSession, key: int) -> list[int]:
    """The pids of the backends holding the advisory lock ``key`` in this database."""
    return list((await db.execute(_HOLDERS, {"k": key})).scalars())
