"""Settlement ingestion: how fast payments Bob makes to our invoices become credits in Postgres.

Live (``run_live``): Bob pays N of our open invoices as fast as the simnet allows (64 concurrent
SendPaymentV2) while our worker's subscription runs; we poll the invoices table every ``POLL_S``.
- ``settlement / ours``: N credited / time from the first payment sent to the last credit seen.
  Latencies are per invoice: first seen ``settled`` by the poller minus the moment Bob's payment
  returned success (the ingestion lag; 0 when the credit was seen first). Invoices not credited
  before the deadline are errors.
- ``bob_pay / simnet``: Bob's payments themselves, the upper bound the simnet puts on the above.

Backlog (``run_backlog``): the worker is stopped, Bob pays N invoices, the worker starts again and
its subscription replays them from the stored settle_index. This isolates our ingestion from the
simnet's payment rate: ``settlement_backlog / ours`` is (N - first batch) / (last batch's
``updated_at`` - first batch's ``updated_at``), the rate at which our credit transactions commit
once they run; the note adds the wall time from worker start to the last credit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable

import asyncpg

from bench import bob as bobm
from bench.stats import CellResult, backlog_rate, summarize
from shared.lightning.grpc_client import GrpcLightningClient

POLL_S = 0.01
SETTLED_SQL = "SELECT id::text FROM invoices WHERE state = 'settled' AND id = ANY($1::uuid[])"


@dataclasses.dataclass
class Payments:
    paid_at: dict[str, float] = dataclasses.field(default_factory=dict)
    latencies_s: list[float] = dataclasses.field(default_factory=list)
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    elapsed_s: float = 0.0


async def pay_all(bob: GrpcLightningClient, invoices: list[tuple[str, str]], concurrency: int) -> Payments:
    """Bob pays every (invoice id, bolt11), ``concurrency`` at a time."""
    out = Payments()
    queue = list(invoices)

    async def payer() -> None:
        while queue:
            invoice_id, bolt11 = queue.pop()
            started = time.perf_counter()
            try:
                await bobm.pay(bob, bolt11)
            except Exception as exc:  # counted, never dropped
                out.errors[type(exc).__name__] += 1
                continue
            out.latencies_s.append(time.perf_counter() - started)
            out.paid_at[invoice_id] = time.perf_counter()

    started = time.perf_counter()
    await asyncio.gather(*(payer() for _ in range(concurrency)))
    out.elapsed_s = time.perf_counter() - started
    return out


async def watch_credits(conn: asyncpg.Connection, ids: list[str], deadline: float) -> dict[str, float]:
    """Poll until every id is settled or the deadline passes; when each was first seen settled."""
    seen: dict[str, float] = {}
    while len(seen) < len(ids) and time.perf_counter() < deadline:
        now = time.perf_counter()
        for row in await conn.fetch(SETTLED_SQL, ids):
            seen.setdefault(row["id"], now)
        if len(seen) < len(ids):
            await asyncio.sleep(POLL_S)
    return seen


async def run_live(
    bob: GrpcLightningClient,
    dsn: str,
    invoices: list[tuple[str, str]],
    pay_concurrency: int,
    timeout_s: float,
) -> tuple[CellResult, CellResult]:
    """``invoices``: (invoice id, bolt11) of open invoices of ours."""
    ids = [invoice_id for invoice_id, _ in invoices]
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        payments_task = asyncio.ensure_future(pay_all(bob, invoices, pay_concurrency))
        seen = await watch_credits(conn, ids, started + timeout_s)
        payments = await payments_task
    finally:
        await conn.close()
    elapsed = (max(seen.values()) if seen else time.perf_counter()) - started
    lags = [max(0.0, seen[i] - payments.paid_at[i]) for i in seen if i in payments.paid_at]
    errors: Counter[str] = Counter()
    if len(seen) < len(ids):
        errors["not credited in time"] = len(ids) - len(seen)
    note = (
        f"N={len(ids)} paid by Bob live; p = credit seen - Bob's payment done (poll {POLL_S * 1000:.0f} ms)"
    )
    ours = summarize("settlement", "ours", pay_concurrency, lags, errors, elapsed, note=note)
    ours = dataclasses.replace(
        ours, ok=len(seen), throughput_per_s=len(seen) / elapsed if elapsed > 0 else 0.0
    )
    simnet = summarize(
        "bob_pay",
        "simnet",
        pay_concurrency,
        payments.latencies_s,
        payments.errors,
        payments.elapsed_s,
        note="Bob's SendPaymentV2 to our invoices (bounds the live figure)",
    )
    return ours, simnet


async def run_backlog(
    bob: GrpcLightningClient,
    dsn: str,
    invoices: list[tuple[str, str]],
    pay_concurrency: int,
    stop_worker: Callable[[], None],
    start_worker: Callable[[], None],
    timeout_s: float,
) -> CellResult:
    ids = [invoice_id for invoice_id, _ in invoices]
    stop_worker()
    payments = await pay_all(bob, invoices, pay_concurrency)
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        start_worker()
        seen = await watch_credits(conn, ids, started + timeout_s)
        wall_s = (max(seen.values()) if seen else time.perf_counter()) - started
        batches = await conn.fetch(
            "SELECT updated_at, count(*) AS n FROM invoices WHERE state = 'settled' AND id = ANY($1::uuid[]) "
            "GROUP BY updated_at ORDER BY updated_at",
            ids,
        )
    finally:
        await conn.close()
    errors: Counter[str] = Counter({f"bob {k}": v for k, v in payments.errors.items()})
    if len(seen) < len(ids) - sum(payments.errors.values()):
        errors["not credited in time"] = len(ids) - sum(payments.errors.values()) - len(seen)
    rate, span_s = backlog_rate([(row["updated_at"].timestamp(), row["n"]) for row in batches])
    note = (
        f"N={len(ids)} paid while the worker was stopped, replayed on start in {len(batches)} transactions "
        f"over {span_s * 1000:.0f} ms; worker start -> last credit {wall_s:.2f}s"
    )
    cell = summarize("settlement_backlog", "ours", 1, [], errors, span_s, note=note)
    return dataclasses.replace(cell, ok=len(seen), throughput_per_s=rate or 0.0)
