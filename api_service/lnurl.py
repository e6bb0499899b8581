"""Lightning Addresses: LNURL-pay (LUD-06) at ``/.well-known/lnurlp/{username}`` (LUD-16) and its
callback ``/lnurlp/{username}/callback?amount=MSAT&comment=...`` (LUD-12 comments).

A protocol adapter over ``services.lightning_address``: the LNURL field names and its error shape
``{"status": "ERROR", "reason": "..."}`` (rendered for these paths by the API's error middleware, with
a 4xx status for bad input) stay here. Both routes are public, like any LNURL service; the callback,
which makes an invoice row, is rate limited per client address.
"""

from __future__ import annotations

from typing import Any

import pydantic
from aiohttp import web

from api_service import openapi, ratelimit
from api_service.handlers.auth import client_ip
from api_service.handlers.invoices import wallet_deps
from api_service.keys import ARQ, SETTINGS
from api_service.middleware import ErrorInfo, add_error_renderer
from api_service.services import lightning_address
from api_service.validation import parse_query

WELL_KNOWN = "/.well-known/lnurlp/"
CALLBACK = "/lnurlp/"
RATE_WINDOW_S = 60


class CallbackQuery(pydantic.BaseModel):
    # Wallets add their own parameters (nonce, payerdata, ...): ignored, as LUD-06 lets a service do.
    model_config = pydantic.ConfigDict(extra="ignore")

    amount: int = pydantic.Field(ge=1, le=2**63 - 1, description="millisatoshis")
    comment: str | None = pydantic.Field(None, max_length=4096, description="LUD-12, up to commentAllowed")


class PayRequestOut(pydantic.BaseModel):
    tag: str = "payRequest"
    callback: str
    minSendable: int
    maxSendable: int
    metadata: str
    commentAllowed: int


class InvoiceOut(pydantic.BaseModel):
    pr: str
    routes: list[Any]


def render(request: web.Request, exc: BaseException, info: ErrorInfo) -> web.Response:
    """LUD-06's error shape for every error under the LNURL paths."""
    message, details = info.message, info.details
    if info.status == 400 and isinstance(details, list) and details:
        message = f"{details[0].get('field', 'query')}: {details[0].get('message', message)}"
    return web.json_response({"status": "ERROR", "reason": message}, status=info.status, headers=info.headers)


async def pay_request(request: web.Request) -> web.Response:
    found = await lightning_address.pay_request(wallet_deps(request), request.match_info["username"])
    return web.json_response(
        {
            "tag": "payRequest",
            "callback": found.callback,
            "minSendable": found.min_sendable_msat,
            "maxSendable": found.max_sendable_msat,
            "metadata": found.metadata,
            "commentAllowed": found.comment_allowed,
        }
    )


async def callback(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    await ratelimit.hit(
        request.app[ARQ], f"lnurl:ip:{client_ip(request)}", settings.rate_limit_lnurl_per_ip, RATE_WINDOW_S
    )
    query = parse_query(request, CallbackQuery)
    payment_request = await lightning_address.request_invoice(
        wallet_deps(request), request.match_info["username"], amount_msat=query.amount, comment=query.comment
    )
    return web.json_response({"pr": payment_request, "routes": []})


def setup(app: web.Application) -> None:
    add_error_renderer(app, (WELL_KNOWN, CALLBACK), render)
    app.router.add_get(WELL_KNOWN + "{username}", pay_request)
    app.router.add_get(CALLBACK + "{username}/callback", callback)
    tags = ("lnurl",)
    openapi.register(
        "GET",
        WELL_KNOWN + "{username}",
        "LNURL-pay request of a Lightning Address (LUD-06, LUD-16)",
        response_model=PayRequestOut,
        auth=None,
        errors=(404,),
        tags=tags,
        protocol="lnurl",
        description="username@host, host from PUBLIC_URL. Unknown or inactive user: 404 "
        '{"status": "ERROR", "reason"}.',
    )
    openapi.register(
        "GET",
        CALLBACK + "{username}/callback",
        "An invoice for a Lightning Address payment",
        query_model=CallbackQuery,
        response_model=InvoiceOut,
        auth=None,
        errors=(400, 404, 429, 503),
        tags=tags,
        protocol="lnurl",
        description="amount in msat between minSendable and maxSendable, comment up to commentAllowed "
        "characters. The invoice's description hash is sha256 of the metadata; it is credited to the "
        "user when paid.",
    )
