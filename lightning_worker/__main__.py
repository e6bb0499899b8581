"""``python -m lightning_worker``: run one worker (uvloop, JSON logs). Exit 2 on bad configuration,
3 when the worker refused to run (connected to another LND node than the database's)."""

from __future__ import annotations

import asyncio
import sys


def main() -> int:
    from shared.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"lightning_worker: {exc}", file=sys.stderr)
        return 2

    import uvloop
    from arq.worker import get_kwargs

    from lightning_worker.arq_worker import ResilientWorker
    from lightning_worker.worker import FATAL_ERRORS, build_worker_settings
    from shared.logs import configure_logging

    configure_logging(settings.log_level)
    asyncio.set_event_loop(uvloop.new_event_loop())
    worker = ResilientWorker(**get_kwargs(build_worker_settings(settings)))
    try:
        worker.run()
    except (asyncio.CancelledError, Exception):
        # arq's close() can re-raise the cancellation of jobs it was stopping; after a refusal to
        # run that is expected, and the refusal is what the exit status must say.
        if not FATAL_ERRORS:
            raise
    if FATAL_ERRORS:
        print(f"lightning_worker: {FATAL_ERRORS[0]}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
