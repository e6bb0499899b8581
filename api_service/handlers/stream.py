"""GET /api/v1/stream: Server-Sent Events of the caller's own invoice and payment changes.

Events come from the process's events hub (one Redis subscriber). Each is ``event: <type>.<state>``
(``invoice.open``, ``invoice.settled``, ``payment.succeeded``, ``payment.failed``, and the other
non-pending states) with ``data: {"id", "type", "state"}``; they are hints, the rows are the truth.
A comment line every 15 s keeps proxies from closing an idle stream. On shutdown the hub ends every
stream so the server does not wait for them.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from api_service import openapi
from api_service.events_hub import CLOSED, EVENTS_HUB, close_streams_on_shutdown
from api_service.security import require_user

HEARTBEAT_S = 15.0


def _frame(event) -> bytes:
    data = json.dumps({"id": str(event.id), "type": event.type, "state": event.state}, separators=(",", ":"))
    return f"event: {event.type}.{event.state}\ndata: {data}\n\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    user = await require_user(request)
    hub = request.app[EVENTS_HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    with hub.watch_user(user.id) as events:  # registered before the headers go out: nothing is missed
        await response.prepare(request)
        try:
            await response.write(b": connected\n\n")
            while not hub.closing:
                try:
                    event = await asyncio.wait_for(events.get(), HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if event is CLOSED:
                    break
                if event.state != "pending":
                    await response.write(_frame(event))
            await response.write_eof()
        except ConnectionResetError:  # the client went away: nothing to answer
            pass
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/stream", stream)
    app.on_shutdown.append(close_streams_on_shutdown)
    openapi.register(
        "GET",
        "/api/v1/stream",
        "Server-Sent Events of the caller's invoices and payments",
        tags=("wallet",),
        description="text/event-stream: event invoice.open|invoice.settled|payment.succeeded|"
        "payment.failed|..., data {id, type, state}; a comment every 15 s.",
    )
