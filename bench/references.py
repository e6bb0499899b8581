"""The references, each measured alone with the same load generator: LNbits, the bare aiohttp handler,
the bare arq round trip, and lnd_simnet itself."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from bench import arq_ceiling, lnbits, stack, wallet
from bench import bob as bobm
from bench.loadgen import run_cell
from bench.procs import REPO_ROOT, free_port, python_argv, wait_http
from bench.runner import FUNDING_SAT, INVOICE_SAT, Run, bob_fill, session
from bench.stats import CellResult


async def bench_lnbits(run: Run, simnet: stack.Simnet) -> None:
    lnd = {
        "host": "127.0.0.1",
        "port": str(simnet.alice_port),
        "cert": str(simnet.cert("alice")),
        "macaroon": str(simnet.macaroon("alice")),
    }
    node = await lnbits.start(run.children, run.work / "lnbits", "LndWallet", lnd, run.work)
    bob = simnet.client("bob")
    try:
        async with session() as http:
            await lnbits.create_wallet(http, node)
            note = "LNbits 1.6.2, LndWallet on the same simnet alice, SQLite"
            await run.cells(
                "create_invoice", "lnbits", lnbits.create_invoice_op(http, node, INVOICE_SAT), note
            )
            if not run.plan.wants("pay_external"):
                return
            funding = await lnbits.create_invoice(http, node, FUNDING_SAT * 2)
            await bobm.pay(bob, funding)
            got = await lnbits.wait_balance(http, node, FUNDING_SAT * 2 * 1000)
            if got < FUNDING_SAT * 2 * 1000:
                raise RuntimeError(f"LNbits wallet not funded (balance {got} msat)")
            await run.pooled_cells(
                "pay_external",
                "lnbits",
                bob_fill(bob),
                lambda pool: lnbits.pay_op(http, node, pool),
                note + ", to Bob",
            )
    finally:
        await bob.close()
        run.children.stop(node.child)


async def bench_bare_json(run: Run) -> None:
    port = free_port()
    child = run.children.start("bare_server", python_argv("-m", "bench.bare_server", "--port", str(port)))
    try:
        url = f"http://127.0.0.1:{port}/json"
        await wait_http(url, child)
        async with session() as http:
            await run.cells(
                "bare_json",
                "bare_aiohttp",
                wallet.plain_get_op(http, url),
                "aiohttp+uvloop, 20-item JSON page, no middleware/auth/DB",
            )
    finally:
        run.children.stop(child)


async def bench_arq(run: Run, redis_url: str) -> None:
    child = run.children.start(
        "arq_ceiling", python_argv("-m", "bench.arq_ceiling", "--redis-url", redis_url)
    )
    pool = await arq_ceiling.open_pool(redis_url)
    try:
        ready = await run_cell(arq_ceiling.roundtrip_op(pool), 1, 10.0, 0, max_ops=1)
        if not ready.latencies_s:
            raise RuntimeError(f"arq ceiling worker did not answer: {ready.errors}\n{child.log_tail()}")
        await run.cells(
            "arq_roundtrip",
            "bare_arq",
            arq_ceiling.roundtrip_op(pool),
            f"enqueue->result, worker tuned as ours, result poll {arq_ceiling.RESULT_POLL_S}s",
        )
    finally:
        await pool.aclose()
        run.children.stop(child)


async def bench_simnet(run: Run, simnet: stack.Simnet) -> None:
    """AddInvoice on the simnet alice we use (the LND share of a create), then simnet_bench.py's figures."""
    alice = simnet.client("alice")

    async def add_invoice(seq: int) -> None:
        await alice.add_invoice(
            value_msat=INVOICE_SAT * 1000, memo="bench", expiry_s=3600, preimage=os.urandom(32)
        )

    try:
        await run.cells("add_invoice_grpc", "simnet", add_invoice, "gRPC AddInvoice to alice, from the bench")
    finally:
        await alice.close()
    await run_simnet_bench(run)


async def run_simnet_bench(run: Run) -> None:
    """bench/simnet_bench.py (the simnet engineer's) in its own simnet, delay 0, concurrency 16."""
    script = REPO_ROOT / "bench" / "simnet_bench.py"
    if not script.exists():
        run.notes.append("bench/simnet_bench.py not found: no simnet_bench rows")
        return
    out = run.work / "simnet_bench.json"
    seconds = "1" if run.plan.quick else "3"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        "--seconds",
        seconds,
        "--concurrency",
        "16",
        "--json",
        str(out),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        raise
    if proc.returncode != 0:
        raise RuntimeError(
            f"simnet_bench.py exited {proc.returncode}: {output.decode(errors='replace')[-400:]}"
        )
    data = json.loads(out.read_text())
    for key, workload in (("add_invoice", "add_invoice"), ("send_payment", "send_payment")):
        r = data[key]
        count = int(r.get("calls", r.get("payments", 0)))
        run.add(
            CellResult(
                workload,
                "simnet_bench",
                int(data["concurrency"]),
                count,
                0,
                count / r["per_s"] if r["per_s"] else 0.0,
                float(r["per_s"]),
                r["p50_ms"],
                None,
                r["p99_ms"],
                None,
                note=f"bench/simnet_bench.py, own simnet, delay {data['delay_ms']} ms",
            )
        )
