"""The LndHub v1 routes: thin translations onto the services /api/v1 uses.

Accounts are our users (POST /create makes one with generated credentials; existing users log in with
their username and password); tokens are our access JWTs (LNDHUB_ACCESS_TOKEN_TTL) and our rotating
refresh tokens; invoices go through ``invoices.issue_invoice`` and payments through
``payments.create_payment``: the same rows, queue, worker and ledger. Errors are rendered by
``errors.render`` (installed for /lndhub), so handlers only raise.
"""

from __future__ import annotations

import time

from aiohttp import web

from api_service import ratelimit
from api_service.handlers.auth import NO_STORE, client_ip
from api_service.handlers.invoices import wallet_deps
from api_service.keys import ARQ, SESSIONS, SETTINGS
from api_service.lndhub import views
from api_service.lndhub.errors import (
    GENERAL_ERROR,
    IN_TRANSIT,
    INVALID_INVOICE,
    NODE_FAILURE,
    PAYMENT_FAILED,
    LndHubError,
)
from api_service.lndhub.schemas import (
    MAX_LIST,
    AddInvoiceBody,
    AuthBody,
    AuthQuery,
    CreateBody,
    DecodeQuery,
    InvoicesQuery,
    PayInvoiceBody,
    TxsQuery,
)
from api_service.lndhub.wire import bad_arguments, parse_body, parse_query
from api_service.schemas.wallet import CreatePaymentBody
from api_service.security import require_user
from api_service.services import auth, history, invoices, jobs_view, payments
from api_service.services.invoices import InvoiceRequest
from shared import bolt11
from shared.errors import ServiceUnavailable
from shared.ledger import MSAT_PER_SAT

INVOICE_EXPIRY_S = 24 * 3600  # what BlueWallet's server asks LND for
NODE_WAIT_S = 5.0
RATE_WINDOW_S = 60


# ---- accounts ---------------------------------------------------------------------------------


async def create(request: web.Request) -> web.Response:
    await parse_body(request, CreateBody)  # partnerid / accounttype: checked, not kept
    settings = request.app[SETTINGS]
    if not settings.lndhub_create_allowed:
        raise LndHubError(
            GENERAL_ERROR,
            "This hub does not create accounts; log in with your username and password",
            status=403,
        )
    credentials = await auth.register_generated(
        request.app[SESSIONS], settings, request.app[ARQ], client_ip=client_ip(request)
    )
    return web.json_response(
        {"login": credentials.username, "password": credentials.password}, headers=NO_STORE
    )


async def authenticate(request: web.Request) -> web.Response:
    """?type=auth (login + password) or ?type=refresh_token; without a type, the body decides."""
    query = parse_query(request, AuthQuery)
    body = await parse_body(request, AuthBody)
    settings = request.app[SETTINGS]
    kind = query.type or ("refresh_token" if body.refresh_token and not body.login else "auth")
    if kind == "refresh_token":
        if not body.refresh_token:
            raise bad_arguments("refresh_token is required")
        pair = await auth.refresh(
            request.app[SESSIONS],
            settings,
            refresh_token=body.refresh_token,
            access_ttl_s=settings.lndhub_access_token_ttl,
        )
    else:
        if not body.login or not body.password:
            raise bad_arguments("login and password are required")
        pair = await auth.login(
            request.app[SESSIONS],
            settings,
            request.app[ARQ],
            username=body.login,
            password=body.password,
            client_ip=client_ip(request),
            access_ttl_s=settings.lndhub_access_token_ttl,
        )
    return web.json_response(
        {"access_token": pair.access_token, "refresh_token": pair.refresh_token}, headers=NO_STORE
    )


# ---- invoices and payments --------------------------------------------------------------------


async def add_invoice(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, AddInvoiceBody)
    request_ = InvoiceRequest(
        amount_msat=body.amt * MSAT_PER_SAT,
        memo=body.memo,
        expiry_s=INVOICE_EXPIRY_S,
        description_hash=body.description_hash,
    )
    outcome = await invoices.issue_invoice(wallet_deps(request), user.id, request_)
    invoice = outcome.row
    if invoice.state == "pending":
        # The row stays and the worker will still make it; this client just cannot wait longer.
        raise LndHubError(NODE_FAILURE, "The node did not make the invoice in time; try again", status=503)
    if invoice.state != "open":
        raise LndHubError(NODE_FAILURE, "The node refused to make the invoice", status=502)
    return web.json_response(views.added_invoice(invoice))


def _decode(text: str, network: str) -> bolt11.DecodedPaymentRequest:
    try:
        decoded = bolt11.decode(text)
    except bolt11.InvalidPaymentRequest as exc:
        raise LndHubError(INVALID_INVOICE, f"not a valid invoice: {exc}") from None
    if decoded.network != network:
        raise LndHubError(
            INVALID_INVOICE, f"not a valid invoice: it is for {decoded.network}, this node runs on {network}"
        )
    return decoded


async def pay_invoice(request: web.Request) -> web.Response:
    """Pays through the /api/v1 payments service and waits as it does (PAYMENT_WAIT_S): the final
    answer, or code 9 while the payment is still in flight (gettxs shows it in transition)."""
    user = await require_user(request)
    settings = request.app[SETTINGS]
    await ratelimit.hit(
        request.app[ARQ],
        f"payments:user:{user.id}",
        limit=settings.rate_limit_payments_per_user,
        window_s=RATE_WINDOW_S,
    )
    body = await parse_body(request, PayInvoiceBody)
    decoded = _decode(body.invoice, settings.lnd_network)
    if decoded.amount_msat is None and body.amount is None:
        raise bad_arguments("amount is required for an invoice without an amount")
    # An amount next to an invoice that has one is ignored, as BlueWallet's server and lndhub.go do
    # (BlueWallet's app sends amount 0 then).
    payment_body = CreatePaymentBody.model_validate(
        {
            "paymentRequest": decoded.payment_request,
            "amountSat": body.amount if decoded.amount_msat is None else None,
        }
    )
    outcome = await payments.create_payment(wallet_deps(request), user, payment_body, None)
    payment = outcome.data
    if outcome.status == 202:
        raise LndHubError(
            IN_TRANSIT, "Your payment is in transit; check gettxs in a moment for its outcome", status=409
        )
    if payment["status"] != "succeeded":
        reason = payment.get("failureReason") or "unknown"
        raise LndHubError(PAYMENT_FAILED, f"Payment failed ({reason})", status=400)
    return web.json_response(views.paid_invoice(payment, decoded))


async def check_payment(request: web.Request) -> web.Response:
    user = await require_user(request)
    paid = await history.invoice_is_paid(wallet_deps(request), user, request.match_info["payment_hash"])
    return web.json_response({"paid": paid})


# ---- reads ------------------------------------------------------------------------------------


async def balance(request: web.Request) -> web.Response:
    user = await require_user(request)
    available = (await invoices.get_balance(wallet_deps(request), user))["availableSat"]
    return web.json_response({"BTC": {"AvailableBalance": available}})


async def transactions(request: web.Request) -> web.Response:
    user = await require_user(request)
    query = parse_query(request, TxsQuery)
    rows = await history.list_payments(
        wallet_deps(request), user, limit=query.limit or MAX_LIST, offset=query.offset
    )
    return web.json_response([views.transaction(row) for row in rows])


async def user_invoices(request: web.Request) -> web.Response:
    """The newest ``limit`` invoices, oldest first (BlueWallet's server kept them in that order)."""
    user = await require_user(request)
    query = parse_query(request, InvoicesQuery)
    rows = await history.list_invoices(wallet_deps(request), user, limit=query.limit or MAX_LIST)
    now = time.time()
    return web.json_response([views.user_invoice(row, now=now) for row in reversed(rows)])


async def nothing_pending(request: web.Request) -> web.Response:
    """/getpending (unconfirmed on-chain deposits) and /getbtc (deposit addresses): this wallet is
    Lightning only, so both are always empty lists (as lndhub.go answers)."""
    await require_user(request)
    return web.json_response([])


async def node_info(request: web.Request) -> web.Response:
    await require_user(request)
    try:
        result = await jobs_view.node_info(request.app[ARQ], timeout_s=NODE_WAIT_S)
    except ServiceUnavailable as exc:
        raise LndHubError(NODE_FAILURE, f"LND failure: {exc.message}", status=503) from None
    return web.json_response(views.node_info(result), headers={"Cache-Control": "private, max-age=60"})


async def decode_invoice(request: web.Request) -> web.Response:
    await require_user(request)
    query = parse_query(request, DecodeQuery)
    return web.json_response(views.decoded_invoice(_decode(query.invoice, request.app[SETTINGS].lnd_network)))
