"""Operations views for admins: the arq queue, the LND node and the payments not final yet.

The browser side of these is the admin console (``api_service/handlers/console.py``, at ``/admin``).
"""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.handlers.invoices import wallet_deps
from api_service.keys import ARQ, SETTINGS
from api_service.responses import ok, ok_list
from api_service.schemas.wallet import InFlightPaymentOut, JobsOut, NodeOut
from api_service.security import require_admin
from api_service.services import jobs_view, payments
from api_service.validation import PageQuery, parse_query

NODE_WAIT_S = 5.0
IN_FLIGHT = "/api/v1/admin/payments/in-flight"


async def jobs_json(request: web.Request) -> web.Response:
    await require_admin(request)
    return ok(request, await jobs_view.jobs_overview(request.app[ARQ], request.app[SETTINGS].arq_queue_name))


async def node(request: web.Request) -> web.Response:
    await require_admin(request)
    result = await jobs_view.node_info(request.app[ARQ], timeout_s=NODE_WAIT_S)
    return ok(request, jobs_view.node_out(result))


async def payments_in_flight(request: web.Request) -> web.Response:
    await require_admin(request)
    query = parse_query(request, PageQuery)
    items, total = await payments.list_in_flight(wallet_deps(request), query)
    return ok_list(request, items, page=query.page, page_size=query.page_size, total=total)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/jobs", jobs_json)
    app.router.add_get("/api/v1/admin/node", node)
    app.router.add_get(IN_FLIGHT, payments_in_flight)
    tags = ("admin",)
    openapi.register(
        "GET",
        "/api/v1/admin/jobs",
        "arq queue: queued, in progress, recent results, health",
        response_model=JobsOut,
        auth="admin",
        errors=(503,),
        tags=tags,
    )
    openapi.register(
        "GET",
        "/api/v1/admin/node",
        "LND node info and channel balance (via a worker job)",
        response_model=NodeOut,
        auth="admin",
        errors=(503,),
        tags=tags,
        description="503 UNAVAILABLE when the worker does not answer within 5 s.",
    )
    openapi.register(
        "GET",
        IN_FLIGHT,
        "Every user's payments not final yet (pending or in_flight), oldest first",
        response_model=InFlightPaymentOut,
        query_model=PageQuery,
        auth="admin",
        paginated=True,
        errors=(400,),
        tags=tags,
        description="ageS is counted from createdAt by the database clock; attempts is how often the "
        "worker has sent the payment to the node. A payment stays here until the node reports it "
        "succeeded or failed.",
    )
