"""The create ceiling: the same pipeline as POST /api/v1/invoices with nothing of ours around it.

    python -m bench.lean_pipeline serve --port P     # the HTTP side (its own process)
    python -m bench.lean_pipeline worker             # the bare worker (its own process)

(DATABASE_URL, REDIS_URL, JWT_SECRET, LND_GRPC_HOST, LND_TLS_CERT_PATH, LND_MACAROON_PATH from the
environment, as our processes get them.) aiohttp on uvloop verifies the token, inserts the pending
invoices row (asyncpg), enqueues an arq job and waits on one Redis pub/sub subscription per process;
the arq worker (tuned as ours) does AddInvoice on the simnet, updates the row to ``open`` and
publishes its id; the waiting request answers 201 with the row. No middleware, validation models,
idempotency, session handling, metrics or retries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
from aiohttp import web
from arq import Worker, create_pool
from arq.connections import RedisSettings
from redis.asyncio import Redis

from shared.lightning.grpc_client import GrpcLightningClient

QUEUE = "bench:lean"
CHANNEL = "bench:lean:open"
JOB = "lean_add_invoice"
WAIT_S = 5.0
_INSERT = (
    "INSERT INTO invoices (id, user_id, account_id, amount_msat, memo, expiry_s, state, for_treasury)"
    " VALUES ($1, $2, (SELECT id FROM accounts WHERE user_id = $2), $3, $4, $5, 'pending', false)"
)
_OPEN = (
    "UPDATE invoices SET state = 'open', payment_request = $2, payment_hash = $3, add_index = $4,"
    " expires_at = $5, updated_at = now() WHERE id = $1 AND state = 'pending'"
)
_READ = "SELECT id, state, payment_request, payment_hash FROM invoices WHERE id = $1"
STATE = web.AppKey("state", dict)


def _dsn() -> str:
    return os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)


def _redis_settings() -> RedisSettings:
    return RedisSettings.from_dsn(os.environ["REDIS_URL"])


# ---- the HTTP side -----------------------------------------------------------------------------


async def create_invoice(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        claims = jwt.decode(
            request.headers.get("Authorization", "").removeprefix("Bearer "),
            state["key"],
            algorithms=["HS256"],
        )
        body = await request.json()
        user_id, amount_msat = uuid.UUID(claims["sub"]), int(body["amountSat"]) * 1000
    except (jwt.PyJWTError, KeyError, ValueError):
        return web.json_response({"success": False}, status=400)
    invoice_id = uuid.uuid4()
    await state["pool"].execute(_INSERT, invoice_id, user_id, amount_msat, str(body.get("memo", "")), 3600)
    opened = asyncio.get_running_loop().create_future()
    state["waiters"][str(invoice_id)] = opened
    try:
        await state["arq"].enqueue_job(JOB, str(invoice_id), _job_id=f"lean:{invoice_id}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(opened, WAIT_S)
    finally:
        state["waiters"].pop(str(invoice_id), None)
    row = await state["pool"].fetchrow(_READ, invoice_id)
    data = {
        "id": str(row["id"]),
        "state": row["state"],
        "paymentRequest": row["payment_request"],
        "paymentHash": row["payment_hash"].hex() if row["payment_hash"] else None,
    }
    status = 201 if row["state"] == "open" else 202
    return web.Response(
        text=json.dumps({"success": True, "data": data}), status=status, content_type="application/json"
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _listen(redis: Redis, waiters: dict[str, asyncio.Future[None]]) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(CHANNEL)
    async for message in pubsub.listen():
        if message["type"] == "message":
            waiter = waiters.get(message["data"].decode())
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


async def _resources(app: web.Application):
    redis = Redis.from_url(os.environ["REDIS_URL"])
    state: dict[str, Any] = {
        "key": os.environ["JWT_SECRET"],
        "pool": await asyncpg.create_pool(_dsn(), min_size=4, max_size=20),
        "arq": await create_pool(_redis_settings(), default_queue_name=QUEUE),
        "waiters": {},
    }
    listener = asyncio.create_task(_listen(redis, state["waiters"]))
    app[STATE] = state
    yield
    listener.cancel()
    await state["arq"].aclose()
    await state["pool"].close()
    await redis.aclose()


def serve(port: int) -> None:
    app = web.Application()
    app.cleanup_ctx.append(_resources)
    app.router.add_post("/api/v1/invoices", create_invoice)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---- the bare worker ---------------------------------------------------------------------------


async def lean_add_invoice(ctx: dict[str, Any], invoice_id: str) -> None:
    row_id = uuid.UUID(invoice_id)
    row = await ctx["pool"].fetchrow("SELECT amount_msat, memo, expiry_s FROM invoices WHERE id = $1", row_id)
    preimage = os.urandom(32)
    added = await ctx["lightning"].add_invoice(
        value_msat=row["amount_msat"], memo=row["memo"], expiry_s=row["expiry_s"], preimage=preimage
    )
    expires_at = datetime.now(UTC) + timedelta(seconds=row["expiry_s"])
    await ctx["pool"].execute(
        _OPEN, row_id, added.payment_request, hashlib.sha256(preimage).digest(), added.add_index, expires_at
    )
    await ctx["redis"].publish(CHANNEL, invoice_id)


async def _startup(ctx: dict[str, Any]) -> None:
    ctx["pool"] = await asyncpg.create_pool(_dsn(), min_size=4, max_size=20)
    ctx["lightning"] = GrpcLightningClient.from_paths(
        os.environ["LND_GRPC_HOST"], os.environ["LND_TLS_CERT_PATH"], os.environ["LND_MACAROON_PATH"]
    )
    ctx["redis"] = Redis.from_url(os.environ["REDIS_URL"])


async def _shutdown(ctx: dict[str, Any]) -> None:
    await ctx["lightning"].close()
    await ctx["pool"].close()
    await ctx["redis"].aclose()


def work() -> None:
    from shared.config import Settings

    defaults = Settings.model_fields
    Worker(
        functions=[lean_add_invoice],
        queue_name=QUEUE,
        redis_settings=_redis_settings(),
        on_startup=_startup,
        on_shutdown=_shutdown,
        poll_delay=defaults["worker_poll_delay_s"].default,
        max_jobs=defaults["worker_max_jobs"].default,
        keep_result=60,
        handle_signals=True,
    ).run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lean_pipeline")
    parser.add_argument("role", choices=("serve", "worker"))
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.role == "serve":
        serve(args.port)
    else:
        work()


if __name__ == "__main__":
    main()
