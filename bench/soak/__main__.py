"""``python -m bench.soak``: see the package docstring."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

from bench.procs import REPO_ROOT, Children, StartError
from bench.soak import audit, faults, report
from bench.soak.receiver import Receiver
from bench.soak.stack import Stack
from bench.soak.workload import Workload
from devtools.private_redis import stop_private_redis
from devtools.services import with_database

SOAK_DB = "lightning_wallet_soak"
DEFAULT_SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/lightning_wallet"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of load (default 5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=6.0, help="operations started per second")
    parser.add_argument("--concurrency", type=int, default=12, help="operations running at most at once")
    parser.add_argument("--rounds", type=int, default=None, help="times each repeated fault is injected")
    parser.add_argument("--quiesce-s", type=float, default=120.0, help="bound on the wait for final rows")
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"the soak's database (default: {SOAK_DB} on the server of DATABASE_URL)",
    )
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / ".run" / "soak")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.database_url is None:
        args.database_url = with_database(os.environ.get("DATABASE_URL") or DEFAULT_SERVER_URL, SOAK_DB)
    if args.rounds is None:
        args.rounds = max(1, min(5, round(args.minutes)))
    return args


def fresh_run_dir(run_dir: Path) -> None:
    """Logs and simnet data of this run only (the audit reads every log in it)."""
    stop_private_redis(run_dir)  # a soak killed by SIGKILL may have left its Redis
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)


async def soak(args: argparse.Namespace) -> int:
    began = time.time()
    rng = random.Random(args.seed)
    load_s = args.minutes * 60
    fresh_run_dir(args.run_dir)
    print(f"soak: run dir {args.run_dir}, database {args.database_url.rsplit('/', 1)[-1]}", flush=True)
    with Children(args.run_dir) as children:
        stack = Stack(args.run_dir, args.database_url, children)
        try:
            await stack.start()
        except (StartError, RuntimeError) as exc:
            print(f"soak: could not start the stack: {exc}", file=sys.stderr)
            return 2
        receiver = await Receiver(seed=args.seed).start()
        try:
            async with Workload(
                stack, receiver, random.Random(rng.random()), args.rate, args.concurrency
            ) as load:
                await load.setup()
                print(f"soak: stack up, {len(load.users)} users funded; {load_s:.0f} s of load", flush=True)
                injector = faults.Injector(stack, random.Random(rng.random()), load.reset_bob)
                plan = faults.schedule(random.Random(rng.random()), load_s, args.rounds)
                load_started = time.monotonic()
                await asyncio.gather(load.run(load_s), injector.run(plan))
                load_took_s = time.monotonic() - load_started
                print(f"soak: load done ({sum(load.operations.values())} operations); quiescing", flush=True)
                exited = stack.exited()
                with contextlib.suppress(RuntimeError):  # a worker that died is reported as exited
                    await stack.wait_workers_healthy()
                alice = stack.simnet.client("alice")
                orphans = asyncio.create_task(load.release_orphan_holds(alice))
                try:
                    try:
                        left = await audit.quiesce(args.database_url, alice, args.quiesce_s)
                    finally:
                        orphans.cancel()
                        await asyncio.gather(orphans, return_exceptions=True)
                    checker = audit.Audit(args.database_url, alice, receiver)
                    await checker.run(load.expectations, injector.faults, stack.log_files())
                finally:
                    await alice.close()
        finally:
            await receiver.close()
            stop_private_redis(args.run_dir)
    violations = [*load.violations, *checker.violations]
    violations += [{"check": "process_exited", **item} for item in exited]
    violations += [{"check": "http_5xx", **incident} for incident in load.incidents]
    violations += [{"check": "fault_not_injected", **error} for error in injector.errors]
    injected = {fault.kind for fault in injector.faults}
    violations += [
        {"check": "fault_kind_missing", "kind": kind} for kind in faults.KINDS if kind not in injected
    ]
    if left.get("waited_s") is not None and len(left) > 1:
        violations.append({"check": "not_quiesced", **left})
    result = report.build(
        database=args.database_url.rsplit("/", 1)[-1],
        seed=args.seed,
        duration_s=time.time() - began,
        load_s=load_took_s,
        operations=load.operations,
        outcomes=load.outcomes,
        faults=injector.faults,
        fault_errors=injector.errors,
        violations=violations,
        reconciliation=checker.reconciliation,
        latency=load.latency_ms,
        quiesce=left,
    )
    json_path, md_path = report.write(args.out, result)
    print(f"soak: {len(violations)} violations; faults {result['faults']}; wrote {json_path} and {md_path}")
    for violation in violations[:20]:
        print(f"  violation: {str(violation)[:300]}")
    return 1 if violations else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        return asyncio.run(soak(args))
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    finally:
        # Again, once asyncio.run has joined its threads: a Redis restart in a thread when the run was
        # interrupted may have started it after the first stop.
        stop_private_redis(args.run_dir)


if __name__ == "__main__":
    sys.exit(main())
