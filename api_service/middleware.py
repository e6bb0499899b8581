"""Request ids and the one error middleware: every response, including aiohttp's own errors and
unexpected exceptions, leaves in the envelope of DESIGN §3 — or, under a path prefix a protocol
adapter claimed with :func:`add_error_renderer` (LndHub, LNURL), in that protocol's own error shape.
Either way one place decides status, code and message; the renderer only chooses the body."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from api_service.keys import SETTINGS
from api_service.outages import is_dependency_outage
from api_service.responses import REQUEST_ID_KEY, error
from shared.errors import AppError, PayloadTooLarge, RateLimited

log = logging.getLogger("api")
access = logging.getLogger("api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What the middleware decided about an error; a renderer only chooses the body around it."""

    status: int
    code: str
    message: str
    details: Any = None
    headers: dict[str, str] | None = None


# renderer(request, exc, info) -> Response; exc is the exception being rendered (an AppError, an
# aiohttp HTTPException or anything unexpected).
ErrorRenderer = Callable[[web.Request, BaseException, ErrorInfo], web.Response]
ERROR_RENDERERS = web.AppKey("error_renderers", list)


def add_error_renderer(app: web.Application, prefixes: tuple[str, ...], renderer: ErrorRenderer) -> None:
    """Render the errors of requests under ``prefixes`` (each ending in "/", which also matches the
    bare prefix without it) with ``renderer`` instead of the envelope."""
    if ERROR_RENDERERS not in app:
        app[ERROR_RENDERERS] = []
    app[ERROR_RENDERERS].append((prefixes, renderer))


def _render(request: web.Request, exc: BaseException, **fields: Any) -> web.Response:
    path = request.path
    for prefixes, renderer in request.app.get(ERROR_RENDERERS, ()):
        if any(path.startswith(prefix) or path == prefix.rstrip("/") for prefix in prefixes):
            return renderer(request, exc, ErrorInfo(**fields))
    return error(request, **fields)


# aiohttp raises these itself (unknown route, wrong method, body over client_max_size, ...).
_HTTP_CODES = {
    400: ("VALIDATION_ERROR", "The request is not valid"),
    401: ("UNAUTHORIZED", "Authentication required"),
    403: ("FORBIDDEN", "You are not allowed to do this"),
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json"),
}


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    incoming = request.headers.get("X-Request-Id", "")
    request[REQUEST_ID_KEY] = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    response = await handler(request)
    response.headers["X-Request-Id"] = request[REQUEST_ID_KEY]
    return response


def _check_declared_size(request: web.Request) -> None:
    # Refuse before reading a byte; a body without Content-Length (chunked) is still bounded by
    # client_max_size, whose HTTPRequestEntityTooLarge on read() is rendered below.
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(details={"maxBytes": limit})


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        _check_declared_size(request)
        return await handler(request)
    except AppError as exc:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
        response = _render(
            request,
            exc,
            status=exc.status,
            code=exc.code,
            message=exc.message,
            details=exc.details,
            headers=headers,
        )
        if exc.status == 413:
            response.force_close()  # the over-size body stays unread; the connection cannot be reused
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("HTTP_ERROR", exc.reason))
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        details = {"maxBytes": request.app[SETTINGS].max_body_bytes} if exc.status == 413 else None
        response = _render(
            request, exc, status=exc.status, code=code, message=message, details=details, headers=headers
        )
        if exc.status == 413:
            # The rest of an over-size body is never read: do not let the client reuse the connection.
            response.force_close()
        return response
    except Exception as exc:
        error_id = uuid.uuid4().hex
        if is_dependency_outage(exc):
            log.warning(
                "dependency unavailable",
                extra={
                    "error_id": error_id,
                    "path": request.path,
                    "request_id": request.get(REQUEST_ID_KEY),
                    "error": type(exc).__name__,
                },
            )
            return _render(
                request,
                exc,
                status=503,
                code="UNAVAILABLE",
                message="Service temporarily unavailable, retry shortly",
                details={"errorId": error_id},
                headers={"Retry-After": "1"},
            )
        log.exception(
            "unhandled error",
            extra={
                "error_id": error_id,
                "path": request.path,
                "request_id": request.get(REQUEST_ID_KEY),
                "method": request.method,
            },
        )
        return _render(
            request,
            exc,
            status=500,
            code="INTERNAL_ERROR",
            message="Internal server error",
            details={"errorId": error_id},
        )


class JsonAccessLogger(AbstractAccessLogger):
    """One JSON line per request; never the query string (it may carry tokens) or the body."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        access.info(
            "request",
            extra={
                "request_id": request.get(REQUEST_ID_KEY),
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 2),
                "remote": request.remote,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
