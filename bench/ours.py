"""Our wallet under load: start the API and a worker, make users, run the workloads of issue 6."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from bench import bob as bobm
from bench import settlement, stack, stats, wallet
from bench.loadgen import run_cell
from bench.procs import Child, free_port, python_argv, wait_http
from bench.runner import FUNDING_SAT, INVOICE_SAT, Run, bob_fill, session

OURS = ("create_invoice", "reads", "scaling", "pay_external", "pay_internal", "settlement", "login_storm")
USERS = 16


@dataclass
class Ours:
    api: wallet.Api
    users: list[wallet.User]
    env: dict[str, str]
    worker: Child
    made: list[wallet.MadeInvoice] = field(default_factory=list)  # open invoices of ours, to be paid


async def start_ours(
    run: Run, simnet: stack.Simnet, database_url: str, redis_url: str, http: aiohttp.ClientSession
) -> Ours:
    admin_key = stack.new_admin_key()
    env = stack.wallet_env(database_url, redis_url, simnet, free_port(), run.work / "run", admin_key)
    url = (await stack.start_api(run.children, env)).url
    worker = stack.start_worker(run.children, env)
    api = wallet.Api(http, url)
    stamp = str(int(time.time()))
    users = list(await asyncio.gather(*(api.register(f"bench-{stamp}-{i}") for i in range(USERS))))
    # The pipeline is up once one invoice comes back open (the worker may still be starting).
    await _first_create(api, users[0])
    await wait_quiet(run)
    return Ours(api, users, env, worker)


async def measure_create_timeline(run: Run, ours: Ours, database_url: str) -> None:
    """Sequential creates, then their rows' created_at / updated_at: where the c=1 latency goes."""
    n = 20 if run.plan.quick else 50
    sent_received: dict[str, tuple[float, float]] = {}
    for i in range(n):
        user = ours.users[i % len(ours.users)]
        sent = time.time()
        data = await ours.api.create_invoice(user, INVOICE_SAT, memo="bench timeline")
        sent_received[str(data["id"])] = (sent, time.time())
        ours.made.append(wallet.MadeInvoice(user, str(data["id"]), str(data["paymentRequest"])))
    conn = await asyncpg.connect(stack.asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT id::text AS id, created_at, updated_at FROM invoices WHERE id = ANY($1::uuid[])",
            list(sent_received),
        )
    finally:
        await conn.close()
    stamps = [
        (
            sent_received[r["id"]][0],
            r["created_at"].timestamp(),
            r["updated_at"].timestamp(),
            sent_received[r["id"]][1],
        )
        for r in rows
    ]
    run.extra["create_timeline"] = stats.timeline_p50_ms(stamps)
    run.extra["create_timeline_n"] = len(stamps)


async def top_up_made(ours: Ours, need: int) -> list[wallet.MadeInvoice]:
    """Make sure ``need`` open invoices of ours wait in ``ours.made`` (made untimed, 16 at a time)."""
    missing = need - len(ours.made)
    if missing > 0:
        await run_cell(
            wallet.create_invoice_op(ours.api, ours.users, INVOICE_SAT, ours.made),
            16,
            300.0,
            0,
            max_ops=missing,
        )
    return ours.made


async def fund_users(ours: Ours, bob: Any) -> None:
    """Each user gets FUNDING_SAT the real way: Bob pays an invoice of theirs; wait until credited."""
    invoices = await asyncio.gather(
        *(ours.api.create_invoice(u, FUNDING_SAT, memo="bench funding") for u in ours.users)
    )
    await asyncio.gather(*(bobm.pay(bob, str(inv["paymentRequest"])) for inv in invoices))
    balances = await asyncio.gather(*(ours.api.wait_balance(u, FUNDING_SAT) for u in ours.users))
    short = [b for b in balances if b < FUNDING_SAT]
    if short:
        raise RuntimeError(f"{len(short)} users not credited after Bob paid them (balances {short[:4]})")


async def bench_lean_reads(run: Run, ours: Ours, http: aiohttp.ClientSession) -> None:
    """The read ceiling (bench/lean_reads.py) on the same database, users and tokens, right after ours."""
    port = free_port()
    env = {"DATABASE_URL": ours.env["DATABASE_URL"], "JWT_SECRET": ours.env["JWT_SECRET"]}
    child = run.children.start(
        "lean_reads", python_argv("-m", "bench.lean_reads", "--port", str(port)), env=env
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_http(f"{url}/healthz", child)
        await run.cells(
            "reads",
            "lean_reads",
            wallet.reads_op(wallet.Api(http, url), ours.users),
            "ceiling: aiohttp+asyncpg, JWT, active-user read, our activity statement, same JSON",
        )
    finally:
        run.children.stop(child)


async def bench_lean_pipeline(run: Run, ours: Ours, http: aiohttp.ClientSession) -> None:
    """The create ceiling (bench/lean_pipeline.py: its HTTP side and its bare worker) on the same stack."""
    port = free_port()
    module = ("-m", "bench.lean_pipeline")
    api = run.children.start("lean_api", python_argv(*module, "serve", "--port", str(port)), env=ours.env)
    worker = run.children.start("lean_worker", python_argv(*module, "worker"), env=ours.env)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_http(f"{url}/healthz", api)
        lean = wallet.Api(http, url)
        await _first_create(lean, ours.users[0])
        await wait_quiet(run)
        await run.cells(
            "create_invoice",
            "lean_pipeline",
            wallet.create_invoice_op(lean, ours.users, INVOICE_SAT, []),
            "ceiling: aiohttp -> insert -> arq -> bare worker AddInvoice + update -> publish -> 201",
        )
    finally:
        run.children.stop(worker)
        run.children.stop(api)


async def wait_quiet(run: Run, timeout_s: float = 45.0, window_s: float = 1.0, cores: float = 0.3) -> None:
    """Until the workers and the simnet use less than ``cores`` of CPU over ``window_s``: a worker's
    start-up (crons run at start-up, the settlement stream's first look-ups of every open invoice)
    is not measured as if it were the cell's work. Bounded; a run that never quiets says so."""
    meter = run.meter
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = meter.snapshot()
        await asyncio.sleep(window_s)
        after = meter.snapshot()
        busy_ms = sum(after[k] - before[k] for k in ("worker", "simnet"))
        if busy_ms < cores * window_s * 1000:
            return
    run.notes.append(f"workers not quiet within {timeout_s:.0f}s of start; measured anyway")


async def _first_create(api: wallet.Api, user: wallet.User, timeout_s: float = 30.0) -> None:
    """Return once one invoice comes back open: the worker behind ``api`` has started."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await api.create_invoice(user, INVOICE_SAT, memo="bench warm-up")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


SCALING = ((2, 1), (1, 2), (2, 2))  # (API processes, workers) besides the (1, 1) of the main rows


async def bench_scaling(run: Run, ours: Ours, http: aiohttp.ClientSession) -> None:
    """Creates and reads at c=16 with 2 API processes (gunicorn) and/or 2 workers, on the same data.

    Each shape is a second stack beside the main API (idle, kept for the later phases); the main worker
    is stopped meanwhile, or it would take jobs from the same queue."""
    run.children.stop(ours.worker)
    try:
        for api_workers, workers in SCALING:
            await _scaling_shape(run, ours, http, api_workers, workers)
    finally:
        ours.worker = stack.start_worker(run.children, ours.env)
        await _first_create(ours.api, ours.users[0])
        await wait_quiet(run)


async def _scaling_shape(
    run: Run, ours: Ours, http: aiohttp.ClientSession, api_workers: int, workers: int
) -> None:
    env = {**ours.env, "API_PORT": str(free_port()), "API_WORKERS": str(api_workers)}
    api = await stack.start_api(run.children, env)
    url, api_child = api.url, api.child
    worker_children = [stack.start_worker(run.children, env, f"worker_s{i}") for i in range(workers)]
    system = f"ours {api_workers}api+{workers}w"
    try:
        api = wallet.Api(http, url)
        await _first_create(api, ours.users[0])
        await wait_quiet(run)
        await run.cells(
            "create_invoice",
            system,
            wallet.create_invoice_op(api, ours.users, INVOICE_SAT, ours.made),
            f"{api_workers} API process(es), {workers} worker(s)",
            concurrencies=(16,),
        )
        if workers == 1:
            await run.cells(
                "reads",
                system,
                wallet.reads_op(api, ours.users),
                f"{api_workers} API process(es)",
                concurrencies=(16,),
            )
    finally:
        for child in (*worker_children, api_child):
            run.children.stop(child)


async def bench_pay(run: Run, ours: Ours, simnet: stack.Simnet) -> None:
    bob = simnet.client("bob")
    try:
        await fund_users(ours, bob)
        if run.plan.wants("pay_external"):
            await run.pooled_cells(
                "pay_external",
                "ours",
                bob_fill(bob),
                lambda pool: wallet.pay_external_op(ours.api, ours.users, pool),
                "to Bob over simnet, 200 succeeded (202 = error)",
            )
        if run.plan.wants("pay_internal"):
            await run.pooled_cells(
                "pay_internal",
                "ours",
                lambda n: top_up_made(ours, n),
                lambda pool: wallet.pay_internal_op(ours.api, ours.users, pool),
                "user->user, settled in Postgres, 200 succeeded (202 = error)",
            )
    finally:
        await bob.close()


async def bench_settlement(run: Run, ours: Ours, simnet: stack.Simnet, database_url: str) -> None:
    dsn = stack.asyncpg_dsn(database_url)
    n = run.plan.settlement_n

    async def take(count: int) -> list[tuple[str, str]]:
        await top_up_made(ours, count)
        batch, ours.made[:] = ours.made[:count], ours.made[count:]
        return [(made.invoice_id, made.payment_request) for made in batch]

    def stop_worker() -> None:
        run.children.stop(ours.worker)

    def start_worker() -> None:
        ours.worker = stack.start_worker(run.children, ours.env)

    bob = simnet.client("bob")
    try:
        live, bob_cell = await settlement.run_live(bob, dsn, await take(n), 64, timeout_s=60.0)
        run.add(live)
        run.add(bob_cell)
        run.add(await settlement.run_backlog(bob, dsn, await take(n), 64, stop_worker, start_worker, 60.0))
    finally:
        await bob.close()


async def bench_login_storm(run: Run, ours: Ours) -> None:
    probe = wallet.healthz_op(ours.api)
    idle = await run_cell(probe, 1, min(run.plan.duration_s, 3.0), run.plan.warmup_s)
    run.add(
        stats.summarize(
            "healthz_idle",
            "ours",
            1,
            idle.latencies_s,
            idle.errors,
            idle.elapsed_s,
            note="sequential GET /healthz, nothing else running",
        )
    )
    done = asyncio.Event()
    prober = asyncio.create_task(run_cell(probe, 1, 180.0, 0, stop=done))
    try:
        logins = await run_cell(
            wallet.login_op(ours.api, ours.users),
            run.plan.login_storm,
            120.0,
            0,
            max_ops=run.plan.login_storm,
            op_timeout_s=120.0,
        )
    finally:
        done.set()
    during = await prober
    run.add(
        stats.summarize(
            "login_storm",
            "ours",
            run.plan.login_storm,
            logins.latencies_s,
            logins.errors,
            logins.elapsed_s,
            note="bcrypt cost 12, all at once; ops/s = logins/s",
        )
    )
    run.add(
        stats.summarize(
            "healthz_during_logins",
            "ours",
            1,
            during.latencies_s,
            during.errors,
            during.elapsed_s,
            note=f"sequential GET /healthz while the {run.plan.login_storm} logins run",
        )
    )


async def bench_ours(run: Run, simnet: stack.Simnet, database_url: str, redis_url: str) -> None:
    if not any(run.plan.wants(w) for w in OURS):
        return
    async with session() as http:
        ours = await start_ours(run, simnet, database_url, redis_url, http)
        if run.plan.wants("create_invoice"):
            await run.phase(
                "create_invoice",
                run.cells(
                    "create_invoice",
                    "ours",
                    wallet.create_invoice_op(ours.api, ours.users, INVOICE_SAT, ours.made),
                    "HTTP->queue->worker->LND->Postgres, 201 open (202 = error)",
                ),
            )
            await run.phase("create_timeline", measure_create_timeline(run, ours, database_url))
            await run.phase("lean_pipeline", bench_lean_pipeline(run, ours, http))
        if run.plan.wants("reads"):
            await top_up_made(ours, USERS * 20)
            await run.phase(
                "reads",
                run.cells(
                    "reads",
                    "ours",
                    wallet.reads_op(ours.api, ours.users),
                    "GET /api/v1/invoices page of 20, JWT auth",
                ),
            )
            await run.phase("lean_reads", bench_lean_reads(run, ours, http))
        if run.plan.wants("scaling"):
            await run.phase("scaling", bench_scaling(run, ours, http))
        if run.plan.wants("pay_external") or run.plan.wants("pay_internal"):
            await run.phase("pay", bench_pay(run, ours, simnet))
        if run.plan.wants("settlement"):
            await run.phase("settlement", bench_settlement(run, ours, simnet, database_url))
        if run.plan.wants("login_storm"):
            await run.phase("login_storm", bench_login_storm(run, ours))
