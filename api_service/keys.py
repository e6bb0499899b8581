"""Typed application keys: everything the handlers find on the aiohttp Application."""

from __future__ import annotations

from aiohttp import web
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api_service.metrics import HttpMetrics
from shared.config import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
READS = web.AppKey("reads", AsyncEngine)  # autocommit view of ENGINE for single-statement reads
ARQ = web.AppKey("arq", ArqRedis)
METRICS = web.AppKey("metrics", HttpMetrics)
