"""Liveness and readiness: /healthz says the process runs, /readyz that its dependencies answer."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from api_service.keys import ARQ, ENGINE
from api_service.responses import error, ok

CHECK_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    return ok(request, {"status": "ok"})


async def _check_postgres(app: web.Application) -> None:
    async with app[ENGINE].connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _check_redis(app: web.Application) -> None:
    await app[ARQ].ping()


async def readyz(request: web.Request) -> web.Response:
    checks = {"postgres": _check_postgres, "redis": _check_redis}
    results = await asyncio.gather(
        *(asyncio.wait_for(check(request.app), CHECK_TIMEOUT_S) for check in checks.values()),
        return_exceptions=True,
    )
    status = {
        name: "ok" if not isinstance(result, BaseException) else "unavailable"
        for name, result in zip(checks, results, strict=True)
    }
    failed = [name for name, state in status.items() if state != "ok"]
    if failed:
        return error(
            request,
            status=503,
            code="UNAVAILABLE",
            message=f"not ready: {', '.join(failed)} unavailable",
            details=status,
        )
    return ok(request, status)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
