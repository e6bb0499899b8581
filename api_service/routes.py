"""All routes, by resource module. Each module exposes ``setup(app)``."""

from __future__ import annotations

from aiohttp import web
from api_service import health


def setup(app: web.Application) -> None:
    health.setup(app)
