"""GET /api/v1/openapi.json (the OpenAPI 3.1 document) and /api/v1/docs (a self-contained page).

The page and its script are files in ``api_service/static``; they load nothing from elsewhere,
and a strict Content-Security-Policy keeps it that way.
"""

from __future__ import annotations

import functools
from pathlib import Path

from aiohttp import web

from api_service import openapi
from api_service.keys import SETTINGS

STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = {"docs.js": "text/javascript", "docs.css": "text/css"}
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"


@functools.cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


async def openapi_json(request: web.Request) -> web.Response:
    document = openapi.build_document()
    document["info"]["x-environment"] = request.app[SETTINGS].environment
    return web.json_response(document)


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(
        body=_read("docs.html"),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": CSP},
    )


async def docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.Response(
        body=_read(name),
        content_type=ASSETS[name],
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/v1/docs", docs_page)
    app.router.add_get("/api/v1/docs/{name}", docs_asset)
    tags = ("operations",)
    openapi.register("GET", "/healthz", "Liveness: the process answers", auth=None, tags=tags)
    openapi.register(
        "GET", "/readyz", "Readiness: Postgres and Redis answer", auth=None, errors=(503,), tags=tags
    )
    openapi.register(
        "GET", "/api/v1/openapi.json", "This OpenAPI document (not enveloped)", auth=None, tags=tags
    )
