"""Reconciliation and anomaly models (admin API)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from api_service.validation import ApiModel, OutModel, PageQuery, no_nul


class AnomalyOut(OutModel):
    id: int
    kind: str
    message: str
    payment_id: uuid.UUID | None
    invoice_id: uuid.UUID | None
    account_id: int | None
    payment_hash: str | None
    details: dict[str, Any]
    occurrences: int
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    resolution: str | None


class ReconciliationOut(OutModel):
    """The latest comparison of the ledger with the node, and the anomalies nobody resolved yet."""

    status: Literal["ok", "mismatch"]
    checked_at: datetime
    liabilities_sat: int
    treasury_sat: int
    node_local_balance_sat: int
    surplus_sat: int
    liabilities_msat: int
    treasury_msat: int
    node_local_balance_msat: int
    surplus_msat: int
    window_s: int
    duration_ms: int
    mismatches: list[dict[str, Any]] = Field(description="each with kind, message and the ids involved")
    anomalies: list[AnomalyOut] = Field(description="open anomalies, newest first (at most 100)")


class AnomalyListQuery(PageQuery):
    status: Literal["open", "resolved", "all"] = "open"
    kind: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(no_nul)] | None = None


class ResolveAnomalyBody(ApiModel):
    resolution: Annotated[
        str,
        Field(min_length=1, max_length=1000, description="what it was and what was done"),
        AfterValidator(no_nul),
    ]
