"""/api/v1/payments: pay a BOLT11 invoice, read a payment."""

from __future__ import annotations

from aiohttp import web

from api_service import openapi, ratelimit
from api_service.handlers.invoices import idempotency_request, outcome_response, wallet_deps
from api_service.keys import ARQ, SETTINGS
from api_service.responses import ok
from api_service.schemas.wallet import CreatePaymentBody, PaymentOut
from api_service.security import require_user
from api_service.services import payments, webhooks
from api_service.validation import parse_body

PREFIX = "/api/v1/payments"
RATE_WINDOW_S = 60


async def create_payment(request: web.Request) -> web.Response:
    user = await require_user(request)
    await ratelimit.hit(
        request.app[ARQ],
        f"payments:user:{user.id}",
        limit=request.app[SETTINGS].rate_limit_payments_per_user,
        window_s=RATE_WINDOW_S,
    )
    body = await parse_body(request, CreatePaymentBody)
    webhooks.check_webhook_url(request.app[SETTINGS], body.webhook_url)
    idem = idempotency_request(request, body)
    outcome = await payments.create_payment(wallet_deps(request), user, body, idem)
    return outcome_response(request, outcome)


async def get_payment(request: web.Request) -> web.Response:
    user = await require_user(request)
    return ok(request, await payments.get_payment(wallet_deps(request), user, request.match_info["id"]))


def setup(app: web.Application) -> None:
    app.router.add_post(PREFIX, create_payment)
    app.router.add_get(f"{PREFIX}/{{id}}", get_payment)
    tags = ("wallet",)
    openapi.register(
        "POST",
        PREFIX,
        "Pay a BOLT11 invoice",
        request_model=CreatePaymentBody,
        response_model=PaymentOut,
        status=200,
        errors=(400, 403, 409, 415, 422, 429),
        tags=tags,
        description="Holds amount + fee limit, then pays through the worker. 200 with the final status when "
        "it finished within PAYMENT_WAIT_S, else 202 with the pending row and a Location header. "
        "amountSat only for zero-amount invoices; feeLimitSat 0..(10% of the amount + 100 sat), "
        "default FEE_RESERVE_PPM (min FEE_RESERVE_MIN_SAT); fromTreasury is admin-only. "
        "Invoices of this wallet are settled internally without fees. Idempotency-Key as for "
        "POST /invoices. Rate limited per user.",
    )
    openapi.register(
        "GET",
        f"{PREFIX}/{{id}}",
        "One payment",
        response_model=PaymentOut,
        errors=(404,),
        tags=tags,
        description="Another user's payment answers 404 (admins see every payment).",
    )
