"""/api/v1/webhooks: the caller's signing secret and deliveries; the admins' view of all deliveries."""

from __future__ import annotations

from aiohttp import web

from api_service import openapi, ratelimit
from api_service.keys import ARQ, READS, SESSIONS, SETTINGS
from api_service.responses import ok, ok_list
from api_service.schemas.webhooks import DeliveriesQuery, DeliveryOut, WebhookSecretOut
from api_service.security import require_admin, require_user
from api_service.services import webhooks
from api_service.validation import parse_query

PREFIX = "/api/v1/webhooks"
ADMIN_PATH = "/api/v1/admin/webhooks/deliveries"
REDELIVER_PER_MINUTE = 60  # each one makes the worker POST to the caller's URL
_NO_STORE = {"Cache-Control": "no-store"}


def _deps(request: web.Request) -> webhooks.WebhookDeps:
    app = request.app
    return webhooks.WebhookDeps(settings=app[SETTINGS], sessions=app[SESSIONS], reads=app[READS])


async def get_secret(request: web.Request) -> web.Response:
    user = await require_user(request)
    return ok(request, await webhooks.get_secret(_deps(request), user), headers=_NO_STORE)


async def rotate_secret(request: web.Request) -> web.Response:
    user = await require_user(request)
    return ok(request, await webhooks.rotate_secret(_deps(request), user), headers=_NO_STORE)


async def list_deliveries(request: web.Request) -> web.Response:
    user = await require_user(request)
    query = parse_query(request, DeliveriesQuery)
    items, total = await webhooks.list_deliveries(_deps(request), user, query)
    return ok_list(request, items, page=query.page, page_size=query.page_size, total=total)


async def redeliver(request: web.Request) -> web.Response:
    user = await require_user(request)
    await ratelimit.hit(
        request.app[ARQ], f"redeliver:user:{user.id}", limit=REDELIVER_PER_MINUTE, window_s=60
    )
    return ok(request, await webhooks.redeliver(_deps(request), user, request.match_info["id"]), status=202)


async def admin_redeliver(request: web.Request) -> web.Response:
    admin = await require_admin(request)
    await ratelimit.hit(
        request.app[ARQ], f"redeliver:admin:{admin.id}", limit=REDELIVER_PER_MINUTE, window_s=60
    )
    delivery = await webhooks.redeliver(_deps(request), admin, request.match_info["id"], any_user=True)
    return ok(request, delivery, status=202)


async def admin_list_deliveries(request: web.Request) -> web.Response:
    await require_admin(request)
    query = parse_query(request, DeliveriesQuery)
    items, total = await webhooks.list_deliveries(_deps(request), None, query)
    return ok_list(request, items, page=query.page, page_size=query.page_size, total=total)


def setup(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/secret", get_secret)
    app.router.add_post(f"{PREFIX}/secret/rotate", rotate_secret)
    app.router.add_get(f"{PREFIX}/deliveries", list_deliveries)
    app.router.add_post(f"{PREFIX}/deliveries/{{id}}/redeliver", redeliver)
    app.router.add_get(ADMIN_PATH, admin_list_deliveries)
    app.router.add_post(f"{ADMIN_PATH}/{{id}}/redeliver", admin_redeliver)
    tags = ("webhooks",)
    openapi.register(
        "GET",
        f"{PREFIX}/secret",
        "The caller's webhook signing secret",
        response_model=WebhookSecretOut,
        tags=tags,
        description="Created on first use. Deliveries are signed the Standard Webhooks way with it "
        "(webhook-id, webhook-timestamp, webhook-signature headers).",
    )
    openapi.register(
        "POST",
        f"{PREFIX}/secret/rotate",
        "Replace the webhook signing secret",
        response_model=WebhookSecretOut,
        tags=tags,
        description="Returns the new secret. For 24 h deliveries carry a signature with the new and "
        "one with the old secret (space-separated), so a receiver can switch without a gap.",
    )
    openapi.register(
        "GET",
        f"{PREFIX}/deliveries",
        "The caller's webhook deliveries, newest first",
        response_model=DeliveryOut,
        query_model=DeliveriesQuery,
        paginated=True,
        tags=tags,
        description="status=pending|delivered|failed. Attempts: immediately, then after 5 s, 5 min, "
        "30 min, 2 h, 5 h, 10 h and 10 h (with jitter); a 2xx answer ends them.",
    )
    openapi.register(
        "POST",
        f"{PREFIX}/deliveries/{{id}}/redeliver",
        "Deliver again",
        response_model=DeliveryOut,
        status=202,
        errors=(404, 429),
        tags=tags,
        description="A new attempt within a few seconds, with the same webhook-id, and a fresh round "
        "of retries if it fails. Another user's delivery is 404.",
    )
    openapi.register(
        "GET",
        ADMIN_PATH,
        "Every user's webhook deliveries, newest first",
        response_model=DeliveryOut,
        query_model=DeliveriesQuery,
        auth="admin",
        paginated=True,
        tags=("admin",),
        description="status=failed lists the deliveries that ran out of attempts.",
    )
    openapi.register(
        "POST",
        f"{ADMIN_PATH}/{{id}}/redeliver",
        "Deliver any user's delivery again",
        response_model=DeliveryOut,
        status=202,
        auth="admin",
        errors=(404, 429),
        tags=("admin",),
        description="As the owner's redeliver: a new attempt within a few seconds, same webhook-id, a "
        "fresh round of retries. Logged with the admin who asked. Rate limited per admin.",
    )
