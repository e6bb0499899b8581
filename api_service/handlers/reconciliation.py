"""/api/v1/admin/reconciliation and /api/v1/admin/anomalies (admins only)."""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.handlers.invoices import wallet_deps
from api_service.responses import ok, ok_list
from api_service.schemas.reconciliation import (
    AnomalyListQuery,
    AnomalyOut,
    ReconciliationOut,
    ResolveAnomalyBody,
)
from api_service.security import require_admin
from api_service.services import reconciliation
from api_service.validation import parse_body, parse_query
from shared.errors import NotFound

RECONCILIATION = "/api/v1/admin/reconciliation"
ANOMALIES = "/api/v1/admin/anomalies"
MAX_ID = 2**63 - 1


def _anomaly_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise NotFound("No open anomaly with this id")
    return int(raw)


async def get_reconciliation(request: web.Request) -> web.Response:
    await require_admin(request)
    return ok(request, await reconciliation.latest(wallet_deps(request)))


async def list_anomalies(request: web.Request) -> web.Response:
    await require_admin(request)
    query = parse_query(request, AnomalyListQuery)
    items, total = await reconciliation.list_anomalies(wallet_deps(request), query)
    return ok_list(request, items, page=query.page, page_size=query.page_size, total=total)


async def resolve_anomaly(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    anomaly_id = _anomaly_id(request)
    body = await parse_body(request, ResolveAnomalyBody)
    return ok(request, await reconciliation.resolve(wallet_deps(request), admin, anomaly_id, body.resolution))


def setup(app: web.Application) -> None:
    app.router.add_get(RECONCILIATION, get_reconciliation)
    app.router.add_get(ANOMALIES, list_anomalies)
    app.router.add_post(f"{ANOMALIES}/{{id}}/resolve", resolve_anomaly)
    tags = ("operations",)
    openapi.register(
        "GET",
        RECONCILIATION,
        "The latest reconciliation of the ledger with the node, and the open anomalies",
        response_model=ReconciliationOut,
        auth="admin",
        errors=(404,),
        tags=tags,
        description="status ok|mismatch; surplusSat = nodeLocalBalanceSat - liabilitiesSat - treasurySat. "
        "The worker runs one every RECONCILE_EVERY_S; 404 before the first.",
    )
    openapi.register(
        "GET",
        ANOMALIES,
        "Anomalies: what the node reported against our records, and ledger breaches",
        response_model=AnomalyOut,
        query_model=AnomalyListQuery,
        auth="admin",
        paginated=True,
        errors=(400,),
        tags=tags,
        description="status=open (default) | resolved | all; kind filters.",
    )
    openapi.register(
        "POST",
        f"{ANOMALIES}/{{id}}/resolve",
        "Resolve an anomaly with an explanation (kept with who and when)",
        request_model=ResolveAnomalyBody,
        response_model=AnomalyOut,
        auth="admin",
        errors=(404,),
        tags=tags,
    )
