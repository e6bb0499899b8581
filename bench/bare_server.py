"""The HTTP ceiling: a bare aiohttp JSON handler, served alone in its own process.

    python -m bench.bare_server --port P

Same stack as the API (aiohttp on uvloop, one process) minus everything of ours: no middleware, no
auth, no database. The body is shaped like a page of 20 invoices in our envelope and serialised on
every request, so the comparison with GET /api/v1/invoices isolates what our code adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web


def _page() -> dict[str, object]:
    item = {
        "id": "00000000-0000-0000-0000-000000000000",
        "direction": "incoming",
        "state": "open",
        "amountSat": 10,
        "memo": "bench",
        "paymentHash": "ab" * 32,
        "paymentRequest": "lnbcrt100n1" + "q" * 250,
        "createdAt": "2026-01-01T00:00:00+00:00",
    }
    return {
        "success": True,
        "data": [dict(item) for _ in range(20)],
        "meta": {
            "requestId": "x" * 32,
            "timestamp": "2026-01-01T00:00:00+00:00",
            "pagination": {"page": 1, "pageSize": 20, "totalItems": 20, "totalPages": 1},
        },
    }


async def handle(request: web.Request) -> web.Response:
    return web.json_response(request.app[PAGE], dumps=json.dumps)


PAGE = web.AppKey("page", dict)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    app = web.Application()
    app[PAGE] = _page()
    app.router.add_get("/json", handle)
    app.router.add_get("/healthz", handle)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
