"""The settlement subscription: LND's SubscribeInvoices stream into Postgres, under a Redis lease.

One worker at a time (the holder of ``lw:lease:settlement``) follows the stream from the
settle_index stored in ``settlement_cursor``; each batch of settled invoices is credited, and the
cursor moved, in one transaction (settlement.py). A crash between two batches replays at most the
uncommitted batch, which the conditional UPDATE turns into no-ops. A broken stream (node restart,
network) reconnects with backoff from the stored cursor.

Batching: a reader task drains the stream into a queue; the writer takes whatever is already
there (up to ``batch_max``) per transaction, so under load batches grow by themselves while a
lone settlement is written at once, without waiting for company.

A stream can go silent without failing (a half-open connection: the node or a NAT forgot it). gRPC
keepalive pings on the channel (shared/lightning/grpc_channel.py) detect a dead transport; on top, an
idle watchdog probes the node (GetInfo, with a deadline) whenever the stream has said nothing for
``SETTLEMENT_IDLE_PROBE_S`` and reconnects if the probe fails. And whatever the stream does, the lease
holder sweeps every ``SETTLEMENT_SWEEP_S``: LookupInvoice of every open and recently expired invoice,
crediting those the node says are settled, so a silent stream delays a credit by minutes at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy import text

from lightning_worker.context import WorkerContext
from lightning_worker.lease import RedisLease
from lightning_worker.settlement import load_cursor, settle_invoices
from shared.errors import LightningNotFound, LightningUnavailable
from shared.lightning.types import Invoice, InvoiceState

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 5.0
LOOKUP_CONCURRENCY = 20
_END = object()


@dataclass
class SubscriptionStats:
    batches: int = 0
    settled_events: int = 0
    credited: int = 0
    connects: int = 0
    idle_probes: int = 0
    sweeps: int = 0


async def reconcile_open_invoices(context: WorkerContext) -> int:
    """Ask the node (LookupInvoice) about every open invoice and credit those it says are settled.

    Needed while the cursor is 0: SubscribeInvoices replays nothing for index 0. Does not move the
    cursor (only the ordered stream may). Returns the add_index to replay from (oldest open - 1)."""
    async with context.sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT payment_hash, add_index FROM invoices WHERE payment_hash IS NOT NULL AND"
                    " (state = 'open' OR (state = 'expired' AND expires_at > now() - interval '1 hour'))"
                )
            )
        ).all()
    settled: list[Invoice] = []
    semaphore = asyncio.Semaphore(LOOKUP_CONCURRENCY)

    async def lookup(payment_hash: bytes) -> None:
        async with semaphore:
            try:
                found = await context.lightning.lookup_invoice(payment_hash)
            except LightningNotFound:
                return
        if found.state is InvoiceState.SETTLED:
            settled.append(found)

    await asyncio.gather(*(lookup(bytes(row.payment_hash)) for row in rows))
    if settled:
        await settle_invoices(context, settled, cursor_node=None)
    paid = {inv.payment_hash for inv in settled}
    open_indexes = [row.add_index for row in rows if row.add_index and bytes(row.payment_hash) not in paid]
    return max(0, min(open_indexes) - 1) if open_indexes else 0


# While the cursor is 0: look again this long after the previous pass, then leave it to the sweep.
RECHECK_DELAYS_S = (1.0, 2.0, 4.0)


class SettlementSubscription:
    def __init__(self, context: WorkerContext, *, lease_ttl_s: float = 5.0, batch_max: int = 200) -> None:
        self.context = context
        self.lease = RedisLease(context.redis, ttl_s=lease_ttl_s)
        self.batch_max = batch_max
        self.stats = SubscriptionStats()
        self.holding = asyncio.Event()
        self.idle_probe_s = context.settings.settlement_idle_probe_s
        self.sweep_s = context.settings.settlement_sweep_s
        self._node: str | None = None

    async def run_forever(self) -> None:
        """Contend for the lease; while holding it, follow the stream; let go on shutdown."""
        while True:
            try:
                acquired = await self.lease.acquire()
            except Exception:
                log.warning("settlement lease: Redis unavailable", exc_info=True)
                acquired = False
            if not acquired:
                await asyncio.sleep(self.lease.renew_interval_s)
                continue
            log.info("settlement lease acquired")
            try:
                await self._hold()
            finally:
                self.holding.clear()
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.lease.release())

    async def _hold(self) -> None:
        self.holding.set()
        follower = asyncio.create_task(self.follow(), name="settlement-follow")
        sweeper = asyncio.create_task(self.sweep_forever(), name="settlement-sweep")
        try:
            while True:
                done, _ = await asyncio.wait({follower, sweeper}, timeout=self.lease.renew_interval_s)
                if done:
                    task = done.pop()
                    log.error("settlement %s stopped: %r", task.get_name(), task.exception())
                    return
                try:
                    renewed = await self.lease.renew()
                except Exception:
                    renewed = False
                if not renewed:
                    log.warning("settlement lease lost; stopping the subscription")
                    return
        finally:
            for task in (follower, sweeper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def sweep_forever(self) -> None:
        """Every ``sweep_s``, credit what the node says is settled, whatever the stream says."""
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await reconcile_open_invoices(self.context)
                self.stats.sweeps += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass is retried at the next interval
                log.warning("settlement sweep failed", exc_info=True)

    async def follow(self) -> None:
        """Subscribe from the stored cursor; on any failure reconnect with backoff."""
        delay = RECONNECT_MIN_S
        while True:
            try:
                credited_before = self.stats.settled_events
                await self._follow_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "settlement stream: %s: %s; reconnecting in %.1fs", type(exc).__name__, exc, delay
                )
            if self.stats.settled_events > credited_before:
                delay = RECONNECT_MIN_S
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX_S, delay * 2)

    async def _node_key(self) -> str:
        if self._node is None:
            info = await self.context.lightning.get_info()
            self._node = info.identity_pubkey or "default"
        return self._node

    async def _follow_once(self) -> None:
        node = await self._node_key()
        async with self.context.sessions() as session:
            cursor = await load_cursor(session, node)
        add_index = await reconcile_open_invoices(self.context) if cursor == 0 else 0
        stream = self.context.lightning.subscribe_invoices(add_index=add_index, settle_index=cursor)
        self.stats.connects += 1
        log.info("settlement stream from settle_index=%d add_index=%d", cursor, add_index)
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=self.batch_max * 10)
        reader = asyncio.create_task(self._read(stream, queue), name="settlement-read")
        recheck = asyncio.create_task(self._reconcile_while_no_cursor(node)) if cursor == 0 else None
        try:
            while True:
                item = await self._next(queue)
                batch: list[Invoice] = []
                while True:
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        break
                    batch.append(item)  # type: ignore[arg-type]
                    if len(batch) >= self.batch_max or queue.empty():
                        break
                    item = queue.get_nowait()
                if batch:
                    await self._write(batch, node)
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
        finally:
            for task in (reader, recheck):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _next(self, queue: asyncio.Queue[object]) -> object:
        """The next stream item; while the stream is silent, check every ``idle_probe_s`` that the
        node still answers on this channel (a half-open connection would otherwise hang here)."""
        while True:
            try:
                return await asyncio.wait_for(queue.get(), self.idle_probe_s)
            except TimeoutError:
                self.stats.idle_probes += 1
                try:
                    await self.context.lightning.get_info()
                except Exception as exc:
                    raise LightningUnavailable(f"idle stream and the node does not answer: {exc}") from exc

    async def _reconcile_while_no_cursor(self, node: str) -> None:
        """Close the start-up gap of a node we have never seen settle anything.

        With the cursor at 0, LND replays no settlements, and add_index replay cannot reach the
        invoice with add_index 1 (0 means "no replay"). A settlement landing between the lookups
        of reconcile_open_invoices and the stream's registration on the server would otherwise wait
        for the sweep. Look again 1, 3 and 7 s after the stream was opened, until the stream has
        recorded one: the registration is long done by then, and the sweep (every
        SETTLEMENT_SWEEP_S) covers the rest, so a later miss waits a minute, it is never lost.
        (Every second forever was a LookupInvoice per open invoice per second on a node that has not
        been paid yet: with 1,000 open invoices, a third of a core in the worker and as much in LND.)
        Both paths are idempotent, so overlaps credit nothing twice."""
        for delay_s in RECHECK_DELAYS_S:
            await asyncio.sleep(delay_s)
            async with self.context.sessions() as session:
                if await load_cursor(session, node) > 0:
                    return
            try:
                await reconcile_open_invoices(self.context)
            except Exception:  # a failed pass is retried next interval
                log.warning("reconcile while the settlement cursor is 0 failed", exc_info=True)

    async def _read(self, stream, queue: asyncio.Queue[object]) -> None:
        try:
            async with contextlib.aclosing(stream):
                async for invoice in stream:
                    if invoice.state is InvoiceState.SETTLED:
                        await queue.put(invoice)
            await queue.put(_END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await queue.put(exc)

    async def _write(self, batch: list[Invoice], node: str) -> None:
        result = await settle_invoices(self.context, batch, cursor_node=node)
        self.stats.batches += 1
        self.stats.settled_events += len(batch)
        self.stats.credited += len(result.credited)
