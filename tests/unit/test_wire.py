"""The hand-built JSON of api_service.wire is what pydantic dumps from the documented response models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import aiounittest

from api_service import wire
from api_service.schemas.wallet import ActivityItemOut, InvoiceOut
from api_service.validation import dump

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def invoice_row(**overrides):
    values = {
        "id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "state": "open",
        "amount_msat": 10_999,
        "memo": "café ✓",
        "payment_hash": bytes(range(32)),
        "payment_request": "lnbcrt1...",
        "created_at": T1,
        "settled_at": None,
        "expires_at": T0,
        "expiry_s": 3600,
        "amount_paid_msat": None,
        "failure_reason": None,
        "webhook_url": None,
        "for_treasury": False,
    }
    return {**values, **overrides}


class WireTests(aiounittest.AsyncTestCase):
    def test_timestamps_as_pydantic_writes_them(self):
        for value in (T0, T1, datetime(2026, 5, 6, 7, 8, 9, 1, tzinfo=timezone(timedelta(hours=2)))):
            expected = self._expected(self._activity(created_at=value))
            self.assertEqual(wire.iso(value), expected["createdAt"])

    def test_invoice_full_matches_invoice_out(self):
        for overrides in (
            {},
            {"state": "pending", "payment_hash": None, "payment_request": None},
            {"state": "settled", "settled_at": T0, "amount_paid_msat": 11_001, "for_treasury": True},
            {"state": "failed", "failure_reason": "node down", "webhook_url": "https://example.com/h"},
        ):
            row = invoice_row(**overrides)
            expected = dump(
                InvoiceOut(
                    **{k: v for k, v in row.items() if k not in ("payment_hash", "expiry_s")},
                    kind="invoice",
                    direction="incoming",
                    amount_sat=row["amount_msat"] // 1000,
                    fee_sat=None,
                    fee_msat=None,
                    payment_hash=row["payment_hash"].hex() if row["payment_hash"] else None,
                    completed_at=None,
                    expiry_seconds=row["expiry_s"],
                    amount_paid_sat=None
                    if row["amount_paid_msat"] is None
                    else row["amount_paid_msat"] // 1000,
                )
            )
            self.assertEqual(list(wire.invoice_full(row).items()), list(expected.items()))
            self.assertEqual(wire.invoice_full(wire.Attrs(SimpleNamespace(**row))), expected)

    def test_activity_items_match_activity_item_out(self):
        for row in (
            self._activity(),
            self._activity(kind="payment", direction="outgoing", fee_msat=1_999, completed_at=T0),
            self._activity(kind="adjustment", direction="outgoing", payment_hash=None, payment_request=None),
        ):
            expected = self._expected(row)
            self.assertEqual(list(wire.activity_item(row).items()), list(expected.items()))

    def test_payment_item_matches_activity_item_out(self):
        row = self._activity(kind="payment", direction="outgoing", fee_msat=None, completed_at=None)
        payment = {k: v for k, v in row.items() if k not in ("kind", "direction", "settled_at", "expires_at")}
        self.assertEqual(wire.payment_item(wire.Attrs(SimpleNamespace(**payment))), self._expected(row))

    @staticmethod
    def _activity(**overrides):
        values = {
            "id": uuid.uuid4(),
            "kind": "invoice",
            "direction": "incoming",
            "user_id": uuid.uuid4(),
            "state": "settled",
            "amount_msat": 21_500,
            "fee_msat": None,
            "memo": "m",
            "payment_hash": b"\x01" * 32,
            "payment_request": "lnbcrt1...",
            "created_at": T1,
            "settled_at": T0,
            "completed_at": None,
            "expires_at": T0,
        }
        return {**values, **overrides}

    @staticmethod
    def _expected(row):
        outgoing = row["direction"] == "outgoing"
        return dump(
            ActivityItemOut(
                **{k: v for k, v in row.items() if k != "payment_hash"},
                amount_sat=row["amount_msat"] // 1000,
                fee_sat=None if row["fee_msat"] is None else row["fee_msat"] // 1000,
                payment_hash=row["payment_hash"].hex() if row["payment_hash"] else None,
            ).model_copy(
                update={
                    "settled_at": None if outgoing else row["settled_at"],
                    "completed_at": row["completed_at"] if outgoing else None,
                    "expires_at": None if outgoing else row["expires_at"],
                }
            )
        )
