"""Wallet models: balance, invoices, payments, the activity list, admin jobs and node views.

Amounts on the wire are integers in sat (``StrictInt``: ``"100"``, ``100.0`` and ``true`` are refused,
never coerced). Display fields in sat are ``floor(msat / 1000)``; the exact ``...Msat`` field sits next
to each of them, because an outgoing payment or its fee may be a fraction of a sat.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import AfterValidator, Field, StrictBool, StrictInt

from api_service.validation import ApiModel, OutModel, PageQuery, no_nul
from shared.bolt11 import MAX_PAYMENT_REQUEST_CHARS
from shared.bolt11 import normalize as normalize_payment_request
from shared.db.models import INVOICE_STATES, PAYMENT_STATES

MEMO_MAX_BYTES = 639  # BOLT11 description field limit (LND refuses longer memos)
EXPIRY_MIN_S = 60
EXPIRY_MAX_S = 365 * 24 * 3600
EXPIRY_DEFAULT_S = 3600
WEBHOOK_URL_MAX_CHARS = 2048
ALL_STATES = tuple(dict.fromkeys(INVOICE_STATES + PAYMENT_STATES))


def _check_memo(value: str) -> str:
    no_nul(value)
    if len(value.encode("utf-8")) > MEMO_MAX_BYTES:
        raise ValueError(f"must be at most {MEMO_MAX_BYTES} bytes in UTF-8")
    return value


def _check_webhook_url(value: str) -> str:
    no_nul(value)
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("must be a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("must include a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not include credentials")
    return value


Memo = Annotated[
    str,
    Field(max_length=MEMO_MAX_BYTES, description="at most 639 bytes of UTF-8"),
    AfterValidator(_check_memo),
]
WebhookUrl = Annotated[
    str,
    Field(min_length=1, max_length=WEBHOOK_URL_MAX_CHARS, description="http(s) URL"),
    AfterValidator(_check_webhook_url),
]


class CreateInvoiceBody(ApiModel):
    amount_sat: StrictInt = Field(..., ge=1, description="1..MAX_INVOICE_SAT (checked against the settings)")
    memo: Memo = ""
    expiry_seconds: StrictInt = Field(EXPIRY_DEFAULT_S, ge=EXPIRY_MIN_S, le=EXPIRY_MAX_S)
    webhook_url: WebhookUrl | None = None
    for_treasury: StrictBool = Field(False, description="admin only: the settlement credits the treasury")


class CreatePaymentBody(ApiModel):
    # Normalised on input (no "lightning:" prefix, lower case): the same invoice spelled another way is
    # the same request, also for its Idempotency-Key fingerprint.
    payment_request: Annotated[str, AfterValidator(normalize_payment_request)] = Field(
        ..., min_length=1, max_length=MAX_PAYMENT_REQUEST_CHARS + len("lightning:")
    )
    amount_sat: StrictInt | None = Field(None, description="only for a zero-amount invoice")
    fee_limit_sat: StrictInt | None = Field(None, ge=0, description="default: the configured fee reserve")
    from_treasury: StrictBool = False
    webhook_url: WebhookUrl | None = None


class ActivityQuery(PageQuery):
    direction: Literal["incoming", "outgoing"] | None = None
    state: Literal[ALL_STATES] | None = None  # type: ignore[valid-type]
    from_: datetime | None = Field(None, alias="from", description="ISO-8601, inclusive (naive = UTC)")
    to: datetime | None = Field(None, description="ISO-8601, exclusive (naive = UTC)")
    all: bool = Field(False, description="admin only: every user's rows")

    @pydantic.field_validator("from_", "to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)  # the database compares in UTC
        except OverflowError:  # e.g. 0001-01-01T00:00+14:00 is before year 1 in UTC
            raise ValueError("must be between years 1 and 9999 in UTC") from None

    @pydantic.model_validator(mode="after")
    def _range(self) -> ActivityQuery:
        if self.from_ and self.to and self.from_ >= self.to:
            raise ValueError("from must be before to")
        return self


class BalanceOut(OutModel):
    balance_sat: int
    held_sat: int
    available_sat: int
    balance_msat: int
    held_msat: int
    available_msat: int


class ActivityItemOut(OutModel):
    """One row of GET /invoices: an incoming invoice, an outgoing payment, or an admin's adjustment of
    the balance (credit: incoming, debit: outgoing; its memo is the adjustment's reason)."""

    id: uuid.UUID
    kind: Literal["invoice", "payment", "adjustment"]
    direction: Literal["incoming", "outgoing"]
    user_id: uuid.UUID
    state: str
    amount_sat: int
    amount_msat: int
    fee_sat: int | None
    fee_msat: int | None
    memo: str
    payment_hash: str | None
    payment_request: str | None
    created_at: datetime
    settled_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime | None


class InvoiceOut(ActivityItemOut):
    """An incoming invoice in full (POST /invoices, GET /invoices/{id})."""

    expiry_seconds: int | None = None
    amount_paid_sat: int | None = None
    amount_paid_msat: int | None = None
    failure_reason: str | None = None
    webhook_url: str | None = None
    for_treasury: bool = False


class PaymentOut(OutModel):
    id: uuid.UUID
    direction: Literal["outgoing"] = "outgoing"
    user_id: uuid.UUID
    status: Literal["pending", "in_flight", "succeeded", "failed"]
    amount_sat: int
    amount_msat: int
    fee_sat: int | None
    fee_msat: int | None
    fee_limit_sat: int
    preimage: str | None = Field(None, description="hex, only when succeeded")
    failure_reason: str | None
    payment_hash: str
    payment_request: str
    destination: str
    memo: str
    internal: bool
    from_treasury: bool
    created_at: datetime
    completed_at: datetime | None
    webhook_url: str | None = None


class InFlightPaymentOut(PaymentOut):
    """A payment not final yet, as an admin sees it: whose, how old, how often the worker sent it."""

    username: str
    age_s: int = Field(description="seconds since the payment was created")
    attempts: int = Field(description="how often the worker has sent it to the node")
    sent_at: datetime | None = Field(description="when the worker first handed it to the node")
    updated_at: datetime


class NodeChannelBalanceOut(OutModel):
    local_sat: int
    remote_sat: int


class NodeOut(OutModel):
    identity_pubkey: str
    alias: str
    network: str
    block_height: int
    version: str
    synced_to_chain: bool
    num_active_channels: int
    channel_balance: NodeChannelBalanceOut


class JobsOut(OutModel):
    """GET /admin/jobs. Lists hold at most 100 jobs; counts cover at most 5000 keys each
    (``countsTruncated`` says when that cap was hit)."""

    queue_name: str
    queued: list[dict[str, Any]]
    queued_total: int
    in_progress: list[dict[str, Any]]
    recent_results: list[dict[str, Any]]
    counts: dict[str, dict[str, int]] = Field(
        description="per function: queued, inProgress, succeeded, failed"
    )
    counts_truncated: bool
    worker_health: dict[str, Any] = Field(description="key, value, ttlMs, alive (arq health-check key)")
