"""The submit-and-wait flow shared by every write that goes through the worker (invoices, payments).

The flow (wallet contract): the caller has inserted its row and committed; register a waiter on the
events hub; enqueue the row's job with its deterministic id; wait for the row's events up to the
configured time (re-reading the row when none comes); the caller then answers with what Postgres
says. If Redis refuses the enqueue, the row is already committed and the worker's stale-row cron
will pick it up: the caller answers 202, never 500.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api_service.events_hub import EventsHub
from api_service.security import CurrentUser
from api_service.services import idempotency
from shared.config import Settings
from shared.db.models import IdempotencyKey
from shared.errors import Conflict

log = logging.getLogger("api.wallet")


@dataclass(frozen=True, slots=True)
class WalletDeps:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    reads: AsyncEngine  # autocommit, single-statement reads
    arq: ArqRedis
    hub: EventsHub


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    data: dict[str, Any]
    location: str | None = None
    row: Any = None  # the row ``data`` was read from, when it was (protocol adapters render it their way)


class KeyTaken(Exception):
    """Raised inside a transaction to roll it back when another request owns the Idempotency-Key."""


# ---- submit and wait --------------------------------------------------------------------------


async def enqueue(arq: ArqRedis, function: str, row_id: uuid.UUID, job_id: str) -> bool:
    """Enqueue a row's job; False (logged) if Redis is unavailable: the stale-row cron will retry it."""
    try:
        await arq.enqueue_job(function, str(row_id), _job_id=job_id)
        return True
    except Exception as exc:  # Redis down/timeouts: the row is committed, so this must not become a 500
        log.warning(
            "enqueue failed, the worker's stale-row cron will pick the row up",
            extra={"job_id": job_id, "error": type(exc).__name__},
        )
        return False


async def submit_and_wait(
    deps: WalletDeps,
    *,
    function: str,
    job_id: str,
    row_id: uuid.UUID,
    wait_s: float,
    read_state: Callable[[AsyncSession, uuid.UUID], Awaitable[str | None]],
    final_states: frozenset[str],
) -> None:
    """Enqueue the row's job and wait until the row reaches a final state or ``wait_s`` passes."""

    async def current_state() -> str | None:
        async with deps.sessions() as session:
            return await read_state(session, row_id)

    loop = asyncio.get_running_loop()
    with deps.hub.watch_row(row_id) as events:  # registered BEFORE the enqueue: no event can slip by
        if not await enqueue(deps.arq, function, row_id, job_id):
            return
        deadline = loop.time() + wait_s
        state = await current_state() if not deps.hub.connected else "pending"
        while True:
            remaining = deadline - loop.time()
            if state is None or state in final_states or remaining <= 0:
                return
            try:
                event = await asyncio.wait_for(events.get(), min(remaining, deps.settings.wait_recheck_s))
            except TimeoutError:
                # No event within the interval: maybe lost (the hub reconnecting). Ask the row.
                state = await current_state()
                continue
            # The worker publishes after its commit, so a final state in the event is already in
            # Postgres; the caller reads the row itself for the answer.
            announced = getattr(event, "state", None)
            state = announced if announced in final_states else await current_state()


async def existing_key(
    deps: WalletDeps,
    user: CurrentUser | uuid.UUID,
    idem: idempotency.IdempotencyRequest,
) -> IdempotencyKey:
    user_id = user if isinstance(user, uuid.UUID) else user.id
    row = await idempotency.find(deps.sessions, user_id, idem)
    if row is None:  # the other request rolled back between our insert attempt and this read
        raise Conflict("A request with this Idempotency-Key was being processed and failed; retry")
    return row
