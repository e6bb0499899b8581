"""One Redis pub/sub subscriber per API process, fanning row events out to waiters and SSE streams.

The worker publishes a :class:`shared.events.RowEvent` after each committed state change. Requests that
wait for their row (POST /invoices, POST /payments) register a queue keyed by row id; SSE streams
register a queue keyed by user id. Events are hints: a waiter that misses one re-reads the row and at
worst answers 202, so the hub never blocks start-up and reconnects with backoff when Redis drops.

Its connection is its own (``settings.redis_url``), separate from the arq pool: a subscribed
connection cannot run other commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from redis.asyncio import Redis

from api_service.keys import SETTINGS
from shared.events import CHANNEL, RowEvent

log = logging.getLogger("api.events")

STREAM_QUEUE_MAX = 1000  # a slow SSE client loses events beyond this (they are hints) instead of our memory
_BACKOFF_MIN_S = 0.1
_BACKOFF_MAX_S = 5.0
_CLOSED = object()  # sentinel put into stream queues on shutdown


class EventsHub:
    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._rows: dict[uuid.UUID, set[asyncio.Queue]] = defaultdict(set)
        self._users: dict[uuid.UUID, set[asyncio.Queue]] = defaultdict(set)
        self._task: asyncio.Task | None = None
        self._subscribed = asyncio.Event()
        self._closing = False
        self._had_messages = False

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    @property
    def closing(self) -> bool:
        return self._closing

    async def start(self, *, ready_timeout_s: float = 2.0) -> None:
        """Start the subscriber; wait briefly for the first subscription, but never fail start-up."""
        self._task = asyncio.create_task(self._run(), name="events-hub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), ready_timeout_s)

    def close_streams(self) -> None:
        """Tell every SSE stream to finish (called on shutdown, before connections are closed)."""
        self._closing = True
        for queues in self._users.values():
            for queue in queues:
                _put_nowait(queue, _CLOSED)

    async def stop(self) -> None:
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def watch_row(self, row_id: uuid.UUID) -> Iterator[asyncio.Queue]:
        """A queue receiving every event for ``row_id`` while the block runs. Register it BEFORE the
        action that can produce the event (the enqueue), so the event cannot slip in between."""
        queue: asyncio.Queue = asyncio.Queue()
        self._rows[row_id].add(queue)
        try:
            yield queue
        finally:
            _discard(self._rows, row_id, queue)

    @contextlib.contextmanager
    def watch_user(self, user_id: uuid.UUID) -> Iterator[asyncio.Queue]:
        """A bounded queue of the user's events for an SSE stream; yields ``CLOSED`` on shutdown."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=STREAM_QUEUE_MAX)
        self._users[user_id].add(queue)
        try:
            yield queue
        finally:
            _discard(self._users, user_id, queue)

    def dispatch(self, event: RowEvent) -> None:
        for queue in tuple(self._rows.get(event.id, ())):
            _put_nowait(queue, event)
        for queue in tuple(self._users.get(event.user_id, ())):
            _put_nowait(queue, event)

    async def _run(self) -> None:
        backoff_s = _BACKOFF_MIN_S
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or the connection dropped: reconnect with backoff
                log.warning("events subscriber disconnected, retrying in %.1fs: %s", backoff_s, exc)
            # A waiter that misses events meanwhile re-reads its row (submission.submit_and_wait).
            await asyncio.sleep(backoff_s)
            backoff_s = _BACKOFF_MIN_S if self._had_messages else min(backoff_s * 2, _BACKOFF_MAX_S)

    async def _listen(self) -> None:
        self._had_messages = False
        redis = Redis.from_url(self._redis_url, socket_connect_timeout=2, health_check_interval=10)
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            self._subscribed.set()
            while True:
                message = await pubsub.get_message(timeout=5.0)
                self._had_messages = True  # the connection worked: reconnect fast if it drops later
                if message is None or message.get("type") != "message":
                    continue
                event = RowEvent.decode(message["data"])
                if event is not None:
                    self.dispatch(event)
        finally:
            self._subscribed.clear()
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await redis.aclose()


CLOSED = _CLOSED


def _put_nowait(queue: asyncio.Queue, item: object) -> None:
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(item)


def _discard(index: dict[uuid.UUID, set[asyncio.Queue]], key: uuid.UUID, queue: asyncio.Queue) -> None:
    queues = index.get(key)
    if queues is not None:
        queues.discard(queue)
        if not queues:
            del index[key]


EVENTS_HUB = web.AppKey("events_hub", EventsHub)


async def events_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: one hub per application (process)."""
    hub = EventsHub(app[SETTINGS].redis_url)
    app[EVENTS_HUB] = hub
    await hub.start()
    yield
    await hub.stop()


async def close_streams_on_shutdown(app: web.Application) -> None:
    """on_shutdown: end SSE streams so the server's graceful shutdown does not wait on them."""
    hub = app.get(EVENTS_HUB)
    if hub is not None:
        hub.close_streams()
