"""/api/v1/wallet/balance."""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.handlers.invoices import wallet_deps
from api_service.responses import ok
from api_service.schemas.wallet import BalanceOut
from api_service.security import require_user
from api_service.services import invoices


async def balance(request: web.Request) -> web.Response:
    user = await require_user(request)
    return ok(request, await invoices.get_balance(wallet_deps(request), user))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/wallet/balance", balance)
    openapi.register(
        "GET",
        "/api/v1/wallet/balance",
        "The caller's balance",
        response_model=BalanceOut,
        tags=("wallet",),
        description="Sat fields are floor(msat / 1000); the exact ...Msat values sit beside them. "
        "held: reserved for payments in progress; available = balance - held.",
    )
