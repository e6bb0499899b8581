"""LndHub's error shape and codes, and the translation of our one error tree into them.

Every LndHub error leaves as ``{"error": true, "code": N, "message": "..."}`` with a 4xx/5xx status
(lndhub.go's way; BlueWallet's server answered 200, and every client reads the body). The codes are
BlueWallet's: 1 bad auth, 2 not enough balance, 4 not a valid invoice, 6 general error, 7 node
failure, 8 bad arguments, 9 payment in transit, 10 payment failed.

Services raise the errors of ``shared.errors`` as for /api/v1; :func:`render` (installed for every
path under /lndhub by the API's error middleware) maps them here. A handler that knows more than
the error class does (a payment request that fails to decode is code 4, not 8) raises
:class:`LndHubError` with the code itself.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from api_service.middleware import ErrorInfo
from shared import errors

log = logging.getLogger("api.lndhub")

BAD_AUTH = 1
NOT_ENOUGH_BALANCE = 2
INVALID_INVOICE = 4
GENERAL_ERROR = 6
NODE_FAILURE = 7
BAD_ARGUMENTS = 8
IN_TRANSIT = 9
PAYMENT_FAILED = 10

# Most specific class first: the first isinstance match wins.
_BY_CLASS: tuple[tuple[type[errors.AppError], int], ...] = (
    (errors.Unauthorized, BAD_AUTH),
    (errors.Forbidden, BAD_AUTH),
    (errors.InsufficientBalance, NOT_ENOUGH_BALANCE),
    (errors.InvoiceExpired, INVALID_INVOICE),
    (errors.Unprocessable, INVALID_INVOICE),
    (errors.PaymentInProgress, IN_TRANSIT),
    (errors.AlreadyPaid, PAYMENT_FAILED),
    (errors.Conflict, BAD_ARGUMENTS),
    (errors.ValidationError, BAD_ARGUMENTS),
    (errors.NotFound, BAD_ARGUMENTS),
    (errors.MethodNotAllowed, BAD_ARGUMENTS),
    (errors.PayloadTooLarge, BAD_ARGUMENTS),
    (errors.UnsupportedMediaType, BAD_ARGUMENTS),
    (errors.RateLimited, GENERAL_ERROR),
    (errors.ServiceUnavailable, GENERAL_ERROR),
)


class LndHubError(errors.AppError):
    """An error whose LndHub code the adapter decided itself."""

    code = "LNDHUB_ERROR"

    def __init__(self, lndhub_code: int, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.lndhub_code = lndhub_code
        self.status = status


def lndhub_code(exc: BaseException | None, status: int) -> int:
    """The LndHub code for an exception, or for a bare HTTP status (aiohttp's own 404/405/413...)."""
    if isinstance(exc, LndHubError):
        return exc.lndhub_code
    if isinstance(exc, errors.AppError):
        for cls, code in _BY_CLASS:
            if isinstance(exc, cls):
                return code
        return GENERAL_ERROR
    if status == 401:
        return BAD_AUTH
    return BAD_ARGUMENTS if 400 <= status < 500 else GENERAL_ERROR


def body(code: int, message: str) -> dict[str, Any]:
    return {"error": True, "code": code, "message": message}


def render(request: web.Request, exc: BaseException, info: ErrorInfo) -> web.Response:
    """The error middleware's renderer for /lndhub: same status and message, LndHub's body."""
    message, details = info.message, info.details
    if info.status >= 500 and isinstance(details, dict) and "errorId" in details:
        message = f"{message} (error id {details['errorId']})"
    elif info.status == 400 and isinstance(details, list) and details:
        # Say which field is wrong, as the envelope's details would.
        first = details[0]
        message = f"Bad arguments: {first.get('field', 'body')}: {first.get('message', message)}"
    code = lndhub_code(exc, info.status)
    return web.json_response(body(code, message), status=info.status, headers=info.headers)
