"""The LndHub v1 protocol at ``/lndhub``, for BlueWallet, Zeus, Alby and other LndHub clients.

A protocol adapter, not a second wallet: every route calls the services /api/v1 uses (users, auth,
invoices, payments, the ledger, the worker behind the queue). What is LndHub's own stays in this
package: its field names and shapes (``views``), Buffer-shaped hashes, JSON or form bodies and bare
tokens (``wire``), and its error codes (``errors``).

Add the wallet to an app with ``lndhub://<login>:<password>@<PUBLIC_URL>/lndhub``.
"""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.lndhub import errors, handlers
from api_service.lndhub import schemas as s
from api_service.middleware import add_error_renderer

PREFIX = "/lndhub"

_ROUTES = (
    # method, path, handler, summary, request (body) model, query model, response model, auth, array
    ("POST", "/create", handlers.create, "Create an account with a generated login and password",
     s.CreateBody, None, s.CreateOut, None, False),
    ("POST", "/auth", handlers.authenticate, "Log in (type=auth) or refresh (type=refresh_token)",
     s.AuthBody, s.AuthQuery, s.TokensOut, None, False),
    ("POST", "/addinvoice", handlers.add_invoice, "Create an incoming invoice",
     s.AddInvoiceBody, None, s.AddInvoiceOut, "user", False),
    ("POST", "/payinvoice", handlers.pay_invoice, "Pay a BOLT11 invoice and wait for the outcome",
     s.PayInvoiceBody, None, s.PayInvoiceOut, "user", False),
    ("GET", "/balance", handlers.balance, "The available balance in sat",
     None, None, s.BalanceOut, "user", False),
    ("GET", "/gettxs", handlers.transactions, "Paid invoices (outgoing payments), newest first",
     None, s.TxsQuery, s.TxOut, "user", True),
    ("GET", "/getuserinvoices", handlers.user_invoices, "Incoming invoices, the newest `limit`",
     None, s.InvoicesQuery, s.UserInvoiceOut, "user", True),
    ("GET", "/getpending", handlers.nothing_pending, "Pending on-chain deposits: always []",
     None, None, None, "user", True),
    ("GET", "/getbtc", handlers.nothing_pending, "On-chain deposit addresses: always []",
     None, None, None, "user", True),
    ("GET", "/checkpayment/{payment_hash}", handlers.check_payment, "Whether one of your invoices is paid",
     None, None, s.CheckPaymentOut, "user", False),
    ("GET", "/getinfo", handlers.node_info, "The node's identity and state (trimmed GetInfo)",
     None, None, s.InfoOut, "user", False),
    ("GET", "/decodeinvoice", handlers.decode_invoice, "Decode a BOLT11 invoice (LND PayReq fields)",
     None, s.DecodeQuery, s.DecodedOut, "user", False),
)  # fmt: skip

_ERRORS = {
    "/create": (403, 429),
    "/auth": (401, 429),
    "/addinvoice": (502, 503),
    "/payinvoice": (409, 422, 429),
    "/checkpayment/{payment_hash}": (400, 404),
    "/getinfo": (503,),
    "/decodeinvoice": (400,),
}

_DESCRIPTION = (
    "LndHub v1 (BlueWallet's protocol). Bodies as JSON or form; `Authorization: Bearer <token>` or the "
    "bare token; errors are `{error: true, code, message}` with LndHub's codes."
)


def setup(app: web.Application) -> None:
    add_error_renderer(app, (PREFIX + "/",), errors.render)
    for method, path, handler, summary, body, query, response, auth, array in _ROUTES:
        app.router.add_route(method, PREFIX + path, handler)
        openapi.register(
            method,
            PREFIX + path,
            summary,
            request_model=body,
            response_model=response,
            query_model=query,
            auth=auth,
            errors=_ERRORS.get(path, ()),
            tags=("lndhub",),
            description=_DESCRIPTION,
            protocol="lndhub",
            array=array,
        )
