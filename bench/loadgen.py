"""The load generator: a closed loop of N asyncio workers, each awaiting one operation at a time.

The same generator drives every system (our API, LNbits, the bare aiohttp handler, the bare arq
round trip), from the bench process, which is a separate process from every server it measures.
With two cores the generator still competes with the servers for CPU; that is the same for every
row, so the ratios compare like with like (documented in bench/__init__.py).

An operation is ``async def op(seq: int) -> None``: it returns on success and raises on failure.
The exception's ``kind`` attribute (or its class name) becomes the error kind in the report. A
cell runs for ``duration_s`` or until ``max_ops`` operations started, whichever comes first; each
operation is bounded by ``op_timeout_s``; a warm-up at the same concurrency precedes the timed run.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

Op = Callable[[int], Awaitable[None]]


class OpError(Exception):
    """An operation's failure, with a short stable ``kind`` for the error column."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class Exhausted(Exception):
    """The operation has no more input (a pre-made pool ran dry): the worker stops, no error counted."""


class Meter(Protocol):
    def snapshot(self) -> Counter[str]: ...


@dataclass
class Samples:
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    cpu_ms: Counter[str] = field(default_factory=Counter)  # CPU ms per process kind during the cell


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, OpError):
        return exc.kind
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    return type(exc).__name__


async def _loop(
    op: Op,
    seq: itertools.count,
    deadline: float,
    max_ops: int | None,
    op_timeout_s: float,
    samples: Samples | None,
    stop: asyncio.Event | None = None,
) -> None:
    while time.perf_counter() < deadline and not (stop is not None and stop.is_set()):
        n = next(seq)
        if max_ops is not None and n >= max_ops:
            return
        started = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation (Ctrl-C).
            async with asyncio.timeout(op_timeout_s):
                await op(n)
        except Exhausted:
            return
        except Exception as exc:  # every failure is counted, never dropped
            if samples is not None:
                samples.errors[error_kind(exc)] += 1
            continue
        if samples is not None:
            samples.latencies_s.append(time.perf_counter() - started)


async def run_cell(
    op: Op,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.0,
    max_ops: int | None = None,
    op_timeout_s: float = 30.0,
    warmup_op: Op | None = None,
    stop: asyncio.Event | None = None,
    meter: Meter | None = None,
) -> Samples:
    """Warm up for ``warmup_s`` (results discarded), then measure for ``duration_s`` / ``max_ops``
    (or until ``stop`` is set); ``meter`` snapshots CPU time around the measured part."""
    if warmup_s > 0:
        deadline = time.perf_counter() + warmup_s
        warm_seq = itertools.count(10_000_000)
        await asyncio.gather(
            *(
                _loop(warmup_op or op, warm_seq, deadline, None, op_timeout_s, None)
                for _ in range(concurrency)
            )
        )
    samples = Samples()
    seq = itertools.count()
    before = meter.snapshot() if meter is not None else None
    started = time.perf_counter()
    deadline = started + duration_s
    await asyncio.gather(
        *(_loop(op, seq, deadline, max_ops, op_timeout_s, samples, stop) for _ in range(concurrency))
    )
    samples.elapsed_s = time.perf_counter() - started
    if meter is not None and before is not None:
        samples.cpu_ms = meter.snapshot()
        samples.cpu_ms.subtract(before)
    return samples
