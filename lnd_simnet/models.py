"""The simnet's own mutable records (invoices, payments, channel balances) and their JSON rows."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

# Invoice states and payment statuses use LND's enum numbers so they map 1:1 onto the wire.
OPEN, SETTLED, CANCELED, ACCEPTED = 0, 1, 2, 3
IN_FLIGHT, SUCCEEDED, FAILED = 1, 2, 3
REASON_NONE, REASON_TIMEOUT, REASON_NO_ROUTE, REASON_ERROR = 0, 1, 2, 3
REASON_INCORRECT_PAYMENT_DETAILS, REASON_INSUFFICIENT_BALANCE, REASON_CANCELED = 4, 5, 6
REASONS = {
    "timeout": REASON_TIMEOUT,
    "no_route": REASON_NO_ROUTE,
    "error": REASON_ERROR,
    "incorrect_payment_details": REASON_INCORRECT_PAYMENT_DETAILS,
    "insufficient_balance": REASON_INSUFFICIENT_BALANCE,
    "canceled": REASON_CANCELED,
}

# Payment phases: what a restart must resume.
PHASE_NEW = "new"  # validated, no HTLC yet
PHASE_LOCKED = "locked"  # HTLC out, balances reserved, not delivered yet
PHASE_HELD = "held"  # HTLC stuck by a simnet:hold marker until `release`
PHASE_ACCEPTED = "accepted"  # delivered to a hold invoice, waiting for Settle/CancelInvoice
PHASE_DONE = "done"


class Row:
    """JSON (de)serialisation with bytes fields as hex."""

    BYTES_FIELDS: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> str:
        # Flat records: a field walk is ~10x cheaper than dataclasses.asdict's deep copies.
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        for name in self.BYTES_FIELDS:
            if data[name] is not None:
                data[name] = data[name].hex()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Any:
        data = json.loads(text)
        for name in cls.BYTES_FIELDS:
            if data.get(name) is not None:
                data[name] = bytes.fromhex(data[name])
        return cls(**data)


@dataclass(slots=True)
class SimInvoice(Row):
    BYTES_FIELDS: ClassVar[tuple[str, ...]] = ("payment_hash", "preimage", "payment_addr", "description_hash")

    payment_hash: bytes
    preimage: bytes | None  # None for a hold invoice until SettleInvoice
    memo: str
    value_msat: int
    creation_date: int
    expiry_s: int
    cltv_expiry: int
    payment_request: str
    payment_addr: bytes
    description_hash: bytes | None
    private: bool
    is_hold: bool
    add_index: int
    state: int = OPEN
    settle_index: int = 0
    settle_date: int = 0
    amt_paid_msat: int = 0
    htlc_payer: str | None = None  # node whose payment is held on this (hold) invoice


@dataclass(slots=True)
class SimPayment(Row):
    BYTES_FIELDS: ClassVar[tuple[str, ...]] = ("payment_hash", "preimage", "payee_pubkey")

    node: str
    payment_hash: bytes
    payment_request: str
    payee_pubkey: bytes
    value_msat: int
    fee_limit_msat: int
    creation_time_ns: int
    payment_index: int
    status: int = IN_FLIGHT
    phase: str = PHASE_NEW
    fee_msat: int = 0  # fee of the HTLC (final once SUCCEEDED)
    failure_reason: int = REASON_NONE
    preimage: bytes | None = None
    attempt_time_ns: int = 0
    resolve_time_ns: int = 0
    htlc_status: int = -1  # -1 no HTLC, else HTLCAttempt.HTLCStatus (0 in flight, 1 ok, 2 failed)


@dataclass(slots=True)
class Balances(Row):
    """One node's view of its channel, in msat."""

    node: str
    local_msat: int
    remote_msat: int
    unsettled_local_msat: int = 0
    unsettled_remote_msat: int = 0


@dataclass(slots=True)
class NodeConfig:
    """Runtime knobs per node (set with `python -m lnd_simnet configure`); not persisted."""

    fail: str | None = None  # force every outgoing payment to fail with this reason name
    hold: bool = False  # hold every outgoing payment until released
    delay_ms: int | None = None  # override the network's delay for outgoing payments
    extra: dict[str, Any] = field(default_factory=dict)
