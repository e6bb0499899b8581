"""The admin console at /admin: one HTML page, one script module and one stylesheet, served from here.

The files are ``api_service/static/admin.{html,js,css}``; nothing else is served (no path from a
request ever reaches the file system). The page holds no data: its script signs in through
``/api/v1/auth/login``, keeps the tokens in ``sessionStorage`` (never in a URL, a cookie or the page's
address) and calls the admin API with ``Authorization: Bearer``, so every admin check stays on the
server. The Content-Security-Policy allows scripts and styles from this origin only (no inline code
or style, no ``eval``, no CDN), requests to this origin only, and no framing; ``no-store`` keeps the
page and its answers out of caches. The old ``/admin/jobs`` page is the console's jobs view now.
"""

from __future__ import annotations

import functools
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent.parent / "static"
PAGE = "/admin"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# URL path -> (file, content type).
FILES = {
    PAGE: ("admin.html", "text/html"),
    f"{PAGE}/admin.js": ("admin.js", "text/javascript"),
    f"{PAGE}/admin.css": ("admin.css", "text/css"),
}


@functools.cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


async def console_file(request: web.Request) -> web.Response:
    name, content_type = FILES[request.match_info.route.resource.canonical]
    return web.Response(body=_read(name), content_type=content_type, charset="utf-8", headers=HEADERS)


async def old_jobs_page(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"{PAGE}#jobs", headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    for path in FILES:
        app.router.add_get(path, console_file)
    app.router.add_get(f"{PAGE}/jobs", old_jobs_page)
