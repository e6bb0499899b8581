"""/api/v1/invoices: create an incoming invoice, list invoices and payments, read one."""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.events_hub import EVENTS_HUB
from api_service.keys import ARQ, READS, SESSIONS, SETTINGS
from api_service.responses import ok, ok_list
from api_service.schemas.wallet import ActivityItemOut, ActivityQuery, CreateInvoiceBody, InvoiceOut
from api_service.security import accept_user, authenticate, require_user
from api_service.services import idempotency, invoices, webhooks
from api_service.services.submission import Outcome, WalletDeps
from api_service.validation import parse_body, parse_query
from shared.errors import ValidationError

PREFIX = "/api/v1/invoices"


def wallet_deps(request: web.Request) -> WalletDeps:
    app = request.app
    return WalletDeps(
        settings=app[SETTINGS], sessions=app[SESSIONS], reads=app[READS], arq=app[ARQ], hub=app[EVENTS_HUB]
    )


def idempotency_request(request: web.Request, body) -> idempotency.IdempotencyRequest | None:
    return idempotency.build_request(
        request.headers.get(idempotency.HEADER),
        request.method,
        request.path,
        body.model_dump(mode="json", by_alias=True),
    )


def outcome_response(request: web.Request, outcome: Outcome) -> web.Response:
    headers = {"Location": outcome.location} if outcome.location else None
    return ok(request, outcome.data, status=outcome.status, headers=headers)


async def create_invoice(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, CreateInvoiceBody)
    webhooks.check_webhook_url(request.app[SETTINGS], body.webhook_url)
    idem = idempotency_request(request, body)
    outcome = await invoices.create_invoice(wallet_deps(request), user, body, idem)
    return outcome_response(request, outcome)


async def list_invoices(request: web.Request) -> web.Response:
    # The poll of every wallet app: the caller's users row and the page come in one statement.
    claims = authenticate(request)
    try:
        query = parse_query(request, ActivityQuery)
    except ValidationError:
        await require_user(request)  # an inactive caller is told so before their query is judged
        raise
    if query.all:
        items, total = await invoices.list_activity(wallet_deps(request), await require_user(request), query)
    else:
        user_row, items, total = await invoices.list_own_activity(wallet_deps(request), claims.user_id, query)
        accept_user(request, claims.user_id, user_row)
    return ok_list(request, items, page=query.page, page_size=query.page_size, total=total)


async def get_invoice(request: web.Request) -> web.Response:
    user = await require_user(request)
    return ok(
        request, await invoices.get_invoice_or_payment(wallet_deps(request), user, request.match_info["id"])
    )


def setup(app: web.Application) -> None:
    app.router.add_post(PREFIX, create_invoice)
    app.router.add_get(PREFIX, list_invoices)
    app.router.add_get(f"{PREFIX}/{{id}}", get_invoice)
    tags = ("wallet",)
    openapi.register(
        "POST",
        PREFIX,
        "Create an incoming invoice",
        request_model=CreateInvoiceBody,
        response_model=InvoiceOut,
        status=201,
        errors=(400, 409, 415),
        tags=tags,
        description="201 with paymentRequest/paymentHash once the worker created it within INVOICE_WAIT_S; "
        "otherwise 202 with the pending row and a Location header. Optional Idempotency-Key "
        "header (1-255 printable ASCII): a repeat returns the first response; another body with "
        "the same key is 409 IDEMPOTENCY_CONFLICT.",
    )
    openapi.register(
        "GET",
        PREFIX,
        "The caller's invoices and payments, newest first",
        response_model=ActivityItemOut,
        query_model=ActivityQuery,
        paginated=True,
        errors=(400,),
        tags=tags,
        description="direction=incoming|outgoing, state, from/to (ISO-8601), all=true (admins only).",
    )
    openapi.register(
        "GET",
        f"{PREFIX}/{{id}}",
        "One invoice or payment by id or 64-hex payment hash",
        response_model=InvoiceOut,
        errors=(404,),
        tags=tags,
        description="Another user's row answers 404, as an unknown one does (admins see every row).",
    )
