"""The read ceiling: GET /api/v1/invoices done by a lean handler, served alone in its own process.

    python -m bench.lean_reads --port P   (DATABASE_URL and JWT_SECRET from the environment)

aiohttp on uvloop and an asyncpg pool, nothing else: verify the HS256 access token (PyJWT, as ours),
read the caller's users row and refuse an inactive one, run OUR activity statement (the page and its
total, from ``shared.db.queries.wallet``), build the same items (``api_service.wire``) in the same
envelope. No middleware, no metrics, no request id generator, no query validation beyond the page.
Measured in the same run, on the same database and tokens, as our GET /api/v1/invoices.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import uuid
from datetime import UTC, datetime

import asyncpg
import jwt
from aiohttp import web

from api_service.wire import activity_item
from shared.db.queries.wallet import activity_statement

POOL = web.AppKey("pool", asyncpg.Pool)
KEY = web.AppKey("key", str)
PAGE_SIZE = 20
_USER_SQL = "SELECT username, role, is_active FROM users WHERE id = $1"
_PAGE_SQL, _PAGE_PARAMS = activity_statement(None)


async def list_invoices(request: web.Request) -> web.Response:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(token, request.app[KEY], algorithms=["HS256"])
        user_id = uuid.UUID(claims["sub"])
    except (jwt.PyJWTError, KeyError, ValueError):
        return web.json_response({"success": False}, status=401)
    page = int(request.query.get("page", "1"))
    values = {
        "user_id": user_id,
        "window": page * PAGE_SIZE,
        "limit": PAGE_SIZE,
        "offset": (page - 1) * PAGE_SIZE,
    }
    async with request.app[POOL].acquire() as connection:
        user = await connection.fetchrow(_USER_SQL, user_id)
        if user is None or not user["is_active"]:
            return web.json_response({"success": False}, status=401)
        records = await connection.fetch(_PAGE_SQL, *(values[name] for name in _PAGE_PARAMS))
    total = int(records[0]["total"]) if records else 0
    body = {
        "success": True,
        "data": [activity_item(r) for r in records if r["id"] is not None],
        "pagination": {
            "page": page,
            "pageSize": PAGE_SIZE,
            "totalItems": total,
            "totalPages": math.ceil(total / PAGE_SIZE) if total else 0,
        },
        "meta": {
            "requestId": uuid.uuid4().hex,
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    }
    return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _pool(app: web.Application):
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    app[POOL] = await asyncpg.create_pool(dsn, min_size=4, max_size=20)
    yield
    await app[POOL].close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lean_reads")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app[KEY] = os.environ["JWT_SECRET"]
    app.cleanup_ctx.append(_pool)
    app.router.add_get("/api/v1/invoices", list_invoices)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
