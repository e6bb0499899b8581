"""Where and under what load a run happened: CPU, cores, memory, load average and CPU busy samples."""

from __future__ import annotations

import asyncio
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


def describe() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {mem_gb:.1f} GB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _own_jiffies() -> int:
    """CPU time (jiffies) of this process, its reaped children and every live descendant."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        # utime + stime + cutime + cstime: a reaped child's time moves into its parent's c-fields.
        times[pid] = sum(int(v) for v in fields[11:15])
    me = os.getpid()
    total = 0
    for pid, jiffies in times.items():
        ancestor = pid
        while ancestor not in (0, 1, me):
            ancestor = parents.get(ancestor, 0)
        if ancestor == me:
            total += jiffies
    return total


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


@dataclass
class LoadSampler:
    """Samples the 1-minute load average and whole-machine CPU busy % every ``interval_s``."""

    interval_s: float = 2.0
    loads: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # busy outside the bench's process tree
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.loads.append(os.getloadavg()[0])
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        total, idle = _cpu_times()
        own = _own_jiffies()
        while True:
            await asyncio.sleep(self.interval_s)
            new_total, new_idle = _cpu_times()
            new_own = _own_jiffies()
            if new_total > total:
                span = new_total - total
                busy = span - (new_idle - idle)
                self.busy.append(100.0 * busy / span)
                # A descendant that died unreaped (re-parented away) takes its time out of the sum:
                # such an interval says nothing reliable about the others, so it is skipped.
                if new_own >= own:
                    self.others.append(100.0 * max(0, busy - (new_own - own)) / span)
            total, idle, own = new_total, new_idle, new_own
            self.loads.append(os.getloadavg()[0])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def summary(self, before: tuple[float, float, float]) -> str:
        parts = [
            f"load average before the run {before[0]:.2f} / {before[1]:.2f} / {before[2]:.2f} (1/5/15 min)"
        ]
        if self.loads:
            parts.append(f"peak 1-min load {max(self.loads):.2f}")
        if self.busy:
            parts.append(f"CPU busy {_mean(self.busy):.0f}% of the machine on average")
        if self.others:
            parts.append(
                f"of which {_mean(self.others):.0f}% (peak {max(self.others):.0f}%) outside the bench's "
                "processes (other users of the machine, plus the shared Postgres and Redis serving the bench)"
            )
        return "; ".join(parts)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
