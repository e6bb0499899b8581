"""bench/results/soak.json and soak.md: what ran, what was injected, what the audit found."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench.soak.faults import KINDS, Fault
from bench.stats import percentile


def latency_summary(samples: dict[str, list[float]]) -> dict[str, dict[str, float | int | None]]:
    out = {}
    for kind, values in sorted(samples.items()):
        out[kind] = {
            "count": len(values),
            "p50_ms": _round(percentile(values, 50)),
            "p95_ms": _round(percentile(values, 95)),
            "p99_ms": _round(percentile(values, 99)),
            "max_ms": _round(max(values) if values else None),
        }
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def build(
    *,
    database: str,
    seed: int,
    duration_s: float,
    load_s: float,
    operations: Counter,
    outcomes: Counter,
    faults: list[Fault],
    fault_errors: list[dict],
    violations: list[dict],
    reconciliation: dict[str, Any],
    latency: dict[str, list[float]],
    quiesce: dict[str, Any],
) -> dict[str, Any]:
    injected = Counter(fault.kind for fault in faults)
    return {
        "database": database,
        "seed": seed,
        "duration_s": round(duration_s, 1),
        "load_s": round(load_s, 1),
        "operations": dict(sorted(operations.items())),
        "faults": {kind: injected.get(kind, 0) for kind in KINDS},
        "violations": violations,
        "reconciliation": reconciliation,
        "latency": latency_summary(latency),
        "quiesce": quiesce,
        "outcomes": dict(sorted(outcomes.items())),
        "fault_log": [
            {"kind": f.kind, "at_s": round(f.started, 3), "took_s": round(f.ended - f.started, 2), **f.detail}
            for f in faults
        ],
        "fault_errors": fault_errors,
    }


def write(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "soak.json", out_dir / "soak.md"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def render_markdown(report: dict[str, Any]) -> str:
    verdict = (
        "PASS: zero violations"
        if not report["violations"]
        else f"FAIL: {len(report['violations'])} violations"
    )
    lines = [
        "# Chaos soak (`make soak`)",
        "",
        f"{verdict}. Database `{report['database']}` (left in place), seed {report['seed']}, "
        f"{report['load_s']:.0f} s of load, {report['duration_s']:.0f} s in all.",
        "",
        "## Faults injected",
        "",
        "| fault | count |",
        "|---|---:|",
        *(f"| {kind} | {count} |" for kind, count in report["faults"].items()),
        "",
        "## Operations started",
        "",
        "| operation | count |",
        "|---|---:|",
        *(f"| {kind} | {count} |" for kind, count in report["operations"].items()),
        "",
        "## Reconciliation",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {key} | {json.dumps(value, default=str)} |" for key, value in report["reconciliation"].items()),
        "",
        f"Quiesce: {json.dumps(report['quiesce'])}",
        "",
        "## Latency of answered (2xx) requests, by operation",
        "",
        "| operation | count | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {kind} | {s['count']} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | {s['max_ms']} |"
            for kind, s in report["latency"].items()
        ),
        "",
        "## Violations",
        "",
    ]
    if report["violations"]:
        lines += [f"- `{json.dumps(v, default=str)[:800]}`" for v in report["violations"][:200]]
    else:
        lines.append("None.")
    if report["fault_errors"]:
        lines += ["", "## Faults that could not be injected", ""]
        lines += [f"- {e['kind']}: {e['error']}" for e in report["fault_errors"]]
    return "\n".join(lines) + "\n"
