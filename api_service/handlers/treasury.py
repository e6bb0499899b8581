"""/api/v1/admin/treasury and /api/v1/admin/adjustments: the operator's money, audited (admins only)."""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.handlers.invoices import idempotency_request, outcome_response, wallet_deps
from api_service.responses import ok, ok_list
from api_service.schemas.treasury import (
    AdjustmentBody,
    AdjustmentListQuery,
    AdjustmentOut,
    DepositBody,
    TreasuryOut,
)
from api_service.security import require_admin
from api_service.services import treasury
from api_service.validation import parse_body, parse_query

TREASURY = "/api/v1/admin/treasury"
DEPOSITS = f"{TREASURY}/deposits"
ADJUSTMENTS = "/api/v1/admin/adjustments"


async def get_treasury(request: web.Request) -> web.Response:
    await require_admin(request)
    return ok(request, await treasury.get_treasury(wallet_deps(request)))


async def create_deposit(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    body = await parse_body(request, DepositBody)
    outcome = await treasury.create_deposit(
        wallet_deps(request), admin, body, idempotency_request(request, body)
    )
    return outcome_response(request, outcome)


async def list_deposits(request: web.Request) -> web.Response:
    await require_admin(request)
    query = parse_query(request, AdjustmentListQuery)
    items, total = await treasury.list_deposits(wallet_deps(request), query)
    return ok_list(request, items, page=query.page, page_size=query.page_size, total=total)


async def create_adjustment(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    body = await parse_body(request, AdjustmentBody)
    outcome = await treasury.create_adjustment(
        wallet_deps(request), admin, body, idempotency_request(request, body)
    )
    return outcome_response(request, outcome)


async def list_adjustments(request: web.Request) -> web.Response:
    await require_admin(request)
    query = parse_query(request, AdjustmentListQuery)
    items, total = await treasury.list_adjustments(wallet_deps(request), query)
    return ok_list(request, items, page=query.page, page_size=query.page_size, total=total)


def setup(app: web.Application) -> None:
    app.router.add_get(TREASURY, get_treasury)
    app.router.add_post(DEPOSITS, create_deposit)
    app.router.add_get(DEPOSITS, list_deposits)
    app.router.add_post(ADJUSTMENTS, create_adjustment)
    app.router.add_get(ADJUSTMENTS, list_adjustments)
    tags = ("treasury",)
    openapi.register(
        "GET",
        TREASURY,
        "The treasury's balance, held and available amounts",
        response_model=TreasuryOut,
        auth="admin",
        tags=tags,
    )
    openapi.register(
        "POST",
        DEPOSITS,
        "Record a deposit of the operator's own funds already on the node (equity -> treasury)",
        request_model=DepositBody,
        response_model=AdjustmentOut,
        status=201,
        auth="admin",
        errors=(400, 409, 415),
        tags=tags,
        description="reason is required (1..500 characters). Idempotency-Key honoured.",
    )
    openapi.register(
        "GET",
        DEPOSITS,
        "Treasury deposits, newest first",
        response_model=AdjustmentOut,
        query_model=AdjustmentListQuery,
        auth="admin",
        paginated=True,
        errors=(400,),
        tags=tags,
    )
    openapi.register(
        "POST",
        ADJUSTMENTS,
        "Adjust a user's balance: credit (treasury -> user) or debit (user -> treasury)",
        request_model=AdjustmentBody,
        response_model=AdjustmentOut,
        status=201,
        auth="admin",
        errors=(400, 404, 409, 415, 422),
        tags=tags,
        description="One balanced ledger transaction. 422 INSUFFICIENT_BALANCE when the treasury (credit) "
        "or the user's available balance (debit) does not cover it. reason is required (1..500 "
        "characters). The adjustment appears in the user's GET /invoices activity. "
        "Idempotency-Key honoured.",
    )
    openapi.register(
        "GET",
        ADJUSTMENTS,
        "Adjustments, newest first (who, when, user, amount, direction, reason)",
        response_model=AdjustmentOut,
        query_model=AdjustmentListQuery,
        auth="admin",
        paginated=True,
        errors=(400,),
        tags=tags,
        description="Filter by userId and direction.",
    )
