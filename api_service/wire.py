"""Rows as the JSON the API answers, built straight from the row, without a pydantic model per item.

Field for field (names, order, types, formats) what the response models in ``schemas/wallet.py``
document and pydantic would dump; ``tests/unit/test_wire.py`` checks both agree. The models stay the
OpenAPI description; the hot paths (a page of 20 items per poll) skip building and dumping them.

A row is any mapping of column name to value: an asyncpg ``Record``, a SQLAlchemy ``Row._mapping``,
or an ORM object wrapped in :class:`Attrs`.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.ledger import MSAT_PER_SAT

Row = Mapping[str, Any]


class Attrs(Mapping[str, Any]):
    """An object's attributes as a read-only mapping (an ORM row for the builders below)."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self._obj, key)
        except AttributeError:
            raise KeyError(key) from None

    def __iter__(self):  # pragma: no cover - the builders only index
        raise TypeError("Attrs is indexed by name only")

    def __len__(self) -> int:  # pragma: no cover
        raise TypeError("Attrs is indexed by name only")


class Fields:
    """A record's columns as attributes (the other way round: what readers of ``Outcome.row`` use)."""

    __slots__ = ("_record",)

    def __init__(self, record: Row) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


def sat(msat: int | None) -> int | None:
    """Display value in sat: floor(msat / 1000). The exact msat value is always shown next to it."""
    return None if msat is None else msat // MSAT_PER_SAT


def iso(value: datetime | None) -> str | None:
    """A timestamp as pydantic writes it: ISO-8601, ``Z`` for UTC, microseconds only when not zero."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def hex_or_none(value: bytes | None) -> str | None:
    return value.hex() if value else None


def activity_item(row: Row) -> dict[str, Any]:
    """One item of GET /invoices (``ActivityItemOut``) from a row of the activity statement."""
    outgoing = row["direction"] == "outgoing"
    return {
        "id": str(row["id"]),
        "kind": row["kind"],
        "direction": "outgoing" if outgoing else "incoming",
        "userId": str(row["user_id"]),
        "state": row["state"],
        "amountSat": row["amount_msat"] // MSAT_PER_SAT,
        "amountMsat": row["amount_msat"],
        "feeSat": sat(row["fee_msat"]),
        "feeMsat": row["fee_msat"],
        "memo": row["memo"],
        "paymentHash": hex_or_none(row["payment_hash"]),
        "paymentRequest": row["payment_request"],
        "createdAt": iso(row["created_at"]),
        "settledAt": None if outgoing else iso(row["settled_at"]),
        "completedAt": iso(row["completed_at"]) if outgoing else None,
        "expiresAt": None if outgoing else iso(row["expires_at"]),
    }


_INVOICE_SIDE = {"kind": "invoice", "direction": "incoming", "fee_msat": None, "completed_at": None}
_PAYMENT_SIDE = {"kind": "payment", "direction": "outgoing", "settled_at": None, "expires_at": None}


def payment_item(row: Row) -> dict[str, Any]:
    """A payments row as an item of GET /invoices (``ActivityItemOut``, kind payment)."""
    return activity_item(ChainMap(_PAYMENT_SIDE, row))


def invoice_full(row: Row) -> dict[str, Any]:
    """An invoices row in full (``InvoiceOut``: POST /invoices, GET /invoices/{id})."""
    out = activity_item(ChainMap(_INVOICE_SIDE, row))
    out["expirySeconds"] = row["expiry_s"]
    out["amountPaidSat"] = sat(row["amount_paid_msat"])
    out["amountPaidMsat"] = row["amount_paid_msat"]
    out["failureReason"] = row["failure_reason"]
    out["webhookUrl"] = row["webhook_url"]
    out["forTreasury"] = row["for_treasury"]
    return out
