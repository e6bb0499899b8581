"""Command line of the API service: serve (default), seed, create-admin."""

from __future__ import annotations

import argparse
import asyncio
import logging

from aiohttp import web
from api_service.app import create_app
from api_service.middleware import JsonAccessLogger
from shared.config import ConfigError, Settings, load_settings
from shared.logs import configure_logging


def serve(settings: Settings) -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        pass
    logging.getLogger("api").info("listening", extra={"host": settings.api_host, "port": settings.api_port})
    web.run_app(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        access_log_class=JsonAccessLogger,
        print=None,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m api_service")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the HTTP API (the default)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=__import__("sys").stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command in (None, "serve"):
        serve(settings)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2
