"""Benchmark lnd_simnet itself over real gRPC (TLS + macaroon), 127.0.0.1 only.

    python bench/simnet_bench.py [--seconds N] [--concurrency 16] [--json OUT]

Starts its own simnet (temp dir, free ports, delay 0 unless --delay-ms), then measures
AddInvoice calls/s on alice and SendPaymentV2 payments/s bob -> alice (invoices made beforehand).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.simnet import Simnet


async def _run_for(seconds: float, concurrency: int, op) -> tuple[int, float, list[float]]:
    deadline = time.perf_counter() + seconds
    count = 0
    latencies: list[float] = []

    async def worker(i: int) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t)
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return count, time.perf_counter() - start, latencies


def _p(latencies: list[float], q: float) -> float:
    if not latencies:
        return 0.0
    s = sorted(latencies)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


async def bench(seconds: float, concurrency: int, delay_ms: int) -> dict:
    async with Simnet(
        serve_args=(
            "--delay-ms",
            str(delay_ms),
            "--capacity-sat",
            "100000000",
            "--alice-local-sat",
            "10000000",
        )
    ) as net:
        alice, bob = net.client("alice"), net.client("bob")

        async def add_invoice(i: int) -> None:
            await alice.add_invoice(value_msat=1000, memo="bench", expiry_s=3600, preimage=os.urandom(32))

        await _run_for(0.5, concurrency, add_invoice)  # warm-up
        n_inv, el_inv, lat_inv = await _run_for(seconds, concurrency, add_invoice)

        stock: list[str] = []
        target = int(max(n_inv / el_inv, 500) * seconds * 1.2) + 100

        async def make(i: int) -> None:
            added = await alice.add_invoice(
                value_msat=10_000, memo="", expiry_s=3600, preimage=os.urandom(32)
            )
            stock.append(added.payment_request)

        remaining = min(target, 200_000)

        async def maker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await make(0)

        await asyncio.gather(*(maker() for _ in range(concurrency)))

        async def pay(i: int) -> None:
            if not stock:
                raise RuntimeError("ran out of invoices")
            payreq = stock.pop()
            async for update in bob.send_payment(
                payment_request=payreq, fee_limit_msat=100_000, timeout_s=30, no_inflight_updates=True
            ):
                if update.status.name != "SUCCEEDED":
                    raise RuntimeError(f"payment failed: {update}")

        n_pay, el_pay, lat_pay = await _run_for(seconds, concurrency, pay)
        return {
            "seconds": seconds,
            "concurrency": concurrency,
            "delay_ms": delay_ms,
            "add_invoice": {
                "calls": n_inv,
                "per_s": round(n_inv / el_inv, 1),
                "p50_ms": round(_p(lat_inv, 0.5), 2),
                "p99_ms": round(_p(lat_inv, 0.99), 2),
            },
            "send_payment": {
                "payments": n_pay,
                "per_s": round(n_pay / el_pay, 1),
                "p50_ms": round(_p(lat_pay, 0.5), 2),
                "p99_ms": round(_p(lat_pay, 0.99), 2),
            },
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    result = asyncio.run(bench(args.seconds, args.concurrency, args.delay_ms))
    print(f"{'operation':<16}{'count':>8}{'per_s':>10}{'p50_ms':>9}{'p99_ms':>9}")
    for name in ("add_invoice", "send_payment"):
        r = result[name]
        print(
            f"{name:<16}{r.get('calls', r.get('payments')):>8}"
            f"{r['per_s']:>10}{r['p50_ms']:>9}{r['p99_ms']:>9}"
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
