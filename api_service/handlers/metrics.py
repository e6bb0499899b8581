"""GET /metrics: the API's Prometheus metrics (see api_service/metrics.py), for scrapers only.

With ``METRICS_TOKEN`` set (required outside development) a scrape must send ``Authorization: Bearer
$METRICS_TOKEN``; anything else gets the 401 envelope and no samples.
"""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.keys import METRICS, SETTINGS
from shared.errors import Unauthorized
from shared.metrics import exposition, scrape_allowed


async def metrics(request: web.Request) -> web.Response:
    if not scrape_allowed(request.headers.get("Authorization"), request.app[SETTINGS].metrics_token):
        raise Unauthorized("Send Authorization: Bearer <METRICS_TOKEN>")
    body, content_type = exposition(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    openapi.register(
        "GET",
        "/metrics",
        "Prometheus metrics of the API (text format, not enveloped)",
        auth=None,
        errors=(401,),
        tags=("operations",),
        description="Open in development; otherwise send `Authorization: Bearer <METRICS_TOKEN>` "
        "(a scrape token, not a user's access token).",
    )
