"""Webhook models: the signing secret, the deliveries list and its filters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from api_service.validation import OutModel, PageQuery
from shared.db.models import WEBHOOK_STATES


class WebhookSecretOut(OutModel):
    secret: str = Field(description="whsec_ + base64: pass it as is to a Standard Webhooks verifier")


class DeliveriesQuery(PageQuery):
    status: Literal[WEBHOOK_STATES] | None = None  # type: ignore[valid-type]


class DeliveryOut(OutModel):
    """One webhook delivery: one event to one URL, with every attempt counted."""

    id: int
    webhook_id: str = Field(description="the webhook-id header: the same on every attempt and redelivery")
    event: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when pending: the next attempt is due then")
    created_at: datetime
    delivered_at: datetime | None
    user_id: uuid.UUID
    invoice_id: uuid.UUID | None
    payment_id: uuid.UUID | None
