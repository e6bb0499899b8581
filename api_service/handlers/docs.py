"""GET /api/v1/openapi.json (the OpenAPI 3.1 document) and /api/v1/docs (Swagger UI over it).

Swagger UI comes from the ``swagger-ui-bundle-v2`` wheel (Swagger UI 5, which reads OpenAPI 3.1) and is
served from here: no CDN. Our page and its init script are files in ``api_service/static``; the
Content-Security-Policy allows scripts and styles from this origin only (no inline code), images from
here and ``data:`` (the stylesheet's icons), and requests ("Try it out") to this origin only. The
"Authorize" button takes a bearer access token, which Swagger UI keeps in the page, never in storage.
"""

from __future__ import annotations

import functools
from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from api_service import openapi
from api_service.keys import SETTINGS

STATIC = Path(__file__).resolve().parent.parent / "static"
SWAGGER_UI = Path(str(swagger_ui_bundle.swagger_ui_path))
JS, CSS, PNG = "text/javascript; charset=utf-8", "text/css; charset=utf-8", "image/png"
# name -> (folder, content type): nothing else is served, so no path ever reaches the file system.
ASSETS = {
    "swagger-ui-bundle.js": (SWAGGER_UI, JS),
    "swagger-ui.css": (SWAGGER_UI, CSS),
    "index.css": (SWAGGER_UI, CSS),
    "favicon-32x32.png": (SWAGGER_UI, PNG),
    "swagger-init.js": (STATIC, JS),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@functools.cache
def _page() -> bytes:
    return (STATIC / "swagger-ui.html").read_bytes()


async def openapi_json(request: web.Request) -> web.Response:
    document = openapi.build_document()
    document["info"]["x-environment"] = request.app[SETTINGS].environment
    return web.json_response(document)


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(body=_page(), content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS)


async def docs_asset(request: web.Request) -> web.FileResponse:
    asset = ASSETS.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    folder, content_type = asset
    return web.FileResponse(
        folder / request.match_info["name"],
        headers={
            "Content-Type": content_type,
            "Cache-Control": "public, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
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
    # The page and its files are not API operations: they stay out of the document (the route tests
    # list them as deliberate exceptions).
