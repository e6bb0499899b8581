"""The run's plan and its bookkeeping: cells per concurrency, pooled cells, phases that fail alone."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import bob as bobm
from bench import stats
from bench.cpu import CpuMeter, child_kind
from bench.loadgen import Op, run_cell
from bench.procs import Children
from bench.stats import CellResult

WORKLOADS = (
    "lnbits",
    "bare_json",
    "arq_roundtrip",
    "simnet",
    "create_invoice",
    "reads",
    "scaling",
    "pay_external",
    "pay_internal",
    "settlement",
    "login_storm",
)
INVOICE_SAT = 10
FUNDING_SAT = 100_000


@dataclass(frozen=True)
class Plan:
    quick: bool
    only: frozenset[str]
    concurrencies: tuple[int, ...]
    duration_s: float
    warmup_s: float
    settlement_n: int
    login_storm: int = 50

    def wants(self, name: str) -> bool:
        return name in self.only


def make_plan(args: argparse.Namespace) -> Plan:
    only = frozenset(args.only.split(",")) if args.only else frozenset(WORKLOADS)
    unknown = only - set(WORKLOADS)
    if unknown:
        raise SystemExit(
            f"unknown workload(s) {', '.join(sorted(unknown))}; choose among {', '.join(WORKLOADS)}"
        )
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    if args.quick:
        return Plan(True, only, concurrencies, args.duration or 1.5, 0.3, settlement_n=100)
    return Plan(False, only, concurrencies, args.duration or 5.0, 1.0, settlement_n=500)


@dataclass
class Run:
    plan: Plan
    work: Path
    children: Children
    results: list[CellResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # more report sections (meta keys)
    database: str = "lightning_wallet_bench"  # whose Postgres backends count in the CPU figures

    @property
    def meter(self) -> CpuMeter:
        return CpuMeter(
            self.database,
            lambda: [(child.popen.pid, child_kind(child.name)) for child in self.children.children],
        )

    def add(self, cell: CellResult) -> None:
        self.results.append(cell)
        errors = f" errors={cell.errors} {cell.error_kinds}" if cell.errors else ""
        print(
            f"bench: {cell.workload:<22} {cell.system:<12} c={cell.concurrency:<3} "
            f"{cell.throughput_per_s:9.1f}/s  p50 {stats.fmt(cell.p50_ms):>7} ms  "
            f"p99 {stats.fmt(cell.p99_ms):>7} ms  ok={cell.ok}{errors}",
            flush=True,
        )

    async def cells(
        self, workload: str, system: str, op: Op, note: str = "", concurrencies: tuple[int, ...] = ()
    ) -> None:
        """One timed cell per concurrency (the plan's, unless given), each after its warm-up."""
        for concurrency in concurrencies or self.plan.concurrencies:
            samples = await run_cell(
                op, concurrency, self.plan.duration_s, self.plan.warmup_s, meter=self.meter
            )
            self.add(
                stats.summarize(
                    workload,
                    system,
                    concurrency,
                    samples.latencies_s,
                    samples.errors,
                    samples.elapsed_s,
                    note=note,
                    cpu_ms=samples.cpu_ms,
                )
            )

    async def pooled_cells(
        self,
        workload: str,
        system: str,
        fill: Callable[[int], Awaitable[list[Any]]],
        make_op: Callable[[list[Any]], Op],
        note: str = "",
    ) -> None:
        """Cells whose operations each consume one pre-made input (an invoice to pay).

        Before each cell, ``fill(n)`` makes (untimed) a pool sized from the previous cell's rate; a
        cell that empties its pool ends early and says so (its rate is still successes / wall time)."""
        rate = 50.0
        for concurrency in self.plan.concurrencies:
            pool = await fill(stats.pool_size(rate, concurrency, self.plan.duration_s, self.plan.warmup_s))
            samples = await run_cell(
                make_op(pool), concurrency, self.plan.duration_s, self.plan.warmup_s, meter=self.meter
            )
            dry = not pool and samples.elapsed_s < self.plan.duration_s * 0.95
            cell = stats.summarize(
                workload,
                system,
                concurrency,
                samples.latencies_s,
                samples.errors,
                samples.elapsed_s,
                note=note + (" [pool ran dry: cell ended early]" if dry else ""),
                cpu_ms=samples.cpu_ms,
            )
            self.add(cell)
            rate = max(cell.throughput_per_s, 1.0)

    async def phase(self, name: str, body: Awaitable[None]) -> None:
        """Run one phase; a failure is reported (and kept in the notes), the run goes on."""
        print(f"bench: --- {name}", flush=True)
        try:
            await body
        except Exception as exc:
            message = f"{name} failed: {type(exc).__name__}: {str(exc)[:600]}"
            print(f"bench: {message}", flush=True)
            self.notes.append(message)


def session(limit: int = 256) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit), timeout=aiohttp.ClientTimeout(total=60)
    )


def bob_fill(bob: Any) -> Callable[[int], Awaitable[list[str]]]:
    return lambda n: bobm.make_invoices(bob, n, INVOICE_SAT)
