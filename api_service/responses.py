"""The response envelope of DESIGN §3, for success, lists and errors."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

REQUEST_ID_KEY = web.RequestKey("request_id", str)


def _meta(request: web.Request) -> dict[str, str]:
    return {
        "requestId": request.get(REQUEST_ID_KEY, ""),
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), default=str)


def ok(
    request: web.Request, data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"success": True, "data": data, "meta": _meta(request)}
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def ok_list(request: web.Request, items: list[Any], *, page: int, page_size: int, total: int) -> web.Response:
    body = {
        "success": True,
        "data": items,
        "pagination": {
            "page": page,
            "pageSize": page_size,
            "totalItems": total,
            "totalPages": math.ceil(total / page_size) if total else 0,
        },
        "meta": _meta(request),
    }
    return web.json_response(body, dumps=_dumps)


def error(
    request: web.Request,
    *,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    err: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    body = {"success": False, "error": err, "meta": _meta(request)}
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)
