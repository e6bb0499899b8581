"""`python -m bench [--quick] [--only NAME[,NAME...]]`: the whole benchmark (see bench/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import chart, machine, ours, references, stack, stats
from bench.procs import Children
from bench.runner import WORKLOADS, Run, make_plan
from bench.stats import CellResult

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RUN_TIMEOUT_S = 690  # the whole run stays under 12 minutes, set-up included


async def run_all(run: Run, database_url: str, redis_url: str) -> None:
    plan = run.plan
    await flush_redis(redis_url)
    await stack.recreate_database(database_url, run.work / "alembic.log")
    simnet = await stack.start_simnet(run.children, run.work / "simnet")
    # References first, each alone on the machine (our API and worker are not started yet).
    if plan.wants("lnbits"):
        await run.phase("lnbits", references.bench_lnbits(run, simnet))
    if plan.wants("bare_json"):
        await run.phase("bare_json", references.bench_bare_json(run))
    if plan.wants("arq_roundtrip"):
        await run.phase("arq_roundtrip", references.bench_arq(run, redis_url))
    if plan.wants("simnet"):
        await run.phase("simnet", references.bench_simnet(run, simnet))
    await run.phase("ours", ours.bench_ours(run, simnet, database_url, redis_url))


async def main_async(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    main_task = asyncio.current_task()
    assert main_task is not None
    # SIGTERM like Ctrl-C: cancel the run, so every child is stopped on the way out.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    base_db = os.environ.get("DATABASE_URL") or stack.DEFAULT_DATABASE_URL
    base_redis = os.environ.get("REDIS_URL") or stack.DEFAULT_REDIS_URL
    database_url, redis_url = stack.bench_database_url(base_db), stack.bench_redis_url(base_redis)
    load_before = os.getloadavg()
    sampler = machine.LoadSampler()
    sampler.start()
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    print(f"bench: {'quick' if plan.quick else 'full'} run, logs in {work}", flush=True)
    with Children(work) as children:
        run = Run(plan, work, children)
        try:
            # Bounded: whatever still runs at the deadline is cancelled; the report keeps the rest.
            async with asyncio.timeout(RUN_TIMEOUT_S):
                await run_all(run, database_url, redis_url)
        except TimeoutError:
            run.notes.append(f"run stopped at its {RUN_TIMEOUT_S}s bound; later cells are missing")
        except Exception as exc:
            run.notes.append(f"set-up failed: {type(exc).__name__}: {str(exc)[:600]}")
        finally:
            await sampler.stop()
            children.stop_all()
            await flush_redis(redis_url)
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": machine.describe(),
        "load": sampler.summary(load_before),
        "mode": f"{'quick' if plan.quick else 'full'}: {plan.duration_s}s per cell after {plan.warmup_s}s "
        f"warm-up, concurrency {', '.join(map(str, plan.concurrencies))}; total {time.time() - started:.0f}s",
        "command": "make bench" + (f" BENCH_ARGS='{shlex.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
        "method": "closed-loop asyncio aiohttp load generator in the bench process (separate from every "
        "server); ops/s = successes / wall time; percentiles over successes; errors counted by kind",
    }
    meta.update(run.extra)
    if run.notes:
        meta["problems"] = run.notes
    write_report(run.results, meta, Path(args.out) if args.out else RESULTS_DIR)
    return 1 if run.notes else 0


async def flush_redis(redis_url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def write_report(results: list[CellResult], meta: dict[str, Any], out_dir: Path) -> None:
    targets = stats.evaluate_targets(results)
    markdown = stats.render_markdown(results, targets, meta)
    if meta.get("problems"):
        markdown += "\n## Problems in this run\n\n" + "\n".join(f"- {p}" for p in meta["problems"]) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(markdown)
    (out_dir / "latest.json").write_text(json.dumps(stats.to_json(results, targets, meta), indent=2) + "\n")
    try:
        chart.draw(
            results, out_dir / "latest.png", f"lightning-wallet bench {meta['date']} - {meta['machine']}"
        )
    except Exception as exc:  # the table matters more than the picture
        print(f"bench: chart failed: {exc}", file=sys.stderr)
    print()
    print(markdown)
    print(f"bench: wrote {out_dir / 'latest.md'}, latest.json, latest.png")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds per cell: a smoke test")
    parser.add_argument("--only", help=f"comma-separated workloads among: {', '.join(WORKLOADS)}")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated (default 1,16,64)")
    parser.add_argument("--duration", type=float, help="seconds per cell (default 5, quick 1.5)")
    parser.add_argument("--out", help="results folder (default bench/results)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; every child process was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
