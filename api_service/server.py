"""How the API runs: one aiohttp process, or ``API_WORKERS`` processes under gunicorn.

``API_WORKERS=1`` (the default): ``web.run_app`` on uvloop, as aiohttp documents for one process.

``API_WORKERS=N>1``: aiohttp's documented production deployment, gunicorn with
``aiohttp.worker.GunicornUVLoopWebWorker``. The master binds ``API_HOST:API_PORT`` and forks N
workers; each builds its own app with ``create_app`` (its own pools and event loop) after the fork.
A dead worker is replaced by the master; SIGTERM stops them all gracefully.

Metrics across processes: before anything imports prometheus-client, ``PROMETHEUS_MULTIPROC_DIR`` is
pointed at a directory for this run: the operator's (emptied at start, so a previous run's counts
never leak in) or a fresh temporary one, removed when the master exits. The imports of the app are
therefore inside the functions below, and ``api_service.cli`` imports none of them at module level.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from shared.config import Settings

log = logging.getLogger("api")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own switch
WORKER_CLASS = "aiohttp.worker.GunicornUVLoopWebWorker"
GRACEFUL_TIMEOUT_S = 10
KEEPALIVE_S = 75  # aiohttp's default keep-alive, kept under gunicorn


def serve(settings: Settings) -> None:
    if settings.api_workers > 1:
        _serve_gunicorn(settings)
    else:
        _serve_single(settings)


def _serve_single(settings: Settings) -> None:
    from aiohttp import web

    from api_service.app import create_app
    from api_service.middleware import JsonAccessLogger

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        pass
    log.info("listening", extra={"host": settings.api_host, "port": settings.api_port, "workers": 1})
    web.run_app(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        access_log_class=JsonAccessLogger,
        print=None,
    )


def prepare_multiprocess_dir() -> tuple[Path, bool]:
    """Point prometheus-client at an empty directory for this run; returns it and whether we made it."""
    if "prometheus_client" in sys.modules:
        # Its value class is chosen at import: samples would stay in each process's memory.
        raise RuntimeError(f"prometheus_client was imported before {MULTIPROC_ENV} was set")
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="lw-api-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path, True


def _bind_address(settings: Settings) -> str:
    host = settings.api_host
    return f"[{host}]:{settings.api_port}" if ":" in host else f"{host}:{settings.api_port}"


def _serve_gunicorn(settings: Settings) -> None:
    metrics_dir, made_here = prepare_multiprocess_dir()
    from gunicorn.app.base import BaseApplication
    from prometheus_client import multiprocess

    def child_exit(server: Any, worker: Any) -> None:
        multiprocess.mark_process_dead(worker.pid)

    def on_exit(server: Any) -> None:
        if made_here:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    options = {
        "bind": _bind_address(settings),
        "workers": settings.api_workers,
        "worker_class": WORKER_CLASS,
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "loglevel": settings.log_level.lower(),
        "logconfig_dict": _json_logging(settings.log_level),
        "proc_name": "lightning-wallet-api",
        "child_exit": child_exit,
        "on_exit": on_exit,
        # gunicorn >= 25 opens a control socket under $HOME; two API instances on one host would
        # share it, and nothing here uses it.
        "control_socket_disable": True,
    }

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # an older gunicorn lacks the newest settings
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return _app_runner_factory(settings)

    log.info(
        "listening",
        extra={"host": settings.api_host, "port": settings.api_port, "workers": settings.api_workers},
    )
    Gunicorn().run()


def _json_logging(level: str) -> dict[str, Any]:
    """gunicorn's own lines (boot, worker exits) in the same JSON as ours, on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "shared.logs.JsonFormatter"}},
        "handlers": {
            "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {"gunicorn.error": {"level": level, "handlers": ["json"], "propagate": False}},
    }


def _app_runner_factory(settings: Settings) -> Any:
    """What each gunicorn worker calls in its own loop after the fork: our app, our access log."""

    async def runner() -> Any:
        from aiohttp import web

        from api_service.app import create_app
        from api_service.middleware import JsonAccessLogger

        return web.AppRunner(
            create_app(settings),
            access_log_class=JsonAccessLogger,
            keepalive_timeout=KEEPALIVE_S,
            shutdown_timeout=GRACEFUL_TIMEOUT_S * 0.9,
        )

    return runner
