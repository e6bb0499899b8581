"""Pure figures: percentiles, one result per cell, ratios, targets and the rendered report.

No clocks, no I/O: everything here is a function of its arguments, so ``tests/unit/test_bench_stats.py``
checks it without timing anything.

Counting rule: a cell's throughput is *successful* operations per second of the cell's wall time;
latency percentiles are over successful operations; every failed operation (HTTP error, timeout,
202 that did not finish within the server's wait, wrong state) is counted in ``errors`` with its kind,
and a target measured on a cell with errors is reported as missed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Comparison = Literal[">=", "<="]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks; None when empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class CellResult:
    """One (workload, system, concurrency) cell. Latencies in milliseconds."""

    workload: str
    system: str
    concurrency: int
    ok: int
    errors: int
    elapsed_s: float
    throughput_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    error_kinds: dict[str, int] = field(default_factory=dict)
    note: str = ""
    cpu_ms_per_op: dict[str, float] = field(default_factory=dict)  # process kind -> CPU ms per success

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.workload, self.system, self.concurrency)


def summarize(
    workload: str,
    system: str,
    concurrency: int,
    latencies_s: Sequence[float],
    error_kinds: Mapping[str, int],
    elapsed_s: float,
    note: str = "",
    cpu_ms: Mapping[str, float] | None = None,
) -> CellResult:
    """Reduce raw samples (seconds) to a CellResult; throughput counts successes only.

    ``cpu_ms``: CPU ms per process kind during the cell, reported per success."""
    ms = [value * 1000 for value in latencies_s]
    return CellResult(
        workload=workload,
        system=system,
        concurrency=concurrency,
        ok=len(ms),
        errors=sum(error_kinds.values()),
        elapsed_s=elapsed_s,
        throughput_per_s=len(ms) / elapsed_s if elapsed_s > 0 else 0.0,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=max(ms) if ms else None,
        error_kinds=dict(error_kinds),
        note=note,
        cpu_ms_per_op=cpu_per_op(cpu_ms or {}, len(ms)),
    )


CPU_KINDS = ("api", "worker", "postgres", "redis", "simnet", "loadgen")


def cpu_per_op(cpu_ms: Mapping[str, float], ok: int) -> dict[str, float]:
    """CPU ms per successful operation of each process kind; {} without successes or figures."""
    if ok <= 0 or not cpu_ms:
        return {}
    return {kind: max(float(cpu_ms.get(kind, 0.0)), 0.0) / ok for kind in CPU_KINDS}


def fmt_cpu(cpu: Mapping[str, float]) -> str:
    """'api / worker / pg / redis / simnet / loadgen' CPU ms per op, '-' when not measured."""
    if not cpu:
        return "-"
    return " / ".join(f"{cpu.get(kind, 0.0):.2f}" for kind in CPU_KINDS)


def backlog_rate(batches: list[tuple[float, int]]) -> tuple[float | None, float]:
    """(credits/s after the first transaction, span s) from (transaction time, rows) pairs, time-ordered.

    The first transaction's rows are excluded: its start marks time zero. None with fewer than two."""
    if len(batches) < 2:
        return None, 0.0
    span_s = batches[-1][0] - batches[0][0]
    after_first = sum(n for _, n in batches[1:])
    return (after_first / span_s if span_s > 0 else None), span_s


def pool_size(rate_per_s: float, concurrency: int, duration_s: float, warmup_s: float) -> int:
    """Inputs to pre-make for a cell expected to run at ``rate_per_s``: 1.5x the expected need plus slack."""
    return int(rate_per_s * 1.5 * (duration_s + warmup_s)) + 2 * concurrency + 10


TIMELINE_SEGMENTS = (
    ("HTTP in, auth, validation (request sent -> row inserted)", 0, 1),
    ("commit, enqueue, queue wait, worker job, LND AddInvoice (row inserted -> worker marks it open)", 1, 2),
    ("worker commit, event, API wake-up, re-read, response (marked open -> response received)", 2, 3),
    ("total", 0, 3),
)


def timeline_p50_ms(stamps: Sequence[tuple[float, float, float, float]]) -> list[tuple[str, float | None]]:
    """p50 (ms) of each segment of a create, from (sent, inserted, marked open, received) wall times (s)."""
    return [
        (label, percentile([(t[end] - t[start]) * 1000 for t in stamps], 50))
        for label, start, end in TIMELINE_SEGMENTS
    ]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def find(results: Iterable[CellResult], workload: str, system: str, concurrency: int | None = None):
    """The first cell matching, or None. ``concurrency=None`` matches the best-throughput cell."""
    matches = [r for r in results if r.workload == workload and r.system == system]
    if concurrency is None:
        return max(matches, key=lambda r: r.throughput_per_s, default=None)
    return next((r for r in matches if r.concurrency == concurrency), None)


# (our workload, reference workload, reference system, label) for the ratio columns.
LNBITS_PAIRS = {"create_invoice": "create_invoice", "pay_external": "pay_external"}
CEILING_PAIRS = {"reads": ("reads", "lean_reads"), "create_invoice": ("create_invoice", "lean_pipeline")}


def ratios_for(results: Sequence[CellResult], cell: CellResult) -> tuple[float | None, float | None]:
    """(ours / LNbits, ours / bare ceiling) throughput ratios of one of our cells, same concurrency."""
    if not cell.system.startswith("ours"):
        return (None, None)
    vs_lnbits = None
    if cell.workload in LNBITS_PAIRS:
        ref = find(results, LNBITS_PAIRS[cell.workload], "lnbits", cell.concurrency)
        vs_lnbits = ratio(cell.throughput_per_s, ref.throughput_per_s if ref else None)
    vs_ceiling = None
    if cell.workload in CEILING_PAIRS:
        workload, system = CEILING_PAIRS[cell.workload]
        ref = find(results, workload, system, cell.concurrency)
        vs_ceiling = ratio(cell.throughput_per_s, ref.throughput_per_s if ref else None)
    return (vs_lnbits, vs_ceiling)


@dataclass(frozen=True)
class Target:
    """A goal to report against; ``measured`` is None when the cells it needs were not run."""

    name: str
    goal: str
    comparison: Comparison
    threshold: float | None  # None: a figure reported beside the others, no goal
    measured: float | None
    unit: str
    errors: int = 0

    @property
    def status(self) -> str:
        if self.measured is None:
            return "not run"
        if self.errors:
            return f"missed ({self.errors} errors)"
        if self.threshold is None:
            return "reported"
        met = self.measured >= self.threshold if self.comparison == ">=" else self.measured <= self.threshold
        return "met" if met else "missed"


def _errors(*cells: CellResult | None) -> int:
    return sum(c.errors for c in cells if c is not None)


def _throughput(cell: CellResult | None) -> float | None:
    return cell.throughput_per_s if cell else None


def evaluate_targets(results: Sequence[CellResult]) -> list[Target]:
    """Issue 12's targets (and issue 6's settlement and login-storm ones), on whatever cells exist."""
    c1 = find(results, "create_invoice", "ours", 1)
    c16 = find(results, "create_invoice", "ours", 16)
    c64 = find(results, "create_invoice", "ours", 64)
    lnbits16 = find(results, "create_invoice", "lnbits", 16)
    lean16 = find(results, "create_invoice", "lean_pipeline", 16)
    reads16 = find(results, "reads", "ours", 16)
    lean_reads16 = find(results, "reads", "lean_reads", 16)
    external16 = find(results, "pay_external", "ours", 16)
    internal16 = find(results, "pay_internal", "ours", 16)
    lnbits_pay16 = find(results, "pay_external", "lnbits", 16)
    settle = find(results, "settlement", "ours")
    backlog = find(results, "settlement_backlog", "ours")
    healthz = find(results, "healthz_during_logins", "ours")
    return [
        Target(
            "reads vs the lean reference handler, c=16",
            ">= 0.7x",
            ">=",
            0.7,
            ratio(_throughput(reads16), _throughput(lean_reads16)),
            "x",
            _errors(reads16, lean_reads16),
        ),
        Target(
            "create invoice vs LNbits, c=16",
            ">= 5x LNbits",
            ">=",
            5.0,
            ratio(_throughput(c16), _throughput(lnbits16)),
            "x",
            _errors(c16, lnbits16),
        ),
        Target(
            "create invoice p50, c=1", "<= 12 ms", "<=", 12.0, c1.p50_ms if c1 else None, "ms", _errors(c1)
        ),
        Target(
            "create invoice p99, c=64 (zero errors)",
            "<= 500 ms",
            "<=",
            500.0,
            c64.p99_ms if c64 else None,
            "ms",
            _errors(c64),
        ),
        Target(
            "create invoice vs the lean pipeline reference, c=16",
            "reported",
            ">=",
            None,
            ratio(_throughput(c16), _throughput(lean16)),
            "x",
            _errors(c16, lean16),
        ),
        Target(
            "external payments vs LNbits' external, c=16",
            ">= 3x",
            ">=",
            3.0,
            ratio(_throughput(external16), _throughput(lnbits_pay16)),
            "x",
            _errors(external16, lnbits_pay16),
        ),
        Target(
            "internal payments vs LNbits' external, c=16",
            ">= 3x",
            ">=",
            3.0,
            ratio(_throughput(internal16), _throughput(lnbits_pay16)),
            "x",
            _errors(internal16, lnbits_pay16),
        ),
        Target(
            "settlement ingestion, live (bounded by Bob's payment rate)",
            ">= 1,000/s",
            ">=",
            1000.0,
            _throughput(settle),
            "/s",
            _errors(settle),
        ),
        Target(
            "settlement ingestion, backlog replay (ours alone)",
            ">= 1,000/s",
            ">=",
            1000.0,
            _throughput(backlog),
            "/s",
            _errors(backlog),
        ),
        Target(
            "/healthz p99 during 50 logins",
            "<= 20 ms",
            "<=",
            20.0,
            healthz.p99_ms if healthz else None,
            "ms",
            _errors(healthz),
        ),
    ]


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a table cell: thousands separators, '-' when missing."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_measured(target: Target) -> str:
    if target.measured is None:
        return "-"
    if target.unit == "ratio":
        return f"{target.measured:.0%}"
    if target.unit == "x":
        return f"{target.measured:.2f}x"
    return f"{fmt(target.measured)} {target.unit}"


RESULT_HEADER = (
    "| workload | system | c | ok | errors | ops/s | p50 ms | p90 ms | p99 ms | max ms "
    "| ours/LNbits | ours/ceiling | CPU ms/op api / worker / pg / redis / simnet / loadgen | note |"
)


def render_results_table(results: Sequence[CellResult]) -> str:
    lines = [RESULT_HEADER, _separator()]
    for cell in results:
        vs_lnbits, vs_ceiling = ratios_for(results, cell)
        errors = str(cell.errors)
        if cell.error_kinds:
            errors += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(cell.error_kinds.items())) + ")"
        lines.append(
            f"| {cell.workload} | {cell.system} | {cell.concurrency} | {cell.ok} | {errors} "
            f"| {fmt(cell.throughput_per_s)} | {fmt(cell.p50_ms)} | {fmt(cell.p90_ms)} | {fmt(cell.p99_ms)} "
            f"| {fmt(cell.max_ms)} | {fmt_ratio(vs_lnbits)} | {fmt_ratio(vs_ceiling)} "
            f"| {fmt_cpu(cell.cpu_ms_per_op)} | {cell.note} |"
        )
    return "\n".join(lines)


def _separator() -> str:
    columns = RESULT_HEADER.count("|") - 1
    return "|" + "---|" * columns


def render_targets_table(targets: Sequence[Target]) -> str:
    lines = ["| target | goal | measured | status |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.goal} | {fmt_measured(t)} | {t.status} |" for t in targets]
    return "\n".join(lines)


def render_markdown(results: Sequence[CellResult], targets: Sequence[Target], meta: Mapping[str, Any]) -> str:
    """The whole report: a header with the run's context, the results table and the targets."""
    header = [f"# lightning-wallet benchmark ({meta.get('date', '?')})", ""]
    for key in ("machine", "load", "mode", "command", "method"):
        if key in meta:
            header.append(f"- {key}: {meta[key]}")
    sections = [*header, "", render_results_table(results), "", "## Targets (reported, never asserted)", ""]
    sections += [render_targets_table(targets), ""]
    timeline = meta.get("create_timeline")
    if timeline:
        sections += [
            f"## Where one invoice create spends its time (c=1, p50 of {meta.get('create_timeline_n')})",
            "",
        ]
        sections += ["| segment | p50 ms |", "|---|---|"]
        sections += [f"| {label} | {fmt(value)} |" for label, value in timeline]
        sections += [""]
    return "\n".join(sections)


def to_json(
    results: Sequence[CellResult], targets: Sequence[Target], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """A JSON-ready dict of everything in the report, ratios included."""
    cells = []
    for cell in results:
        vs_lnbits, vs_ceiling = ratios_for(results, cell)
        cells.append({**asdict(cell), "ours_vs_lnbits": vs_lnbits, "ours_vs_ceiling": vs_ceiling})
    return {
        "meta": dict(meta),
        "results": cells,
        "targets": [{**asdict(t), "status": t.status} for t in targets],
    }
