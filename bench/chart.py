"""The PNG: throughput per concurrency and latency percentiles per concurrency, one line per row kind."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench.stats import CellResult


def series(results: Sequence[CellResult]) -> dict[str, list[CellResult]]:
    """Cells grouped as 'workload (system)', ordered by concurrency; single-cell kinds are kept too."""
    grouped: dict[str, list[CellResult]] = defaultdict(list)
    for cell in results:
        grouped[f"{cell.workload} ({cell.system})"].append(cell)
    return {name: sorted(cells, key=lambda c: c.concurrency) for name, cells in grouped.items()}


def draw(results: Sequence[CellResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 8))
    for i, (name, cells) in enumerate(series(results).items()):
        color = plt.cm.tab20((2 * i) % 20 + (2 * i) // 20 % 2)  # dark shades first, then the light ones
        ours = cells[0].system == "ours"
        width = 2.4 if ours else 1.0
        marker = "o" if ours else "^"
        xs = [c.concurrency for c in cells]
        style = f"{marker}-" if len(cells) > 1 else "s"
        left.plot(xs, [c.throughput_per_s for c in cells], style, color=color, label=name, linewidth=width)
        p50 = [(c.concurrency, c.p50_ms) for c in cells if c.p50_ms is not None]
        p99 = [(c.concurrency, c.p99_ms) for c in cells if c.p99_ms is not None]
        if p99:
            right.plot(*zip(*p99, strict=True), style, color=color, linewidth=width)
        if p50:
            right.plot(
                *zip(*p50, strict=True),
                "x--" if len(cells) > 1 else "x",
                color=color,
                alpha=0.6,
                linewidth=width,
            )
    ticks = sorted({c.concurrency for c in results})
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.set_xlabel("concurrency (closed-loop clients)")
        axis.grid(True, which="both", alpha=0.3)
    left.set_ylabel("successful operations / s")
    left.set_title("Throughput")
    right.set_ylabel("latency ms (solid p99, dashed p50); thick lines = ours")
    right.set_title("Latency percentiles")
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
