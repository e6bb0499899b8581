"""Webhooks for their owners: target checks, the signing secret, deliveries and redelivery.

The URL rules are shared/webhook_targets.py (the worker applies them again at delivery, after DNS).
Secrets are created on first use and stored sealed (shared/webhook_secrets.py); they are shown only
to their owner, in a no-store response. A redelivery only makes the row due now: the worker's
webhook cron (every 2 s) picks it up, with the same ``webhook-id``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api_service.schemas.webhooks import DeliveriesQuery, DeliveryOut, WebhookSecretOut
from api_service.security import CurrentUser
from api_service.validation import dump
from shared.config import Settings
from shared.db.queries import webhooks as queries
from shared.errors import Forbidden, NotFound
from shared.webhook_secrets import SecretBox, current_secret
from shared.webhook_secrets import rotate_secret as rotate_sealed_secret
from shared.webhook_targets import check_url

log = logging.getLogger("api.webhooks")
_DELIVERY_ID = re.compile(r"^[1-9][0-9]{0,17}$")


@dataclass(frozen=True, slots=True)
class WebhookDeps:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    reads: AsyncEngine


def check_webhook_url(settings: Settings, url: str | None) -> None:
    """400 WEBHOOK_URL_NOT_ALLOWED unless ``url`` (if given) may receive webhooks."""
    if url is not None:
        check_url(url, settings.webhook_networks)


def delivery_out(row: Any) -> dict[str, Any]:
    return dump(
        DeliveryOut(
            id=row.id,
            webhook_id=row.webhook_id,
            event=row.event,
            url=row.url,
            status=row.state,
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at if row.state == "pending" else None,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            user_id=row.user_id,
            invoice_id=row.invoice_id,
            payment_id=row.payment_id,
        )
    )


async def get_secret(deps: WebhookDeps, user: CurrentUser) -> dict[str, Any]:
    async with deps.sessions() as session, session.begin():
        secret = await current_secret(session, SecretBox.from_settings(deps.settings), user.id)
    return dump(WebhookSecretOut(secret=secret))


async def rotate_secret(deps: WebhookDeps, user: CurrentUser) -> dict[str, Any]:
    async with deps.sessions() as session, session.begin():
        secret = await rotate_sealed_secret(session, SecretBox.from_settings(deps.settings), user.id)
    return dump(WebhookSecretOut(secret=secret))


async def list_deliveries(
    deps: WebhookDeps, user: CurrentUser | None, query: DeliveriesQuery
) -> tuple[list[dict[str, Any]], int]:
    """The user's deliveries, newest first (``user=None``: everyone's, for admins)."""
    async with deps.reads.connect() as connection:
        rows, total = await queries.list_deliveries(
            connection,
            user_id=user.id if user is not None else None,
            state=query.status,
            limit=query.page_size,
            offset=query.offset,
        )
    return [delivery_out(row) for row in rows], total


async def redeliver(
    deps: WebhookDeps, user: CurrentUser, ident: str, *, any_user: bool = False
) -> dict[str, Any]:
    """Another attempt soon, same webhook-id. A user's own deliveries only (another user's is 404 like
    a missing one); with ``any_user``, an admin's redelivery of anyone's, logged with who asked."""
    if any_user and not user.is_admin:
        raise Forbidden("Administrator rights required")
    if not _DELIVERY_ID.match(ident):
        raise NotFound("Delivery not found")
    async with deps.sessions() as session, session.begin():
        row = await queries.request_redelivery(session, int(ident), None if any_user else user.id)
    if row is None:
        raise NotFound("Delivery not found")
    if any_user:
        log.info(
            "webhook redelivery requested by an admin",
            extra={"delivery_id": row.id, "admin_id": str(user.id), "user_id": str(row.user_id)},
        )
    return delivery_out(row)
