"""Treasury and adjustment models (admin API): amounts in whole sats on input, sat + msat on output."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt

from api_service.validation import ApiModel, OutModel, PageQuery
from shared.adjustments import REASON_MAX_CHARS

MAX_ADJUSTMENT_SAT = 21_000_000 * 100_000_000  # every bitcoin there will ever be


def _check_reason(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Reason = Annotated[
    str,
    Field(min_length=1, max_length=REASON_MAX_CHARS, description="why: 1..500 characters, kept forever"),
    AfterValidator(_check_reason),
]


class DepositBody(ApiModel):
    amount_sat: StrictInt = Field(..., ge=1, le=MAX_ADJUSTMENT_SAT)
    reason: Reason


class AdjustmentBody(ApiModel):
    user_id: uuid.UUID
    amount_sat: StrictInt = Field(..., ge=1, le=MAX_ADJUSTMENT_SAT)
    direction: Literal["credit", "debit"]
    reason: Reason


class AdjustmentListQuery(PageQuery):
    user_id: uuid.UUID | None = None
    direction: Literal["credit", "debit"] | None = None


class TreasuryOut(OutModel):
    balance_sat: int
    held_sat: int
    available_sat: int
    balance_msat: int
    held_msat: int
    available_msat: int


class AdjustmentOut(OutModel):
    """An adjustment (``direction`` credit: treasury -> user, debit: user -> treasury) or a treasury
    deposit (``direction`` deposit, no user: equity -> treasury)."""

    id: uuid.UUID
    direction: Literal["credit", "debit", "deposit"]
    user_id: uuid.UUID | None
    username: str | None
    amount_sat: int
    amount_msat: int
    reason: str
    created_by: uuid.UUID | None = Field(description="the admin who made it; null: recorded by the system")
    created_by_username: str | None
    created_at: datetime
