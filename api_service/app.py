"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from arq import create_pool
from arq.connections import RedisSettings

from api_service import routes
from api_service.events_hub import events_hub_ctx
from api_service.keys import ARQ, ENGINE, METRICS, READS, SESSIONS, SETTINGS
from api_service.metrics import HttpMetrics
from api_service.middleware import error_middleware, request_id_middleware
from shared import jobs
from shared.config import Settings
from shared.db.engine import create_engine, create_sessionmaker, read_engine


def redis_settings(settings: Settings) -> RedisSettings:
    # A short retry: a Redis outage shows up in /readyz instead of hanging start-up for long.
    parsed = RedisSettings.from_dsn(settings.redis_url)
    parsed.conn_retries = 2
    parsed.conn_timeout = 2
    return parsed


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS])
    app[ENGINE] = engine
    app[SESSIONS] = create_sessionmaker(engine)
    app[READS] = read_engine(engine)
    yield
    await engine.dispose()


async def _arq_pool(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await create_pool(
        redis_settings(settings), default_queue_name=settings.arq_queue_name, **jobs.SERIALIZERS
    )
    app[ARQ] = pool
    yield
    await pool.aclose()


def create_app(settings: Settings) -> web.Application:
    http_metrics = HttpMetrics()
    app = web.Application(
        middlewares=[http_metrics.middleware, request_id_middleware, error_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = http_metrics
    app.cleanup_ctx.extend([_database, _arq_pool])
    app.cleanup_ctx.append(events_hub_ctx)
    routes.setup(app)
    return app
