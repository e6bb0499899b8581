"""CPU time per process kind, read from /proc: what one cell cost each process of the machine.

A snapshot sums utime + stime (clock ticks) of the processes of each kind:

- ``api``, ``worker``, ``simnet``: every process in the process group of a bench child of that kind
  (gunicorn's master and its workers; LNbits and the reference servers count as ``api``, the
  reference workers as ``worker``);
- ``postgres``: the backends serving the bench database (their title names it), so other sessions'
  backends on the shared server are left out; a backend that exits during a cell takes its time along
  (the pools here keep theirs open);
- ``redis``: the Redis server (shared with other users of the machine: an upper bound);
- ``loadgen``: the bench process itself (the load generator; little else runs in it during a cell).

The difference of two snapshots divided by the cell's successes is the "CPU ms per op" of the report
(``bench.stats.cpu_per_op``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def child_kind(name: str) -> str:
    """The column a bench child's CPU goes to, from its name."""
    if name.startswith("worker") or name.endswith("_worker") or name == "arq_ceiling":
        return "worker"
    if name == "lnd_simnet":
        return "simnet"
    return "api"


def _stat(pid: int) -> tuple[int, float] | None:
    """(process group, CPU ms) of one process, None if it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[2]), (int(fields[11]) + int(fields[12])) * _TICK_MS


def _cmdline(pid: int) -> bytes:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _comm(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


class CpuMeter:
    """Snapshots of CPU ms per kind; ``groups()`` gives (process group id, kind) of the bench's children."""

    def __init__(self, database: str, groups: Callable[[], Iterable[tuple[int, str]]]) -> None:
        self.database = database.encode()
        self.groups = groups
        self.me = os.getpid()

    def snapshot(self) -> Counter[str]:
        kinds = dict(self.groups())
        totals: Counter[str] = Counter()
        for entry in os.scandir(_PROC):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            stat = _stat(pid)
            if stat is None:
                continue
            pgid, ms = stat
            if pid == self.me:
                totals["loadgen"] += ms
            elif pgid in kinds:
                totals[kinds[pgid]] += ms
            elif _comm(pid) == "redis-server":
                totals["redis"] += ms
            elif _comm(pid) == "postgres" and self.database in _cmdline(pid):
                totals["postgres"] += ms
        return totals
