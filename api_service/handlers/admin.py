"""Operations views for admins: the arq queue (JSON and a small HTML page) and the LND node.

The HTML page never takes a token in the URL (it would end up in logs and browser history). With an
``Authorization: Bearer`` header it is rendered on the server; without one it is a self-contained page
whose script asks for the token, keeps it in sessionStorage and fetches the JSON with the header.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from api_service import openapi
from api_service.keys import ARQ, SETTINGS
from api_service.responses import ok
from api_service.schemas.wallet import JobsOut, NodeOut
from api_service.security import require_admin
from api_service.services import jobs_view

STATIC = Path(__file__).resolve().parent.parent / "static"
NODE_WAIT_S = 5.0
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def jobs_json(request: web.Request) -> web.Response:
    await require_admin(request)
    return ok(request, await jobs_view.jobs_overview(request.app[ARQ], request.app[SETTINGS].arq_queue_name))


async def node(request: web.Request) -> web.Response:
    await require_admin(request)
    result = await jobs_view.node_info(request.app[ARQ], timeout_s=NODE_WAIT_S)
    return ok(request, jobs_view.node_out(result))


@functools.cache
def _shell() -> tuple[str, str]:
    """The page and its Content-Security-Policy, allowing exactly its own inline script and style."""
    page = (STATIC / "admin_jobs.html").read_text()
    hashes = {}
    for tag in ("script", "style"):
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        hashes[tag] = " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'"
            for block in blocks
        )
    csp = (
        f"default-src 'none'; script-src {hashes['script']}; style-src {hashes['style']}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page, csp


async def jobs_page(request: web.Request) -> web.Response:
    if "Authorization" in request.headers:
        await require_admin(request)
        overview = await jobs_view.jobs_overview(request.app[ARQ], request.app[SETTINGS].arq_queue_name)
        return web.Response(
            text=render_jobs(overview),
            content_type="text/html",
            headers={
                **_SECURITY_HEADERS,
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            },
        )
    page, csp = _shell()
    return web.Response(
        text=page, content_type="text/html", headers={**_SECURITY_HEADERS, "Content-Security-Policy": csp}
    )


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = (
        "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(str(row.get(column, '')))}</td>" for column in columns)
            + "</tr>"
            for row in rows
        )
        or f"<tr><td colspan='{len(columns)}'>none</td></tr>"
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def render_jobs(overview: dict[str, Any]) -> str:
    """Server-rendered HTML of the jobs overview; every value is escaped."""
    counts = [{"function": name, **values} for name, values in overview["counts"].items()]
    health = overview["workerHealth"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Jobs</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}</style></head><body>",
        f"<h1>Jobs: {html.escape(overview['queueName'])}</h1>",
        f"<p>Worker: {'alive' if health['alive'] else 'NO HEALTH CHECK'} "
        f"({html.escape(str(health['value']))}, ttl {html.escape(str(health['ttlMs']))} ms). "
        f"Queued: {int(overview['queuedTotal'])}.</p>",
        _table("Counts", counts, ["function", "queued", "inProgress", "succeeded", "failed"]),
        _table("Queued", overview["queued"], ["id", "function", "args", "enqueueTime", "jobTry"]),
        _table("In progress", overview["inProgress"], ["id", "function", "args", "enqueueTime", "jobTry"]),
        _table(
            "Recent results",
            overview["recentResults"],
            ["id", "function", "success", "startTime", "finishTime", "result"],
        ),
        "</body></html>",
    ]
    return "".join(parts)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/jobs", jobs_json)
    app.router.add_get("/api/v1/admin/node", node)
    app.router.add_get("/admin/jobs", jobs_page)
    tags = ("admin",)
    openapi.register(
        "GET",
        "/api/v1/admin/jobs",
        "arq queue: queued, in progress, recent results, health",
        response_model=JobsOut,
        auth="admin",
        errors=(503,),
        tags=tags,
    )
    openapi.register(
        "GET",
        "/api/v1/admin/node",
        "LND node info and channel balance (via a worker job)",
        response_model=NodeOut,
        auth="admin",
        errors=(503,),
        tags=tags,
        description="503 UNAVAILABLE when the worker does not answer within 5 s.",
    )
